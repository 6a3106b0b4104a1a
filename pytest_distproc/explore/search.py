"""Explore fault plans (and interleavings) with Hypothesis; shrink a failure to a YAML reproducer.

A fixed scenario tests one schedule. :func:`explore` runs a scenario under many fault plans drawn
from :func:`pytest_distproc.explore.strategies.fault_plans`, on the :class:`SimulatedBackend` (in-process,
simulated clock, message order and work times drawn from Hypothesis too), and checks after every
run what must hold for *every* plan (:func:`check_run`):

- the invariants of :func:`pytest_distproc.checks.expectations.check_invariants` (faults fired, aggregation
  only after every region finished, retries bounded by the policy, nothing lost or counted twice);
- the outcome agrees with ``on_region_failure`` (COMPLETE iff every region completed, or, with
  ``partial``, iff at least one survived) and every region ended COMPLETE or FAILED;
- each region ran the attempts and ended in the state the plan implies (:func:`predict`);
- no orphans: every attempt's exit reached the coordinator (on ``fork``: no process of theirs lives).

When one breaks, Hypothesis shrinks the plan and :class:`Finding` renders it as a scenario file
(``backend: fork``, with an ``expect`` section from :func:`predict`) that fails on the broken
coordinator and passes on a correct one: paste it under ``scenarios/`` and it is a regression test.
:func:`replay_on_fork` runs the same plan on real processes to confirm a finding.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from pytest_distproc.attempt import data
from pytest_distproc.backends.inline import FifoScheduler, ReplayScheduler, Scheduler, SimulatedBackend
from pytest_distproc.backends.protocol import Backend, Handle
from pytest_distproc.checks import expectations
from pytest_distproc.errors import DistprocError
from pytest_distproc.explore import strategies
from pytest_distproc.run.coordinator import Coordinator
from pytest_distproc.run.model import Run
from pytest_distproc.scenario.extensions import Extensions
from pytest_distproc.scenario.model import AGGREGATE_TASK, FaultSpec, Scenario
from pytest_distproc.scenario.yamlsource import Dumper
from pytest_distproc.tasklist import State

CoordinatorFactory = Callable[..., Coordinator]
"""``Coordinator`` or a subclass: called as ``factory(scenario, seed=..., backend=..., backend_factory=...)``."""

DEFAULT_EXAMPLES = 100
DEFAULT_MAX_FAULTS = 3


# -- what a plan implies ----------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    """What a correct coordinator does under a plan: per task its transitions, and the outcome."""

    outcome: str
    transitions: dict[str, tuple[str, ...]]
    attempts: dict[str, int]
    survivors: tuple[str, ...]
    missing: tuple[str, ...]
    records: int  # records in the total, when there is one

    @property
    def status(self) -> dict[str, str]:
        return {task: states[-1] for task, states in self.transitions.items()}


def predict(scenario: Scenario, seed: int | None = None) -> Prediction:
    """Walk each region's attempts through the scenario's faults and policy, as a correct coordinator would."""
    policy = scenario.policy
    run_seed = scenario.run_seed(seed)
    transitions: dict[str, tuple[str, ...]] = {}
    attempts: dict[str, int] = {}
    survivors, missing = [], []
    records = 0
    for spec in scenario.regions:
        count = data.count(data.source_of(spec, run_seed))
        states = ["PENDING"]
        ok = False
        for attempt in range(1, policy.retries + 2):
            firing = [f for f in scenario.faults if f.region == spec.id and f.fires_on(attempt)]
            delay = sum(f.seconds for f in firing if f.kind == "delay")
            failed = delay >= policy.timeout or any(
                strategies.fails(f, count, policy.timeout) for f in firing if f.kind != "delay")
            states += ["IN_PROGRESS", "FAILED" if failed else "COMPLETE"]
            attempts[spec.task] = attempt
            if not failed:
                ok = True
                break
        transitions[spec.task] = tuple(states)
        if ok:
            survivors.append(spec.id)
            records += count
        else:
            missing.append(spec.id)
    aggregate: tuple[str, ...]
    if missing and policy.on_region_failure == "fail":
        outcome, aggregate = "FAILED", ("BLOCKED", "CANCELLED")
    elif survivors:
        outcome, aggregate = "COMPLETE", ("BLOCKED", "IN_PROGRESS", "COMPLETE")
    else:
        outcome, aggregate = "FAILED", ("BLOCKED", "IN_PROGRESS", "FAILED")
    transitions[AGGREGATE_TASK] = aggregate
    return Prediction(outcome, transitions, attempts, tuple(survivors), tuple(missing), records)


# -- checking one run -------------------------------------------------------------------------
def check_outcome(run: Run) -> list[str]:
    """The outcome agrees with ``on_region_failure`` and with the regions' final states."""
    problems = []
    states = {r.id: run.tasks[r.task].state for r in run.scenario.regions}
    unfinished = [rid for rid, s in states.items() if s not in (State.COMPLETE, State.FAILED)]
    if unfinished:
        problems.append(f"outcome: region(s) {', '.join(unfinished)} ended "
                        f"{', '.join(states[r].value for r in unfinished)}, not COMPLETE or FAILED")
    completed = [rid for rid, s in states.items() if s is State.COMPLETE]
    policy = run.scenario.policy.on_region_failure
    if policy == "fail":
        should, why = len(completed) == len(states), "every region completed"
    else:
        should, why = bool(completed), "at least one region survived (on_region_failure: partial)"
    if (run.outcome == "COMPLETE") != should:
        problems.append(f"outcome: {run.outcome}, but it must be COMPLETE iff {why}; completed: "
                        f"{', '.join(completed) or 'none'} of {', '.join(states)}")
    aggregate = run.tasks[AGGREGATE_TASK].state
    if (aggregate is State.COMPLETE) != (run.outcome == "COMPLETE"):
        problems.append(f"outcome: {run.outcome}, but {AGGREGATE_TASK} ended {aggregate.value}")
    return problems


