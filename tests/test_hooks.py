"""Every hook is called with its documented arguments by a conftest that implements it; the fixture works."""

from __future__ import annotations

import json

from tests.helpers import Sandbox

CONFTEST = '''
import json
from pathlib import Path

import pytest

from pytest_distproc.attempt import stats as summary
from pytest_distproc.backends.fork import ForkBackend
from pytest_distproc.attempt.faults import FaultKind

LOG = Path(__file__).parent / "hooks.jsonl"


def log(**fields):
    with LOG.open("a") as handle:
        handle.write(json.dumps(fields) + "\\n")


def pytest_distproc_make_backend(config, scenario, name, run_dir):
    log(hook="make_backend", scenario=scenario.name, name=name, run_dir_is_dir=Path(run_dir).is_dir())
    return ForkBackend(run_dir)


def negate(records, context):
    return summary.summarize([-r["value"] for r in records])


def pytest_distproc_register_skills(config):
    log(hook="register_skills")
    return {"negate": negate}


def _bitflip(fault, state):
    state["records"] = [{"value": r["value"] + 1000} for r in state["records"]]


def pytest_distproc_fault_kinds(config):
    log(hook="fault_kinds")
    return [FaultKind("bitflip", "before", _bitflip, lethal=False)]


def _max_below(run, limit):
    return [] if run.total["max"] < limit else [f"max {run.total['max']} is not below {limit}"]


def pytest_distproc_expectation_kinds(config):
    log(hook="expectation_kinds")
    return {"max_below": _max_below}


def pytest_distproc_transition(config, scenario, transition):
    log(hook="transition", scenario=scenario.name, seq=transition.seq, task=transition.task,
        to=transition.to_state.value)


def pytest_distproc_aggregate(config, scenario, summaries):
    log(hook="aggregate", scenario=scenario.name, counts=[s["count"] for s in summaries])
    return None  # fall through to the plugin's own merge


def pytest_distproc_run_finished(config, run):
    log(hook="run_finished", scenario=run.scenario.name, outcome=run.outcome)


def pytest_distproc_check(config, run):
    log(hook="check", scenario=run.scenario.name)
    return ["custom check says no"] if run.scenario.name == "vetoed" else []
'''


def read_log(sandbox: Sandbox) -> list[dict[str, object]]:
    path = sandbox.pytester.path / "hooks.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_hook_is_called_with_documented_arguments(sandbox: Sandbox) -> None:
    sandbox.pytester.makeconftest(CONFTEST)
    sandbox.scenario(
        "hooked",
        """\
        name: hooked
        seed: 1
        skill: negate
        regions: {A: {records: 20}, B: {records: 10}}
        policy: {retries: 1}
        faults: [{region: B, kind: bitflip}]
        expect:
          outcome: COMPLETE
          max_below: 1001
        ---
        name: vetoed
        regions: {A: {records: 5}}
        """,
    )
    result = sandbox.run("--distproc-scenarios", "-p", "no:randomly")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*custom check says no*"])
    # the plugin's fault changed B's records: the oracle runs the plugin's skill on B's own data and sees it
    result.stdout.fnmatch_lines(["*region B: its summary is not what its own data gives under skill 'negate' "
                                 "without faults, in sum, min, max, mean: sum=-10509.351*vs sum=-509.351*"])
    entries = read_log(sandbox)
    hooks = {e["hook"] for e in entries}
    assert hooks == {"register_skills", "fault_kinds", "expectation_kinds", "make_backend", "transition",
                     "aggregate", "run_finished", "check"}
    make = [e for e in entries if e["hook"] == "make_backend"]
    assert make[0] == {"hook": "make_backend", "scenario": "hooked", "name": "fork", "run_dir_is_dir": True}
    transitions = [e for e in entries if e["hook"] == "transition" and e["scenario"] == "hooked"]
    assert [t["seq"] for t in transitions] == sorted(t["seq"] for t in transitions)
    assert ("aggregate-results", "COMPLETE") == (transitions[-1]["task"], transitions[-1]["to"])
    aggregate = next(e for e in entries if e["hook"] == "aggregate" and e["scenario"] == "hooked")
    assert sorted(aggregate["counts"]) == [10, 20]


