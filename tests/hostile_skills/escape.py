"""Skills that start processes a process group cannot hold, then hang until someone kills them."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from collections.abc import Mapping
from typing import Any, NoReturn

from tests.hostile_skills.common import hang, ready, tagged_env

PR_SET_PDEATHSIG = 1


def join_parent_group(records: list[dict[str, Any]], context: Mapping[str, Any]) -> NoReturn:
    """Move into the parent's process group (same session: setpgid allows it) with a helper, and hang:
    a ``killpg`` of the attempt's own group finds nobody."""
    os.setpgid(0, os.getpgid(os.getppid()))
    subprocess.Popen(["sleep", "600"], env=tagged_env())
    ready(context)
    hang()


def new_session_helper(records: list[dict[str, Any]], context: Mapping[str, Any]) -> NoReturn:
    """A helper in a session of its own (``start_new_session=True``), out of the attempt's group."""
    subprocess.Popen(["sleep", "600"], start_new_session=True, env=tagged_env())
    ready(context)
    hang()


def systemexit_on_sigterm(records: list[dict[str, Any]], context: Mapping[str, Any]) -> NoReturn:
    """Replace the attempt's SIGTERM handler with one that raises SystemExit, under a plain Popen: the
    parent-death signal then neither kills the helper nor removes the temp dir."""

    def leave(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, leave)
    subprocess.Popen(["sleep", "600"], env=tagged_env())
    ready(context)
    hang()


def no_parent_death_signal(records: list[dict[str, Any]], context: Mapping[str, Any]) -> NoReturn:
    """Clear PR_SET_PDEATHSIG and ignore SIGTERM: nothing tells it the coordinator died."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready(context)
    hang()


def _session_chain(depth: int, context: Mapping[str, Any]) -> NoReturn:
    """``depth`` processes, each forked by the one before and in a session of its own; all hang."""
    for _ in range(depth):
        if os.fork():
            hang()
        os.setsid()
    ready(context)
    hang()


def session_chain_2(records: list[dict[str, Any]], context: Mapping[str, Any]) -> NoReturn:
    _session_chain(2, context)


def session_chain_25(records: list[dict[str, Any]], context: Mapping[str, Any]) -> NoReturn:
    _session_chain(25, context)


def everything(records: list[dict[str, Any]], context: Mapping[str, Any]) -> NoReturn:
    """All of the above at once: for the ways pytest can die that are tried once each."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    subprocess.Popen(["sleep", "600"], start_new_session=True, env=tagged_env())
    subprocess.Popen(["sleep", "600"], env=tagged_env())
    _session_chain(25, context)
