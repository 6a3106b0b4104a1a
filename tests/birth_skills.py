"""A skill that reports how a process it forks is born: what SIGTERM does in its first instant.

The at-fork hook is registered when this module is imported (by the fork server, or the coordinator),
so in a child it runs before the hooks the attempt registers: it sees the state the child was born
with, the state a SIGTERM sent at that instant (``Pool.terminate`` on a worker just forked) meets.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Any

from pytest_distproc.attempt import stats as summary

_AT_BIRTH: dict[str, str] = {}


def _note_sigterm_at_birth() -> None:
    if "DISTPROC_REGION" not in os.environ:  # not a process an attempt forked: leave it alone
        return
    if signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, []):
        _AT_BIRTH["sigterm"] = "blocked"
    elif signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        _AT_BIRTH["sigterm"] = "default"
    else:
        _AT_BIRTH["sigterm"] = "a Python handler"


os.register_at_fork(after_in_child=_note_sigterm_at_birth)


def sigterm_at_birth(records: list[dict[str, Any]], context: Mapping[str, Any]) -> dict[str, Any]:
    """Forks once; the child reports what SIGTERM did at its birth and what it does once it runs."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        running = "blocked" if signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, []) else "unblocked"
        os.write(write_fd, f"{_AT_BIRTH.get('sigterm', 'unknown')}|{running}".encode())
        os._exit(0)
    os.close(write_fd)
    at_birth, running = os.read(read_fd, 64).decode().split("|")
    os.close(read_fd)
    os.waitpid(pid, 0)
    result: dict[str, Any] = summary.summarize([r["value"] for r in records])
    result.update(sigterm_at_birth=at_birth, sigterm_once_running=running,
                  sigterm_in_attempt="blocked" if signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, [])
                  else "unblocked")
    return result
