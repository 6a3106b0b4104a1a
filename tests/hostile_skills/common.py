"""What the hostile skills share: an honest summary to return, a ready marker the test waits for, a hang."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from pytest_distproc.attempt import stats


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(stats.summarize([r["value"] for r in records]))


def markers(context: Mapping[str, Any]) -> Path:
    """A dir beside the test's private TMPDIR (which holds the run dir), where a test looks for markers."""
    sandbox_tmp = Path(context["workdir"]).parent.parent
    path = sandbox_tmp.parent / f"markers-{sandbox_tmp.name}"
    path.mkdir(exist_ok=True)
    return path


def ready(context: Mapping[str, Any], what: str = "") -> None:
    (markers(context) / f"ready-{context['region']}{what}").write_text(str(os.getpid()))


def tagged_env() -> dict[str, str]:
    """Our environment plus the test's ``DISTPROC_TAG`` from the block we inherited, so that the test
    finds a helper we exec even where ``os.environ`` was scrubbed of it."""
    env = dict(os.environ)
    with open("/proc/self/environ", "rb") as handle:
        for entry in handle.read().split(b"\0"):
            if entry.startswith(b"DISTPROC_TAG="):
                env["DISTPROC_TAG"] = entry.split(b"=", 1)[1].decode()
    return env


def hang() -> NoReturn:
    while True:
        time.sleep(3600)
