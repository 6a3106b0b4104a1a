"""Every fault kind, injected into a real forked processor: exact transitions and the worded event."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pytest_distproc.checks import expectations
from pytest_distproc.run.coordinator import Coordinator
from pytest_distproc.run.model import Run
from pytest_distproc.scenario.loader import load_one
from tests.helpers import Sandbox

RECOVERED = ["PENDING", "IN_PROGRESS", "FAILED", "IN_PROGRESS", "COMPLETE"]


def run_with(fault: str, *, timeout: str = "5s", retries: int = 1, tmp_path: object = None) -> Run:
    text = f"""
seed: 3
regions: {{A: {{records: 50}}, B: {{records: 50}}}}
policy: {{timeout: {timeout}, retries: {retries}}}
faults: [{{region: B, {fault}}}]
"""
    return Coordinator(load_one(text, "/tmp/faults.yaml")).run()


def sequence(run: Run, task: str = "process-region-b") -> list[str]:
    return [s.value for s in run.tasks.sequence(task)]


def failure_event(run: Run) -> str:
    events = [a.event for a in run.attempts if not a.ok]
    assert len(events) == 1, events
    return events[0]


WORDED = re.compile(r"^process-region-b attempt 1 \(pid \d+\) (?P<what>.+) after \d+\.\d\d s$")


@pytest.mark.parametrize(
    ("fault", "what"),
    [
        ("kind: raise, message: disk full", "raised InjectedFault: disk full"),
        ("kind: crash, exit_code: 7", "crashed with exit code 7"),
        ("kind: signal, signal: KILL", "was killed by SIGKILL"),
        ("kind: signal, signal: SEGV", "was killed by SIGSEGV"),
        ("kind: signal, signal: TERM", "was killed by SIGTERM"),
        ("kind: corrupt", "returned a corrupt result: missing variance"),
        ("kind: drop, fraction: 0.5", "returned a short result: 25 of 50 records"),
        ("kind: oom", "ran out of memory (allocation past the 256 MB limit)"),
    ],
)
def test_fault_is_retried_with_exact_transitions_and_worded_event(fault: str, what: str) -> None:
    run = run_with(fault)
    assert sequence(run) == RECOVERED
    assert sequence(run, "aggregate-results") == ["BLOCKED", "IN_PROGRESS", "COMPLETE"]
    match = WORDED.match(failure_event(run))
    assert match is not None, failure_event(run)
    assert match.group("what") == what
    assert run.faults_fired[0]["kind"] == fault.split(",")[0].split(": ")[1]
    assert expectations.check_invariants(run) == []
    assert run.transcript.count(f"! {failure_event(run)}") == 1


def test_hang_is_killed_at_the_timeout_with_a_stack_dump() -> None:
    started = time.monotonic()
    run = run_with("kind: hang", timeout="0.5s")
    elapsed = time.monotonic() - started
    assert sequence(run) == RECOVERED
    what = WORDED.match(failure_event(run))
    assert what is not None
    assert what.group("what") == "timed out (limit 0.5 s) and was killed with SIGKILL"
    hung = next(a for a in run.attempts if a.timed_out)
    assert 0.5 <= hung.duration < 3.0
    assert "in _hang" in hung.stack and "in execute" in hung.stack, hung.stack  # the whole dump, not its first line
    assert elapsed < 10


def test_delay_slows_without_failing() -> None:
    run = run_with("kind: delay, seconds: 0.3")
    assert sequence(run) == ["PENDING", "IN_PROGRESS", "COMPLETE"]
    assert run.attempts_of("process-region-b")[0].duration >= 0.3
    assert run.faults_fired[0]["kind"] == "delay"


def test_giving_up_cancels_the_aggregation() -> None:
    run = run_with("kind: crash, attempts: all", retries=2)
    assert sequence(run) == ["PENDING", "IN_PROGRESS", "FAILED", "IN_PROGRESS", "FAILED", "IN_PROGRESS", "FAILED"]
    assert sequence(run, "aggregate-results") == ["BLOCKED", "CANCELLED"]
    assert run.outcome == "FAILED"
    assert run.total is None
    assert "Failed: Region B (failed after 3 attempts)" in run.transcript
    assert expectations.check_invariants(run) == []


def test_partial_aggregates_survivors_and_names_the_missing() -> None:
    text = """
