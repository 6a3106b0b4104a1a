"""Human-readable views of a run: the original skill's transcript and a text timeline."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_distproc import summary
from pytest_distproc.scenario.model import AGGREGATE_TASK
from pytest_distproc.tasklist import State

if TYPE_CHECKING:
    from pytest_distproc.coordinator import Run

TIMELINE_WIDTH = 60


def transcript(run: Run) -> str:
    """The report of the original distributed-processor skill, plus worded failures when there are any."""
    lines = ["Distributed Processing: COORDINATING"]
    for number, task in enumerate(run.tasks, start=1):
        states = run.tasks.sequence(task.id)
        if states and states[0] is State.PENDING:
            states = states[1:]
        lines.append(f"[t{number}] {task.id}: {' -> '.join(s.value for s in states)}")
        for record in run.attempts_of(task.id):
            if not record.ok and record.event:
                lines.append(f"    ! {record.event}")
    lines.append("")
    if run.total is None:
        lines.append("=== NO AGGREGATED RESULTS ===")
        if run.missing:
            lines.append("Failed: " + ", ".join(_failed_region(run, r) for r in run.missing))
        lines.append("Distributed Processing: FAILED")
        return "\n".join(lines) + "\n"
    lines.append("=== AGGREGATED RESULTS ===")
    for spec in run.scenario.regions:
        if spec.id in run.regions:
            lines.append(summary.line(f"Region {spec.id}", run.regions[spec.id]))
    if run.missing:
        lines.append("Missing: " + ", ".join(_failed_region(run, r) for r in run.missing))
    for stage, value in run.stages.items():
        lines.append(summary.line(stage, value))
    lines.append("")
    lines.append(summary.line("Total", run.total))
    return "\n".join(lines) + "\n"


def _failed_region(run: Run, region_id: str) -> str:
    attempts = [a for a in run.attempts if a.region == region_id]
    return f"Region {region_id} (failed after {len(attempts)} attempt{'s' if len(attempts) != 1 else ''})"


def timeline(run: Run) -> str:
    """One row per task, time running left to right: ``=`` running, ``x`` failed attempt, ``!`` fault fired."""
    if not run.attempts:
        return ""
    start = run.started
    span = max(run.ended - start, 1e-6)
    scale = TIMELINE_WIDTH / span
    width = max(len(t.id) for t in run.tasks)
    rows = [f"{'':{width}}  0 s{'':{TIMELINE_WIDTH - 8}}{span:.2f} s"]
    for task in run.tasks:
        cells = [" "] * (TIMELINE_WIDTH + 1)
        marks: list[tuple[float, float, str]] = []
        for record in run.attempts_of(task.id):
            end = record.ended if record.ended is not None else run.ended
            marks.append((record.started, end, "=" if record.ok else "x"))
            if record.faults:
                marks.append((record.started, record.started, "!"))
        if task.id == AGGREGATE_TASK:
            entries = [t for t in run.tasks.transitions if t.task == task.id and t.to_state is State.IN_PROGRESS]
            if entries:
                marks.append((entries[0].time, run.ended, "="))
        for begin, end, char in marks:
            first, last = int((begin - start) * scale), int((end - start) * scale)
            for i in range(max(first, 0), min(max(last, first), TIMELINE_WIDTH) + 1):
                cells[i] = char if char != "=" or cells[i] == " " else cells[i]
        final = task.state.value
        rows.append(f"{task.id:{width}} |{''.join(cells)}| {final} ({task.attempts} attempt"
                    f"{'s' if task.attempts != 1 else ''})")
    rows.append(f"{'':{width}}  = running, x failed attempt, ! fault injected")
    return "\n".join(rows)


def transitions_table(run: Run) -> str:
    """Each task's transition sequence, as ``expect.transitions`` would spell it."""
    return "\n".join(
        f"  {task.id}: [{', '.join(s.value for s in run.tasks.sequence(task.id))}]" for task in run.tasks
    )
