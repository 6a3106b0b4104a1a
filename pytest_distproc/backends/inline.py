"""In-process backend: deterministic and fast, for unit tests, ``context: inline`` and exploration.

It gives no isolation: the skill runs in the coordinator's process. Faults that would end or stall a
real process (crash, signal, hang, oom) and delays are *simulated*: announced, then reported as the
exit a real process would have had, without sleeping or dying. Never a silent stand-in for ``fork``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import deque
from collections.abc import Mapping
from typing import Any

from pytest_distproc import region
from pytest_distproc.backends import Handle
from pytest_distproc.skills import Skill


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

    def start(self, job: dict[str, Any], skill: Skill, *, barrier: bool) -> Handle:
        workdir = tempfile.mkdtemp(prefix=f"{job['task']}-a{job['attempt']}-", dir=self.run_dir)
        handle = Handle({**job, "workdir": workdir}, self.pid, workdir)
        emit = self.queue.append
        emit((handle, {"type": "hello", "pid": self.pid}))
        try:
            actions = {**SIMULATED, "delay": self._delay}
            result = region.execute(handle.job, skill, lambda m: emit((handle, m)), actions)
            emit((handle, {"type": "result", "result": result}))
            emit((handle, _exit(returncode=0)))
        except _Death as death:
            if death.exit_message.get("timed_out"):
                self.clock += float(job.get("timeout", 0.0))
            emit((handle, death.exit_message))
        except MemoryError:
            emit((handle, {"type": "error", "kind": "memory", "error": "MemoryError",
                           "message": f"allocation past the {job.get('memory_limit_mb')} MB limit (simulated)"}))
            emit((handle, _exit(returncode=region.EXIT_ERROR)))
        except Exception as exc:
            emit((handle, {"type": "error", "kind": "exception", "error": type(exc).__name__, "message": str(exc)}))
            emit((handle, _exit(returncode=region.EXIT_ERROR)))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return handle

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
