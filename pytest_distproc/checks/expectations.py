"""Checkers: pure functions from a finished run to a list of mismatches (empty means it held).

``check_expectations`` verifies what the scenario's ``expect`` asks; ``check_invariants`` verifies
what must hold on every run (faults fired, aggregation after the regions, nothing lost or counted twice).
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pytest_distproc.attempt import data
from pytest_distproc.attempt import stats as summary
from pytest_distproc.scenario.extensions import Checker
from pytest_distproc.scenario.model import AGGREGATE_TASK, Expect, OrderRule, Tolerance, region_task
from pytest_distproc.tasklist import State

if TYPE_CHECKING:
    from pytest_distproc.run.model import Run

ORDER = re.compile(r"^([^\s:<]+):([A-Z_]+) < ([^\s:<]+):([A-Z_]+)$")
SUMMARY_FIELD = {"records": "count", "sum": "sum", "mean": "mean", "min": "min", "max": "max", "variance": "variance"}


def check(run: Run, kinds: Mapping[str, Checker] | None = None) -> list[str]:
    """Every mismatch of ``run``: its scenario's ``expect`` (plugins' kinds looked up in ``kinds``) and
    the invariants of every run."""
    return check_expectations(run, run.scenario.expect, kinds) + check_invariants(run)


def locate(run: Run, kinds: Mapping[str, Checker] | None = None) -> list[tuple[str | None, str]]:
    """What :func:`check` finds, each mismatch with the ``$.expect...`` path it breaks (None: an invariant)."""
    found: list[tuple[str | None, str]] = list(locate_expectations(run, run.scenario.expect, kinds))
    return found + [(None, problem) for problem in check_invariants(run)]


def check_expectations(run: Run, expect: Expect, kinds: Mapping[str, Checker] | None = None) -> list[str]:
    return [message for _, message in locate_expectations(run, expect, kinds)]


def locate_expectations(run: Run, expect: Expect,
                        kinds: Mapping[str, Checker] | None = None) -> list[tuple[str, str]]:
    """Like :func:`check_expectations`, each mismatch with the ``$.expect...`` path of the key it breaks
    (``Expect.line_of`` turns it into a YAML line)."""
    problems: list[tuple[str, str]] = []
    tasks = run.tasks
    wanted = expect.outcome or "COMPLETE"  # a run that fails where nobody said it may is a failure
    if run.outcome != wanted:
        problems.append(("$.expect.outcome", f"outcome: expected {wanted}, got {run.outcome}"))
    for task, state in expect.status.items():
        if tasks[task].state.value != state:
            problems.append((f"$.expect.status.{task}",
                             f"status of {task}: expected {state}, got {tasks[task].state.value}"))
    for task, sequence in expect.transitions.items():
        actual = [s.value for s in tasks.sequence(task)]
        if actual != list(sequence):
            problems.append((f"$.expect.transitions.{task}", f"transitions of {task}: expected "
                             f"[{', '.join(sequence)}], got [{', '.join(actual)}]"))
    for task, count in expect.attempts.items():
        if tasks[task].attempts != count:
            problems.append((f"$.expect.attempts.{task}",
                             f"attempts of {task}: expected {count}, got {tasks[task].attempts}"))
    for index, rule in enumerate(expect.order):
        problems.extend((f"$.expect.order[{index}]", p) for p in check_order(run, rule))
    if expect.concurrent:
        problems.extend(("$.expect.concurrent", p) for p in check_concurrent(run, expect.concurrent))
    if expect.aggregate:
        problems.extend(_locate_aggregate(run, expect.aggregate))
    if expect.backoff is not None:
        problems.extend(("$.expect.backoff", p) for p in check_backoff(run, expect.backoff))
    if expect.min_nodes is not None:
        problems.extend(("$.expect.spread.min_nodes", p) for p in check_spread(run, expect.min_nodes))
    if expect.distinct_nodes:
        problems.extend(("$.expect.attempts_on_distinct_nodes", p) for p in check_distinct_nodes(run))
    for name, value in expect.extra.items():
        checker = (kinds or {}).get(name)
        if checker is None:
            problems.append((f"$.expect.{name}", f"expect.{name}: no checker for this expectation kind here; "
                             "register it with the pytest_distproc_expectation_kinds hook in a conftest that "
                             "applies to this test"))
            continue
        problems.extend((f"$.expect.{name}", f"{name}: {p}") for p in checker(run, value))
    return problems


def check_order(run: Run, rule: OrderRule | str) -> list[str]:
    """``A:S1 < B:S2``: A's last entry into S1 precedes B's first entry into S2, for every matching pair.

    ``rule`` is parsed already when it comes from a scenario; a string is for the Python API.
    """
    if isinstance(rule, str):
        match = ORDER.match(rule)
        if match is None:
            raise ValueError(f"bad order rule {rule!r}: expected 'TASKGLOB:STATE < TASKGLOB:STATE'")
        left, left_state, right, right_state = match.groups()
        rule = OrderRule(left, left_state, right, right_state)
    left_glob, left_state, right_glob, right_state = rule.left, rule.left_state, rule.right, rule.right_state
    text = str(rule)
    ids = run.tasks.ids()
    problems = []
    for right in fnmatch.filter(ids, right_glob):  # vacuously true is no evidence: say which side is missing
        lefts = [left for left in fnmatch.filter(ids, left_glob) if left != right]
        if lefts and not rule.vacuous and not _entries(run, right, right_state):
            absent = [left for left in lefts if not _entries(run, left, left_state)]
            also = f", nor did {', '.join(absent)} enter {left_state}" if absent == lefts else ""
            problems.append(f"order {text!r}: {right} never entered {right_state}{also}, so the rule was never "
                            f"put to the test (it would hold only vacuously); if that may happen, write "
                            f"{{rule: {text!r}, vacuous: true}}")
    for left in fnmatch.filter(ids, left_glob):
        for right in fnmatch.filter(ids, right_glob):
            if left == right:
                continue
            last_left = _entries(run, left, left_state)
            first_right = _entries(run, right, right_state)
            if not first_right:
                continue  # reported above, once per right task (or excused by vacuous: true)
            if not last_left and rule.vacuous:
                continue
            elif not last_left:
                problems.append(f"order {text!r}: {right} entered {right_state} (#{first_right[0]}) "
                                f"but {left} never entered {left_state}")
            elif last_left[-1] > first_right[0]:
                problems.append(f"order {text!r}: {left} entered {left_state} at #{last_left[-1]}, after "
                                f"{right} entered {right_state} at #{first_right[0]}")
    return problems


def _entries(run: Run, task: str, state: str) -> list[int]:
    return [t.seq for t in run.tasks.transitions if t.task == task and t.to_state.value == state]


def check_concurrent(run: Run, globs: tuple[str, ...]) -> list[str]:
    """The matching tasks were proven alive at one moment: all held at the start barrier together."""
    wanted = sorted({t for g in globs for t in fnmatch.filter(run.tasks.ids(), g)})
    for event in run.tasks.events:
        if event.kind == "together" and set(wanted) <= set(event.data.get("tasks", ())):
            return []
    seen: list[list[str]] = [list(e.data.get("tasks", ())) for e in run.tasks.events if e.kind == "together"]
    largest = max(seen, key=len) if seen else []
    why = (f"the largest group seen together was {', '.join(largest)}" if seen
           else f"no two of them were ever running at once on backend {run.backend}")
    return [f"concurrent: {', '.join(wanted)} were never all running at the same time; {why}"]


BACKOFF_SLACK = 1e-6
"""Seconds a measured gap may fall short of the backoff: float rounding of ``now + backoff``, nothing more."""


def check_backoff(run: Run, least: float | bool) -> list[str]:
    """``expect.backoff``: every retry started at least ``least`` seconds (True: the policy's ``backoff``) after
    the failure before it, both times read from the history; and at least one retry happened."""
    from pytest_distproc.run.model import retry_gaps

    seconds = run.scenario.policy.backoff if least is True else float(least)
    source = "policy.backoff" if least is True else "expect.backoff"
    gaps = retry_gaps(run)
    if not gaps:
        return [f"backoff: no attempt was retried in this run, so no wait between a failure and a retry could be "
                f"measured (expected at least {seconds:g} s, {source})"]
    return [f"backoff: {gap.task} started attempt {gap.attempt} (#{gap.started_seq}) {gap.seconds:.3f} s after "
            f"attempt {gap.attempt - 1} FAILED (#{gap.failed_seq}); expected at least {seconds:g} s ({source})"
            for gap in gaps if gap.seconds + BACKOFF_SLACK < seconds]


def check_aggregate(run: Run, expected: Mapping[str, Any]) -> list[str]:
    """``expect.aggregate``: ``records`` compare exactly, the other fields under ``expected["tolerance"]``
    (a :class:`Tolerance`; default relative 1e-9, absolute 1e-12)."""
    return [message for _, message in _locate_aggregate(run, expected)]


def _locate_aggregate(run: Run, expected: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    tolerance = expected.get("tolerance") or Tolerance()
    if "total" in expected:
        problems.extend(("$.expect.aggregate.total", p)
                        for p in _compare("total", expected["total"], run.total, tolerance))
    for region_id, want in expected.get("regions", {}).items():
        problems.extend((f"$.expect.aggregate.regions.{region_id}", p)
                        for p in _compare(f"region {region_id}", want, run.regions.get(region_id), tolerance))
    if "missing" in expected and sorted(expected["missing"]) != sorted(run.missing):
        problems.append(("$.expect.aggregate.missing",
                         f"missing regions: expected {sorted(expected['missing'])}, got {sorted(run.missing)}"))
    return problems


def _compare(label: str, want: Mapping[str, float], got: Mapping[str, float] | None,
             tolerance: Tolerance) -> list[str]:
    if got is None:
        return [f"aggregate {label}: expected {_fmt(want)}, but there is no result"]
    problems = []
    for key, value in want.items():
        actual = got[SUMMARY_FIELD[key]]
        if key == "records":
            if int(actual) != int(value):
                problems.append(f"aggregate {label}: expected records={value}, got {int(actual)} "
                                "(counts compare exactly)")
            continue
        have, wanted = float(actual), float(value)
        if math.isnan(have):
            problems.append(f"aggregate {label}: expected {key}={value}, got {key}=nan (no records to take it "
                            "over)")
        elif not tolerance.allows(have, wanted):
            problems.append(f"aggregate {label}: expected {key}={value}, got {key}={have!r} ({_off(have, wanted)}; "
                            f"allowed: {tolerance.describe()}{_rounded(key, have, wanted, tolerance)})")
    return problems


def _off(have: float, wanted: float) -> str:
    difference = abs(have - wanted)
    if wanted == 0:
        return f"off by {difference:.3g}"
    return f"off by {difference:.3g} = {difference / abs(wanted):.3g} relative"


def _rounded(key: str, have: float, wanted: float, tolerance: Tolerance) -> str:
    """A hint when the expected value is the actual one as the transcript prints it (rounded)."""
    decimals = summary.PRINTED_DECIMALS.get(key)
    if decimals is None or tolerance.given or wanted != round(have, decimals):
        return ""
    unit = 10.0**-decimals  # one unit of the last printed digit: half of it could fall short by a rounding bit
    return (f". {wanted!r} is {have!r} rounded to {decimals} decimals, as the transcript prints {key}: write "
            f"{have!r}, or compare at that precision with tolerance: {{abs: {unit:g}}}")


def _fmt(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _nodeless(run: Run, key: str) -> list[str]:
    if any(a.node for a in run.attempts):
        return []
    return [f"{key}: the attempts of this run have no nodes (backend {run.backend}); placement is checked on "
            "backend: ray"]


def check_spread(run: Run, min_nodes: int) -> list[str]:
    """``spread: {min_nodes: N}``: the run's attempts ran on at least N distinct nodes."""
    if (nodeless := _nodeless(run, "spread")):
        return nodeless
    names = dict.fromkeys((a.node["id"], a.node["name"]) for a in run.attempts if a.node)
    if len(names) >= min_nodes:
        return []
    return [f"spread: expected the attempts on at least {min_nodes} nodes, got {len(names)} "
            f"({', '.join(name for _, name in names)})"]


def check_distinct_nodes(run: Run) -> list[str]:
    """``attempts_on_distinct_nodes: true``: no region ran two of its attempts on one node."""
    if (nodeless := _nodeless(run, "attempts_on_distinct_nodes")):
        return nodeless
    problems = []
    for task in dict.fromkeys(a.task for a in run.attempts):
        seen: dict[str, int] = {}
        for record in run.attempts_of(task):
            if not record.node:
                continue
            if record.node["id"] in seen:
                problems.append(f"attempts_on_distinct_nodes: {task} attempts {seen[record.node['id']]} and "
                                f"{record.attempt} both ran on node {record.node['name']}")
            seen.setdefault(record.node["id"], record.attempt)
    return problems


def check_invariants(run: Run) -> list[str]:
    return [
        *run.violations,
        *check_faults_fired(run),
        *check_aggregation_order(run),
        *check_retries(run),
        *check_conservation(run),
    ]


def check_faults_fired(run: Run) -> list[str]:
    """Every planned fault whose attempt ran must have announced itself."""
    problems = []
    fired = {(f["region"], f["kind"], f["attempt"]) for f in run.faults_fired}
    for fault in run.planned_faults:
        key = (fault["region"], fault["kind"], fault["attempt"])
        if fault["attempt"] <= run.inherited.get(region_task(fault["region"]), 0):
            continue  # that attempt belonged to the coordinator we resumed from
        ran = any(a.region == fault["region"] and a.attempt == fault["attempt"] for a in run.attempts)
        if key in fired:
            continue
        if ran:
            problems.append(f"planned fault never fired: {fault['kind']} in region {fault['region']} attempt "
                            f"{fault['attempt']} ran without it")
        elif any(f.attempts is not None for f in run.scenario.faults
                 if f.region == fault["region"] and f.kind == fault["kind"]):
            count = len([a for a in run.attempts if a.region == fault["region"]])
            problems.append(f"planned fault never fired: {fault['kind']} in region {fault['region']} on attempt "
                            f"{fault['attempt']}, but the region stopped after {count} attempt(s)")
    return problems


def check_aggregation_order(run: Run) -> list[str]:
    starts = _entries(run, AGGREGATE_TASK, State.IN_PROGRESS.value)
    if not starts:
        return []
    problems = []
    for spec in run.scenario.regions:
        last = max(t.seq for t in run.tasks.transitions if t.task == spec.task)
        if last > starts[0] or run.tasks[spec.task].state not in (State.COMPLETE, State.FAILED):
            problems.append(f"aggregation started (#{starts[0]}) before {spec.task} finished (#{last})")
    return problems


def check_retries(run: Run) -> list[str]:
    limit = run.scenario.policy.retries + 1
    return [f"{t.id} ran {t.attempts} attempts; the policy allows {limit}" for t in run.tasks
            if t.attempts - run.lost.get(t.id, 0) > limit]


def check_conservation(run: Run) -> list[str]:
    """Records in = records aggregated + records of failed regions; the total equals the all-at-once summary."""
    problems = []
    expected = run.expected_counts
    records_in = sum(expected.values())
    aggregated = sum(int(run.regions[r]["count"]) for r in run.regions)
    lost_to_failures = sum(expected[r] for r in run.missing)
    if run.total is not None:
        total_count = int(run.total["count"])
        if total_count != aggregated:
            problems.append(f"conservation: total counts {total_count} records but regions sum to {aggregated}")
        if aggregated + lost_to_failures != records_in:
            delta = aggregated + lost_to_failures - records_in
            word = "duplicated or unexpected" if delta > 0 else "lost"
            problems.append(f"conservation: {records_in} records in, {aggregated} aggregated + {lost_to_failures} "
                            f"in failed regions: {abs(delta)} {word}")
        if run.scenario.skill == "region-stats" and not problems:
            problems.extend(_against_oracle(run))
    return problems


def _against_oracle(run: Run) -> list[str]:
    values: list[float] = []
    for spec in run.scenario.regions:
        if spec.id in run.regions:
            values.extend(data.source_values(data.source_of(spec, run.seed)))
    reference = summary.summarize(values)
    assert run.total is not None
    wrong = [k for k in summary.FIELDS if not summary.close(float(run.total[k]), float(reference[k]), rel=1e-7)
             and not (math.isnan(float(run.total[k])) and math.isnan(float(reference[k])))]
    if wrong:
        return [f"merged total differs from the summary over all records at once in {', '.join(wrong)}: "
                f"{_fmt({k: run.total[k] for k in wrong})} vs {_fmt({k: reference[k] for k in wrong})}"]
    return []
