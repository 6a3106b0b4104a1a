"""Exception hierarchy. No pytest import: the child side and plain scripts use it too."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple


class DistprocError(Exception):
    """Base of every error this package raises on purpose."""


class Problem(NamedTuple):
    """One mistake in a scenario file, located by line and by ``$.path``."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path}: {self.message}"


class ScenarioError(DistprocError):
    """A scenario document is malformed. Carries every problem found, not just the first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.problems)
        head = f"invalid scenario ({count} problem{'s' if count != 1 else ''}):"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


class IllegalTransition(DistprocError):
    """A task was asked to move between two states the TaskList does not connect."""

    def __init__(self, task: str, current: str, target: str, allowed: Iterable[str]) -> None:
        self.task, self.current, self.target = task, current, target
        self.allowed = sorted(allowed)
        allowed_text = ", ".join(self.allowed) if self.allowed else "nothing (terminal state)"
        super().__init__(
            f"illegal transition for task {task!r}: {current} -> {target}; from {current} allowed: {allowed_text}"
        )


class UnknownTask(DistprocError):
    """A transition or lookup named a task id the TaskList never created."""


class ResourceLimit(DistprocError):
    """A run needs more of the machine than its limits allow (say, open files); raised before the
    first fork, saying what to raise and to what."""


class SkillError(DistprocError):
    """A skill reference cannot be resolved to something runnable."""
