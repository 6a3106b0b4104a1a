"""A run as JSON-safe plain data: the per-transition history, the events, and the summary every report page,
the index and a CI script read (``summary.json``)."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_distproc.scenario.model import AGGREGATE_TASK
from pytest_distproc.tasklist import State

if TYPE_CHECKING:
    from pytest_distproc.run.model import Run

SUMMARY_VERSION = 1


def slug_of(nodeid: str) -> str:
    """A file-system-safe, stable folder name for a test id; a short hash keeps distinct ids distinct."""
    path, _, name = nodeid.partition("::")
    stem = Path(path).name.rsplit(".", 1)[0]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{stem}__{name}" if name else stem).strip("_")[:80]
    digest = hashlib.sha1(nodeid.encode()).hexdigest()[:8]
    return f"{readable}-{digest}"


def finite(value: Any) -> Any:
    """JSON has no NaN: an empty region's mean is ``null``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def history_lines(run: Run) -> list[dict[str, Any]]:
    """One dict per TaskList transition, in the coordinator's order, with time since the run began."""
    return [{**t.as_dict(), "t": round(t.time - run.started, 6)} for t in run.tasks.transitions]


def event_lines(run: Run) -> list[dict[str, Any]]:
    return [finite({**e.as_dict(), "t": round(e.time - run.started, 6)}) for e in run.tasks.events]


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
    summary: dict[str, Any] = finite({
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
            **({"node": dict(a.node)} if a.node else {}),
        } for a in run.attempts],
        "faults": {
            "planned": len(run.planned_faults),
            "fired": [{"region": f.get("region"), "kind": f.get("kind"), "attempt": f.get("attempt"),
                       **({"node": f["node"]} if f.get("node") else {})}
                      for f in run.faults_fired],
        },
        "events": [{"kind": e.kind, "task": e.task, "attempt": e.attempt, "t": round(e.time - start, 6),
                    "text": e.text} for e in run.tasks.events],
        "retries": retries,
        "recovered": [r["id"] for r in regions if r["recovered"]],
        "transcript": run.transcript,
    })
    return summary
