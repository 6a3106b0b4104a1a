"""The plain data that crosses the process boundary of an attempt, both ways.

In: the coordinator's :class:`Job`, plus the :class:`ChildJob` keys a backend adds. Out, in this order:
:class:`Hello` (set up, waiting for the go), :class:`FaultAnnounced` (a fault is about to act), then
:class:`Result` or :class:`Error`, and from the backend, never the child, exactly one :class:`Exit`;
:class:`Garbage` stands for whatever could not be read. A child is not trusted to keep to these shapes:
the coordinator reads every field with a default.
"""

from __future__ import annotations

import math
from typing import Any, Literal, TypedDict, cast

MAX_MESSAGE_BYTES = 1 << 20
"""The longest message line a child may send; a summary takes a few hundred bytes."""
MAX_DEPTH = 32
"""How deeply a message may nest; ours nest three levels."""
MAX_INT_DIGITS = 19
"""The longest integer a message may carry: a record count fits in 64 bits."""


class Job(TypedDict):
    """One attempt of one region, as the coordinator asks for it."""

    task: str
    region: str
    attempt: int
    skill: str
    seed: int
    source: dict[str, Any]
    """Where the records come from (:func:`pytest_distproc.attempt.data.source_of`)."""
    faults: list[dict[str, Any]]
    """This attempt's planned faults (:func:`pytest_distproc.run.model.fault_dict`)."""
    memory_limit_mb: int
    timeout: float


class ChildJob(Job, total=False):
    """What a backend adds to a :class:`Job` before the child runs it."""

    workdir: str
    """The attempt's own folder, inside the run dir."""
    stderr_fd: int
    """A memfd the child's stderr goes to; its parent reads the tail after the exit."""
    stack_fd: int
    """A memfd for the faulthandler's stack dump (a hang killed for its timeout)."""
    address_space: int
    """The parent's address space at the fork, the base of the child's memory limit."""
    stack_slot: int
    """The fork server's faulthandler fd, which the child points at its own stack memfd."""
    env_scrubbed: bool
    """The fork server holds only the allow-listed environment already."""
    cgroups: list[str]
    """The attempt's cgroups (one per hierarchy), which it creates and joins before anything else."""
    inherited: dict[str, Any]
    """What the fork server did once for all its children, which they report and do not redo:
    ``bounding_set`` (emptied, see :func:`~pytest_distproc.attempt.confine.drop_inheritable`) and
    ``environ_block`` (its own, rewritten to the allow-listed environment at ``prepare``)."""


def child_job(job: Job, **keys: Any) -> ChildJob:
    """A copy of ``job`` with the keys a backend adds for the child (checked by their names here)."""
    unknown = set(keys) - set(ChildJob.__annotations__)
    if unknown:
        raise TypeError(f"not a key of ChildJob: {', '.join(sorted(unknown))}")
    return cast(ChildJob, {**job, **keys})


class Hello(TypedDict, total=False):
    type: Literal["hello"]
    pid: int
    isolation: dict[str, Any]


class FaultAnnounced(TypedDict):
    type: Literal["fault"]
    fault: dict[str, Any]


class Result(TypedDict):
    type: Literal["result"]
    result: Any


class Error(TypedDict, total=False):
    type: Literal["error"]
    kind: str
    """``exception`` or ``memory``."""
    error: str
    message: str
    traceback: str


class Garbage(TypedDict, total=False):
    type: Literal["garbage"]
    text: str
    reason: str
    """What was wrong with it, when it was read but out of bounds (size, depth, an integer's size)."""


class Exit(TypedDict, total=False):
    type: Literal["exit"]
    returncode: int | None
    signal: str | None
    stack: str
    stderr: str
    timed_out: bool
    """The simulated backend's way of saying the attempt hung until its timeout."""


Message = Hello | FaultAnnounced | Result | Error | Garbage | Exit
MESSAGE_KINDS = frozenset({"hello", "fault", "result", "error", "garbage", "exit"})


def out_of_bounds(message: object) -> str | None:
    """Why a decoded message is more than the coordinator handles (nested too deeply, an integer too
    long to turn into a float), or None. An iterative walk: a recursive one would hit the very limit
    it guards against."""
    stack: list[tuple[object, int]] = [(message, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list, tuple)):
            if depth > MAX_DEPTH:
                return f"nested deeper than {MAX_DEPTH} levels"
            stack.extend((child, depth + 1) for child in (value.values() if isinstance(value, dict) else value))
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**MAX_INT_DIGITS:
            bits = abs(value).bit_length()
            digits = len(str(abs(value))) if bits < 10_000 else int(bits * math.log10(2)) + 1
            return f"an integer of {digits} digits (at most {MAX_INT_DIGITS})"
    return None


def garbage(line: bytes, reason: str | None = None) -> Garbage:
    """The message that stands for an unreadable ``line``; ``reason`` says what was wrong when it is known."""
    message = Garbage(type="garbage", text=line[:200].decode(errors="replace"))
    if reason:
        message["reason"] = reason
    return message
