"""Run dirs: one private temp dir per run, memory-backed where it can be, swept when a coordinator died."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

RUN_DIR_PREFIX = "distproc-"

def run_root() -> str:
    """Where run dirs go: ``$TMPDIR`` when it is set, else memory-backed ``/dev/shm`` when writable
    (a run dir and its attempts' dirs cost ~1 ms each on a disk-backed /tmp), else the system temp dir."""
    if "TMPDIR" not in os.environ and os.access("/dev/shm", os.W_OK | os.X_OK):
        return "/dev/shm"
    return tempfile.gettempdir()


def sweep_stale_run_dirs() -> list[str]:
    """Remove run dirs whose coordinator died without cleaning up (a SIGKILL leaves them behind)."""
    removed = []
    for path in Path(run_root()).glob(f"{RUN_DIR_PREFIX}*-*"):
        owner = path.name[len(RUN_DIR_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed
