"""The result of a run, in plain data: the TaskList history, each attempt, the summaries, the transcript.

Every source of a history (our coordinator, a user's coordinator through the adapter) fills a
:class:`Run`; checkers, goldens and reports read nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_distproc.attempt import stats as summary
from pytest_distproc.scenario.model import AGGREGATE_TASK, FaultSpec, Scenario
from pytest_distproc.tasklist import State, TaskList, Transition


@dataclass
class AttemptRecord:
    """What happened to one attempt of one region, in plain data."""

    task: str
    region: str
    attempt: int
    pid: int | None
    started: float
    ended: float | None = None
    ok: bool = False
    reason: str = ""
    event: str = ""
    faults: list[dict[str, Any]] = field(default_factory=list)
    stack: str = ""
    stderr: str = ""
    timed_out: bool = False
    node: dict[str, str] | None = None
    """Where it ran, on a backend with nodes (ray): ``{"id": Ray's node id, "name": its first 6 hex digits}``."""
    inherited: bool = False
    """Made by the coordinator this run resumed from: rebuilt from the journal, not run again."""

    @property
    def duration(self) -> float:
        return (self.ended if self.ended is not None else self.started) - self.started


@dataclass
class Run:
    """The outcome of one scenario run: the history, the results, and the transcript."""

    scenario: Scenario
    seed: int
    backend: str
    tasks: TaskList
    outcome: str = "FAILED"
    regions: dict[str, dict[str, float]] = field(default_factory=dict)
    total: dict[str, float] | None = None
    missing: list[str] = field(default_factory=list)
    attempts: list[AttemptRecord] = field(default_factory=list)
    expected_counts: dict[str, int] = field(default_factory=dict)
    planned_faults: list[dict[str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    """Protocol breaches a coordinator adapter committed (always mismatches)."""
    lost: dict[str, int] = field(default_factory=dict)
    """Attempts per task that died with a previous coordinator (resumed runs); not the region's retries."""
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    """Summaries of the tasks between the regions and ``aggregate-results`` (``tasks:``)."""
    inherited: dict[str, int] = field(default_factory=dict)
    """Attempts per task made by the coordinator this run resumed from; their faults fired out of our sight."""
    started: float = 0.0
    ended: float = 0.0
    notes: list[str] = field(default_factory=list)
    """Lines the transcript ends with: how this backend knows what it reports (claude-code: observed concurrency)."""
    artefacts: dict[str, str] = field(default_factory=dict)
    """Raw files the history was imported from (claude-code: hook log, stream-json, session transcripts, tasks
    folder), by relative path; ``--distproc-report`` writes them beside the scenario's report."""

    @property
    def faults_fired(self) -> list[dict[str, Any]]:
        return [f for a in self.attempts for f in a.faults]

    @property
    def transcript(self) -> str:
        """The report of the original distributed-processor skill: what the workflow under test prints."""
        return transcript(self)

    def attempts_of(self, task: str) -> list[AttemptRecord]:
        return [a for a in self.attempts if a.task == task]


def fault_dict(fault: FaultSpec, attempt: int, seed: int) -> dict[str, Any]:
    """The plain-data form of one planned fault, as it travels to the processor."""
    return {"region": fault.region, "kind": fault.kind, "attempt": attempt, "exit_code": fault.exit_code,
            "signal": fault.signal, "seconds": fault.seconds, "fraction": fault.fraction,
            "message": fault.message, "seed": seed}


def create_tasks(tasks: TaskList, scenario: Scenario) -> None:
    """The tasks a run of ``scenario`` starts with, in this order: one per region, then the ``tasks:``
    graph ending in ``aggregate-results``. The one place they are made, for every source of a history."""
    for spec in scenario.regions:
        tasks.create(spec.task, f"Process region {spec.id}")
    partial = scenario.policy.on_region_failure == "partial"
    for stage in scenario.graph:
        subject = "Aggregate results" if stage.id == AGGREGATE_TASK else stage.description or stage.id
        tasks.create(stage.id, subject, stage.blocked_by, proceed_on_failed_blockers=partial)


def planned_faults(scenario: Scenario, seed: int) -> list[dict[str, Any]]:
    """Every fault the scenario plans, expanded per attempt (``attempts: all`` covers every allowed attempt)."""
    attempts = range(1, scenario.policy.retries + 2)
    return [fault_dict(f, a, seed) for f in scenario.faults for a in (f.attempts or attempts)]


@dataclass(frozen=True)
class RetryGap:
    """The wait between a failed attempt and the task's next one, from the history's own times."""

    task: str
    attempt: int
    """The attempt that started after the wait (2 for the first retry)."""
    failed_seq: int
    started_seq: int
    seconds: float


def retry_gaps(run: Run) -> list[RetryGap]:
    """Every ``FAILED -> IN_PROGRESS`` of ``run``'s history with the time between the two entries.

    Both times come from the one clock of the loop that recorded them. A failure recorded by a coordinator
    this run resumed from is left out: its time is another process's clock, and the wait was a restart.
    """
    gaps = []
    failed: dict[str, Transition] = {}
    for entry in run.tasks.transitions:
        if entry.to_state is State.FAILED:
            failed[entry.task] = entry
        elif entry.to_state is State.IN_PROGRESS and entry.task in failed:
            before = failed.pop(entry.task)
            if before.attempt > run.inherited.get(entry.task, 0):
                gaps.append(RetryGap(entry.task, entry.attempt, before.seq, entry.seq, entry.time - before.time))
    return gaps


def transcript(run: Run) -> str:
    """The report of the original distributed-processor skill, plus worded failures when there are any,
    and, when the policy has a backoff, the wait before each retry."""
    lines = ["Distributed Processing: COORDINATING"]
    waits = {(g.task, g.attempt): g.seconds for g in retry_gaps(run)} if run.scenario.policy.backoff > 0 else {}
    for number, task in enumerate(run.tasks, start=1):
        states = run.tasks.sequence(task.id)
        if states and states[0] is State.PENDING:
            states = states[1:]
        lines.append(f"[t{number}] {task.id}: {' -> '.join(s.value for s in states)}")
        for record in run.attempts_of(task.id):
            if (task.id, record.attempt) in waits:
                lines.append(f"    ~ waited {waits[task.id, record.attempt]:.2f} s before attempt {record.attempt}")
            for fault in record.faults:  # a node fault names where it struck (the others happen in the attempt)
                if isinstance(fault.get("node"), dict):
                    lines.append(f"    * attempt {record.attempt}: injected {fault['kind']} on node "
                                 f"{fault['node']['name']}")
            if not record.ok and record.event:
                lines.append(f"    ! {record.event}")
    lines.append("")
    if run.total is None:
        lines.append("=== NO AGGREGATED RESULTS ===")
        if run.missing:
            lines.append("Failed: " + ", ".join(_failed_region(run, r) for r in run.missing))
        lines.append("Distributed Processing: FAILED")
        return "\n".join(lines + [f"note: {n}" for n in run.notes]) + "\n"
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
    return "\n".join(lines + [f"note: {n}" for n in run.notes]) + "\n"


def _failed_region(run: Run, region_id: str) -> str:
    attempts = [a for a in run.attempts if a.region == region_id]
    return f"Region {region_id} (failed after {len(attempts)} attempt{'s' if len(attempts) != 1 else ''})"