def test_registered_fault_kind_fires_and_custom_expectation_can_fail(sandbox: Sandbox) -> None:
    sandbox.pytester.makeconftest(CONFTEST)
    sandbox.scenario(
        "flip",
        """\
        name: flip
        seed: 1
        regions: {A: {records: 20}}
        faults: [{region: A, kind: bitflip}]
        expect: {max_below: 1000}
        """,
    )
    result = sandbox.run("--distproc-scenarios", "-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*max_below: max 10* is not below 1000*"])


def test_a_plugin_fault_kind_runs_when_nothing_imported_the_backends_early(sandbox: Sandbox) -> None:
    # Only the hook: the fork backend (and the fork server client) are first imported by the run,
    # after the kind was registered; the server's own interpreter never saw the hook.
    sandbox.pytester.makeconftest(
        """
        from pytest_distproc.attempt.faults import FaultKind

        def _bitflip(fault, state):
            state["records"] = [{"value": r["value"] + 1000} for r in state["records"]]

        def pytest_distproc_fault_kinds(config):
            return [FaultKind("bitflip", "before", _bitflip, lethal=False)]
        """
    )
    sandbox.scenario("flip", "seed: 1\nregions: {A: {records: 20}}\nfaults: [{region: A, kind: bitflip}]\n")
    result = sandbox.run("--distproc-scenarios")
    result.assert_outcomes(failed=1)  # the flipped records are caught by the aggregate invariant: it ran
    result.stdout.fnmatch_lines(["*merged total differs from the summary over all records*min=1024.973*"])
    assert "KeyError" not in result.stdout.str()
    sandbox.assert_clean()


def test_unknown_fault_kind_without_the_hook_is_a_load_error(sandbox: Sandbox) -> None:
    sandbox.scenario("flip", "regions: {A: {records: 2}}\nfaults: [{region: A, kind: bitflip}]\n")
    result = sandbox.run("--distproc-scenarios")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*scenarios/flip.yaml:2: $.faults[[]0[]].kind: *bitflip*"])


def test_distproc_fixture_runs_dicts_and_yaml(sandbox: Sandbox) -> None:
    sandbox.pytester.makepyfile(
        test_mine="""
        import pytest
        from pytest_distproc import ScenarioError

        def test_dict(distproc):
            run = distproc.run({"seed": 3, "regions": {"A": {"records": 10}, "B": {"records": 5}},
                                "policy": {"retries": 1},
                                "faults": [{"region": "A", "kind": "crash", "exit_code": 4}]})
            assert [s.value for s in run.tasks.sequence("process-region-a")] == [
                "PENDING", "IN_PROGRESS", "FAILED", "IN_PROGRESS", "COMPLETE"]
            assert run.total["count"] == 15
            assert "crashed with exit code 4" in run.transcript
            assert distproc.check(run) == []

        def test_yaml(distproc):
            run = distproc.run("regions: {A: {inline: [{value: 2}, {value: 4}]}}")
            assert run.regions["A"]["mean"] == 3

        def test_bad(distproc):
            with pytest.raises(ScenarioError, match="regions"):
                distproc.load({"regionz": {}})

        def test_strings_stay_strings(distproc):  # YAML 1.2 reads a plain 1e3 as 1000.0
            s = distproc.load({"regions": {"A": {"records": 1}}, "description": "1e3",
                               "faults": [{"region": "A", "kind": "raise", "message": "0o10"}]})
            assert (s.description, s.faults[0].message) == ("1e3", "0o10")
        """
    )
    result = sandbox.run("-p", "no:randomly")
    result.assert_outcomes(passed=4)
    sandbox.assert_clean()


def test_skills_from_an_entry_point_group(sandbox: Sandbox) -> None:
    root = sandbox.pytester.path
    dist = root / "myskills_pkg-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myskills-pkg\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pytest_distproc.skills]\ntripled = myskills_mod:tripled\n")
    sandbox.pytester.makepyfile(
        myskills_mod="""
        from pytest_distproc.attempt import stats as summary

        def tripled(records, context):
            return summary.summarize([3 * r["value"] for r in records])
        """
    )
    sandbox.scenario(
        "ep",
        """\
        name: ep
        skill: tripled
        regions: {A: {inline: [{value: 1}, {value: 2}]}}
        expect: {aggregate: {total: {records: 2, sum: 9}}}
        """,
    )
    result = sandbox.run("--distproc-scenarios", "-o", "pythonpath=.")
    result.assert_outcomes(passed=1)
