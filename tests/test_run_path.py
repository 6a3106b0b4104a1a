"""One path runs a scenario: items, the ``distproc`` fixture and the adapter get the same tasks, hooks and checks;
the names plugins register belong to their config and folder, never to the process."""

from __future__ import annotations

import re
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
    [name] = [p.name for p in journal.iterdir()]
    assert re.fullmatch(r"test_fixture\.py_test_it-1-[0-9a-f]{8}\.sqlite", name), name  # the item id's digest
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
           "node-loss, node-stall, worker-restart, got 'wobble'" in out
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


def test_exploration_uses_the_folders_skills_and_fault_kinds(sandbox: Sandbox) -> None:
    sandbox.pytester.makeconftest(
        """
        from pytest_distproc.attempt import stats
        from pytest_distproc.attempt.faults import FaultKind

        def boom(fault, state):
            raise RuntimeError("boom")

        def pytest_distproc_fault_kinds(config):
            return [FaultKind("boom", "before", boom, lethal=False)]

        def pytest_distproc_register_skills(config):
            return {"my-skill": lambda records, context: stats.summarize([r["value"] for r in records])}
        """
    )
    sandbox.scenario("skill", "name: skill\nskill: my-skill\nregions: {A: {records: 3}, B: {records: 3}}\n"
                              "explore: {examples: 5, faults: [raise]}\n")
    sandbox.scenario("kind", "name: kind\nregions: {A: {records: 3}, B: {records: 3}}\npolicy: {retries: 1}\n"
                             "faults: [{region: A, kind: boom, attempts: [1]}]\n"
                             "explore: {examples: 5, faults: [raise]}\n")
    result = sandbox.run("--distproc-scenarios")
    result.assert_outcomes(passed=2)
    sandbox.assert_clean()


def test_a_raising_run_finished_hook_keeps_the_transcript_and_the_report(sandbox: Sandbox) -> None:
    sandbox.pytester.makeconftest(
        """
        def pytest_distproc_run_finished(config, run):
            raise RuntimeError("archiving failed")
        """
    )
    sandbox.scenario("s", "name: s\nregions: {A: {records: 3}}\n")
    report = sandbox.pytester.path / "rep"
    result = sandbox.run("--distproc-scenarios", "--distproc-report", str(report), "-rA")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "archiving failed" in out and "Distributed Processing: COORDINATING" in out
    assert len([p for p in report.iterdir() if p.is_dir()]) == 1  # the scenario's own folder was written
    sandbox.assert_clean()


def test_a_user_coordinators_children_keep_their_working_directory(sandbox: Sandbox) -> None:
    sandbox.pyfile(
        "relative", """
        import json, os

        class Relative:
            def run(self, harness):
                results = {}
                for region in harness.regions:
                    harness.record(f"process-region-{region.lower()}", "IN_PROGRESS")
                    pid = os.fork()
                    if pid == 0:
                        value = harness.process(region, 1)
                        with open(f"out-{region}.json", "w") as handle:  # relative to the child's cwd
                            json.dump(value, handle)
                        os._exit(0)
                    os.waitpid(pid, 0)
                    with open(f"out-{region}.json") as handle:
                        results[region] = json.load(handle)
                    harness.record(f"process-region-{region.lower()}", "COMPLETE")
                harness.record("aggregate-results", "IN_PROGRESS")
                harness.record("aggregate-results", "COMPLETE")
                from pytest_distproc.attempt import stats
                harness.result(regions=results, total=stats.merge(results.values()))
        """
    )
    sandbox.scenario("one", "name: one\ncoordinator: relative.py:Relative\nregions: {A: {records: 3}}\n")
    result = sandbox.run("--distproc-scenarios")
    result.assert_outcomes(passed=1)
    assert (sandbox.pytester.path / "out-A.json").is_file()
    sandbox.assert_clean()


def test_the_fixtures_explicit_backend_wins_over_a_session_coordinator(sandbox: Sandbox) -> None:
    shutil.copy(ROOT / "scenarios" / "adapters" / "careful.py", sandbox.pytester.path / "careful.py")
    sandbox.pytester.makepyfile(
        test_fixture="""
        def test_it(distproc):
            assert distproc.run({"name": "a", "regions": {"A": {"records": 3}}}, backend="inline").backend == "inline"
            assert distproc.run({"name": "b", "regions": {"A": {"records": 3}}}).backend == "adapter"
        """
    )
    result = sandbox.run("--distproc-coordinator", "careful.py:CarefulCoordinator")
    result.assert_outcomes(passed=1)
    sandbox.assert_clean()


def test_a_rewritten_data_file_is_read_again_even_with_its_size_and_mtime_kept(tmp_path: Path) -> None:
    import os

    from pytest_distproc.attempt import data

    path = tmp_path / "a.jsonl"
    path.write_text('{"value": 1}\n{"value": 2}\n')
    stat = path.stat()
    assert data.file_values(path) == (1.0, 2.0)
    path.write_text('{"value": 7}\n{"value": 8}\n')  # same size
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as cp -p or rsync -a leave it
    assert data.file_values(path) == (7.0, 8.0)


def test_runs_that_end_out_of_order_take_back_their_own_fault_kinds() -> None:
    first = FaultKind("first", "before", lambda fault, state: None, lethal=False)
    second = FaultKind("second", "before", lambda fault, state: None, lethal=False)
    a = faults.installing({**faults.BUILTIN, "first": first})
    b = faults.installing({**faults.BUILTIN, "second": second})
    a.__enter__()
    b.__enter__()
    assert {"first", "second"} <= set(faults.installed())  # both runs are in progress
    a.__exit__(None, None, None)
    assert "second" in faults.installed() and "first" not in faults.installed()
    b.__exit__(None, None, None)
    assert faults.installed() is faults.BUILTIN


def test_a_registered_skill_name_is_not_taken_for_a_folder_of_the_same_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_distproc.backends import forkserver
    from tests import skills

    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "SKILL.md").write_text("---\nname: probe\n---\n")
    monkeypatch.chdir(tmp_path)
    assert forkserver.portable("probe", skills.parent_probe, [{}]) == "tests.skills:parent_probe"


def test_a_coordinator_file_is_held_inside_the_scenarios_folder(tmp_path: Path) -> None:
    text = "regions: {A: {records: 1}}\ncoordinator: ../mine.py:make\n"
    [outside] = load_text(text, tmp_path / "s.yaml")
    assert outside.error is not None
    [problem] = outside.error.problems
    assert (problem.line, problem.path) == (2, "$.coordinator") and "outside the scenario's folder" in problem.message
    for fine in ("adapters/mine.py:make", "package.module:make"):
        [loaded] = load_text(f"regions: {{A: {{records: 1}}}}\ncoordinator: {fine}\n", tmp_path / "s.yaml")
        assert loaded.error is None and loaded.scenario is not None and loaded.scenario.coordinator == fine
