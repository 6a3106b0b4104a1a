"""The files of ``--distproc-report DIR``: one folder per scenario, and the index over the run
(``index.html``, ``index.json``, ``summary.md``), each file written whole and then renamed into place."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_distproc.report.data import event_lines, history_lines, slug_of

if TYPE_CHECKING:
    from pytest_distproc.run.model import Run

DASH = "\u2013"


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
    for name, text in run.artefacts.items():  # the raw files a claude-code history was imported from
        target = folder / "raw" / name
        if target.resolve().is_relative_to((folder / "raw").resolve()):
            target.parent.mkdir(parents=True, exist_ok=True)
            _write(target, text)
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

    verdicts = [f"{totals[k]} {k}" for k in ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
                if totals.get(k)]
    if totals.get("reruns"):  # pytest-rerunfailures: tries that ran again, apart from the items
        verdicts.append(n(totals["reruns"], "rerun"))
    return (f"{n(totals.get('scenarios', 0), 'scenario')} run" + (f" ({', '.join(verdicts)})" if verdicts else "")
            + f", {n(totals.get('faults', 0), 'fault')} injected, {n(totals.get('retries', 0), 'retry', 'retries')}"
            + f", {n(totals.get('recovered', 0), 'region')} recovered")
