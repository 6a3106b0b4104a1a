"""A Claude Code hook log mapped onto our TaskList history: the one :class:`Run` that checks and reports read.

Plain data in (the recorder's stamped hook lines, the final report, what the processor commands
announced), a :class:`Run` out; nothing here knows of the model server or the CLI runner, so a recorded
run can be imported the same way. The mapping: ``pending`` -> PENDING (BLOCKED while it has open
blockers), ``in_progress`` -> IN_PROGRESS, ``completed`` -> COMPLETE, ``deleted`` -> CANCELLED. A move our
TaskList forbids (``aggregate-results`` started while its blockers are open: Claude Code does not enforce
``blockedBy``) is recorded as it happened and reported as a violation, never raised. A region attempt is
one ``Skill`` call of the region skill; its interval is its fork's SubagentStart..SubagentStop, and
forks whose intervals overlapped are noted as seen together (observed, not proven by a barrier).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_distproc.attempt import data
from pytest_distproc.attempt import stats as summary
from pytest_distproc.errors import IllegalTransition
from pytest_distproc.run.model import AttemptRecord, Run, create_tasks, planned_faults
from pytest_distproc.scenario.model import AGGREGATE_TASK, MODEL_FAULT_KINDS, RegionSpec, Scenario
from pytest_distproc.tasklist import LEGAL, State, TaskList

BACKEND = "claude-code"
REGION_SKILL = "region-processor"
REGION_ARG = re.compile(r"region=([A-Za-z0-9_.-]*[A-Za-z0-9_-])")
RESULT = re.compile(r"RESULT (\{.*?\})(?:\s|$)", re.S)
REPORT_LINE = re.compile(r"^(Region (\S+)|Total): ", re.M)
OBSERVED = ("concurrency on claude-code is observed from the forks' SubagentStart/SubagentStop times, "
            "not proven by a start barrier")


@dataclass
class Clock:
    """The TaskList's clock: the stamp of the hook line being mapped (the recorder's, one clock for all)."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Fork:
    agent: str
    started: float | None = None
    ended: float | None = None


@dataclass
class Imported:
    """What the mapping needs besides the hook log, all plain data."""

    report: str = ""
    """The coordinator's final answer (the skill's report)."""
    announced: Sequence[Mapping[str, Any]] = ()
    """The processor commands' fault announcements (``region``, ``kind``, ``attempt``, ``at``)."""
    notes: Sequence[tuple[float, str, str]] = ()
    """Extra events to place in the history by time: ``(time, kind, text)`` (model faults, the CLI's exit)."""
    violations: Sequence[str] = ()
    seed: int = 0
    started: float = 0.0
    ended: float = 0.0


@dataclass
class _State:
    run: Run
    clock: Clock
    ids: dict[str, str] = field(default_factory=dict)
    """Claude Code's task id -> ours."""
    blockers: dict[str, set[str]] = field(default_factory=dict)
    forks: dict[str, Fork] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Region -> the summary its last successful fork answered."""
    answered: dict[str, tuple[Any, str]] = field(default_factory=dict)
    """Region -> the last summary a fork answered that we would not count, and why (short, corrupt)."""


def import_run(scenario: Scenario, hooks: Iterable[Mapping[str, Any]], extra: Imported) -> Run:
    """The :class:`Run` of a Claude Code run of ``scenario`` from its recorder's hook lines."""
    clock = Clock(extra.started)
    run = Run(scenario=scenario, seed=extra.seed, backend=BACKEND, tasks=TaskList(clock=clock))
    run.started, run.ended = extra.started, extra.ended
    run.expected_counts = {r.id: data.count(data.source_of(r, extra.seed)) for r in scenario.regions
                           if not unknown_data(r)}
    run.planned_faults = [f for f in planned_faults(scenario, extra.seed) if f["kind"] not in MODEL_FAULT_KINDS]
    run.violations.extend(extra.violations)
    create_tasks(run.tasks, scenario)
    state = _State(run, clock)
    lines = sorted(((float(line.get("t", 0.0)), index, line.get("hook") or {}) for index, line in enumerate(hooks)),
                   key=lambda entry: entry[1])
    notes = sorted(extra.notes)
    for stamp, _, hook in lines:
        while notes and notes[0][0] <= stamp:
            _note(run, clock, *notes.pop(0))
        clock.now = stamp
        _map(state, hook)
    for note in notes:
        _note(run, clock, *note)
    clock.now = extra.ended or clock.now
    _close_forks(state)
    _attach_faults(run, extra.announced)
    _together(run)
    _blocked_by(state, scenario)
    _results(state, extra.report)
    for task in run.tasks:  # a retry stays in_progress in Claude Code: a task's attempts are its region's forks
        task.attempts = max(task.attempts, len(run.attempts_of(task.id)))
    run.outcome = "COMPLETE" if run.tasks[AGGREGATE_TASK].state is State.COMPLETE else "FAILED"
    return run


