"""End to end: YAML scenarios collected and run as pytest items, in a pytest subprocess."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.helpers import Sandbox

ROOT = Path(__file__).resolve().parents[1]

SEED = """\
name: seed-three-regions
seed: 42
regions:
  A: {records: 1000}
  B: {records: 1000}
  C: {records: 1000}
expect:
  outcome: COMPLETE
  transitions:
    aggregate-results: [BLOCKED, IN_PROGRESS, COMPLETE]
  order: ["process-region-*:COMPLETE < aggregate-results:IN_PROGRESS"]
  concurrent: ["process-region-*"]
  aggregate: {total: {records: 3000}}
"""


def test_scenarios_are_items_with_stable_ids(sandbox: Sandbox) -> None:
    sandbox.scenario("seed", SEED)
    result = sandbox.run("--distproc-scenarios", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["scenarios/seed.yaml::seed-three-regions"])
    assert result.ret == 0


def test_yaml_is_not_collected_without_the_flag(sandbox: Sandbox) -> None:
    sandbox.scenario("seed", SEED)
    result = sandbox.run("scenarios")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_seed_scenario_passes_and_prints_the_transcript_with_v(sandbox: Sandbox) -> None:
    sandbox.scenario("seed", SEED)
    result = sandbox.run("--distproc-scenarios", "-v", "--distproc-seed=7")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "distproc: seed 7 for scenarios without one (rerun with --distproc-seed=7)*",
            "Distributed Processing: COORDINATING",
            "[[]t1[]] process-region-a: IN_PROGRESS -> COMPLETE",
            "[[]t2[]] process-region-b: IN_PROGRESS -> COMPLETE",
            "[[]t3[]] process-region-c: IN_PROGRESS -> COMPLETE",
            "[[]t4[]] aggregate-results: BLOCKED -> IN_PROGRESS -> COMPLETE",
            "",
            "=== AGGREGATED RESULTS ===",
            "Region A: 1000 records, sum=*, mean=*, min=*, max=*",
            "Region B: 1000 records, *",
            "Region C: 1000 records, *",
            "",
            "Total: 3000 records, sum=*, mean=*, min=*, max=*",
        ]
    )
    sandbox.assert_clean()


def test_transcript_also_shown_with_rA(sandbox: Sandbox) -> None:
    sandbox.scenario("seed", SEED)
    result = sandbox.run("--distproc-scenarios", "-rA")
    result.stdout.fnmatch_lines(["*distproc transcript*", "Distributed Processing: COORDINATING"])


def test_failed_expectations_are_all_reported_with_transcript_and_timeline(sandbox: Sandbox) -> None:
    sandbox.scenario(
        "wrong",
        """\
        name: wrong-expectations
        seed: 1
        regions: {A: {records: 10}, B: {records: 10}}
        expect:
          outcome: FAILED
          attempts: {process-region-a: 2}
          aggregate: {total: {records: 21}}
        """,
    )
    result = sandbox.run("--distproc-scenarios")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*scenario 'wrong-expectations' failed: outcome: expected FAILED, got COMPLETE",
            "*all 3 mismatches:",
            "*- scenarios/wrong.yaml:5: outcome: expected FAILED, got COMPLETE",
            "*- scenarios/wrong.yaml:6: attempts of process-region-a: expected 2, got 1",
            "*- scenarios/wrong.yaml:7: aggregate total: expected records=21, got 20 (counts compare exactly)",
            "*timeline:",
            "*process-region-a *|*| COMPLETE (1 attempt)",
            "*transcript:",
            "*Distributed Processing: COORDINATING",
            "*transitions:",
            "*process-region-a: [[]PENDING, IN_PROGRESS, COMPLETE[]]",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert "pytest_distproc/" not in result.stdout.str()


def test_a_bad_scenario_fails_only_its_own_item(sandbox: Sandbox) -> None:
    sandbox.scenario("good", SEED)
    sandbox.scenario(
        "multi",
        """\
        name: fine
        regions: {A: {records: 5}}
        ---
        name: broken
        regions: {A: {records: 5}}
        faults: [{region: Z, kind: explode}]
        """,
    )
    sandbox.scenario("syntax", "name: x\nregions: {A: [\n")
    result = sandbox.run("--distproc-scenarios", "-rf")
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert "scenarios/multi.yaml:6: $.faults[0].region: unknown region 'Z'; regions of this scenario: A" in out
    assert "$.faults[0].kind: expected one of raise, crash, signal" in out
    assert "scenarios/syntax.yaml:3: $: YAML syntax error" in out
    assert "Traceback" not in out


def test_k_selection_lf_and_junitxml(sandbox: Sandbox) -> None:
    sandbox.scenario("seed", SEED)
    sandbox.scenario("other", "name: other\nregions: {A: {records: 3}}\nexpect: {outcome: FAILED}\n")
    result = sandbox.pytester.runpytest_subprocess("--distproc-scenarios", "-k", "seed", timeout=120)
    result.assert_outcomes(passed=1, deselected=1)
    first = sandbox.pytester.runpytest_subprocess("--distproc-scenarios", timeout=120)
    first.assert_outcomes(passed=1, failed=1)
    again = sandbox.pytester.runpytest_subprocess("--distproc-scenarios", "--lf", timeout=120)
    again.assert_outcomes(failed=1)
    xml = sandbox.pytester.path / "out.xml"
    sandbox.run("--distproc-scenarios", f"--junitxml={xml}")
    text = xml.read_text()
    assert "distproc.outcome" not in text  # per-testcase properties are opt-in (tests/test_outputs.py)
    assert 'classname="scenarios.seed.yaml"' in text or "seed-three-regions" in text


def test_runs_under_xdist_with_the_same_seed(sandbox: Sandbox) -> None:
    for index in range(4):
        sandbox.scenario(f"s{index}", SEED.replace("seed-three-regions", f"s{index}").replace("seed: 42\n", ""))
    result = sandbox.run("--distproc-scenarios", "-n", "2", "--distproc-seed=99", "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*seed 99*"])
    sandbox.assert_clean()


def test_missing_default_folder_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--distproc-scenarios")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--distproc-scenarios: no scenario folder at *scenarios*"])


def test_shipped_scenarios_pass(sandbox: Sandbox) -> None:
    shutil.copytree(ROOT / "scenarios", sandbox.pytester.path / "scenarios")
    result = sandbox.run("--distproc-scenarios", "-q", timeout=300)
    assert result.ret == 0, result.stdout.str()
    sandbox.assert_clean()


def test_user_skill_from_module(sandbox: Sandbox) -> None:
    sandbox.pytester.makepyfile(
        myskills="""
        import os

        def doubled(records, context):
            values = [2 * r["value"] for r in records]
            n = len(values)
            mean = sum(values) / n
            return {"count": n, "sum": sum(values), "min": min(values), "max": max(values),
                    "mean": mean, "variance": sum((v - mean) ** 2 for v in values) / n,
                    }
        """
    )
    sandbox.scenario(
        "mine",
        """\
        name: mine
        skill: myskills:doubled
        regions: {A: {inline: [{value: 1}, {value: 2}]}, B: {inline: [{value: 3}]}}
        expect: {outcome: COMPLETE, aggregate: {total: {records: 3, sum: 12}}}
        """,
    )
    result = sandbox.run("--distproc-scenarios", "-p", "no:randomly", f"--rootdir={sandbox.pytester.path}",
                         "-o", "pythonpath=.")
    result.assert_outcomes(passed=1)


def test_version_is_python_supported() -> None:
    assert sys.version_info >= (3, 10)


def test_x_stops_at_the_first_failing_scenario_and_leaves_nothing_behind(sandbox: Sandbox) -> None:
    sandbox.scenario("a_fails", "name: a-fails\nregions: {A: {records: 3}}\nexpect: {outcome: FAILED}\n")
    sandbox.scenario("b_hangs", "name: b-hangs\nregions: {A: {records: 3}}\npolicy: {timeout: 0.5s}\n"
                     "faults: [{region: A, kind: hang}]\nexpect: {outcome: FAILED}\n")
    result = sandbox.run("--distproc-scenarios", "-x")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*stopping after 1 failures*"])
    sandbox.assert_clean()
