"""Shared test helpers: run pytest on scenarios in a subprocess and prove nothing was left behind; scenario
texts more than one test file runs. Test modules import from here, never from conftest.py or each other."""

from __future__ import annotations

import os
import textwrap
import uuid
from pathlib import Path

import pytest

MARK = "DISTPROC_TAG"  # the one variable attempts keep in their environment block


def marked_processes(mark: str) -> list[int]:
    """Pids of live processes whose initial environment carries ``mark`` (forked children keep it)."""
    found = []
    needle = f"{MARK}={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state != "Z":
            found.append(int(entry.name))
    return found


class Sandbox:
    """A pytester wrapper that tags every process it starts and gives it a private TMPDIR."""

    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pytester = pytester
        self.mark = uuid.uuid4().hex
        self.tmp = pytester.path.parent / f"tmp-{self.mark[:8]}"
        self.tmp.mkdir()
        monkeypatch.setenv(MARK, self.mark)
        monkeypatch.setenv("TMPDIR", str(self.tmp))

    def scenario(self, name: str, text: str) -> Path:
        path = self.pytester.path / "scenarios" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def pyfile(self, name: str, text: str) -> Path:
        """A Python file beside the scenarios (where a scenario's ``coordinator: FILE.py:factory`` must be)."""
        path = self.pytester.path / "scenarios" / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def run(self, *args: str, timeout: float = 120) -> pytest.RunResult:
        return self.pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=timeout)

    def leftovers(self) -> tuple[list[int], list[str]]:
        return marked_processes(self.mark), sorted(p.name for p in self.tmp.iterdir())

    def assert_clean(self) -> None:
        pids, dirs = self.leftovers()
        assert not pids, f"orphaned processes survived the run: {pids}"
        assert not dirs, f"temp dirs left behind: {dirs}"


# --- scenario texts shared by test_reports.py and test_browser.py ---------------------------------------

RETRY = """\
name: retry-once
seed: 3
regions: {A: {records: 50}, B: {records: 50}, C: {inline: [{value: 1.5}, {value: 2}]}}
policy: {timeout: 5s, retries: 1}
faults: [{region: B, kind: raise, message: disk full, attempts: [1]}]
expect:
  transitions:
    process-region-b: [PENDING, IN_PROGRESS, FAILED, IN_PROGRESS, COMPLETE]
  attempts: {process-region-b: 2}
"""

WRONG = """\
name: wrong-total
seed: 3
regions: {A: {records: 10}, B: {records: 10}}
expect:
  aggregate: {total: {records: 21}}
"""