def unknown_data(region: RegionSpec) -> bool:
    """A region known only from a recording (``source:`` without ``regions:``): no record count of ours."""
    return region.records is None and region.file is None and region.inline is None


def _from(hook: Mapping[str, Any]) -> str:
    """`` [evidence]``: where an imported entry came from, when the importer said (``evidence`` beside the hook)."""
    return f" [{hook['evidence']}]" if hook.get("evidence") else ""


def _note(run: Run, clock: Clock, stamp: float, kind: str, text: str) -> None:
    clock.now = stamp
    run.tasks.note(kind, text)


def _map(state: _State, hook: Mapping[str, Any]) -> None:
    event = hook.get("hook_event_name")
    agent = str(hook.get("agent_id") or "")
    if event == "SubagentStart":
        state.forks.setdefault(agent, Fork(agent)).started = state.clock.now
    elif event == "SubagentStop":
        state.forks.setdefault(agent, Fork(agent)).ended = state.clock.now
    elif event == "PostToolUse":
        name, given = hook.get("tool_name"), hook.get("tool_input") or {}
        response = hook.get("tool_response")
        if name == "TaskCreate":
            _created(state, response, _from(hook))
        elif name == "TaskUpdate":
            _updated(state, given, response, _from(hook))
        elif name == "Skill":
            _skill(state, given, response, _from(hook))
    elif event in ("PostToolUseFailure", "StopFailure"):
        what = hook.get("tool_name") or "the agent"
        error = " ".join(str(hook.get("error") or hook.get("error_details") or hook.get("reason") or "").split())
        state.run.tasks.note("claude-failure", f"{event} of {what}{f' in agent {agent}' if agent else ''}: "
                             f"{error[:300]}")


def _created(state: _State, response: Any, evidence: str = "") -> None:
    task = response.get("task", {}) if isinstance(response, dict) else {}
    cc_id, subject = str(task.get("id", "")), str(task.get("subject", ""))
    if subject in state.run.tasks.ids():
        state.ids[cc_id] = subject
        state.run.tasks.note("claude-task", f"TaskCreate #{cc_id} {subject}{evidence}", task=subject)
    else:
        state.run.violations.append(f"Claude Code created task #{cc_id} {subject!r}, which the scenario does not "
                                    f"have (its tasks: {', '.join(state.run.tasks.ids())})")


def _updated(state: _State, given: Mapping[str, Any], response: Any, evidence: str = "") -> None:
    cc_id = str(given.get("taskId", ""))
    task = state.ids.get(cc_id)
    if task is None:
        state.run.violations.append(f"Claude Code updated task #{cc_id}, which no TaskCreate of this run made")
        return
    blockers = given.get("addBlockedBy") or ()
    state.blockers.setdefault(task, set()).update(state.ids.get(str(b), f"#{b}") for b in blockers)
    status = given.get("status")
    if isinstance(response, dict) and isinstance(response.get("statusChange"), dict):
        status = response["statusChange"].get("to", status)
    if status:
        move(state.run, task, str(status), f"TaskUpdate #{cc_id} status {status}{evidence}", state.clock.now)


def target_state(tasks: TaskList, task: str, status: str) -> State | None:
    """Our state for Claude Code's ``status`` of ``task`` (None: a status we do not know)."""
    if status == "pending":
        return State.PENDING if tasks.unblocked(task) else State.BLOCKED
    return {"in_progress": State.IN_PROGRESS, "completed": State.COMPLETE, "deleted": State.CANCELLED}.get(status)


def move(run: Run, task: str, status: str, event: str, now: float = 0.0) -> None:
    """Record Claude Code's status change; a move our TaskList forbids is kept, and reported as a violation."""
    target = target_state(run.tasks, task, status)
    current = run.tasks[task].state
    if target is None:
        run.violations.append(f"{task}: Claude Code set status {status!r}, which has no TaskList state")
        return
    if target is current:
        return
    try:
        run.tasks.move(task, target, event=event)
        return
    except IllegalTransition as exc:
        why = str(exc)
    seq = max((e.seq for e in run.tasks.history()), default=0) + 1
    run.violations.append(f"{task}: Claude Code moved it {current.value} -> {target.value} (history #{seq}), "
                          f"which the TaskList forbids: {why}")
    if target in LEGAL[current]:  # forbidden only by open blockers: it happened, so the history shows it
        attempt = run.tasks[task].attempts + (target is State.IN_PROGRESS)
        run.tasks.restore(task, target, seq=seq, attempt=attempt, pid=None, time=now,
                          event=event + " (forbidden: blockers open)")


def region_of(state: _State, given: Mapping[str, Any]) -> str | None:
    found = REGION_ARG.search(str(given.get("args", "")))
    ids = {r.id for r in state.run.scenario.regions}
    return found.group(1) if found and found.group(1) in ids else None


