"""Failures where CI shows them: GitHub workflow commands (``::error file=...,line=...::``) under
``GITHUB_ACTIONS=true``, and the one-line reason of a failed report that index rows and summaries use.

The process that runs an item (an xdist worker, or the only process) puts the item's YAML locations on its
call report (``distproc_annotations``: plain lists, so they survive xdist's report serialization); the
controller alone prints them, once per item, after the run (an item that failed and then passed on a rerun
prints none).
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

ANNOTATIONS = "distproc_annotations"


def is_rerun(report: pytest.TestReport) -> bool:
    """pytest-rerunfailures logs a failed try that runs again with the outcome ``rerun`` (not in pytest's types)."""
    return str(report.outcome) == "rerun"


def reason_of(report: pytest.TestReport) -> str:
    """One line saying why ``report`` failed: its crash message, else its first line that is not xdist's
    ``[gw1] linux -- Python ...`` header."""
    crash = getattr(report.longrepr, "reprcrash", None)
    message = str(getattr(crash, "message", "") or "").strip()
    if message:
        return message.splitlines()[0]
    lines = [line for line in str(report.longreprtext).splitlines() if line.strip() and not line.startswith("[gw")]
    return lines[0].strip() if lines else "error"


def _escape(text: str, *, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def workflow_command(file: str, line: int, message: str, base: Path) -> str:
    """``::error file=F,line=L::message``, ``F`` relative to ``base`` (the repository) when it is inside it."""
    path = Path(file)
    try:
        shown = path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        shown = path.as_posix()
    return f"::error file={_escape(shown, prop=True)},line={int(line)}::{_escape(message)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    locate = getattr(item, "annotations", None)
    if call.when == "call" and report.failed and call.excinfo is not None and callable(locate):
        setattr(report, ANNOTATIONS, [[file, line, text] for file, line, text in locate(call.excinfo)])


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("GITHUB_ACTIONS") == "true" and not hasattr(config, "workerinput"):
        config.pluginmanager.register(GithubAnnotations(config), "distproc-github-annotations")


class GithubAnnotations:
    """Prints each failed item's annotations once, on the controller, after the run."""

    def __init__(self, config: pytest.Config) -> None:
        self.base = Path(os.environ.get("GITHUB_WORKSPACE") or config.rootpath)
        self.found: dict[str, list[list[Any]]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" or is_rerun(report):
            return
        annotations = getattr(report, ANNOTATIONS, None)
        if report.failed and annotations:
            self.found[report.nodeid] = list(annotations)
        else:
            self.found.pop(report.nodeid, None)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for nodeid in sorted(self.found):
            for file, line, message in self.found[nodeid]:
                terminalreporter.write_line(workflow_command(str(file), int(line), str(message), self.base))
