"""An attempt's stdout and stderr: a memory file of bounded size, whose head is kept and whose truncation is said.

Why: the memfd the coordinator keeps lives outside the attempt's ``RLIMIT_AS``, so a skill printing
gigabytes made ``memory_limit_mb`` meaningless (three regions printing 2 GiB each held ~5.4 GB of
shared memory). The file is made ``limit`` bytes long and sealed against growing: a write past the end
fails (``EPERM``) instead of taking memory, and pages never written cost nothing. The child's write
position, shared with the coordinator's fd (one open file), says how much it wrote.
"""

from __future__ import annotations

import fcntl
import os

MIB = 1024 * 1024
LIMIT_MAX = 16 * MIB
LIMIT_MIN = 1 * MIB
PAGE = 4096


def limit_for(memory_limit_mb: int) -> int:
    """What one attempt may write to stdout and stderr together: 16 MiB, or a quarter of its
    ``memory_limit_mb`` when that is less (never under 1 MiB)."""
    if memory_limit_mb <= 0:
        return LIMIT_MAX
    return max(LIMIT_MIN, min(LIMIT_MAX, memory_limit_mb * MIB // 4))


def memfd(name: str, limit: int) -> int:
    """A memfd that holds at most ``limit`` bytes (unbounded only where the kernel cannot seal one)."""
    try:
        fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    except (AttributeError, OSError):
        return os.memfd_create(name)
    try:
        os.ftruncate(fd, limit)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_GROW | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL)
    except OSError:
        os.ftruncate(fd, 0)  # no seals here: a plain memfd, as before
    return fd


def written(fd: int) -> tuple[int, bool]:
    """How many bytes the attempt wrote, and whether it ran into the limit."""
    try:
        sealed = bool(fcntl.fcntl(fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_GROW)
    except OSError:
        sealed = False
    size = os.fstat(fd).st_size
    if not sealed:
        return size, False
    end = min(os.lseek(fd, 0, os.SEEK_CUR), size)
    return end, end > size - PAGE


def tail(fd: int, length: int) -> str:
    """The last ``length`` bytes written, with a line that says so when the limit cut the output."""
    end, truncated = written(fd)
    start = max(0, end - length)
    text = os.pread(fd, end - start, start).decode(errors="replace").strip()  # never past the end: zeros there
    if truncated:
        size = os.fstat(fd).st_size
        text += (f"\n(output truncated: stdout and stderr are kept up to {size // MIB} MiB; "
                 f"every write past that failed)")
    return text.strip()
