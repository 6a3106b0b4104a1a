"""A network namespace with only loopback, so nothing the CLI under test tries can leave the machine.

Namespaces belong to threads on Linux: a thread that calls ``unshare(CLONE_NEWNET)`` moves alone, and
what it creates afterwards (a listening socket, a child process) lives in its namespace for good. So
the pytest process stays on the real network while the model server's socket and the CLI it starts
share a namespace whose only interface is ``lo``. Where that is impossible we refuse: never a run with
network.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import TypeVar

from pytest_distproc.errors import DistprocError

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


class NoLoopbackNamespace(DistprocError):
    """A loopback-only network namespace cannot be made here; the claude-code backend refuses to run."""


def _unshare_network() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        why = ("it needs CAP_SYS_ADMIN: run as root (CI does), or in a container started with --cap-add SYS_ADMIN"
               if code in (errno.EPERM, errno.EACCES) else os.strerror(code))
        raise NoLoopbackNamespace(
            f"the claude-code backend runs the CLI only in a network namespace with nothing but loopback, "
            f"and unshare(CLONE_NEWNET) failed here: {why}. It never runs the CLI with network.")


def _loopback_up() -> None:
    """``ip link set lo up`` without the ``ip`` binary: one ioctl pair on any socket of the namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, request + b"\0" * 22)[:18])[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP) + b"\0" * 22)


def interfaces() -> list[str]:
    """The network interfaces the calling thread sees (``lo`` alone inside our namespace)."""
    return [name for _, name in socket.if_nameindex()]


def in_loopback_namespace(build: Callable[[], T]) -> T:
    """Call ``build`` in a new thread that first moves into a fresh network namespace with only ``lo`` up,
    and return what it returns: the sockets it binds and the processes it starts stay in that namespace."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            _unshare_network()
            _loopback_up()
            if interfaces() != ["lo"]:
                raise NoLoopbackNamespace(f"the new network namespace has interfaces {interfaces()}, not only lo")
            outcome.append(build())
        except BaseException as exc:  # handed back to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=body, name="distproc-loopback-ns", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]
