"""An order rule whose side never happened was never put to the test: a mismatch naming the rule and the
missing entry, unless the rule opts in to vacuous truth with ``{rule: ..., vacuous: true}``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_distproc.checks.expectations import check, check_order
from pytest_distproc.errors import ScenarioError
from pytest_distproc.run.coordinator import Coordinator
from pytest_distproc.run.model import Run
from pytest_distproc.scenario.loader import load_one

BASE = """\
seed: 1
context: inline
regions: {A: {records: 5}, B: {records: 5}}
policy: {retries: 1}
"""


def run_of(tmp_path: Path, order: str, faults: str = "") -> Run:
    text = BASE + (f"faults: [{faults}]\n" if faults else "") + f"expect:\n  order:\n    - {order}\n"
    return Coordinator(load_one(text, tmp_path / "s.yaml")).run()


def test_a_rule_whose_right_side_never_happened_is_a_mismatch(tmp_path: Path) -> None:
    run = run_of(tmp_path, "'process-region-a:COMPLETE < process-region-b:FAILED'")
    assert run.outcome == "COMPLETE"
    assert check(run) == ["order 'process-region-a:COMPLETE < process-region-b:FAILED': process-region-b never "
                          "entered FAILED, so the rule was never put to the test (it would hold only vacuously); "
                          "if that may happen, write {rule: 'process-region-a:COMPLETE < process-region-b:FAILED', "
                          "vacuous: true}"]


def test_a_rule_neither_side_of_which_happened_names_both(tmp_path: Path) -> None:
    [problem] = check_order(run_of(tmp_path, "'process-region-a:FAILED < process-region-b:FAILED'"),
                            "process-region-a:FAILED < process-region-b:FAILED")
    assert "process-region-b never entered FAILED" in problem and "nor did process-region-a enter FAILED" in problem


def test_a_rule_that_held_for_real_passes(tmp_path: Path) -> None:
    run = run_of(tmp_path, "'process-region-b:FAILED < aggregate-results:IN_PROGRESS'",
                 "{region: B, kind: raise, attempts: [1]}")
    assert check(run) == []


def test_vacuous_truth_is_an_explicit_opt_in(tmp_path: Path) -> None:
    rule = "{rule: 'process-region-a:COMPLETE < process-region-b:FAILED', vacuous: true}"
    assert check(run_of(tmp_path, rule)) == []
    # the opt-in excuses only a side that never happened, never a wrong order
    late = "{rule: 'aggregate-results:COMPLETE < process-region-b:FAILED', vacuous: true}"
    [problem] = check(run_of(tmp_path, late, "{region: B, kind: raise, attempts: [1]}"))
    assert "aggregate-results entered COMPLETE at #" in problem and "after process-region-b entered FAILED" in problem


@pytest.mark.parametrize(("order", "at", "words"), [
    ("{rule: 'process-region-a:COMPLETE < process-region-b:FAILED', vacuous: yes}", "$.expect.order[0].vacuous",
     "true or false"),
    ("{rule: 'process-region-a:COMPLETE < process-region-b:FAILED', vacous: true}", "$.expect.order[0].vacous",
     "did you mean 'vacuous'?"),
    ("{vacuous: true}", "$.expect.order[0]", "missing required key 'rule'"),
])
def test_a_bad_opt_in_is_a_located_problem(tmp_path: Path, order: str, at: str, words: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_one(BASE + f"expect:\n  order:\n    - {order}\n", tmp_path / "s.yaml")
    [problem] = caught.value.problems
    assert (problem.line, problem.path) == (7, at) and words in problem.message, str(problem)
