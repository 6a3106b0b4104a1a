"""Text views of a run for a failure report: a timeline and each task's transitions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_distproc.scenario.model import AGGREGATE_TASK
from pytest_distproc.tasklist import State

if TYPE_CHECKING:
    from pytest_distproc.run.model import Run

TIMELINE_WIDTH = 60


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
        nodes = ", ".join(dict.fromkeys(r.node["name"] for r in run.attempts_of(task.id) if r.node))
        rows.append(f"{task.id:{width}} |{''.join(cells)}| {final} ({task.attempts} attempt"
                    f"{'s' if task.attempts != 1 else ''}{f'; on node {nodes}' if nodes else ''})")
    rows.append(f"{'':{width}}  = running, x failed attempt, ! fault injected")
    return "\n".join(rows)


def transitions_table(run: Run) -> str:
    """Each task's transition sequence, as ``expect.transitions`` would spell it."""
    return "\n".join(
        f"  {task.id}: [{', '.join(s.value for s in run.tasks.sequence(task.id))}]" for task in run.tasks
    )
