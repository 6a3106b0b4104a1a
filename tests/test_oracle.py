"""The oracle: each region's reference is derived from a clean attempt, computed again only when no clean
attempt delivered one, and every reported summary is checked against its own region's reference."""

from __future__ import annotations

from pytest_distproc.attempt import data
from pytest_distproc.attempt import stats as summary
from pytest_distproc.checks import expectations
from pytest_distproc.run.coordinator import Coordinator
from pytest_distproc.scenario.loader import load_one

TWO = """
seed: 7
regions: {A: {records: 200}, B: {records: 200}}
faults: [{region: B, kind: delay, seconds: 0.01}]
"""


def test_a_clean_attempts_result_is_the_reference_and_a_faulted_one_is_computed_again() -> None:
    run = Coordinator(load_one(TWO, "/tmp/two.yaml")).run()
    assert run.outcome == "COMPLETE"
    assert run.oracle["A"][0] is run.regions["A"]  # derived: A's work was not done a second time
    assert run.oracle["B"][0] is not run.regions["B"]  # B's only attempt carried a fault: computed again
    values = data.source_values(data.source_of(run.scenario.regions[1], run.seed))
    assert run.oracle["B"] == [summary.summarize(values)]
    assert expectations.check_invariants(run) == []


def test_swapped_summaries_are_mismatches_naming_both_regions_and_the_total_still_agrees() -> None:
    run = Coordinator(load_one(TWO, "/tmp/two.yaml")).run()
    run.regions["A"], run.regions["B"] = run.regions["B"], run.regions["A"]  # what a coordinator bug could record
    problems = expectations.check_invariants(run)
    assert [p.split(":")[0] for p in problems] == ["region A", "region B"], problems
    assert problems[0].endswith("; it is region B's") and problems[1].endswith("; it is region A's")


def test_a_skill_that_cannot_give_a_reference_is_a_worded_mismatch() -> None:
    run = Coordinator(load_one(TWO, "/tmp/two.yaml")).run()
    run.oracle_errors["B"] = "RuntimeError: no network in the coordinator"
    problems = expectations.check_region_summaries(run)
    assert problems == ["region B: what its data gives under skill 'region-stats' could not be computed to check "
                        "its summary: RuntimeError: no network in the coordinator"]


def test_a_custom_skill_is_run_again_in_an_isolated_attempt_never_in_this_process() -> None:
    from tests import skills

    before = list(skills.CALLS)
    text = TWO.replace("seed: 7", "seed: 7\nskill: tests.skills:environment_probe")
    run = Coordinator(load_one(text, "/tmp/two.yaml")).run()
    assert run.outcome == "COMPLETE" and skills.CALLS == before
    values = data.source_values(data.source_of(run.scenario.regions[1], run.seed))
    assert {k: run.oracle["B"][0][k] for k in summary.FIELDS} == summary.summarize(values)
    assert run.oracle["B"][0]["own_tmp"] == 1  # in a workdir of its own, as any attempt
    assert expectations.check_invariants(run) == []


def test_a_custom_skill_that_hangs_when_run_again_is_killed_at_the_timeout_and_worded() -> None:
    text = TWO.replace("seed: 7", "seed: 7\nskill: tests.skills:hangs_when_checked\npolicy: {timeout: 1s}")
    run = Coordinator(load_one(text, "/tmp/two.yaml")).run()
    assert run.oracle_errors == {"B": "a fault-free attempt timed out without a valid result"}
    assert expectations.check_region_summaries(run) == [
        "region B: what its data gives under skill 'tests.skills:hangs_when_checked' could not be computed to "
        "check its summary: a fault-free attempt timed out without a valid result"]
