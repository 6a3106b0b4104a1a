"""Reading the files a scenario names without ever blocking or raising raw: a FIFO, a directory or a symlink
loop where a file belongs is said in words (opening a FIFO for reading waits for a writer, forever)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class NotAFile(ValueError):
    """The path exists but is no regular file; the message says what it is, e.g. ``a FIFO (named pipe)``."""


def kind_of(path: str | Path) -> str | None:
    """What ``path`` is when it is no regular file ('a directory', 'a symlink loop', ...); None for a regular
    file or for nothing there."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return _error_kind(exc)
    return _mode_kind(mode)


def read_bytes(path: str | Path) -> bytes:
    """The bytes of the regular file at ``path``, or :class:`NotAFile`; ``FileNotFoundError`` and other
    ``OSError`` pass. Opened with ``O_NONBLOCK`` and checked on the descriptor opened (``fstat``), so the path
    cannot change into a FIFO between a check and the read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotAFile(_error_kind(exc)) from None
        raise
    with open(fd, "rb") as handle:
        kind = _mode_kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotAFile(kind)
        return handle.read()


def _error_kind(exc: OSError) -> str:
    return "a symlink loop" if exc.errno == errno.ELOOP else f"unreadable ({exc.strerror})"


def _mode_kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"
