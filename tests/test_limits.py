"""Limits a big run or a hostile skill reaches: file descriptors, message size and depth, the fork server's
protocol under load, and deadline-driven waits. Each test runs real processes in a pytest subprocess."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_distproc.backends import fork, forkserver
from pytest_distproc.run.coordinator import Coordinator
from pytest_distproc.scenario.loader import load_one
from tests.helpers import Sandbox

HOSTILE = '''\
import os, stat
from pytest_distproc.attempt import stats


def _channel():
    """The attempt's result pipe: the one write-only pipe it holds."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode) and os.get_blocking(fd) and fd > 2:
                import fcntl
                if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
                    return fd
        except OSError:
            pass
    raise RuntimeError("no channel")


def huge_count(records, context):
    result = stats.summarize([r["value"] for r in records])
    if context["region"] == "A":
        result["count"] = 10 ** 400
    return result


def deep_line(records, context):
    if context["region"] == "A":
        os.write(_channel(), b"[" * 100_000 + b"\\n")
    return stats.summarize([r["value"] for r in records])


def long_line(records, context):
    if context["region"] == "A":
        os.write(_channel(), b'{"type": "fault", "fault": "' + b"x" * (3 << 20) + b'"}\\n')
    return stats.summarize([r["value"] for r in records])
'''


def _hostile(sandbox: Sandbox, skill: str) -> None:
    (sandbox.pytester.path / "hostile.py").write_text(HOSTILE)
    sandbox.scenario(
        skill,
        f"""\
        skill: hostile:{skill}
        regions: {{A: {{records: 3}}, B: {{records: 3}}}}
        policy: {{retries: 0}}
        expect:
          outcome: FAILED
          status: {{process-region-a: FAILED, process-region-b: COMPLETE}}
        """,
    )


def _assert_worded(sandbox: Sandbox, skill: str, words: str) -> None:
    _hostile(sandbox, skill)
    result = sandbox.run("--distproc-scenarios", "scenarios", "-o", "pythonpath=.", "-rA")
    out = result.stdout.str()
    result.assert_outcomes(passed=1)
    for raw in ("Traceback", "OverflowError", "RecursionError", "INTERNALERROR"):
        assert raw not in out, out
    sandbox.assert_clean()
    # The reason the attempt failed, in the transcript of a run that fails on purpose:
    sandbox.scenario(skill, sandbox.pytester.path.joinpath("scenarios", f"{skill}.yaml").read_text()
                     .replace("FAILED, process-region-b", "COMPLETE, process-region-b"))
    failed = sandbox.run("--distproc-scenarios", "scenarios", "-o", "pythonpath=.")
    failed.assert_outcomes(failed=1)
    assert words in failed.stdout.str(), failed.stdout.str()
    sandbox.assert_clean()


def test_a_result_with_a_401_digit_count_is_a_worded_failed_attempt(sandbox: Sandbox) -> None:
    _assert_worded(sandbox, "huge_count", "an integer of 401 digits")


def test_a_line_of_100000_nested_brackets_is_a_worded_failed_attempt(sandbox: Sandbox) -> None:
    _assert_worded(sandbox, "deep_line", "nested deeper than")


def test_a_line_over_the_size_bound_is_a_worded_failed_attempt(sandbox: Sandbox) -> None:
    _assert_worded(sandbox, "long_line", "a message over")


def _limited(sandbox: Sandbox, soft: int, hard: int) -> None:
    """The sandbox's pytest runs with ``ulimit -n`` soft/hard, set before any scenario forks."""
    sandbox.pytester.makeconftest(f"import resource\nresource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}))\n")


def _many(sandbox: Sandbox, name: str, regions: int, *, concurrent: bool) -> None:
    listed = ", ".join(f"R{i}: {{inline: [{{value: {i}}}]}}" for i in range(regions))
    sandbox.scenario(name, f"policy: {{timeout: 120s}}\nregions: {{{listed}}}\n"
                     + ('expect: {concurrent: ["process-region-*"]}\n' if concurrent else ""))


def test_under_ulimit_1024_a_concurrent_run_too_big_fails_clearly_and_the_next_item_passes(sandbox: Sandbox) -> None:
    _limited(sandbox, 1024, 1024)
    _many(sandbox, "a_big", 256, concurrent=True)
    _many(sandbox, "b_small", 3, concurrent=True)
    result = sandbox.run("--distproc-scenarios", "scenarios")
    out = result.stdout.str()
    result.assert_outcomes(passed=1, failed=1)
    assert "a_big.yaml:1: expect.concurrent needs all 256 regions running at once" in out, out
    assert "open-file limit of 1024" in out and "ulimit -n" in out, out
    for raw in ("Traceback", "OSError", "Too many open files"):
        assert raw not in out, out
    sandbox.assert_clean()


def test_the_soft_fd_limit_is_raised_to_the_hard_one(sandbox: Sandbox) -> None:
    _limited(sandbox, 1024, 4096)
    _many(sandbox, "big", 256, concurrent=True)
    result = sandbox.run("--distproc-scenarios", "scenarios")
    result.assert_outcomes(passed=1)
    sandbox.assert_clean()


def test_under_ulimit_1024_attempts_wait_for_fds_when_concurrency_is_not_asked(sandbox: Sandbox) -> None:
    _limited(sandbox, 1024, 1024)
    _many(sandbox, "a_big", 400, concurrent=False)
    _many(sandbox, "b_small", 3, concurrent=True)
    result = sandbox.run("--distproc-scenarios", "scenarios")
    result.assert_outcomes(passed=2)
    sandbox.assert_clean()


FLOOD = '''
import os, sys, tempfile
from pytest_distproc.attempt.messages import child_job
from pytest_distproc.backends import forkserver, processes

