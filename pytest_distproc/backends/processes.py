"""Process bookkeeping shared by the fork backend and its fork server (both child subreapers): who our
children are, and how a stray that was reparented to us is put down."""

from __future__ import annotations

import contextlib
import gc
import os
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