seed: 3
regions: {A: {records: 50}, B: {records: 50}, C: {records: 20}}
policy: {retries: 0, on_region_failure: partial}
faults: [{region: B, kind: raise}]
"""
    run = Coordinator(load_one(text, "/tmp/p.yaml")).run()
    assert run.outcome == "COMPLETE"
    assert run.missing == ["B"]
    assert run.total is not None and run.total["count"] == 70
    assert "Missing: Region B (failed after 1 attempt)" in run.transcript
    assert expectations.check_invariants(run) == []


def test_a_planned_fault_that_never_fired_fails_the_run() -> None:
    text = """
seed: 3
regions: {A: {records: 5}, B: {records: 5}}
policy: {retries: 1}
faults: [{region: B, kind: raise, attempts: [2]}]
"""  # attempt 1 succeeds, so attempt 2 never runs (the loader refuses only an attempt beyond 1 + retries)
    run = Coordinator(load_one(text, "/tmp/nf.yaml")).run()
    assert expectations.check_faults_fired(run) == [
        "planned fault never fired: raise in region B on attempt 2, but the region stopped after 1 attempt(s)"
    ]


def test_retries_never_count_a_region_twice() -> None:
    run = run_with("kind: corrupt", retries=3)
    assert run.total is not None and run.total["count"] == 100
    assert expectations.check_conservation(run) == []


HANG = """\
name: hangs
regions: {A: {records: 5}, B: {records: 5}}
policy: {timeout: 60s}
faults: [{region: B, kind: hang}]
"""


def test_no_orphan_survives_a_hang_beyond_its_timeout(sandbox: Sandbox) -> None:
    sandbox.scenario("hang", HANG.replace("60s", "0.5s"))
    result = sandbox.run("--distproc-scenarios")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*process-region-b attempt 1 (pid *) timed out (limit 0.5 s)*"])
    sandbox.assert_clean()


def _wait_for_children(sandbox: Sandbox, count: int, limit: float = 30) -> list[int]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        pids, _ = sandbox.leftovers()
        if len(pids) >= count:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} marked processes appeared")


def _wait_clean(sandbox: Sandbox, limit: float = 10) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and any(sandbox.leftovers()):
        time.sleep(0.05)
    sandbox.assert_clean()


def _default_sigint() -> None:
    """In the child before exec: SIGINT back to its default disposition. A process started with SIGINT
    ignored (``nohup ... &``, a non-interactive shell's background job) passes SIG_IGN on through exec,
    Python then installs no KeyboardInterrupt handler, and the Ctrl-C below would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_no_orphan_survives_ctrl_c(sandbox: Sandbox) -> None:
    sandbox.scenario("hang", HANG)
    proc = sandbox.pytester.popen(
        [*sandbox.pytester._getpytestargs(), "--distproc-scenarios", "-p", "no:cacheprovider"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_default_sigint,
    )
    _wait_for_children(sandbox, 2)  # pytest itself and a region process carry the mark
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert b"KeyboardInterrupt" in out
    _wait_clean(sandbox)


def test_no_orphan_survives_pytest_timeout_thread_method(sandbox: Sandbox) -> None:
    sandbox.scenario("hang", HANG)
    result = sandbox.run("--distproc-scenarios", "--timeout=2", "--timeout-method=thread")
    assert result.ret != 0
    _wait_clean(sandbox)


def test_no_orphan_survives_pytest_timeout_signal_method(sandbox: Sandbox) -> None:
    sandbox.scenario("hang", HANG)
    result = sandbox.run("--distproc-scenarios", "--timeout=2", "--timeout-method=signal")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Timeout*"])
    _wait_clean(sandbox)


def test_no_orphan_survives_sigkill_of_pytest(sandbox: Sandbox) -> None:
    sandbox.scenario("hang", HANG)
    proc = sandbox.pytester.popen(
        [*sandbox.pytester._getpytestargs(), "--distproc-scenarios", "-p", "no:cacheprovider"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    _wait_for_children(sandbox, 2)
    time.sleep(0.3)
    proc.kill()
    proc.communicate(timeout=30)
    _wait_clean(sandbox)


def test_no_orphan_survives_sigkill_of_pytest_when_the_skill_sets_sigterm_handlers(sandbox: Sandbox) -> None:
    # The fork server imports the skill (a handler, and one more at every fork): its attempts must still
    # get our parent-death handler.
    (sandbox.pytester.path / "graceful.py").write_text(
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, lambda signum, frame: None)  # a library's 'graceful shutdown'\n"
        "os.register_at_fork(after_in_child=lambda: signal.signal(signal.SIGTERM, lambda s, f: None))\n"
        "def slow(records, context):\n"
        "    time.sleep(60)\n"
        "    return {}\n"
    )
    sandbox.scenario("graceful", "skill: graceful:slow\nregions: {A: {records: 5}, B: {records: 5}}\n")
    proc = sandbox.pytester.popen(
        [*sandbox.pytester._getpytestargs(), "--distproc-scenarios", "-p", "no:cacheprovider", "-o", "pythonpath=."],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    _wait_for_children(sandbox, 4)  # pytest, the fork server and both attempts carry the mark
    time.sleep(0.3)
    proc.kill()
    proc.communicate(timeout=30)
    _wait_clean(sandbox)


def test_grandchildren_that_escape_with_setsid_do_not_outlive_the_run(sandbox: Sandbox) -> None:
    sandbox.scenario(
        "escape",
        """\
        name: escape
        skill: tests.skills:escaping_grandchild
        regions: {A: {records: 5}, B: {records: 5}}
        policy: {timeout: 1s}
        expect:
          outcome: FAILED
          status: {process-region-a: COMPLETE, process-region-b: FAILED}
        """,
    )
    shutil.copytree(Path(__file__).parent, sandbox.pytester.path / "tests")
    started = time.monotonic()
    result = sandbox.run("--distproc-scenarios", "scenarios", "-o", "pythonpath=.")
    result.assert_outcomes(passed=1)
    assert time.monotonic() - started < 30, "a grandchild holding the pipe must not keep an attempt alive"
    _wait_clean(sandbox)


def test_a_daemon_older_than_the_run_survives_the_orphan_sweep(tmp_path: Path) -> None:
    import subprocess as sp

    from pytest_distproc.run.coordinator import Coordinator
    from pytest_distproc.scenario.loader import load_one

    pid_file = tmp_path / "daemon.pid"
    # A fixture's daemon: its own session, orphaned (its shell exits) while a run is going on.
    sp.Popen(["sh", "-c", f"sleep 300 & echo $! > {pid_file}; sleep 0.5"], start_new_session=True)
    time.sleep(0.2)
    run = Coordinator(load_one("regions: {A: {records: 3}}\nfaults: [{region: A, kind: delay, seconds: 1}]\n",
                               tmp_path / "s.yaml")).run()
    assert run.outcome == "COMPLETE"
    daemon = int(pid_file.read_text())
    try:
        assert Path(f"/proc/{daemon}").exists(), "the run's orphan sweep killed a process it did not start"
    finally:
        os.kill(daemon, signal.SIGKILL)


def test_waiting_at_the_start_barrier_does_not_count_against_the_timeout(tmp_path: Path) -> None:
    from typing import Any

    from pytest_distproc.backends.fork import ForkBackend
    from pytest_distproc.run.coordinator import Coordinator
    from pytest_distproc.scenario.loader import load_one

    class SlowStarts(ForkBackend):
        """Each fork takes 80 ms more, so region 1 waits ~400 ms at the barrier: past its 250 ms timeout."""

        def start(self, job: dict[str, Any], skill: Any, *, barrier: bool) -> Any:
            time.sleep(0.08)
            return super().start(job, skill, barrier=barrier)

    regions = "\n".join(f"  R{i}: {{records: 10}}" for i in range(6))
    policy = "policy: {timeout: 250ms, retries: 0}"
    text = f"regions:\n{regions}\n{policy}\nexpect: {{concurrent: ['process-region-*']}}\n"
    run = Coordinator(load_one(text, tmp_path / "s.yaml"), backend_factory=lambda _, d: SlowStarts(d)).run()
    assert [a.event for a in run.attempts if a.timed_out] == []
    assert run.outcome == "COMPLETE"
    assert any(e.kind == "together" for e in run.tasks.events)
