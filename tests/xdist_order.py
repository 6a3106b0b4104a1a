"""The order in which ``pytest -n 3 --dist loadfile`` hands our test files to its workers: costliest first.

xdist's loadfile hands out files by how many tests they hold, most first, so our slowest files (few tests, each
a real Claude Code run, a killed pytest or a Ray cluster) started last and one worker finished minutes after the
others. Handing the known-slow files out first (longest processing time first) lets the many quick files fill
in behind them, so the workers end together. tests/conftest.py imports the hook; any other ``--dist`` is untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from xdist.scheduler import LoadFileScheduling

COSTLIEST_FIRST = (
    "tests/test_hostile.py",
    "tests/test_claude_code.py",
    "tests/test_claude_code_recording.py",
    "tests/test_ray_nodes.py",
)
"""Test files by wall time under CI's load, slowest first (measured with ``--durations``; docs/architecture.md,
"Running the suite"). A name that no longer exists is ignored; the files not named keep xdist's order."""


class CostliestFilesFirst(LoadFileScheduling):
    """loadfile scheduling that hands ``first`` (file node ids) out before every other file, in that order."""

    def __init__(self, config: Any, log: Any = None, first: Sequence[str] = COSTLIEST_FIRST) -> None:
        super().__init__(config, log)
        self.first = tuple(first)

    def _assign_work_unit(self, node: Any) -> None:
        # xdist fills ``workqueue`` (ordered) in schedule() and pops its head here: put ours at the head.
        for scope in reversed(self.first):
            if scope in self.workqueue:
                self.workqueue.move_to_end(scope, last=False)
        super()._assign_work_unit(node)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> CostliestFilesFirst | None:
    """Under ``--dist loadfile``, our costliest files first; any other ``--dist`` keeps xdist's scheduler."""
    if config.getoption("dist", None) != "loadfile":
        return None
    return CostliestFilesFirst(config, log)
