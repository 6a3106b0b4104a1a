"""What an attempt does to itself before its skill runs, so that a hostile skill cannot undo it.

Why each step:

- it joins its cgroups (:mod:`pytest_distproc.backends.containment`) first, so everything the skill
  starts is in them, whatever session or process group it moves to;
- it becomes not dumpable and gives up every capability (the bounding set too, so no exec regains
  them): as root, /proc/<coordinator>/fd, mem and environ and ``PTRACE_ATTACH`` to the coordinator or
  the fork server need ``CAP_SYS_PTRACE`` or a superset of the target's capabilities, and a sibling
  that is not dumpable needs ``CAP_SYS_PTRACE`` too;
- it rewrites its environment block: ``/proc/self/environ`` shows the block the process was
  exec'd with, inherited through fork, whatever ``os.environ`` says now.

The ctypes functions are resolved once, in the coordinator and the fork server, before any fork.
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any

PR_GET_DUMPABLE, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 3, 4, 24, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
ENV_START, ENV_END = 50, 51  # fields of /proc/self/stat, counted from 1
PAGE = 4096


def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _env_block() -> tuple[int, int] | None:
    """Where this process's environment block lies (fields 50 and 51 of /proc/self/stat). Read once, at
    import, in the coordinator and the fork server: a forked child has the same addresses, and reading
    /proc/self/stat cost each attempt ~0.3 ms."""
    try:
        with open("/proc/self/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[ENV_START - 3]), int(fields[ENV_END - 3])
    except (OSError, IndexError, ValueError):
        return None
    return (start, end) if 0 < start < end else None


_ENV_BLOCK = _env_block()
_CAPSET_HEADER = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
_NO_CAPABILITIES = (ctypes.c_uint32 * 6)()
"""capset(2)'s arguments, made once before any fork (making a ctypes array type in each child cost ~0.2 ms):
two {effective, permitted, inheritable} sets of 32 bits, all empty."""


def join(groups: list[str]) -> bool:
    """Create this attempt's cgroups and move into them; False when one could not be joined."""
    pid = str(os.getpid()).encode()
    joined = True
    for group in groups:
        try:
            os.mkdir(group, 0o755)
        except FileExistsError:
            pass
        except OSError:
            joined = False
            continue
        try:
            fd = os.open(os.path.join(group, "cgroup.procs"), os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        except OSError:
            joined = False
    return joined and bool(groups)


def drop_inheritable() -> str:
    """What a child inherits through fork: no new privileges through exec, no ambient capabilities, an
    empty bounding set. Done once by a process that forks many (the fork server, which never execs), it
    spares each child ~40 calls. Returns "dropped", or "kept" when the bounding set could not be emptied
    (not root)."""
    libc = _LIBC
    if libc is None:
        return "kept"
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            # EINVAL: past the last capability; EPERM: not root
            return "dropped" if ctypes.get_errno() == errno.EINVAL else "kept"
    return "dropped"


def drop_privileges(bounding_set: str | None = None) -> dict[str, Any]:
    """Not dumpable, no capabilities (effective, permitted, inheritable, ambient, bounding), no new
    privileges through exec. ``bounding_set``: what :func:`drop_inheritable` gave in the parent this
    process was forked from, when it ran there. What held, for the hello's ``isolation``."""
    libc = _LIBC
    if libc is None:
        return {"dumpable": True, "capabilities": "kept"}
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    bounding = bounding_set or drop_inheritable()
    dropped = libc.capset(_CAPSET_HEADER, _NO_CAPABILITIES) == 0
    return {"dumpable": False, "capabilities": "dropped" if dropped else "kept", "bounding_set": bounding}


def rewrite_environ_block(env: dict[str, str]) -> bool:
    """Overwrite the environment block this process inherited with ``env`` (what fits) and zeros.

    libc's ``environ`` no longer points into the block once ``os.environ`` was rewritten (every kept
    variable was set again, every other one unset), so nothing reads it after this.
    """
    if _LIBC is None or _ENV_BLOCK is None:
        return False
    start, end = _ENV_BLOCK
    size = end - start
    block = b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items() if "\0" not in k + v)
    if len(block) >= size:
        block = block[: block.rfind(b"\0", 0, size - 1) + 1]  # whole variables only
    ctypes.memmove(start, block.ljust(size, b"\0"), size)
    return True