def check_prediction(run: Run, prediction: Prediction) -> list[str]:
    """Each task's transitions are the ones the plan implies (:func:`predict`)."""
    problems = []
    for task, wanted in prediction.transitions.items():
        got = tuple(s.value for s in run.tasks.sequence(task))
        if got != wanted:
            problems.append(f"plan: {task} went [{', '.join(got)}]; the plan implies [{', '.join(wanted)}]")
    return problems


def check_run(run: Run, prediction: Prediction | None = None, orphans: Sequence[str] = ()) -> list[str]:
    """Everything that must hold for every plan (see the module docs); empty when it all held."""
    problems = expectations.check_invariants(run) + check_outcome(run)
    if prediction is not None:
        problems += check_prediction(run, prediction)
    problems += [f"orphan: {o}" for o in orphans]
    return problems


# -- running one plan -------------------------------------------------------------------------
@dataclass
class PlanRun:
    """One run of a scenario under a plan: the run (None if the coordinator raised) and what broke."""

    scenario: Scenario
    run: Run | None
    mismatches: list[str]
    schedule: list[tuple[str, float]] = field(default_factory=list)


def with_plan(scenario: Scenario, plan: Sequence[FaultSpec], *, backend: str | None = None) -> Scenario:
    """``scenario`` with ``plan`` appended to its faults (and, if given, another backend), not exploring."""
    changes: dict[str, Any] = {"faults": (*scenario.faults, *plan)}
    if backend is not None:
        changes["backend"] = backend
    if "explore" in {f.name for f in dataclasses.fields(scenario)}:
        changes["explore"] = None
    return dataclasses.replace(scenario, **changes)


def run_plan(
    scenario: Scenario,
    plan: Sequence[FaultSpec],
    *,
    scheduler: Scheduler | None = None,
    coordinator: CoordinatorFactory = Coordinator,
    seed: int | None = None,
) -> PlanRun:
    """Run ``scenario`` plus ``plan`` on the simulated backend and check it (:func:`check_run`)."""
    planned = with_plan(scenario, plan)
    backends: list[SimulatedBackend] = []

    def factory(name: str, run_dir: str) -> Backend:
        backends.append(SimulatedBackend(run_dir, scheduler))
        return backends[-1]

    try:
        run = coordinator(planned, seed=seed, backend="inline", backend_factory=factory).run()
    except Exception as exc:  # a coordinator that crashes is a finding, not an error of ours
        return PlanRun(planned, None, [f"the coordinator raised {type(exc).__name__}: {exc}"], _trace(scheduler))
    orphans = [f"{h.task} attempt {h.attempt} never reported its exit" for h in backends[0].unfinished()]
    return PlanRun(planned, run, check_run(run, predict(planned, seed), orphans), _trace(scheduler))


