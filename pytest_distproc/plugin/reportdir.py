"""``--distproc-report DIR``, the pytest side: which process writes which file, and the terminal line.

The files themselves come from :mod:`pytest_distproc.report.data` (a run as plain data) and
:mod:`pytest_distproc.report.index` (a scenario's folder, the index over the run).

Who writes what, so that ``-n 2`` neither duplicates nor loses anything:

* the process that *ran* a scenario (an xdist worker, or the only process) writes that scenario's
  folder ``DIR/<slug>/`` (``history.jsonl``, ``events.jsonl``, ``summary.json``, ``transcript.txt``,
  ``timeline.html``) and names the slug in the item's ``user_properties``;
* the controller (the process without ``config.workerinput``) collects those names from the reports
  and, at session end, writes ``index.html``, ``index.json`` and ``summary.md`` once, from the
  ``summary.json`` files the reports named (and from the report itself for a scenario that never ran).

Stale folders of earlier runs in DIR are never read: the index lists exactly this run's items.
The same plugin prints the one-line terminal summary, computed from report ``user_properties`` only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_distproc.plugin.annotations import is_rerun, reason_of
from pytest_distproc.plugin.outputs import REPORT_PROPERTY, publish
from pytest_distproc.report.data import summarize_run
from pytest_distproc.report.index import index_row, terminal_line, write_index, write_scenario
from pytest_distproc.tasklist import State

if TYPE_CHECKING:
    from pytest_distproc.run.model import Run



def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("distproc", "fork/join scenarios (pytest-distproc)")
    group.addoption(
        "--distproc-report",
        metavar="DIR",
        default=None,
        help="write each scenario's history (JSON Lines), summary (JSON) and HTML timeline under DIR, "
        "plus DIR/index.html and DIR/summary.md (also appended to $GITHUB_STEP_SUMMARY when set).",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(ReportPlugin(config), "distproc-report")


class ReportPlugin:
    """Writes per-scenario files where a scenario runs; totals and the index where reports arrive."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        option = config.getoption("distproc_report")
        self.directory = Path(option).resolve() if option else None
        self.is_controller = not hasattr(config, "workerinput")
        self.totals: dict[str, int] = {}
        self.verdicts: dict[str, str] = {}
        self.reruns = 0
        self.rows: dict[str, dict[str, Any]] = {}

    # where the item runs ------------------------------------------------------------------------
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
        outcome = yield
        run: Run | None = getattr(item, "run_result", None)
        if call.when != "call" or run is None:
            return
        report: pytest.TestReport = outcome.get_result()
        attempts = run.attempts
        recovered = {a.task for a in attempts if not a.ok} & {
            t.id for t in run.tasks if t.state is State.COMPLETE}
        extra: list[tuple[str, object]] = [
            ("distproc.retries", sum(1 for a in attempts if a.attempt > 1)),
            ("distproc.recovered", len(recovered)),
        ]
        if self.directory is not None:
            error = call.excinfo.value if call.excinfo is not None else None
            mismatches = list(getattr(error, "mismatches", []) or ([] if error is None else [str(error)]))
            summary = summarize_run(run, nodeid=item.nodeid, verdict=report.outcome, mismatches=mismatches)
            folder = write_scenario(self.directory, run, summary)
            extra.append((REPORT_PROPERTY, folder.name))
        publish(item, report, extra)  # on this report; in junitxml only if asked (plugin/outputs.py)

    # where the reports arrive (the controller under xdist) --------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.is_controller:
            return
        props = dict(report.user_properties)
        if report.when == "call" and "distproc.outcome" in props:  # every run injects faults, reruns too
            for key, prop in (("faults", "distproc.faults"), ("retries", "distproc.retries"),
                              ("recovered", "distproc.recovered")):
                self.totals[key] = self.totals.get(key, 0) + int(props.get(prop, 0))  # type: ignore[call-overload]
        if not _is_scenario(report):
            return
        if is_rerun(report):  # pytest-rerunfailures: a failed try that runs again, not an item
            self.reruns += 1
        elif report.when == "call" or (report.when == "setup" and not report.passed):
            self.verdicts[report.nodeid] = _verdict(report)
        if self.directory is None or is_rerun(report):
            return
        if report.when == "call" and REPORT_PROPERTY in props:
            slug = str(props[REPORT_PROPERTY])
            self.rows[report.nodeid] = {"slug": slug}
        elif report.failed and report.nodeid not in self.rows:
            # never ran (a malformed scenario, stopped by a timeout, a crash of our own): a row from the report
            self.rows[report.nodeid] = {"nodeid": report.nodeid, "name": report.nodeid.rpartition("::")[2],
                                        "verdict": "error", "mismatches": [reason_of(report)]}

    def counts(self) -> dict[str, int]:
        """The totals of the run: every item once by its final verdict, reruns apart."""
        counts = dict(self.totals)
        for verdict in self.verdicts.values():
            counts[verdict] = counts.get(verdict, 0) + 1
        counts["scenarios"] = len(self.verdicts)
        if self.reruns:
            counts["reruns"] = self.reruns
        return counts

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.is_controller or not self.verdicts:
            return
        terminalreporter.write_line(f"distproc: {terminal_line(self.counts())}")
        if self.directory is not None:
            terminalreporter.write_line(f"distproc report: {self.directory / 'index.html'}")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.is_controller or self.directory is None:
            return
        rows = []
        for nodeid, row in self.rows.items():
            if "slug" not in row:
                rows.append(row)
                continue
            try:
                summary = json.loads((self.directory / row["slug"] / "summary.json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                rows.append({"nodeid": nodeid, "name": nodeid.rpartition("::")[2], "verdict": "error",
                             "mismatches": [f"report files missing: {exc}"]})
                continue
            rows.append(index_row(summary, row["slug"]))
        markdown = write_index(self.directory, rows, self.counts())
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            with open(step_summary, "a", encoding="utf-8") as handle:
                handle.write(markdown + "\n")


def _verdict(report: pytest.TestReport) -> str:
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    return "error" if report.when == "setup" and report.failed else report.outcome


def _is_scenario(report: pytest.TestReport) -> bool:
    return report.nodeid.split("::")[0].endswith((".yaml", ".yml"))