processes.raise_fd_limit()
server = forkserver.ForkServer()
server.prepare("region-stats")
run_dir = tempfile.mkdtemp()
requests, keep = [], []
for i in range(int(sys.argv[1])):
    job = child_job({"task": f"process-region-r{i}", "region": f"R{i}", "attempt": 1, "skill": "region-stats",
                     "seed": 1, "source": {"region": f"R{i}", "inline": [{"value": 1.0}]}, "faults": [],
                     "memory_limit_mb": 256, "timeout": 5.0}, workdir=os.path.join(run_dir, f"r{i}"))
    (read, write), (go_read, go_write) = os.pipe(), os.pipe()
    requests.append((job, True, [write, os.memfd_create("err"), os.memfd_create("stack"), go_read]))
    keep += [read, go_write]
spawned = server.spawn_many(requests)
for _, fds in ((job, fds) for job, _, fds in requests):
    for fd in fds:
        os.close(fd)
for fd in keep[1::2]:
    os.write(fd, b"g")  # the whole wave goes at once, and so its exits flood the socket
    os.close(fd)
while len(server.exits) < 50:
    server.receive()
for ident, _ in spawned:  # as the coordinator does: one reap per exit, without reading in between
    server.reap(ident)
print("swept", server.sweep())
server.close()
'''


def test_the_fork_server_protocol_cannot_deadlock_when_exits_and_reaps_cross(tmp_path: Path) -> None:
    # Each direction of the socket holds ~170-280 packets; 600 exits against 600 reaps overfill both ways.
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 4096:
        pytest.skip("600 attempts held at once need ~2,500 fds; the hard open-file limit is lower here")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    try:
        done = subprocess.run([sys.executable, "-c", FLOOD, "600"], capture_output=True, text=True, timeout=120,
                              env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("the coordinator and the fork server deadlocked, both blocked sending")
    assert done.returncode == 0 and "swept" in done.stdout, done.stderr


HANG = """
regions: {A: {inline: [{value: 1}]}, B: {inline: [{value: 2}]}}
policy: {timeout: 2s, retries: 0}
faults: [{region: A, kind: hang}]
expect: {outcome: FAILED}
"""


@pytest.mark.parametrize("server", ["on", "off"])
def test_a_timed_out_attempt_dies_right_after_its_stack_dump_not_at_a_later_poll(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The dump's fallback waits are made absurd: the attempt must end on its own once the dump is written
    # (faulthandler chains to SIGUSR1's default action), not when a poll notices the dump and kills it.
    # The timeout (2 s) leaves a loaded machine time to bring the attempt into its hang: at 0.2 s it was
    # sometimes still announcing the fault, or setting up, when the dump was asked for.
    monkeypatch.setenv(forkserver.DISABLE_ENV, server)
    monkeypatch.setattr(fork, "STACK_WAIT", 60.0)
    monkeypatch.setattr(fork, "STACK_SETTLE", 60.0)
    run = Coordinator(load_one(HANG, str(tmp_path / "hang.yaml"))).run()
    hung = run.attempts[0] if run.attempts[0].region == "A" else run.attempts[1]
    assert hung.timed_out and "timed out" in str(hung.reason), run.transcript
    assert hung.duration < 30, f"the kill waited for a fallback: {hung.duration:.1f} s"
    assert "_hang" in hung.stack, f"the stack dump was lost: {hung.stack!r}"
