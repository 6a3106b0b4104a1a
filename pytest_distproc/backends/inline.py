"""In-process backend: deterministic and fast, for unit tests, ``context: inline`` and exploration.

It gives no isolation: the skill runs in the coordinator's process. Faults that would end or stall a
real process (crash, signal, hang, oom) and delays are *simulated*: announced, then reported as the
exit a real process would have had, without sleeping or dying. Never a silent stand-in for ``fork``.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_distproc.attempt import execute as region
from pytest_distproc.attempt.messages import Job
from pytest_distproc.attempt.skills import Skill
from pytest_distproc.backends.protocol import Handle


class _Death(Exception):
    def __init__(self, exit_message: dict[str, Any]) -> None:
        self.exit_message = exit_message


def _exit(**fields: Any) -> dict[str, Any]:
    return {"type": "exit", "returncode": None, "signal": None, "stack": "", "stderr": "", **fields}


def _crash(fault: Mapping[str, Any], state: dict[str, Any]) -> None:
    raise _Death(_exit(returncode=int(fault.get("exit_code", 3))))


def _signal(fault: Mapping[str, Any], state: dict[str, Any]) -> None:
    raise _Death(_exit(signal="SIG" + str(fault.get("signal", "KILL"))))


def _hang(fault: Mapping[str, Any], state: dict[str, Any]) -> None:
    raise _Death(_exit(signal="SIGKILL", timed_out=True, stack="(simulated hang: no stack)"))


def _oom(fault: Mapping[str, Any], state: dict[str, Any]) -> None:
    raise MemoryError


SIMULATED = {"crash": _crash, "signal": _signal, "hang": _hang, "oom": _oom}


class InlineBackend:
    name = "inline"
    isolated = False

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.queue: deque[tuple[Handle, dict[str, Any]]] = deque()
        self.pid = os.getpid()
        self.clock = 0.0  # simulated seconds: delays, hangs and backoffs cost no real time

    def now(self) -> float:
        return self.clock

    def _delay(self, fault: Mapping[str, Any], state: dict[str, Any]) -> None:
        self.clock += float(fault.get("seconds", 0.0))

    def start(self, job: Job, skill: Skill, *, barrier: bool) -> Handle:
        handle, messages, hung = self._execute(job, skill, {**SIMULATED, "delay": self._delay})
        if hung:
            self.clock += float(job.get("timeout", 0.0))
        self.queue.extend((handle, m) for m in messages)
        return handle

    def _execute(
        self, job: Job, skill: Skill, actions: Mapping[str, Any], *, own_dir: bool = True
    ) -> tuple[Handle, list[dict[str, Any]], bool]:
        """Run one attempt to its end, now: its handle, every message it sends, and whether it hung.

        ``own_dir=False`` lends the attempt the run's dir instead of a fresh one (creating and removing
        a dir costs more than a whole simulated attempt on some file systems).
        """
        if own_dir:
            workdir = tempfile.mkdtemp(prefix=f"{job['task']}-a{job['attempt']}-", dir=self.run_dir)
        else:
            workdir = self.run_dir
        handle = Handle({**job, "workdir": workdir}, self.pid, workdir)
        messages: list[dict[str, Any]] = [{"type": "hello", "pid": self.pid}]
        emit = messages.append
        hung = False
        try:
            result = region.execute(handle.job, skill, emit, actions)
            emit({"type": "result", "result": result})
            emit(_exit(returncode=0))
        except _Death as death:
            hung = bool(death.exit_message.get("timed_out"))
            emit(death.exit_message)
        except MemoryError:
            emit({"type": "error", "kind": "memory", "error": "MemoryError",
                  "message": f"allocation past the {job.get('memory_limit_mb')} MB limit (simulated)"})
            emit(_exit(returncode=region.EXIT_ERROR))
        except Exception as exc:
            emit({"type": "error", "kind": "exception", "error": type(exc).__name__, "message": str(exc)})
            emit(_exit(returncode=region.EXIT_ERROR))
        finally:
            if own_dir:
                shutil.rmtree(workdir, ignore_errors=True)
        return handle, messages, hung

    def release(self, handle: Handle) -> None:
        pass

    def poll(self, timeout: float) -> list[tuple[Handle, dict[str, Any]]]:
        if not self.queue:
            self.clock += timeout
        out = list(self.queue)
        self.queue.clear()
        return out

    def kill(self, handle: Handle, *, dump_stack: bool) -> None:
        pass

    def close(self) -> None:
        self.queue.clear()


class Scheduler(Protocol):
    """The choices a :class:`SimulatedBackend` leaves open; exploration draws them from Hypothesis."""

    def choose(self, ready: list[Handle]) -> int:
        """Which of the attempts with a message ready delivers next (an index into ``ready``)."""
        ...

    def step(self, handle: Handle) -> float:
        """Simulated seconds ``handle`` works before its next message is ready."""
        ...


class FifoScheduler:
    """No choices: the attempt started first goes first, and work takes no simulated time."""

    def choose(self, ready: list[Handle]) -> int:
        return 0

    def step(self, handle: Handle) -> float:
        return 0.0


@dataclass
class ReplayScheduler:
    """Replays recorded ``(kind, value)`` choices (``kind`` is ``choose`` or ``step``); FIFO once they run out."""

    choices: list[tuple[str, float]]
    position: int = 0

    def _next(self, kind: str, default: float) -> float:
        if self.position < len(self.choices) and self.choices[self.position][0] == kind:
            self.position += 1
            return self.choices[self.position - 1][1]
        return default

    def choose(self, ready: list[Handle]) -> int:
        return min(int(self._next("choose", 0)), len(ready) - 1) if len(ready) > 1 else 0

    def step(self, handle: Handle) -> float:
        return self._next("step", 0.0)


_NUDGE = 1e-9  # past a deadline for sure, whatever the float rounding of started + timeout


class SimulatedBackend(InlineBackend):
    """In-process attempts on a simulated clock, delivered in an order a :class:`Scheduler` picks.

    Each attempt is computed at once when it starts (like :class:`InlineBackend`), but its messages
    are released one at a time: the scheduler chooses which ready attempt speaks next and how long
    (in simulated seconds) it works before its next message. A ``delay`` fault holds the attempt's
    next message back by its ``seconds``; a ``hang`` stalls it until the coordinator kills it at its
    timeout, which (as on ``fork``) loses whatever the attempt had not sent yet. No real time passes,
    so thousands of runs fit in a minute, and the same scheduler choices replay the same run.
    """

    name = "simulated"
    isolated = False

    def __init__(self, run_dir: str, scheduler: Scheduler | None = None) -> None:
        super().__init__(run_dir)
        self.scheduler: Scheduler = scheduler or FifoScheduler()
        self.pending: dict[Handle, deque[dict[str, Any]]] = {}  # in start order
        self.ready_at: dict[Handle, float] = {}
        self.stalled: set[Handle] = set()
        self.started: list[Handle] = []
        self.exited: set[Handle] = set()

    def start(self, job: Job, skill: Skill, *, barrier: bool) -> Handle:
        handle, messages, hung = self._execute(job, skill, {**SIMULATED, "delay": _no_delay}, own_dir=False)
        if hung:  # a hang sends nothing more: only the coordinator's kill ends it
            messages.pop()
            self.stalled.add(handle)
        self.started.append(handle)
        self.pending[handle] = deque(messages)
        self.ready_at[handle] = self.clock + self.scheduler.step(handle)
        return handle

    def _ready(self) -> list[Handle]:
        return [h for h, queue in self.pending.items() if queue and self.ready_at[h] <= self.clock]

    def poll(self, timeout: float) -> list[tuple[Handle, dict[str, Any]]]:
        ready = self._ready()
        if not ready:
            upcoming = min((self.ready_at[h] for h, q in self.pending.items() if q), default=math.inf)
            if upcoming < self.clock + timeout:
                self.clock = max(self.clock, upcoming)
                ready = self._ready()
            else:  # the coordinator's next deadline or retry comes first
                self.clock += timeout + _NUDGE
                return []
        handle = ready[self.scheduler.choose(ready) if len(ready) > 1 else 0]
        queue = self.pending[handle]
        message = queue.popleft()
        if queue:
            hold = 0.0
            fault = message.get("fault") or {}
            if message.get("type") == "fault" and fault.get("kind") == "delay":
                hold = float(fault.get("seconds", 0.0))
            self.ready_at[handle] = self.clock + self.scheduler.step(handle) + hold
        elif message.get("type") == "exit":
            del self.pending[handle]
            self.exited.add(handle)
        return [(handle, message)]

    def kill(self, handle: Handle, *, dump_stack: bool) -> None:
        queue = self.pending.get(handle)
        if queue is None:
            return  # already exited
        sent = [queue[0]] if queue and self.ready_at[handle] <= self.clock else []
        if sent and sent[0].get("type") == "exit":
            return  # it died on its own; that exit is already on its way
        stack = "(simulated hang: no stack)" if handle in self.stalled else "(simulated: killed at its timeout)"
        self.stalled.discard(handle)
        self.pending[handle] = deque([*sent, _exit(signal="SIGKILL", stack=stack)])
        self.ready_at[handle] = self.clock

    def unfinished(self) -> list[Handle]:
        """Attempts started whose exit the coordinator never received (orphans, in simulation)."""
        return [h for h in self.started if h not in self.exited]

    def close(self) -> None:
        super().close()
        self.pending.clear()


def _no_delay(fault: Mapping[str, Any], state: dict[str, Any]) -> None:
    """Delays are applied when the fault's announcement is delivered, on the simulated clock."""
