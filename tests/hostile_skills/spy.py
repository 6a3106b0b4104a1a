"""A skill that tries to read or forge what belongs to the coordinator and the fork server.

It raises (so the item fails, naming every hole) if any of these worked: reading a secret from its own
``/proc/self/environ``; reading an ancestor's environ; opening one of an ancestor's fds (the
coordinator's result pipes: forging a sibling's result); opening an ancestor's ``mem``; attaching to
an ancestor with ptrace (``PTRACE_SEIZE``: the same permission check as ``PTRACE_ATTACH``, without
stopping pytest should it succeed). The ancestors are every process up to the pytest process.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping
from typing import Any

from tests.hostile_skills.common import summary

SECRET = "DISTPROC_SECRET_TOKEN"
PTRACE_SEIZE, PTRACE_DETACH = 0x4206, 17


def _is_pytest(pid: int) -> bool:
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        args = handle.read().split(b"\0")
    return any(a.endswith(b"pytest") or a == b"-mpytest" for a in args)


def holes() -> list[str]:
    found = []
    with open("/proc/self/environ", "rb") as handle:
        if SECRET.encode() in handle.read():
            found.append("its own /proc/self/environ holds the coordinator's secret")
    libc = ctypes.CDLL(None, use_errno=True)
    pid = os.getppid()
    while pid > 1:
        name = "the coordinator" if _is_pytest(pid) else f"ancestor {pid}"
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                secret = SECRET.encode() in handle.read()
            found.append(f"read {name}'s environ" + (" (with the secret)" if secret else ""))
        except OSError:
            pass
        try:
            fds = os.listdir(f"/proc/{pid}/fd")  # the numbers only: the owner of a dir may list it
            for fd in fds:
                try:
                    os.close(os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK))
                    found.append(f"opened {name}'s fd {fd} for writing")
                    break
                except OSError:
                    pass
        except OSError:
            pass
        try:
            os.close(os.open(f"/proc/{pid}/mem", os.O_RDONLY))
            found.append(f"opened {name}'s mem")
        except OSError:
            pass
        if libc.ptrace(PTRACE_SEIZE, pid, None, None) == 0:
            found.append(f"attached to {name} with ptrace")
            libc.ptrace(PTRACE_DETACH, pid, None, None)
        if _is_pytest(pid):
            break
        with open(f"/proc/{pid}/stat") as handle:
            pid = int(handle.read().rsplit(")", 1)[1].split()[1])
    return found


def snoop(records: list[dict[str, Any]], context: Mapping[str, Any]) -> dict[str, Any]:
    found = holes()
    if found:
        raise RuntimeError("; ".join(found))
    return summary(records)
