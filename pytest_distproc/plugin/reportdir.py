"""``--distproc-report DIR``: per-scenario history, summary and HTML timeline; an index over the run.

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

import hashlib
import json
import math
import os
import re
from collections.abc import Generator, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_distproc.scenario.model import AGGREGATE_TASK
from pytest_distproc.tasklist import State

if TYPE_CHECKING:
    from pytest_distproc.run.model import Run

DASH = "\u2013"
REPORT_PROPERTY = "distproc.report"
SUMMARY_VERSION = 1


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


# -- plain data from a run ---------------------------------------------------------------------
def slug_of(nodeid: str) -> str:
    """A file-system-safe, stable folder name for a test id; a short hash keeps distinct ids distinct."""
    path, _, name = nodeid.partition("::")
    stem = Path(path).name.rsplit(".", 1)[0]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{stem}__{name}" if name else stem).strip("_")[:80]
    digest = hashlib.sha1(nodeid.encode()).hexdigest()[:8]
    return f"{readable}-{digest}"


def _finite(value: Any) -> Any:
    """JSON has no NaN: an empty region's mean is ``null``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def history_lines(run: Run) -> list[dict[str, Any]]:
    """One dict per TaskList transition, in the coordinator's order, with time since the run began."""
    return [{**t.as_dict(), "t": round(t.time - run.started, 6)} for t in run.tasks.transitions]


def event_lines(run: Run) -> list[dict[str, Any]]:
    return [_finite({**e.as_dict(), "t": round(e.time - run.started, 6)}) for e in run.tasks.events]


def summarize_run(run: Run, *, nodeid: str, verdict: str, mismatches: Iterable[str] = ()) -> dict[str, Any]:
    """Everything the HTML page, the index and a CI script need, as JSON-safe plain data."""
    start = run.started
    regions: list[dict[str, Any]] = []
    for spec in run.scenario.regions:
        task = run.tasks[spec.task]
        attempts = run.attempts_of(spec.task)
        regions.append({
            "id": spec.id,
            "task": spec.task,
            "state": task.state.value,
            "attempts": len(attempts),
            "failed_attempts": sum(1 for a in attempts if not a.ok),
            "recovered": task.state is State.COMPLETE and any(not a.ok for a in attempts),
            "expected_records": run.expected_counts.get(spec.id),
            "result": run.regions.get(spec.id),
        })
    aggregate = run.tasks[AGGREGATE_TASK]
    agg_moves = [t for t in run.tasks.transitions if t.task == AGGREGATE_TASK and t.from_state is not None]
    retries = sum(1 for a in run.attempts if a.attempt > 1)
    summary: dict[str, Any] = _finite({
        "version": SUMMARY_VERSION,
        "nodeid": nodeid,
        "name": run.scenario.name,
        "file": str(run.scenario.path),
        "description": run.scenario.description,
        "verdict": verdict,
        "mismatches": list(mismatches),
        "outcome": run.outcome,
        "seed": run.seed,
        "backend": run.backend,
        "duration": round(run.ended - start, 6),
        "tasks": [{"id": t.id, "state": t.state.value, "attempts": t.attempts,
                   "sequence": [s.value for s in run.tasks.sequence(t.id)]} for t in run.tasks],
        "regions": regions,
        "total": run.total,
        "missing": list(run.missing),
        "aggregate": {
            "state": aggregate.state.value,
            "moves": [{"to": t.to_state.value, "t": round(t.time - start, 6), "event": t.event} for t in agg_moves],
        },
        "stages": {  # the tasks between the regions and aggregate-results (tasks:), drawn like the aggregation
            spec.id: [{"to": t.to_state.value, "t": round(t.time - start, 6), "event": t.event}
                      for t in run.tasks.transitions if t.task == spec.id and t.from_state is not None]
            for spec in run.scenario.graph if spec.id != AGGREGATE_TASK
        },
        "attempts": [{
            "task": a.task, "region": a.region, "attempt": a.attempt, "pid": a.pid,
            "start": round(a.started - start, 6),
            "end": round((a.ended if a.ended is not None else run.ended) - start, 6),
            "duration": round(a.duration, 6), "ok": a.ok, "reason": a.reason, "event": a.event,
            "timed_out": a.timed_out, "faults": [f.get("kind") for f in a.faults],
        } for a in run.attempts],
        "faults": {
            "planned": len(run.planned_faults),
            "fired": [{"region": f.get("region"), "kind": f.get("kind"), "attempt": f.get("attempt")}
                      for f in run.faults_fired],
        },
        "events": [{"kind": e.kind, "task": e.task, "attempt": e.attempt, "t": round(e.time - start, 6),
                    "text": e.text} for e in run.tasks.events],
        "retries": retries,
        "recovered": [r["id"] for r in regions if r["recovered"]],
        "transcript": run.transcript,
    })
    return summary


def write_scenario(directory: Path, run: Run, summary: dict[str, Any]) -> Path:
    """Write one scenario's folder; returns it. Each file is written whole, then renamed into place."""
    folder = directory / slug_of(summary["nodeid"])
    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "history.jsonl", "".join(json.dumps(line) + "\n" for line in history_lines(run)))
    _write(folder / "events.jsonl", "".join(json.dumps(line) + "\n" for line in event_lines(run)))
    _write(folder / "summary.json", json.dumps(summary, indent=2) + "\n")
    _write(folder / "transcript.txt", run.transcript)
    from pytest_distproc.report import html as htmltimeline

    _write(folder / "timeline.html", htmltimeline.scenario_page(summary, history_lines(run)))
    return folder


