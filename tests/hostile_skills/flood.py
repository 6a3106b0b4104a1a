"""A skill that writes far more to stdout than any attempt may keep, and says how much was accepted."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NoReturn

FLOOD_MIB = 128


def flood(records: list[dict[str, Any]], context: Mapping[str, Any]) -> NoReturn:
    """Write FLOOD_MIB MiB to fd 1, ignoring every failed write; then fail, naming what was accepted."""
    chunk = b"x" * (1024 * 1024 - 1) + b"\n"
    accepted = 0
    for _ in range(FLOOD_MIB):
        try:
            accepted += os.write(1, chunk)
        except OSError:
            pass
    raise RuntimeError(f"accepted {accepted // (1024 * 1024)} MiB")
