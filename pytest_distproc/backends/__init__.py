"""Backends: where attempts run (fork, the fork server, inline, simulated, Ray), behind one protocol.

See :mod:`.protocol` for the protocol and the messages; :func:`make_backend` builds one by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_distproc.backends.protocol import Backend, Handle

__all__ = ["Backend", "Handle", "make_backend"]


def __getattr__(name: str) -> Any:
    """``Backend`` and ``Handle`` on first use: the fork server and the guardian import this package
    and need neither (the protocol imports the TaskList)."""
    if name in ("Backend", "Handle"):
        from pytest_distproc.backends import protocol

        return getattr(protocol, name)
    raise AttributeError(f"module 'pytest_distproc.backends' has no attribute {name!r}")


def make_backend(name: str, run_dir: str, *, ray_address: str | None = None) -> Backend:
    """The backend called ``name``; ``ray_address`` is the Ray cluster to join (None: a private local Ray)."""
    if name == "fork":
        from pytest_distproc.backends.fork import ForkBackend

        return ForkBackend(run_dir)
    if name == "inline":
        from pytest_distproc.backends.inline import InlineBackend

        return InlineBackend(run_dir)
    if name == "ray":
        from pytest_distproc.backends.ray import RayBackend

        return RayBackend(run_dir, address=ray_address)
    raise ValueError(f"unknown backend {name!r}")
