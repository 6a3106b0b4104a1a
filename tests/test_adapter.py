"""A user's own coordinator under our faults and checkers, through the adapter protocol."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.helpers import Sandbox

ROOT = Path(__file__).resolve().parents[1]


def copy_shipped(sandbox: Sandbox) -> None:
    shutil.copytree(ROOT / "scenarios", sandbox.pytester.path / "scenarios")


def test_careful_coordinator_passes_the_shipped_fault_suite(sandbox: Sandbox) -> None:
    copy_shipped(sandbox)
    result = sandbox.run("--distproc-scenarios", "scenarios/seed.yaml", "scenarios/faults/raise.yaml",
                         "scenarios/faults/hang.yaml", "scenarios/faults/drop.yaml",
                         "--distproc-coordinator", "scenarios/adapters/careful.py:CarefulCoordinator", timeout=300)
    result.assert_outcomes(passed=10)
    sandbox.assert_clean()


def test_naive_coordinator_is_caught_by_name_with_a_clear_report(sandbox: Sandbox) -> None:
    copy_shipped(sandbox)
    result = sandbox.run("--distproc-scenarios", "scenarios/seed.yaml",
                         "--distproc-coordinator", "scenarios/adapters/naive.py:NaiveCoordinator")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*scenario 'seed-three-regions' failed: outcome: expected COMPLETE, got FAILED",
        "*- scenarios/seed.yaml:*: the coordinator reported an illegal transition: "
        "illegal transition for task 'aggregate-results': "
        "BLOCKED -> IN_PROGRESS; from BLOCKED allowed: nothing until its blockers complete "
        "(still open: process-region-b, process-region-c)",
    ])
    assert "Traceback" not in result.stdout.str()
    sandbox.assert_clean()


def test_a_crashing_user_coordinator_is_a_mismatch_with_its_own_frames(sandbox: Sandbox) -> None:
    sandbox.pyfile(
        "broken", """
        class Broken:
            def run(self, harness):
                harness.record("process-region-a", "IN_PROGRESS")
                raise KeyError("lost my place")
        """
    )
    sandbox.scenario("one", "name: one\ncoordinator: broken.py:Broken\nregions: {A: {records: 3}}\n")
    result = sandbox.run("--distproc-scenarios")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "the coordinator raised KeyError: 'lost my place'" in out
    assert "broken.py" in out and "pytest_distproc/run/adapter.py" not in out


def test_serial_coordinator_cannot_prove_concurrency(sandbox: Sandbox) -> None:
    sandbox.pyfile(
        "serial", """
        import json, os
        from pytest_distproc.attempt import stats as summary

        class Serial:
            def run(self, harness):
                results = {}
                for region in harness.regions:
                    read_fd, write_fd = os.pipe()
                    pid = os.fork()
                    if pid == 0:
                        os.write(write_fd, json.dumps(harness.process(region, 1)).encode())
                        os._exit(0)
                    os.close(write_fd)
                    harness.record(f"process-region-{region.lower()}", "IN_PROGRESS", pid=pid)
                    payload = os.read(read_fd, 1 << 20)
                    os.waitpid(pid, 0)
                    results[region] = json.loads(payload)
                    harness.record(f"process-region-{region.lower()}", "COMPLETE", pid=pid)
                harness.record("aggregate-results", "IN_PROGRESS")
                harness.record("aggregate-results", "COMPLETE")
                harness.result(regions=results, total=summary.merge(results.values()))
        """
    )
    sandbox.scenario(
        "two",
        """\
        name: two
        coordinator: serial.py:Serial
        regions: {A: {records: 3}, B: {records: 3}}
        expect: {concurrent: ["process-region-*"]}
        """,
    )
    result = sandbox.run("--distproc-scenarios")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*concurrent: process-region-a, process-region-b were never all running at the same time*"]
    )


def test_a_malformed_result_from_a_user_coordinator_is_a_mismatch(sandbox: Sandbox) -> None:
    sandbox.pyfile(
        "sloppy", """
        class Sloppy:
            def run(self, harness):
                harness.record("process-region-a", "IN_PROGRESS")
                harness.record("process-region-a", "COMPLETE")
                harness.record("aggregate-results", "IN_PROGRESS")
                harness.record("aggregate-results", "COMPLETE")
                harness.result(regions={"A": {"records": 5}, "Z": {"records": 1}}, total={"records": 5})
        """
    )
    sandbox.scenario("one", "name: one\ncoordinator: sloppy.py:Sloppy\nregions: {A: {records: 5}}\n")
    result = sandbox.run("--distproc-scenarios")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*harness.result(): region A's summary is a corrupt result: missing count, sum, min, max, mean, variance*",
        "*harness.result(): unknown region 'Z'; regions: A*",
        "*harness.result(): the total is a corrupt result: missing count*",
    ])
    assert "Traceback" not in result.stdout.str()


FAKER = """
from pytest_distproc.attempt import data, stats


