"""``expect.aggregate.tolerance`` (exact counts, relative by default) and ``expect.backoff`` (the wait before
each retry, read from the history), and the wait shown in the transcript."""

from __future__ import annotations

import textwrap

import pytest

from pytest_distproc.checks.expectations import check, check_aggregate, check_backoff
from pytest_distproc.run.coordinator import Coordinator
from pytest_distproc.run.model import Run, retry_gaps
from pytest_distproc.scenario.loader import load_one
from pytest_distproc.scenario.model import Tolerance
from tests.helpers import Sandbox

# On the inline backend's simulated clock, backoffs cost no real time and the gaps are exact.
SMALL = """\
seed: 1
backend: inline
regions: {A: {records: 5}, B: {inline: [{value: 0.1}, {value: 0.2}]}}
"""


def _run(text: str) -> Run:
    return Coordinator(load_one(SMALL + textwrap.dedent(text), "/tmp/s.yaml")).run()


# --- tolerance ------------------------------------------------------------------------------------------


def test_a_sum_off_by_one_percent_fails_and_says_both_values_and_the_rule() -> None:
    # 0.1 + 0.2 is 0.30000000000000004: 0.304 passed under the old hidden 0.005 absolute tolerance.
    run = _run("expect: {aggregate: {regions: {B: {sum: 0.304}}}}\n")
    problems = check(run)
    assert problems == [
        "aggregate region B: expected sum=0.304, got sum=0.30000000000000004 (off by 0.004 = 0.0132 relative; "
        "allowed: relative 1e-09 or absolute 1e-12, the default; expect.aggregate.tolerance changes it)"
    ]


def test_float_rounding_passes_by_default() -> None:
    assert check(_run("expect: {aggregate: {regions: {B: {records: 2, sum: 0.3, mean: 0.15, max: 0.2}}}}\n")) == []


@pytest.mark.parametrize("tolerance", ["0.02", "{rel: 0.02}", "{abs: 0.005}", "{rel: 0, abs: 0.01}"])
def test_a_written_tolerance_widens_the_rule(tolerance: str) -> None:
    run = _run(f"expect: {{aggregate: {{regions: {{B: {{sum: 0.304}}}}, tolerance: {tolerance}}}}}\n")
    assert check(run) == []


def test_a_written_tolerance_is_named_in_the_mismatch() -> None:
    run = _run("expect: {aggregate: {regions: {B: {sum: 0.31}}, tolerance: {abs: 0.005}}}\n")
    (problem,) = check(run)
    assert problem.endswith("allowed: relative 1e-09 or absolute 0.005, from expect.aggregate.tolerance)")


def test_counts_compare_exactly_whatever_the_tolerance() -> None:
    run = _run("expect: {aggregate: {total: {records: 8}, tolerance: 0.5}}\n")
    assert check(run) == ["aggregate total: expected records=8, got 7 (counts compare exactly)"]


def test_a_value_copied_from_the_transcript_gets_a_hint() -> None:
    run = _run("expect: {}\n")
    assert run.total is not None
    printed = round(run.total["sum"], 2)  # the transcript prints sum=312.18
    assert f"sum={printed:.2f}" in run.transcript and printed != run.total["sum"]
    (problem,) = check_aggregate(run, {"total": {"sum": printed}})
    assert f"{printed!r} is {run.total['sum']!r} rounded to 2 decimals, as the transcript prints sum: write " \
           f"{run.total['sum']!r}, or compare at that precision with tolerance: {{abs: 0.01}}" in problem
    assert check_aggregate(run, {"total": {"sum": printed}, "tolerance": Tolerance(absolute=0.01, given=True)}) == []


# --- backoff --------------------------------------------------------------------------------------------

RETRIED = """\
policy: {retries: 2, backoff: 200ms}
faults: [{region: B, kind: crash, attempts: [1, 2]}]
"""


def test_backoff_true_holds_when_every_retry_waited_the_policys_gap() -> None:
    run = _run(RETRIED + "expect: {backoff: true}\n")
    assert [(g.task, g.attempt, round(g.seconds, 6)) for g in retry_gaps(run)] == [
        ("process-region-b", 2, 0.2), ("process-region-b", 3, 0.2)]
    assert check(run) == []


