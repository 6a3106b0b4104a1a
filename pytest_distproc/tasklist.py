"""Task states, the legal moves between them, and the append-only history.

The coordinator owns the only TaskList of a run and numbers every entry as it records it:
one loop, one source of order. Clocks of different processes are never compared.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_distproc.errors import IllegalTransition, UnknownTask


class State(str, enum.Enum):
    PENDING = "PENDING"
    BLOCKED = "BLOCKED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    def __str__(self) -> str:
        return self.value


LEGAL: Mapping[State, frozenset[State]] = {
    State.PENDING: frozenset({State.IN_PROGRESS, State.BLOCKED, State.CANCELLED}),
    State.BLOCKED: frozenset({State.PENDING, State.IN_PROGRESS, State.CANCELLED}),
    State.IN_PROGRESS: frozenset({State.COMPLETE, State.FAILED, State.CANCELLED}),
    State.FAILED: frozenset({State.IN_PROGRESS, State.CANCELLED}),
    State.COMPLETE: frozenset(),
    State.CANCELLED: frozenset(),
}
"""A retry is ``FAILED -> IN_PROGRESS``; COMPLETE and CANCELLED are terminal."""

FINISHED = frozenset({State.COMPLETE, State.FAILED, State.CANCELLED})

# Claude Code's task tools know only pending / in_progress / completed; a task that cannot
# finish stays in_progress there.
CLAUDE_STATUS: Mapping[State, str] = {
    State.PENDING: "pending",
    State.BLOCKED: "pending",
    State.IN_PROGRESS: "in_progress",
    State.FAILED: "in_progress",
    State.CANCELLED: "in_progress",
    State.COMPLETE: "completed",
}


@dataclass(frozen=True)
class Transition:
    """One recorded state change. ``from_state`` is None for the task's creation."""

    seq: int
    task: str
    from_state: State | None
    to_state: State
    attempt: int
    pid: int | None
    time: float
    event: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "task": self.task,
            "from": self.from_state.value if self.from_state else None,
            "to": self.to_state.value,
            "attempt": self.attempt,
            "pid": self.pid,
            "time": self.time,
            "event": self.event,
        }


@dataclass(frozen=True)
class Event:
    """Something the coordinator observed that is not a state change (a child started, a fault fired)."""

    seq: int
    kind: str
    task: str | None
    attempt: int
    pid: int | None
    time: float
    text: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "task": self.task,
            "attempt": self.attempt,
            "pid": self.pid,
            "time": self.time,
            "text": self.text,
            "data": dict(self.data),
        }


@dataclass
class Task:
    id: str
    subject: str
    blocked_by: tuple[str, ...] = ()
    state: State = State.PENDING
    attempts: int = 0
    proceed_on_failed_blockers: bool = False
    """True for a task that may run on the survivors once every blocker *finished* (partial aggregation)."""


class TaskList:
    """Tasks with blockers, legal transitions, and one append-only, numbered history."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._tasks: dict[str, Task] = {}
        self._seq = 0
        self.transitions: list[Transition] = []
        self.events: list[Event] = []

    # -- building -------------------------------------------------------------------------
    def create(
        self,
        task_id: str,
        subject: str = "",
        blocked_by: Iterable[str] = (),
        *,
        proceed_on_failed_blockers: bool = False,
    ) -> Task:
        if task_id in self._tasks:
            raise ValueError(f"task {task_id!r} already exists")
        blockers = tuple(blocked_by)
        for blocker in blockers:
            self._get(blocker)
        initial = State.BLOCKED if blockers else State.PENDING
        task = Task(task_id, subject or task_id, blockers, initial, 0, proceed_on_failed_blockers)
        self._tasks[task_id] = task
        self.transitions.append(Transition(self._next(), task_id, None, initial, 0, None, self._clock()))
        return task

    # -- moving ---------------------------------------------------------------------------
    def move(self, task_id: str, target: State, *, pid: int | None = None, event: str = "") -> Transition:
        task = self._get(task_id)
        allowed = LEGAL[task.state]
        if target not in allowed:
            raise IllegalTransition(task_id, task.state.value, target.value, (s.value for s in allowed))
        if target is State.IN_PROGRESS:
            waiting = [b for b in task.blocked_by if not self._blocker_done(task, b)]
            if waiting:
                raise IllegalTransition(
                    task_id,
                    task.state.value,
                    target.value,
                    [f"nothing until its blockers complete (still open: {', '.join(waiting)})"],
                )
            task.attempts += 1
        previous, task.state = task.state, target
        entry = Transition(self._next(), task_id, previous, target, task.attempts, pid, self._clock(), event)
        self.transitions.append(entry)
        return entry

    def restore(
        self, task_id: str, target: State, *, seq: int, attempt: int, pid: int | None, time: float, event: str
    ) -> Transition:
        """Re-append a journaled transition with its original number (resuming a killed coordinator).

        The move is checked like any other; new entries are numbered after the highest restored one.
        """
        task = self._get(task_id)
        allowed = LEGAL[task.state]
        if target not in allowed or seq <= self._seq:
            raise IllegalTransition(task_id, task.state.value, target.value, (s.value for s in allowed))
        previous, task.state = task.state, target
        task.attempts = max(task.attempts, attempt)
        entry = Transition(seq, task_id, previous, target, attempt, pid, time, event)
        self.transitions.append(entry)
        self._seq = seq
        return entry

    def restore_note(self, entry: Event) -> Event:
        """Re-append a journaled note with its original number (resuming a killed coordinator)."""
        if entry.seq <= self._seq:
            raise ValueError(f"note {entry.seq} ({entry.kind}) is not after entry {self._seq} of the history")
        self.events.append(entry)
        self._seq = entry.seq
        return entry

    def note(
        self,
        kind: str,
        text: str,
        *,
        task: str | None = None,
        attempt: int = 0,
        pid: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Event:
        entry = Event(self._next(), kind, task, attempt, pid, self._clock(), text, dict(data or {}))
        self.events.append(entry)
        return entry

    # -- reading --------------------------------------------------------------------------
    def __getitem__(self, task_id: str) -> Task:
        return self._get(task_id)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)

    def ids(self) -> list[str]:
        return list(self._tasks)

    def sequence(self, task_id: str) -> list[State]:
        """Every state the task has been in, in order, starting with its initial state."""
        self._get(task_id)
        return [t.to_state for t in self.transitions if t.task == task_id]

    def unblocked(self, task_id: str) -> bool:
        task = self._get(task_id)
        return all(self._blocker_done(task, b) for b in task.blocked_by)

    def _blocker_done(self, task: Task, blocker: str) -> bool:
        state = self._tasks[blocker].state
        if task.proceed_on_failed_blockers:
            return state is State.COMPLETE or state is State.FAILED
        return state is State.COMPLETE

    def history(self) -> list[Transition | Event]:
        """Transitions and events merged in the coordinator's order."""
        merged: list[Transition | Event] = [*self.transitions, *self.events]
        return sorted(merged, key=lambda entry: entry.seq)

    def _get(self, task_id: str) -> Task:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise UnknownTask(f"no task {task_id!r}; known tasks: {', '.join(self._tasks) or 'none'}") from None

    def _next(self) -> int:
        self._seq += 1
        return self._seq