def replay_on_fork(
    scenario: Scenario,
    plan: Sequence[FaultSpec] = (),
    *,
    coordinator: CoordinatorFactory = Coordinator,
    seed: int | None = None,
) -> PlanRun:
    """Run ``scenario`` plus ``plan`` on real forked processes and check the same things, orphans included."""
    planned = with_plan(scenario, plan, backend="fork")
    try:
        run = coordinator(planned, seed=seed, backend="fork").run()
    except Exception as exc:
        return PlanRun(planned, None, [f"the coordinator raised {type(exc).__name__}: {exc}"])
    pids = {a.pid for a in run.attempts if a.pid is not None}
    return PlanRun(planned, run, check_run(run, predict(planned, seed), _live_groups(pids)))


def _live_groups(pgids: set[int]) -> list[str]:
    """Processes still alive in any of the attempts' process groups."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, pgid = fields[0], int(fields[2])
        if pgid in pgids and state != "Z" and int(entry.name) != os.getpid():
            found.append(f"pid {entry.name} of process group {pgid} outlived the run")
    return found


class HypothesisScheduler:
    """Scheduler choices drawn from Hypothesis (``st.data()``), recorded for the report and for replay."""

    def __init__(self, draw: st.DataObject, max_step: float) -> None:
        self.data, self.max_step = draw, max_step
        self.trace: list[tuple[str, float]] = []

    def choose(self, ready: list[Handle]) -> int:
        index = self.data.draw(st.integers(0, len(ready) - 1))
        self.trace.append(("choose", index))
        return index

    def step(self, handle: Handle) -> float:
        # Multiples of max_step / 4: at most four messages per attempt stay below half its timeout.
        step = self.data.draw(st.integers(0, 4)) * self.max_step / 4
        self.trace.append(("step", step))
        return step


def _trace(scheduler: Scheduler | None) -> list[tuple[str, float]]:
    return list(getattr(scheduler, "trace", []))


# -- exploring --------------------------------------------------------------------------------
@dataclass
class Finding:
    """A shrunk plan that breaks an invariant, with everything needed to reproduce it."""

    scenario: Scenario  # the explored scenario
    plan: tuple[FaultSpec, ...]
    mismatches: list[str]
    seed: int  # the scenario seed the run used
    explore_seed: int  # Hypothesis' seed: the same seed explores the same plans
    schedule: list[tuple[str, float]]
    needs_schedule: bool  # True if the plan alone (FIFO delivery) does not reproduce it

    @property
    def reproducer(self) -> Scenario:
        return with_plan(self.scenario, self.plan, backend="fork")

    def yaml(self, name: str | None = None) -> str:
        """The ready-to-commit scenario: backend fork, the plan's faults, and an ``expect`` from :func:`predict`."""
        return scenario_yaml(self.reproducer, name=name or f"{self.scenario.name}-found", seed=self.seed,
                             header=self._header())

    def _header(self) -> list[str]:
        where = f"{self.scenario.path}:{self.scenario.line}"
        lines = [f"Found by exploring {self.scenario.name!r} ({where}) with explore seed {self.explore_seed};",
                 "shrunk by Hypothesis. It broke:"]
        lines += [f"  - {m}" for m in self.mismatches]
        if self.needs_schedule:
            lines += ["Only under a particular interleaving (scheduler choices below); on fork it may not",
                      f"reproduce every time. Replay: ReplayScheduler({self.schedule!r})"]
        if any(r.file is not None for r in self.scenario.regions):
            lines.append(f"Data files are relative: save this file in {self.scenario.path.parent}.")
        return lines

    def render(self) -> str:
        count = len(self.mismatches)
        kinds = ", ".join(f.describe() for f in self.plan) or "no faults at all"
        parts = [f"exploration of {self.scenario.name!r} broke {count} invariant{'s' if count != 1 else ''} "
                 f"under the shrunk plan: {kinds}"]
        parts += [f"  - {m}" for m in self.mismatches]
        parts += ["", f"seed: {self.seed}  explore seed: {self.explore_seed}  "
                  f"(rerun: --distproc-seed={self.seed} reproduces the same exploration)"]
        if self.needs_schedule:
            parts.append(f"needs this interleaving (scheduler choices): {self.schedule}")
        parts += ["", "regression test (paste into scenarios/, it runs on fork):", "", self.yaml()]
        return "\n".join(parts)


