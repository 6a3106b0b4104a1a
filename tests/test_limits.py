"""Limits a big run or a hostile skill reaches: file descriptors, message size and depth, the fork server's
protocol under load, and deadline-driven waits. Each test runs real processes in a pytest subprocess."""

from __future__ import annotations

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
