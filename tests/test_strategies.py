"""The public strategies: valid scenarios, coherent plans, and a prediction every correct run meets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_distproc.explore import strategies as dps
from pytest_distproc.explore.search import predict, run_plan, scenario_yaml
from pytest_distproc.scenario.loader import load_one
from pytest_distproc.scenario.model import FaultSpec, RegionSpec, Scenario

FAST = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(dps.scenario_dicts())
def test_scenario_dicts_are_yaml_the_loader_accepts(body: dict[str, object]) -> None:
    scenario = load_one(yaml.safe_dump(body, sort_keys=False), "generated.yaml")
    assert [r.id for r in scenario.regions] == list(body["regions"])  # type: ignore[call-overload]


@FAST
@given(dps.scenarios(max_regions=3))
def test_every_generated_scenario_runs_as_predicted_and_keeps_the_invariants(scenario: Scenario) -> None:
    outcome = run_plan(scenario, ())
    assert outcome.mismatches == []
    assert outcome.run is not None and outcome.run.outcome == predict(scenario).outcome


@FAST
@given(dps.scenarios(max_regions=3))
def test_a_scenario_written_back_as_yaml_loads_to_the_same_scenario(scenario: Scenario) -> None:
    again = load_one(scenario_yaml(scenario), "generated.yaml")
    def regions(s: Scenario) -> list[RegionSpec]:
        return [dataclasses.replace(r, line=None) for r in s.regions]

    assert regions(again) == regions(scenario) and again.policy == scenario.policy
    assert [(f.region, f.kind, f.attempts) for f in again.faults] == [
        (f.region, f.kind, f.attempts) for f in scenario.faults]


BASE = load_one("""
seed: 3
regions: {A: {records: 5}, B: {records: 0}, C: {records: 5}}
policy: {timeout: 1s, retries: 2, on_region_failure: partial}
faults: [{region: C, kind: delay, seconds: 0.1}]
""", Path("base.yaml"))


@FAST
@given(dps.fault_plans(BASE, max_faults=5))
def test_fault_plans_are_coherent(plan: tuple[FaultSpec, ...]) -> None:
    assert len(plan) <= 5
    assert all(f.region != "C" for f in plan)  # C has faults of its own
    for region in ("A", "B"):
        chain = [f for f in plan if f.region == region]
        assert len(chain) <= 3
        assert [f.attempts for f in chain] in ([None], [(i + 1,) for i in range(len(chain))])
        count = 5 if region == "A" else 0
        assert all(dps.fails(f, count, 1.0) for f in chain[:-1])


@FAST
@given(st.data())
def test_region_strategies_build_what_the_format_allows(data: st.DataObject) -> None:
    regions = data.draw(dps.regions(max_size=3, max_records=5))
    assert 1 <= len(regions) <= 3
    for source in regions.values():
        assert list(source) in (["records"], ["inline"])
    policy = data.draw(dps.policies(max_retries=1))
    assert policy["retries"] in (0, 1) and policy["on_region_failure"] in ("fail", "partial")


def test_bad_arguments_say_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="kinds must be a non-empty list of raise, crash"):
        dps.fault_plans(BASE, kinds=["explode"])
    with pytest.raises(ValueError, match="max_faults must be >= 0"):
        dps.fault_plans(BASE, max_faults=-1)
    with pytest.raises(ValueError, match="min_size <= max_size"):
        dps.region_ids(min_size=3, max_size=2)