class ExplorationFailed(DistprocError):
    """Exploration found a plan that breaks an invariant; ``str()`` is the full report with the YAML."""

    def __init__(self, finding: Finding) -> None:
        self.finding = finding
        super().__init__(finding.render())


@dataclass
class Exploration:
    """What an exploration did: how many runs, how long, and the finding (None if every plan held)."""

    runs: int
    seconds: float
    finding: Finding | None

    @property
    def runs_per_minute(self) -> float:
        return self.runs * 60 / self.seconds if self.seconds else 0.0


class _Broken(Exception):
    def __init__(self, plan: tuple[FaultSpec, ...], outcome: PlanRun) -> None:
        super().__init__("\n".join(outcome.mismatches))
        self.plan, self.outcome = plan, outcome


def explore(
    scenario: Scenario,
    *,
    examples: int | None = None,
    kinds: Sequence[str] | None = None,
    max_faults: int | None = None,
    seed: int | None = None,
    explore_seed: int | None = None,
    interleavings: bool = True,
    coordinator: CoordinatorFactory = Coordinator,
    extensions: Extensions | None = None,
) -> Exploration:
    """Run ``scenario`` under Hypothesis-drawn fault plans on the simulated backend; shrink any failure.

    Unset arguments come from the scenario's ``explore:`` section, then the defaults (100 examples,
    every fault kind, at most 3 faults). ``explore_seed`` fixes Hypothesis' choices (default: the
    scenario's seed, else ``seed``), so the same call explores the same plans: no flaky tests.
    ``coordinator`` may be a :class:`Coordinator` subclass (for instance one with a planted bug).
    """
    if extensions is not None:  # the skills and fault kinds of the scenario's config, in every run of the search
        coordinator = functools.partial(coordinator, extensions=extensions)
    options = scenario.explore
    examples = examples or (options.examples if options else None) or DEFAULT_EXAMPLES
    kinds = tuple(kinds or (options.faults if options else None) or strategies.DEFAULT_KINDS)
    if max_faults is None:
        max_faults = options.max_faults if options else DEFAULT_MAX_FAULTS
    if options is not None and not options.interleavings:
        interleavings = False
    run_seed = scenario.run_seed(seed)
    hseed = explore_seed if explore_seed is not None else run_seed
    max_step = scenario.policy.timeout / 10
    runs = 0

    @settings(max_examples=examples, deadline=None, database=None, derandomize=False, report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
              phases=(Phase.explicit, Phase.generate, Phase.shrink))
    @hypothesis_seed(hseed)
    @given(plan=strategies.fault_plans(scenario, kinds=kinds, max_faults=max_faults), draw=st.data())
    def attempt(plan: tuple[FaultSpec, ...], draw: st.DataObject) -> None:
        nonlocal runs
        runs += 1
        scheduler: Scheduler = HypothesisScheduler(draw, max_step) if interleavings else FifoScheduler()
        outcome = run_plan(scenario, plan, scheduler=scheduler, coordinator=coordinator, seed=run_seed)
        if outcome.mismatches:
            raise _Broken(plan, outcome)

    started = time.perf_counter()
    finding = None
    try:
        attempt()
    except _Broken as broken:
        plain = run_plan(scenario, broken.plan, coordinator=coordinator, seed=run_seed)
        if plain.mismatches:  # the plan alone reproduces it: shrink further, without a schedule
            plan = minimize(scenario, broken.plan, kinds=kinds, coordinator=coordinator, seed=run_seed)
            outcome = run_plan(scenario, plan, coordinator=coordinator, seed=run_seed)
            finding = Finding(scenario, plan, outcome.mismatches, run_seed, hseed, [], needs_schedule=False)
        else:
            finding = Finding(scenario, broken.plan, broken.outcome.mismatches, run_seed, hseed,
                              broken.outcome.schedule, needs_schedule=True)
    return Exploration(runs, time.perf_counter() - started, finding)


