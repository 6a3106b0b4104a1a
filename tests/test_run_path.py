"""One path runs a scenario: items, the ``distproc`` fixture and the adapter get the same tasks, hooks and checks;
the names plugins register belong to their config and folder, never to the process."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from pytest_distproc.attempt import faults
from pytest_distproc.attempt.faults import FaultKind
from pytest_distproc.scenario.extensions import Extensions
from pytest_distproc.scenario.loader import load_text
from tests.helpers import Sandbox

ROOT = Path(__file__).resolve().parents[1]


def test_a_user_coordinator_runs_the_scenarios_task_graph(sandbox: Sandbox) -> None:
    shutil.copytree(ROOT / "scenarios", sandbox.pytester.path / "scenarios")
    result = sandbox.run("--distproc-scenarios", "scenarios/task-graph.yaml", "scenarios/skill-dir.yaml",
                         "--distproc-coordinator", "scenarios/adapters/careful.py:CarefulCoordinator", "-rA")
    out = result.stdout.str()
    assert "no task" not in out
    result.assert_outcomes(passed=3)  # two documents of task-graph.yaml, one of skill-dir.yaml
    # the continents aggregated from the user's coordinator, while region C still ran
    assert "europe: BLOCKED -> IN_PROGRESS -> COMPLETE" in out
    # the adapter's attempts run in a folder of their own, never in the user's working directory
    assert not list(sandbox.pytester.path.glob("*.jsonl")), "an attempt wrote into the user's working directory"
    sandbox.assert_clean()


def test_the_fixture_runs_and_checks_as_an_item_does(sandbox: Sandbox) -> None:
    sandbox.pytester.makeconftest(
        """
        SEEN = []

        def pytest_distproc_transition(config, scenario, transition):
            SEEN.append(("transition", transition.task, transition.to_state.value))

        def pytest_distproc_aggregate(config, scenario, summaries):
            SEEN.append(("aggregate", len(summaries)))
            return None

        def pytest_distproc_run_finished(config, run):
            SEEN.append(("finished", run.outcome))

        def pytest_distproc_check(config, run):
            return ["a check of this conftest"]
        """
    )
    sandbox.pytester.makepyfile(
        test_fixture="""
        import conftest

        def test_it(distproc, tmp_path):
            run = distproc.run({"name": "two", "regions": {"A": {"records": 5}, "B": {"records": 5}}})
            assert run.outcome == "COMPLETE"
            assert ("transition", "aggregate-results", "COMPLETE") in conftest.SEEN
            assert ("aggregate", 2) in conftest.SEEN
            assert ("finished", "COMPLETE") in conftest.SEEN
            assert distproc.check(run) == ["a check of this conftest"]
        """
    )
    journal = sandbox.pytester.path / "journal"
    result = sandbox.run("-p", "no:randomly", "--distproc-journal", str(journal))
    result.assert_outcomes(passed=1)
    assert [p.name for p in journal.iterdir()] == ["test_fixture.py_test_it-1.sqlite"]
    sandbox.assert_clean()


def test_a_conftests_names_stay_in_its_folder(sandbox: Sandbox) -> None:
    here = sandbox.pytester.path
    (here / "scenarios" / "a").mkdir(parents=True)
    (here / "scenarios" / "b").mkdir(parents=True)
    (here / "scenarios" / "a" / "conftest.py").write_text(textwrap.dedent(
        """
        from pytest_distproc.attempt.faults import FaultKind

        def wobble(fault, state):
            state["records"] = state["records"][:1]

        def pytest_distproc_fault_kinds(config):
            return [FaultKind("wobble", "before", wobble, lethal=False)]

        def pytest_distproc_register_skills(config):
            return {"tripled": lambda records, context: __import__(
                "pytest_distproc.attempt.stats", fromlist=["x"]).summarize([3 * r["value"] for r in records])}
        """
    ))
    scenario = textwrap.dedent(
        """
        name: {name}
        regions: {{A: {{records: 4}}}}
        skill: tripled
        faults: [{{region: A, kind: wobble}}]
        policy: {{on_region_failure: partial}}
        expect: {{outcome: FAILED}}
        """
    )
    (here / "scenarios" / "a" / "one.yaml").write_text(scenario.format(name="one"))
    (here / "scenarios" / "b" / "two.yaml").write_text(scenario.format(name="two"))
    result = sandbox.run("--distproc-scenarios", "-rA")
    out = result.stdout.str()
    result.assert_outcomes(passed=1, failed=1)  # a's scenario ran with a's names; b's was refused at load
    assert "PASSED scenarios/a/one.yaml::one" in out
    assert "two.yaml:4: $.skill: unknown skill 'tripled'" in out
    assert "two.yaml:5: $.faults[0].kind: expected one of raise, crash, signal, hang, delay, corrupt, drop, oom, " \
           "got 'wobble'" in out
    sandbox.assert_clean()


def test_a_run_installs_its_fault_kinds_only_while_it_runs() -> None:
    kind = FaultKind("wobble", "before", lambda fault, state: None, lethal=False)
    extensions = Extensions().adding(fault_kinds=[kind])
    assert "wobble" not in Extensions().fault_kinds
    with faults.installing(extensions.fault_kinds):
        assert faults.installed()["wobble"] is kind
    assert faults.installed() is faults.BUILTIN


def test_the_loader_knows_only_the_names_it_is_given() -> None:
    text = "regions: {A: {records: 1}}\nfaults: [{region: A, kind: wobble}]\nexpect: {shape: round}\n"
    [plain] = load_text(text, "s.yaml")
    assert plain.error is not None
    assert {p.path for p in plain.error.problems} == {"$.faults[0].kind", "$.expect.shape"}
    extended = Extensions().adding(
        fault_kinds=[FaultKind("wobble", "before", lambda fault, state: None, lethal=False)],
        expectation_kinds=[("shape", lambda run, value: [])],
    )
    [known] = load_text(text, "s.yaml", extended)
    assert known.error is None and known.scenario is not None
    assert dict(known.scenario.expect.extra) == {"shape": "round"}


@pytest.mark.parametrize("phase", ["during", "later"])
def test_a_plugin_kind_is_checked_when_registered(phase: str) -> None:
    with pytest.raises(ValueError, match="phase must be 'before' or 'after'"):
        Extensions().adding(fault_kinds=[FaultKind("odd", phase, lambda fault, state: None, lethal=False)])
