"""The backend protocol: a backend runs one attempt of one region somewhere and reports what happened.

A backend takes the coordinator's :class:`~pytest_distproc.attempt.messages.Job` and yields, from
:meth:`Backend.poll`, the messages of :mod:`pytest_distproc.attempt.messages` in the order the child
sent them, ending with exactly one ``exit`` per attempt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_distproc.attempt.messages import Job
from pytest_distproc.attempt.skills import Skill


@dataclass(eq=False)
class Handle:
    """The coordinator's grip on one running attempt."""

    job: Mapping[str, Any]
    pid: int | None = None
    workdir: str = ""
    node: Mapping[str, str] | None = None
    """Where the attempt runs when the backend has nodes (ray): ``{"id": ..., "name": ...}``."""

    @property
    def task(self) -> str:
        return str(self.job["task"])

    @property
    def attempt(self) -> int:
        return int(self.job["attempt"])


class Backend(Protocol):
    name: str
    isolated: bool

    def start(self, job: Job, skill: Skill, *, barrier: bool) -> Handle: ...

    def release(self, handle: Handle) -> None: ...

    def poll(self, timeout: float) -> list[tuple[Handle, dict[str, Any]]]: ...

    def kill(self, handle: Handle, *, dump_stack: bool) -> None: ...

    def close(self) -> None: ...

    def now(self) -> float:
        """The coordinator's clock for this backend (real for fork and ray, simulated inline)."""
        ...


def start_all(backend: Backend, jobs: list[Job], skill: Skill, *, barrier: bool) -> list[Handle]:
    """Start every job, through the backend's ``start_many`` when it has one (it may fork them all
    before any bookkeeping), else one ``start`` at a time."""
    start_many = getattr(backend, "start_many", None)
    if start_many is not None:
        handles: list[Handle] = start_many(jobs, skill, barrier=barrier)
        return handles
    return [backend.start(job, skill, barrier=barrier) for job in jobs]