def minimize(
    scenario: Scenario,
    plan: Sequence[FaultSpec],
    *,
    kinds: Sequence[str] = strategies.DEFAULT_KINDS,
    coordinator: CoordinatorFactory = Coordinator,
    seed: int | None = None,
) -> tuple[FaultSpec, ...]:
    """Shrink a plan that breaks an invariant on FIFO delivery to a canonical minimal one.

    Hypothesis' shrinking works on its choice sequence; this finishes the job on the plan itself,
    keeping it coherent: drop any fault whose removal keeps the failure (later faults of the region
    move one attempt earlier), move a region's faults to the earliest region without faults, prefer
    a kind listed earlier, and ``attempts: [1]`` over ``all``. Repeats until nothing changes.
    """
    ids = [r.id for r in scenario.regions]
    run_seed = scenario.run_seed(seed)
    counts = {r.id: data.count(data.source_of(r, run_seed)) for r in scenario.regions}
    policy = scenario.policy

    def kinds_of(mismatches: list[str]) -> set[str]:
        return {m.split(":", 1)[0] for m in mismatches}

    wanted = kinds_of(run_plan(scenario, plan, coordinator=coordinator, seed=seed).mismatches)

    def coherent(candidate: tuple[FaultSpec, ...]) -> bool:
        for chain in chains(candidate).values():
            if len(chain) > policy.retries + 1 or (len(chain) > 1 and chain[0].attempts is None):
                return False
            if any(not strategies.fails(f, counts[f.region], policy.timeout) for f in chain[:-1]):
                return False
        return True

    def breaks(candidate: tuple[FaultSpec, ...]) -> bool:
        if not coherent(candidate):
            return False
        mismatches = run_plan(scenario, candidate, coordinator=coordinator, seed=seed).mismatches
        return bool(kinds_of(mismatches) & wanted)

    def chains(candidate: Sequence[FaultSpec]) -> dict[str, list[FaultSpec]]:
        out: dict[str, list[FaultSpec]] = {}
        for fault in candidate:
            out.setdefault(fault.region, []).append(fault)
        return out

    def flatten(by_region: dict[str, list[FaultSpec]]) -> tuple[FaultSpec, ...]:
        flat: list[FaultSpec] = []
        for region in ids:
            for index, fault in enumerate(by_region.get(region, [])):
                attempts = None if fault.attempts is None and index == 0 else (index + 1,)
                flat.append(dataclasses.replace(fault, region=region, attempts=attempts))
        return tuple(flat)

    def candidates(current: tuple[FaultSpec, ...]) -> list[tuple[FaultSpec, ...]]:
        by_region = chains(current)
        out: list[tuple[FaultSpec, ...]] = []
        for region, chain in by_region.items():  # drop one fault
            for index in range(len(chain)):
                out.append(flatten({**by_region, region: chain[:index] + chain[index + 1:]}))
        free = [r for r in ids if r not in by_region]
        for region, chain in by_region.items():  # move a region's faults to an earlier free region
            earlier = [r for r in free if ids.index(r) < ids.index(region)]
            if earlier:
                moved = {k: v for k, v in by_region.items() if k != region}
                out.append(flatten({**moved, earlier[0]: chain}))
        for position, fault in enumerate(current):  # an earlier kind; [1] instead of all
            simpler = [dataclasses.replace(fault, kind=k) for k in kinds[: list(kinds).index(fault.kind)]
                       if fault.kind in kinds and k not in ("delay", "drop")]
            if fault.attempts is None:
                simpler.append(dataclasses.replace(fault, attempts=(1,)))
            out.extend((*current[:position], s, *current[position + 1:]) for s in simpler)
        return out

    current = flatten(chains(plan))
    if current != tuple(plan) and not breaks(current):
        current = tuple(plan)
    changed = True
    while changed:
        changed = False
        for candidate in candidates(current):
            if _size(candidate) < _size(current) and breaks(candidate):
                current, changed = candidate, True
                break
    return current


def _size(plan: Sequence[FaultSpec]) -> tuple[int, int, int, int]:
    """Smaller is simpler: fewer faults, fewer ``all``, later regions, later kinds."""
    from pytest_distproc.scenario.model import FAULT_KINDS

    return (len(plan), sum(f.attempts is None for f in plan), sum(ord(f.region[0]) for f in plan),
            sum(FAULT_KINDS.index(f.kind) for f in plan))


