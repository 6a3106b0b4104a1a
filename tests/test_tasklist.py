"""The TaskList: legal transitions, blockers, and the numbered append-only history."""

from __future__ import annotations

import pytest

from pytest_distproc.errors import IllegalTransition, UnknownTask
from pytest_distproc.tasklist import CLAUDE_STATUS, LEGAL, State, TaskList


def make() -> TaskList:
    tasks = TaskList()
    tasks.create("process-region-a")
    tasks.create("process-region-b")
    tasks.create("aggregate-results", blocked_by=["process-region-a", "process-region-b"])
    return tasks


def test_initial_states_follow_blockers() -> None:
    tasks = make()
    assert tasks["process-region-a"].state is State.PENDING
    assert tasks["aggregate-results"].state is State.BLOCKED


def test_history_is_numbered_in_recording_order() -> None:
    tasks = make()
    tasks.move("process-region-a", State.IN_PROGRESS)
    tasks.note("started", "a is running", task="process-region-a")
    tasks.move("process-region-a", State.COMPLETE)
    assert [e.seq for e in tasks.history()] == [1, 2, 3, 4, 5, 6]
    assert [type(e).__name__ for e in tasks.history()][-3:] == ["Transition", "Event", "Transition"]


def test_retry_goes_failed_to_in_progress_and_counts_attempts() -> None:
    tasks = make()
    for state in (State.IN_PROGRESS, State.FAILED, State.IN_PROGRESS, State.COMPLETE):
        tasks.move("process-region-a", state)
    assert tasks.sequence("process-region-a") == [
        State.PENDING, State.IN_PROGRESS, State.FAILED, State.IN_PROGRESS, State.COMPLETE
    ]
    assert tasks["process-region-a"].attempts == 2


def test_illegal_transition_names_task_states_and_what_is_allowed() -> None:
    tasks = make()
    with pytest.raises(IllegalTransition) as info:
        tasks.move("process-region-a", State.COMPLETE)
    assert str(info.value) == (
        "illegal transition for task 'process-region-a': PENDING -> COMPLETE; "
        "from PENDING allowed: BLOCKED, CANCELLED, IN_PROGRESS"
    )


def test_terminal_states_allow_nothing() -> None:
    tasks = make()
    tasks.move("process-region-a", State.CANCELLED)
    with pytest.raises(IllegalTransition, match="nothing \\(terminal state\\)"):
        tasks.move("process-region-a", State.IN_PROGRESS)


def test_blocked_task_cannot_start_before_its_blockers_complete() -> None:
    tasks = make()
    tasks.move("process-region-a", State.IN_PROGRESS)
    tasks.move("process-region-a", State.COMPLETE)
    with pytest.raises(IllegalTransition, match="still open: process-region-b"):
        tasks.move("aggregate-results", State.IN_PROGRESS)
    tasks.move("process-region-b", State.IN_PROGRESS)
    tasks.move("process-region-b", State.COMPLETE)
    tasks.move("aggregate-results", State.IN_PROGRESS)
    assert tasks["aggregate-results"].state is State.IN_PROGRESS


def test_failed_blockers_release_only_a_partial_task() -> None:
    tasks = TaskList()
    tasks.create("a")
    tasks.create("strict", blocked_by=["a"])
    tasks.create("partial", blocked_by=["a"], proceed_on_failed_blockers=True)
    tasks.move("a", State.IN_PROGRESS)
    tasks.move("a", State.FAILED)
    assert not tasks.unblocked("strict")
    assert tasks.unblocked("partial")
    with pytest.raises(IllegalTransition):
        tasks.move("strict", State.IN_PROGRESS)


def test_unknown_tasks_are_named() -> None:
    tasks = make()
    with pytest.raises(UnknownTask, match="no task 'process-region-z'; known tasks: process-region-a"):
        tasks.move("process-region-z", State.IN_PROGRESS)
    with pytest.raises(UnknownTask):
        tasks.create("x", blocked_by=["nope"])


def test_duplicate_task_ids_are_refused() -> None:
    tasks = make()
    with pytest.raises(ValueError, match="already exists"):
        tasks.create("process-region-a")


def test_every_state_maps_onto_claude_code_task_status() -> None:
    assert set(CLAUDE_STATUS) == set(State)
    assert CLAUDE_STATUS[State.FAILED] == "in_progress"  # a task that cannot finish stays in_progress there
    assert set(LEGAL) == set(State)
