"""Skills used by the tests; imported by the coordinator before it forks."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any

from pytest_distproc import summary

CALLS: list[str] = []


def environment_probe(records: list[dict[str, Any]], context: Mapping[str, Any]) -> dict[str, Any]:
    """A region-stats summary plus what the processor could see of its surroundings."""
    CALLS.append(context["region"])
    result: dict[str, Any] = summary.summarize([r["value"] for r in records])
    result["secret_visible"] = int("DISTPROC_SECRET_TOKEN" in os.environ)
    result["own_tmp"] = int(tempfile.gettempdir() == context["workdir"] == os.getcwd())
    result["module_state"] = len(CALLS)
    return result
