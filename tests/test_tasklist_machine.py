"""The TaskList against a model, with Hypothesis' RuleBasedStateMachine: any sequence of moves, legal or not."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pytest_distproc.errors import IllegalTransition, UnknownTask
from pytest_distproc.tasklist import FINISHED, LEGAL, State, TaskList

REGIONS = ["process-region-a", "process-region-b", "process-region-c"]
AGGREGATE = "aggregate-results"
STATES = list(State)


class TaskListMachine(RuleBasedStateMachine):
    """Model: each task's state, attempts and sequence; the history grows by one numbered entry per record."""

    @initialize(partial=st.booleans())
    def create(self, partial: bool) -> None:
        self.tasks = TaskList(clock=lambda: 0.0)
        self.partial = partial
        self.state: dict[str, State] = {}
        self.attempts: dict[str, int] = {}
        self.sequence: dict[str, list[State]] = {}
        for task in REGIONS:
            self.tasks.create(task)
            self._created(task, State.PENDING)
        self.tasks.create(AGGREGATE, blocked_by=REGIONS, proceed_on_failed_blockers=partial)
        self._created(AGGREGATE, State.BLOCKED)
        self.entries = len(REGIONS) + 1

    def _created(self, task: str, state: State) -> None:
        self.state[task], self.attempts[task], self.sequence[task] = state, 0, [state]

    def _blockers_done(self, task: str) -> bool:
        if task != AGGREGATE:
            return True
        done = {State.COMPLETE, State.FAILED} if self.partial else {State.COMPLETE}
        return all(self.state[r] in done for r in REGIONS)

    @rule(task=st.sampled_from([*REGIONS, AGGREGATE]), to=st.sampled_from(STATES))
    def move(self, task: str, to: State) -> None:
        target = to
        current = self.state[task]
        legal = target in LEGAL[current] and (target is not State.IN_PROGRESS or self._blockers_done(task))
        try:
            entry = self.tasks.move(task, target, pid=42, event="e")
        except IllegalTransition as error:
            assert not legal, f"{task}: {current} -> {target} is legal but was refused: {error}"
            assert error.task == task and error.current == current.value and error.target == target.value
            return
        assert legal, f"{task}: {current} -> {target} is illegal but was accepted"
        if task == AGGREGATE and target is State.IN_PROGRESS:  # only ever after every region finished
            assert all(self.state[r] in FINISHED for r in REGIONS)
        self.entries += 1
        if target is State.IN_PROGRESS:
            self.attempts[task] += 1
        self.state[task] = target
        self.sequence[task].append(target)
        assert (entry.seq, entry.task, entry.from_state, entry.to_state) == (self.entries, task, current, target)
        assert entry.attempt == self.attempts[task]

    @precondition(lambda self: any(self.state[r] is State.COMPLETE for r in REGIONS))
    @rule()
    def completed_region_is_terminal(self) -> None:
        task = next(r for r in REGIONS if self.state[r] is State.COMPLETE)
        try:
            self.tasks.move(task, State.IN_PROGRESS)
        except IllegalTransition as error:
            assert "terminal" in str(error)
        else:
            raise AssertionError("a COMPLETE task moved again")

    @rule(kind=st.sampled_from(["started", "fault", "together"]))
    def note(self, kind: str) -> None:
        event = self.tasks.note(kind, "something happened", task=REGIONS[0])
        self.entries += 1
        assert event.seq == self.entries

    @rule(name=st.text(min_size=1, max_size=5).filter(lambda n: n not in [*REGIONS, AGGREGATE]))
    def unknown_task(self, name: str) -> None:
        try:
            self.tasks.move(name, State.IN_PROGRESS)
        except UnknownTask as error:
            assert "known tasks" in str(error)
        else:
            raise AssertionError(f"moved a task that does not exist: {name!r}")

    @invariant()
    def matches_the_model(self) -> None:
        for task in [*REGIONS, AGGREGATE]:
            assert self.tasks[task].state is self.state[task]
            assert self.tasks[task].attempts == self.attempts[task]
            assert self.tasks.sequence(task) == self.sequence[task]
        assert self.tasks.unblocked(AGGREGATE) == self._blockers_done(AGGREGATE)

    @invariant()
    def history_is_numbered_one_by_one(self) -> None:
        history = self.tasks.history()
        assert [entry.seq for entry in history] == list(range(1, self.entries + 1))


TaskListMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None,
                                             derandomize=True, database=None)
test_tasklist_state_machine = TaskListMachine.TestCase