def test_backoff_longer_than_the_gaps_fails_with_each_gap_and_its_history_numbers() -> None:
    run = _run(RETRIED + "expect: {backoff: 500ms}\n")
    gaps = retry_gaps(run)
    assert check(run) == [
        f"backoff: process-region-b started attempt {g.attempt} (#{g.started_seq}) 0.200 s after attempt "
        f"{g.attempt - 1} FAILED (#{g.failed_seq}); expected at least 0.5 s (expect.backoff)" for g in gaps
    ]


def test_backoff_without_any_retry_is_a_mismatch_not_a_silent_pass() -> None:
    run = _run("policy: {retries: 1, backoff: 200ms}\nexpect: {backoff: true}\n")
    assert check(run) == ["backoff: no attempt was retried in this run, so no wait between a failure and a retry "
                          "could be measured (expected at least 0.2 s, policy.backoff)"]
    assert check_backoff(run, 0.1) != []


def test_the_transcript_shows_the_wait_only_when_the_policy_has_a_backoff() -> None:
    waited = _run(RETRIED).transcript
    assert ("    ! process-region-b attempt 1 (pid " in waited
            and "\n    ~ waited 0.20 s before attempt 2\n    ! process-region-b attempt 2 (pid " in waited
            and "\n    ~ waited 0.20 s before attempt 3\n[t3] aggregate-results" in waited)
    assert "waited" not in _run(RETRIED.replace("200ms", "0s")).transcript  # goldens without backoff unchanged


HASTY = '''\
"""A user's coordinator that retries at once, whatever policy.backoff says."""
import json
import os

from pytest_distproc.attempt import stats as summary


class HastyCoordinator:
    def run(self, harness):
        results = {}
        for region in harness.regions:
            task = f"process-region-{region.lower()}"
            for attempt in range(1, harness.policy.retries + 2):
                read_fd, write_fd = os.pipe()
                pid = os.fork()
                if pid == 0:
                    os.close(read_fd)
                    try:
                        os.write(write_fd, json.dumps(harness.process(region, attempt)).encode())
                    finally:
                        os._exit(0)
                os.close(write_fd)
                harness.record(task, "IN_PROGRESS", pid=pid)
                payload = b""
                while chunk := os.read(read_fd, 65536):
                    payload += chunk
                os.close(read_fd)
                os.waitpid(pid, 0)
                if payload:
                    results[region] = json.loads(payload)
                    harness.record(task, "COMPLETE", pid=pid)
                    break
                harness.record(task, "FAILED", pid=pid)  # BUG: the retry starts at once
        harness.record("aggregate-results", "IN_PROGRESS")
        harness.record("aggregate-results", "COMPLETE")
        harness.result(regions=results, total=summary.merge(results.values()))
'''


def test_a_coordinator_that_ignores_the_backoff_is_caught(sandbox: Sandbox) -> None:
    (sandbox.pytester.path / "scenarios").mkdir()
    (sandbox.pytester.path / "scenarios" / "hasty.py").write_text(HASTY)
    scenario = """\
        name: {name}
        seed: 2
        regions: {{A: {{records: 5}}, B: {{records: 5}}}}
        policy: {{timeout: 5s, retries: 1, backoff: 1s}}  # far above a fork's time: no timing race
        faults: [{{region: B, kind: crash, attempts: [1]}}]
        expect: {{backoff: true, attempts: {{process-region-b: 2}}}}
        """
    sandbox.scenario("ours", scenario.format(name="ours"))
    sandbox.scenario("hasty", scenario.format(name="hasty") + "coordinator: hasty.py:HastyCoordinator\n")
    result = sandbox.run("--distproc-scenarios", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.re_match_lines([
        r".*scenario 'hasty' failed: backoff: process-region-b started attempt 2 \(#\d+\) 0\.\d\d\d s after "
        r"attempt 1 FAILED \(#\d+\); expected at least 1 s \(policy\.backoff\)",
    ])
    result.stdout.fnmatch_lines(["scenarios/ours.yaml::ours PASSED*"])
    sandbox.assert_clean()