def replay(finding: Finding, *, coordinator: CoordinatorFactory = Coordinator) -> PlanRun:
    """Re-run a finding on the simulated backend with its recorded scheduler choices."""
    return run_plan(finding.scenario, finding.plan, scheduler=ReplayScheduler(list(finding.schedule)),
                    coordinator=coordinator, seed=finding.seed)


# -- writing a scenario -----------------------------------------------------------------------
def scenario_dict(scenario: Scenario, *, name: str | None = None, seed: int | None = None,
                  expect: bool = True) -> dict[str, Any]:
    """``scenario`` as plain YAML data in the scenario format, with an ``expect`` from :func:`predict`."""
    run_seed = scenario.seed if scenario.seed is not None else seed
    body: dict[str, Any] = {"name": name or scenario.name}
    if scenario.description:
        body["description"] = scenario.description
    if run_seed is not None:
        body["seed"] = run_seed
    body["regions"] = {r.id: _source(r, scenario.path) for r in scenario.regions}
    if scenario.skill != "region-stats":
        body["skill"] = scenario.skill
    if scenario.context != "fork":
        body["context"] = scenario.context
    body["backend"] = scenario.backend
    policy = scenario.policy
    body["policy"] = {"timeout": f"{policy.timeout:g}s", "retries": policy.retries, "backoff": f"{policy.backoff:g}s",
                      "on_region_failure": policy.on_region_failure}
    if policy.memory_limit_mb != type(policy)().memory_limit_mb:
        body["policy"]["memory_limit_mb"] = policy.memory_limit_mb
    body["faults"] = [strategies.fault_dict(f) for f in scenario.faults]
    if expect:
        body["expect"] = expect_dict(predict(scenario, seed))
    return body


def expect_dict(prediction: Prediction) -> dict[str, Any]:
    """The ``expect`` section a correct coordinator satisfies under the predicted plan."""
    out: dict[str, Any] = {
        "outcome": prediction.outcome,
        "status": prediction.status,
        "transitions": {t: list(s) for t, s in prediction.transitions.items()},
        "attempts": dict(prediction.attempts),
    }
    aggregate_ran = "IN_PROGRESS" in prediction.transitions[AGGREGATE_TASK]
    if aggregate_ran:
        order = ["process-region-*:COMPLETE < aggregate-results:IN_PROGRESS"]
        if prediction.missing:
            order.append("process-region-*:FAILED < aggregate-results:IN_PROGRESS")
        out["order"] = order
    aggregate: dict[str, Any] = {"missing": list(prediction.missing)}
    if prediction.outcome == "COMPLETE":
        aggregate["total"] = {"records": prediction.records}
    out["aggregate"] = aggregate
    return out


def _source(region: Any, scenario_path: Path) -> dict[str, Any]:
    if region.records is not None:
        return {"records": region.records}
    if region.file is not None:
        try:
            return {"file": str(Path(region.file).relative_to(scenario_path.parent.resolve()))}
        except ValueError:
            return {"file": str(region.file)}
    return {"inline": [dict(r) for r in region.inline or ()]}


class _Dumper(Dumper):  # quotes strings YAML 1.2 or 1.1 would read as something else
    """Block style at the top, flow style for leaves: ``{region: B, kind: raise, attempts: [1]}``."""


def _represent_dict(dumper: yaml.SafeDumper, value: dict[str, Any]) -> yaml.Node:
    return dumper.represent_mapping("tag:yaml.org,2002:map", value.items(), flow_style=_short(value))


def _represent_list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=_short(value))


def _short(value: dict[str, Any] | list[Any]) -> bool:
    """Flow style when it fits on a line: ``{region: B, kind: raise, attempts: [1]}``."""
    if isinstance(value, list) and any(isinstance(v, dict) and ("kind" in v or len(str(v)) > 60) for v in value):
        return False  # one fault per line
    return len(str(value)) <= 72


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(list, _represent_list)


def scenario_yaml(scenario: Scenario, *, name: str | None = None, seed: int | None = None,
                  header: Sequence[str] = ()) -> str:
    """A scenario file for ``scenario`` (see :func:`scenario_dict`), with ``header`` as comment lines."""
    body = scenario_dict(scenario, name=name, seed=seed)
    text = yaml.dump(body, Dumper=_Dumper, sort_keys=False, width=110, allow_unicode=True)
    comments = "".join(f"# {line}\n" if line else "#\n" for line in header)
    return comments + text
