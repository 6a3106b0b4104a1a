"""The order in which ``pytest -n 3 --dist loadfile`` hands our test files to its workers: costliest first.

xdist's loadfile hands out files by how many tests they hold, most first, so our slowest files (few tests, each
a real Claude Code run, a killed pytest, the whole shipped suite or a Ray cluster) could start last and keep one
worker busy after the others ran dry. Handing the known-slow files out first (longest processing time first)
lets the many quick files fill in behind them. tests/conftest.py imports the hook; another ``--dist`` is untouched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from xdist.scheduler import LoadFileScheduling

COSTLIEST_FIRST = (
    "tests/test_plugin.py",  # ~115 s alone: the shipped scenarios, all of them, in one test
    "tests/test_claude_code.py",  # ~60 s: a dozen real CLI runs, 13-16 s each under CI's load
    "tests/test_journal.py",
    "tests/test_ray.py",
    "tests/test_docs.py",
    "tests/test_packaging.py",
    "tests/test_limits.py",
    "tests/test_ray_nodes.py",  # its own 3-node cluster
    "tests/test_hostile.py",
    "tests/test_goldens.py",
    "tests/test_claude_code_recording.py",
    "tests/test_outputs.py",
    "tests/test_xdist.py",
)
"""Test files by wall time, slowest first (each file alone, byte-code cache on, ~30 s for the next one down;
remeasure when a file grows). A name that no longer exists is ignored; the files not named keep xdist's order."""


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
