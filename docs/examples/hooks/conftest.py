"""One example per pytest-distproc hook; the hooks reference shows each section beside its hook."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_distproc.attempt import stats as summary
from pytest_distproc.attempt.faults import FaultKind
from pytest_distproc.backends.fork import ForkBackend

TRANSITIONS = Path(__file__).parent / "transitions.log"


# --8<-- [start:pytest_distproc_make_backend]
def pytest_distproc_make_backend(config: pytest.Config, scenario: Any, name: str, run_dir: str) -> Any:
    # Run scenarios named "local-*" on the fork backend whatever --distproc-backend says;
    # return None for the rest, so the next implementation (in the end, the plugin's own) decides.
    if scenario.name.startswith("local-"):
        return ForkBackend(run_dir)
    return None
# --8<-- [end:pytest_distproc_make_backend]


# --8<-- [start:pytest_distproc_register_skills]
def median_skill(records: Sequence[Mapping[str, Any]], context: Mapping[str, Any]) -> dict[str, float]:
    """The usual mergeable summary, plus the region's median (runs in the forked child)."""
    values = sorted(float(r["value"]) for r in records)
    result = summary.summarize(values)
    result["median"] = values[len(values) // 2] if values else math.nan
    return result


def pytest_distproc_register_skills(config: pytest.Config) -> dict[str, Any]:
    return {"median-stats": median_skill}  # usable as `skill: median-stats`
# --8<-- [end:pytest_distproc_register_skills]


# --8<-- [start:pytest_distproc_fault_kinds]
def _reverse(fault: Mapping[str, Any], state: dict[str, Any]) -> None:
    # phase "before": runs in the child before the skill, and may change the records it gets. Here their
    # order only: a skill must not depend on it. (A fault that changes their values makes the region's
    # summary differ from what its own data gives, which every run checks: the item would fail.)
    state["records"] = list(reversed(state["records"]))


def pytest_distproc_fault_kinds(config: pytest.Config) -> list[FaultKind]:
    return [FaultKind("reverse", "before", _reverse, lethal=False)]  # usable as `kind: reverse`
# --8<-- [end:pytest_distproc_fault_kinds]


# --8<-- [start:pytest_distproc_expectation_kinds]
def _max_at_most(run: Any, limit: float) -> list[str]:
    if run.total is None:
        return [f"max_at_most: expected max <= {limit}, but there is no total"]
    if run.total["max"] > limit:
        return [f"max_at_most: expected max <= {limit}, got {run.total['max']:.4f}"]
    return []


def pytest_distproc_expectation_kinds(config: pytest.Config) -> dict[str, Any]:
    return {"max_at_most": _max_at_most}  # usable as `expect: {max_at_most: 0}`
# --8<-- [end:pytest_distproc_expectation_kinds]


# --8<-- [start:pytest_distproc_transition]
def pytest_distproc_transition(config: pytest.Config, scenario: Any, transition: Any) -> None:
    # Called in the coordinator's loop, in history order: keep it quick.
    with TRANSITIONS.open("a", encoding="utf-8") as log:
        log.write(f"{scenario.name} {transition.seq} {transition.task} {transition.to_state.value}\n")
# --8<-- [end:pytest_distproc_transition]


# --8<-- [start:pytest_distproc_aggregate]
def pytest_distproc_aggregate(config: pytest.Config, scenario: Any, summaries: list[Mapping[str, Any]]) -> Any:
    # Merge as usual, and keep the largest region median (a median does not merge exactly).
    if scenario.skill != "median-stats":
        return None  # the plugin's own merge
    total = summary.merge(summaries)
    total["median"] = max(float(s["median"]) for s in summaries)
    return total
# --8<-- [end:pytest_distproc_aggregate]


# --8<-- [start:pytest_distproc_run_finished]
def pytest_distproc_run_finished(config: pytest.Config, run: Any) -> None:
    # Before the expectations are checked: keep every run's transcript, passed or failed.
    folder = Path(__file__).parent / "transcripts"
    folder.mkdir(exist_ok=True)
    (folder / f"{run.scenario.name}.txt").write_text(run.transcript, encoding="utf-8")
# --8<-- [end:pytest_distproc_run_finished]


# --8<-- [start:pytest_distproc_check]
def pytest_distproc_check(config: pytest.Config, run: Any) -> list[str]:
    # A house rule for every scenario: no attempt may take longer than two seconds.
    return [f"house rule: {a.task} attempt {a.attempt} took {a.duration:.1f} s (limit 2 s)"
            for a in run.attempts if a.duration > 2.0]
# --8<-- [end:pytest_distproc_check]
