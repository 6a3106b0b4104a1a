"""Process bookkeeping shared by the fork backend and its fork server (both child subreapers): who our
children are, how a stray that was reparented to us is put down, and how many fds we may open."""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import signal
from collections.abc import Iterator


def children_of(pid: int) -> set[int]:
    """The live children of ``pid`` (``/proc/PID/task/PID/children``), empty when it cannot be read."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return {int(p) for p in handle.read().split()}
    except OSError:
        return set()


def kill_and_reap(pid: int) -> bool:
    """SIGKILL our child ``pid`` (its whole group when it leads one) and reap it; False if it was gone."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def gc_frozen() -> Iterator[None]:
    """Fork inside this: the children's garbage collections then skip every object that existed at the
    fork, instead of writing to its header and so copying its page (Python's advice for forking
    servers, see ``gc.freeze``; ~65 of ~550 page faults of an attempt). The parent collects them again
    after the block. Inside a process whose heap is frozen already (an attempt running a coordinator of
    its own) it leaves the freeze alone."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


_FD_LIMIT: list[tuple[int, int]] = []


def raise_fd_limit() -> tuple[int, int]:
    """Raise this process's soft limit on open files to its hard one, once; return ``(soft, hard)``.

    A run holds a few fds per attempt, and the common soft limit of 1,024 is a default, not a choice:
    the hard limit is what the administrator allowed. Children inherit the raised limit (their own
    fds are closed with ``close_range``, whatever the limit)."""
    if _FD_LIMIT and _FD_LIMIT[0][0] == os.getpid():
        return resource.getrlimit(resource.RLIMIT_NOFILE)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = hard if hard != resource.RLIM_INFINITY else _nr_open()  # the kernel's cap on an "unlimited" one
    if ceiling > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        except (ValueError, OSError):
            pass  # keep the soft one: the budget then says what to raise
    _FD_LIMIT[:] = [(os.getpid(), soft)]
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def open_fd_count() -> int:
    """How many fds this process has open now."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # the listing's own
    except OSError:
        return 0


def _nr_open() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as handle:
            return int(handle.read())
    except (OSError, ValueError):
        return 1 << 20