def _skill(state: _State, given: Mapping[str, Any], response: Any, evidence: str = "") -> None:
    region = region_of(state, given)
    if region is None:
        return
    response = response if isinstance(response, dict) else {}
    agent = str(response.get("agentId", ""))
    fork = state.forks.setdefault(agent, Fork(agent))
    body = str(response.get("result", ""))
    found = RESULT.search(body)
    result: Any = None
    if found:
        try:
            result = json.loads(found.group(1))
        except ValueError:
            result = None
    task = state.run.scenario.region(region).task
    attempt = len(state.run.attempts_of(task)) + 1
    problem = summary.validate(result, state.run.expected_counts.get(region)) if found else None
    ok = found is not None and problem is None
    reason = "" if ok else (problem or " ".join(body.split())[:300] or "the fork gave no answer")
    record = AttemptRecord(task=task, region=region, attempt=attempt, pid=None,
                           started=fork.started if fork.started is not None else state.clock.now,
                           ended=fork.ended if fork.ended is not None else state.clock.now, ok=ok, reason=reason,
                           event="" if ok else f"fork {agent or '?'} of region {region} failed: {reason}")
    state.run.attempts.append(record)
    state.run.tasks.note("fork", f"region {region} attempt {attempt} (agent {agent}): "
                         f"{'RESULT' if ok else 'FAILED'}{evidence}", task=task, attempt=attempt)
    if ok:
        state.results[region] = result
        state.answered.pop(region, None)
    elif isinstance(result, dict) and problem:
        state.answered[region] = (result, problem)
    if response.get("success") is True and not ok:
        said = (f"the Skill call of region {region} attempt {attempt} reported success: true although its fork "
                f"failed")
        state.run.tasks.note("claude-says-success", said, task=task, attempt=attempt)
        state.run.notes.append(said)


def _close_forks(state: _State) -> None:
    for record in state.run.attempts:
        if record.ended is None:
            record.ended = state.clock.now


def _attach_faults(run: Run, announced: Sequence[Mapping[str, Any]]) -> None:
    for fault in announced:
        for record in run.attempts:
            if record.region == fault.get("region") and record.attempt == fault.get("attempt"):
                record.faults.append(dict(fault))
                break


def _together(run: Run) -> None:
    """One ``together`` event per largest group of region forks alive at one moment (observed, not proven)."""
    spans = [(a.started, a.ended or a.started, a.task) for a in run.attempts]
    best: set[str] = set()
    for start, _, _ in spans:
        alive = {task for s, e, task in spans if s <= start < e}
        if len(alive) > len(best):
            best = alive
    if len(best) > 1:
        run.tasks.note("together", f"observed overlapping: {', '.join(sorted(best))} ({OBSERVED})",
                       data={"tasks": sorted(best), "observed": True})
    run.notes.append(OBSERVED)


def _blocked_by(state: _State, scenario: Scenario) -> None:
    for stage in scenario.graph:
        declared = state.blockers.get(stage.id, set())
        missing = [b for b in stage.blocked_by if b not in declared]
        if stage.id in state.ids.values() and missing:
            state.run.violations.append(f"{stage.id}: Claude Code was never told it is blockedBy "
                                        f"{', '.join(missing)} (TaskUpdate addBlockedBy)")


def _results(state: _State, report: str) -> None:
    """The aggregate from the final report, checked line by line against our summary of the forks' results."""
    run = state.run
    printed = {m.group(2) or "Total": line for m, line in
               ((REPORT_LINE.match(line), line) for line in report.splitlines()) if m}
    for spec in run.scenario.regions:
        line = printed.get(spec.id)
        if line is None:
            if "Total" in printed or spec.id in state.results:
                run.missing.append(spec.id)
            continue
        result = state.results.get(spec.id)
        if result is None and spec.id in state.answered:
            result, problem = state.answered[spec.id]
            run.violations.append(f"the report aggregates region {spec.id}'s result, which its fork answered as a "
                                  f"{problem}; a failed attempt's result must not be counted")
        if result is None:
            run.violations.append(f"the report prints {line!r}, but no fork of region {spec.id} answered a result")
            continue
        run.regions[spec.id] = result
        ours = summary.line(f"Region {spec.id}", result)
        if line.strip() != ours:
            run.violations.append(f"the report prints {line.strip()!r}; the fork's result gives {ours!r}")
    if "Total" in printed:
        run.total = summary.merge(run.regions.values()) if run.regions else summary.empty()
        ours = summary.line("Total", run.total)
        if printed["Total"].strip() != ours:
            run.violations.append(f"the report prints {printed['Total'].strip()!r}; our summary of the same "
                                  f"results gives {ours!r}")
    else:
        run.missing = [r.id for r in run.scenario.regions if r.id not in state.results]