def _write(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


# -- the index ----------------------------------------------------------------------------------
def markdown_summary(rows: list[dict[str, Any]], totals: Mapping[str, int]) -> str:
    lines = [f"### distproc: {terminal_line(totals)}", "",
             "| scenario | verdict | outcome | attempts | faults | retries | recovered | duration |",
             "| --- | --- | --- | ---: | ---: | ---: | --- | ---: |"]
    for row in rows:
        icon = {"passed": "✅", "failed": "❌"}.get(row["verdict"], "⚠️")
        recovered = ", ".join(row.get("recovered") or []) or DASH
        duration = f"{row['duration']:.2f} s" if row.get("duration") is not None else DASH
        lines.append(f"| `{row['nodeid']}` | {icon} {row['verdict']} | {row.get('outcome') or DASH} | "
                     f"{row.get('attempts', DASH)} | {row.get('faults', DASH)} | {row.get('retries', DASH)} | "
                     f"{recovered} | {duration} |")
    failing = [row for row in rows if row.get("mismatches")]
    for row in failing:
        lines += ["", f"**{row['nodeid']}**: {row['mismatches'][0].splitlines()[0]}"]
    return "\n".join(lines) + "\n"


def index_row(summary: Mapping[str, Any], slug: str) -> dict[str, Any]:
    return {
        "nodeid": summary["nodeid"], "name": summary["name"], "slug": slug, "verdict": summary["verdict"],
        "outcome": summary["outcome"], "attempts": len(summary["attempts"]),
        "faults": len(summary["faults"]["fired"]), "retries": summary["retries"],
        "recovered": summary["recovered"], "duration": summary["duration"],
        "mismatches": summary["mismatches"], "summary": summary,
    }


def write_index(directory: Path, rows: list[dict[str, Any]], totals: Mapping[str, int]) -> str:
    """Write index.html, index.json and summary.md; returns the Markdown."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda row: row["nodeid"])
    markdown = markdown_summary(rows, totals)
    _write(directory / "summary.md", markdown)
    plain = [{k: v for k, v in row.items() if k != "summary"} for row in rows]
    _write(directory / "index.json", json.dumps({"totals": dict(totals), "scenarios": plain}, indent=2) + "\n")
    from pytest_distproc.report import html as htmltimeline

    _write(directory / "index.html", htmltimeline.index_page(rows, terminal_line(totals)))
    return markdown


# -- totals from report properties --------------------------------------------------------------
def terminal_line(totals: Mapping[str, int]) -> str:
    def n(count: int, word: str, plural: str | None = None) -> str:
        return f"{count} {word if count == 1 else (plural or word + 's')}"

    verdicts = [f"{totals[k]} {k}" for k in ("passed", "failed") if totals.get(k)]
    return (f"{n(totals.get('scenarios', 0), 'scenario')} run" + (f" ({', '.join(verdicts)})" if verdicts else "")
            + f", {n(totals.get('faults', 0), 'fault')} injected, {n(totals.get('retries', 0), 'retry', 'retries')}"
            + f", {n(totals.get('recovered', 0), 'region')} recovered")


class ReportPlugin:
    """Writes per-scenario files where a scenario runs; totals and the index where reports arrive."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        option = config.getoption("distproc_report")
        self.directory = Path(option).resolve() if option else None
        self.is_controller = not hasattr(config, "workerinput")
        self.totals: dict[str, int] = {}
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
        # On the item, so the teardown report (which junitxml reads) carries them too; on this report
        # so that the controller sees them with the call phase.
        item.user_properties.extend(extra)
        report.user_properties = [*report.user_properties, *extra]

    # where the reports arrive (the controller under xdist) --------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not self.is_controller:
            return
        props = dict(report.user_properties)
        if report.when == "call" and "distproc.outcome" in props:
            for key, prop in (("faults", "distproc.faults"), ("retries", "distproc.retries"),
                              ("recovered", "distproc.recovered")):
                self.totals[key] = self.totals.get(key, 0) + int(props.get(prop, 0))  # type: ignore[call-overload]
            self.totals["scenarios"] = self.totals.get("scenarios", 0) + 1
            self.totals[report.outcome] = self.totals.get(report.outcome, 0) + 1
        if self.directory is None or not _is_scenario(report):
            return
        if report.when == "call" and REPORT_PROPERTY in props:
            slug = str(props[REPORT_PROPERTY])
            self.rows[report.nodeid] = {"slug": slug}
        elif report.failed and report.nodeid not in self.rows:
            # never ran (a malformed scenario, a crash of our own): a row from the report alone
            first = str(report.longreprtext).strip().splitlines()
            self.rows[report.nodeid] = {"nodeid": report.nodeid, "name": report.nodeid.rpartition("::")[2],
                                        "verdict": "error", "mismatches": [first[0] if first else "error"]}

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.is_controller or not self.totals.get("scenarios"):
            return
        terminalreporter.write_line(f"distproc: {terminal_line(self.totals)}")
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
        markdown = write_index(self.directory, rows, self.totals)
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            with open(step_summary, "a", encoding="utf-8") as handle:
                handle.write(markdown + "\n")


def _is_scenario(report: pytest.TestReport) -> bool:
    return report.nodeid.split("::")[0].endswith((".yaml", ".yml"))