class Faker:
    '''Never forks and never runs a fault: reports the history a careful coordinator would, computing
    every region in its own process.'''

    def run(self, harness):
        results = {}
        for region in harness.regions:
            task = f"process-region-{region.lower()}"
            harness.record(task, "IN_PROGRESS", pid=4242)
            if region == "B":
                harness.record(task, "FAILED", pid=4242, event="raised InjectedFault")
                harness.record(task, "IN_PROGRESS", pid=4243)
            results[region] = stats.summarize(data.source_values(harness.sources[region]))
            harness.record(task, "COMPLETE", pid=4243)
        harness.record("aggregate-results", "IN_PROGRESS")
        harness.record("aggregate-results", "COMPLETE")
        harness.result(regions=results, total=stats.merge(results.values()))
"""


def test_a_coordinator_that_never_runs_its_attempts_in_children_is_caught(sandbox: Sandbox) -> None:
    # the history and the numbers are right, but no attempt ran where the harness could see it: no child said
    # hello from harness.process, so no fault was injected and no isolation was had
    sandbox.pyfile("faker", FAKER)
    sandbox.scenario("faked", """\
        name: faked
        seed: 3
        coordinator: faker.py:Faker
        regions: {A: {records: 20}, B: {records: 20}}
        policy: {retries: 1}
        faults: [{region: B, kind: raise, attempts: all}]
        expect:
          transitions: {process-region-b: [PENDING, IN_PROGRESS, FAILED, IN_PROGRESS, COMPLETE]}
        """)
    result = sandbox.run("--distproc-scenarios")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines_random([
        "*process-region-a attempt 1 was reported IN_PROGRESS, but no child ran it: harness.process('A', 1) was "
        "never called in a child process*",
        "*process-region-b attempt 1 was reported IN_PROGRESS, but no child ran it*planned fault raise was never "
        "injected*",
        "*process-region-b attempt 2 was reported IN_PROGRESS, but no child ran it*",
    ])
    sandbox.assert_clean()


LIAR = """
import json, os
from pytest_distproc.attempt import stats


class Liar:
    '''Runs each region in a child through harness.process, but reports a crashed one COMPLETE anyway, with
    another region's summary.'''

    def run(self, harness):
        results = {}
        for region in harness.regions:
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.write(write_fd, json.dumps(harness.process(region, 1)).encode())
                os._exit(0)
            os.close(write_fd)
            harness.record(f"process-region-{region.lower()}", "IN_PROGRESS", pid=pid)
            payload = os.read(read_fd, 1 << 20)
            os.close(read_fd)
            os.waitpid(pid, 0)
            results[region] = json.loads(payload) if payload else results["A"]
            harness.record(f"process-region-{region.lower()}", "COMPLETE", pid=pid)
        harness.record("aggregate-results", "IN_PROGRESS")
        harness.record("aggregate-results", "COMPLETE")
        harness.result(regions=results, total=stats.merge(results.values()))
"""


def test_a_crashed_attempt_reported_complete_is_caught(sandbox: Sandbox) -> None:
    sandbox.pyfile("liar", LIAR)
    sandbox.scenario("lied", """\
        name: lied
        seed: 3
        coordinator: liar.py:Liar
        regions: {A: {records: 20}, B: {records: 20}}
        faults: [{region: B, kind: crash, attempts: [1]}]
        expect: {outcome: COMPLETE}
        """)
    result = sandbox.run("--distproc-scenarios")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*process-region-b attempt 1 was reported COMPLETE, but its child never got a "
                                 "summary back from harness.process('B', 1) (a fault or a crash ended it first)*"])
    sandbox.assert_clean()
