"""Hostile skills (tests/hostile_skills/) against the fork backend's promises: a timeout kills whatever the
attempt started, nothing survives pytest's death, an attempt cannot read or forge the coordinator's
state, and its output is bounded. Every test checks that nothing is left: no process, no temp dir, no cgroup.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_distproc.backends import containment, forkserver
from pytest_distproc.run.coordinator import Coordinator
from pytest_distproc.scenario.loader import load_one
from tests.helpers import Sandbox, marked_processes

ROOT = os.geteuid() == 0
PATHS = ["fork-server", "direct-fork"]


@pytest.fixture(params=PATHS)
def fork_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Attempts forked by the fork server, or by the coordinator itself (``DISTPROC_FORK_SERVER=off``)."""
    monkeypatch.setenv(forkserver.DISABLE_ENV, "on" if request.param == "fork-server" else "off")
    return str(request.param)


@pytest.fixture(autouse=True)
def hostile_skills_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox's pytest imports ``tests.hostile_skills`` from this checkout (an installed package has no
    ``tests``), as the attempts it forks do."""
    checkout = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [checkout, os.environ.get("PYTHONPATH", "")])))


def stale_cgroups() -> list[str]:
    """cgroup dirs of coordinators that are gone (``distproc-<pid>`` of a dead pid), in every hierarchy."""
    found = []
    for mount, _kind in containment._cgroup_mounts():
        for path, dirs, _files in os.walk(mount):
            ours = [d for d in dirs if d.startswith(containment.PREFIX)]
            found += [os.path.join(path, d) for d in ours if not os.path.exists(f"/proc/{d[len(containment.PREFIX):]}")]
            dirs[:] = ours  # ours sit at the top of a hierarchy, or nested in ours
    return found


def markers_of(sandbox: Sandbox) -> Path:
    return sandbox.tmp.parent / f"markers-{sandbox.tmp.name}"


def wait_until_clean(sandbox: Sandbox, seconds: float = 30.0) -> tuple[list[int], list[str], list[str]]:
    """Poll until no process, temp dir or cgroup of the sandbox's pytest is left; what is left at the deadline."""
    deadline = time.monotonic() + seconds
    while True:
        pids, dirs = sandbox.leftovers()
        groups = stale_cgroups()
        if not (pids or dirs or groups) or time.monotonic() > deadline:
            return pids, dirs, groups
        time.sleep(0.2)


@pytest.fixture
def reaper(sandbox: Sandbox) -> Iterator[None]:
    """Whatever a failing test leaves is killed and removed, so one failure does not poison the machine."""
    yield
    for pid in marked_processes(sandbox.mark):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for group in stale_cgroups():
        containment.kill(group)
        containment.remove_tree(group, wait=5.0)


def start_pytest(sandbox: Sandbox, *args: str) -> subprocess.Popen[bytes]:
    """pytest on the sandbox's scenarios, in a process of our own (so that we can kill it mid-run)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=sandbox.pytester.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def wait_for_markers(sandbox: Sandbox, count: int, process: subprocess.Popen[bytes], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ended = process.poll() is not None  # before looking: a pytest that ended after the markers is fine
        if markers_of(sandbox).is_dir() and len(list(markers_of(sandbox).iterdir())) >= count:
            return
        assert not ended, "pytest ended before the attempts were ready"
        time.sleep(0.1)
    raise AssertionError("the attempts never said they were ready")


# -- 1. a timeout kills what left the attempt's process group ------------------------------------------


def test_timeout_kills_a_skill_that_joined_its_parents_process_group(
    sandbox: Sandbox, fork_path: str, reaper: None
) -> None:
    sandbox.scenario("hostile", """
        skill: tests.hostile_skills.escape:join_parent_group
        regions: {A: {records: 5}}
        policy: {timeout: 1s, retries: 0}
        expect:
          outcome: FAILED
          status: {process-region-a: FAILED, aggregate-results: CANCELLED}
    """)
    assert_passes_and_leaves_nothing(sandbox)


def assert_passes_and_leaves_nothing(sandbox: Sandbox) -> None:
    """The sandbox's one scenario passes, and no process, temp dir or cgroup of its attempts is left."""
    result = sandbox.run("--distproc-scenarios", "-q", timeout=90)
    result.assert_outcomes(passed=1)
    pids, dirs, groups = wait_until_clean(sandbox, seconds=10)
    assert not pids, f"processes of the attempts survived: {pids}"
    assert not dirs, f"temp dirs left behind: {dirs}"
    assert not groups, f"cgroups left behind: {groups}"


def test_a_retry_taken_up_by_the_fork_servers_standby_is_contained_as_well(sandbox: Sandbox, reaper: None) -> None:
    # The second attempt is handed to the standby the fork server forked ahead, in a cgroup it named itself:
    # the timeout must find the helper that joined the parent's process group there too.
    sandbox.scenario("hostile", """
        skill: tests.hostile_skills.escape:join_parent_group
        regions: {A: {records: 5}}
        policy: {timeout: 1s, retries: 1, backoff: 0s}
        expect:
          outcome: FAILED
          attempts: {process-region-a: 2}
          status: {process-region-a: FAILED, aggregate-results: CANCELLED}
    """)
    assert_passes_and_leaves_nothing(sandbox)


# -- 2. nothing survives pytest's death ----------------------------------------------------------------

SKILLS = ["new_session_helper", "systemexit_on_sigterm", "no_parent_death_signal", "session_chain_2",
          "session_chain_25"]
HANGING = """
    skill: tests.hostile_skills.escape:{skill}
    regions: {{A: {{records: 5}}, B: {{records: 5}}}}
    policy: {{timeout: 120s, retries: 0}}
"""


# pytest-timeout's thread method, armed when both attempts are ready instead of at the item's start: its own
# timeout_timer (dump the stacks, os._exit(1) from the timer thread) ends pytest mid-run, with no fixed wait
# long enough for a loaded machine to reach the attempts (it was --timeout 20: 20 s per test).
ARMED_WHEN_READY = """
import os, threading, time
from pathlib import Path

import pytest
from pytest_timeout import timeout_timer


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item, settings):
    tmp = Path(os.environ["TMPDIR"])
    markers = tmp.parent / f"markers-{tmp.name}"  # where tests/hostile_skills/common.py:ready writes

    def arm():
        while not (markers.is_dir() and len(list(markers.iterdir())) >= 2):
            time.sleep(0.05)
        time.sleep(settings.timeout)
        timeout_timer(item, settings)

    threading.Thread(target=arm, name="timeout armed when ready", daemon=True).start()
    return True
"""


def _killed_mid_run(sandbox: Sandbox, reaper: None, skill: str, how: str) -> None:
    sandbox.scenario("hostile", HANGING.format(skill=skill))
    thread_timeout = ["--timeout", "1", "--timeout-method", "thread"] if how == "timeout-thread" else []
    if how == "timeout-thread":
        sandbox.pytester.makeconftest(ARMED_WHEN_READY)
    args = ["--distproc-scenarios", "-q", *thread_timeout]
    process = start_pytest(sandbox, *args)
    try:
        wait_for_markers(sandbox, 2, process)
        if how != "timeout-thread":
            process.send_signal(signal.SIGKILL if how == "SIGKILL" else signal.SIGTERM)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if how == "timeout-thread":
        assert process.returncode == 1, "pytest-timeout's os._exit(1) did not end pytest"
    pids, dirs, groups = wait_until_clean(sandbox)
    assert not pids, f"processes survived pytest's {how}: {pids}"
    assert not dirs, f"temp dirs left behind: {dirs}"
    assert not groups, f"cgroups left behind: {groups}"


@pytest.mark.parametrize("skill", SKILLS)
def test_nothing_survives_a_sigkilled_pytest(sandbox: Sandbox, fork_path: str, reaper: None, skill: str) -> None:
    _killed_mid_run(sandbox, reaper, skill, "SIGKILL")


@pytest.mark.parametrize("how", ["SIGTERM", "timeout-thread"])
def test_nothing_survives_pytest_ended_by(sandbox: Sandbox, fork_path: str, reaper: None, how: str) -> None:
    _killed_mid_run(sandbox, reaper, "everything", how)


# -- 3. no access to the coordinator's or fork server's memory, fds or environment ---------------------


def test_an_attempt_cannot_read_or_forge_what_its_ancestors_hold(
    sandbox: Sandbox, fork_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISTPROC_SECRET_TOKEN", "hunter2")
    sandbox.scenario("spy", """
        skill: tests.hostile_skills.spy:snoop
        regions: {A: {records: 5}, B: {records: 5}}
        expect: {outcome: COMPLETE}
    """)
    result = sandbox.run("--distproc-scenarios", "-q", timeout=90)
    assert result.ret == 0, "\n".join(line for line in result.outlines if "raised" in line or "opened" in line)
    sandbox.assert_clean()


# -- 4. stdout and stderr are bounded -------------------------------------------------------------------


def test_output_past_the_limit_is_refused_and_said_to_be_truncated(tmp_path: Path, fork_path: str) -> None:
    scenario = load_one("""
        skill: tests.hostile_skills.flood:flood
        regions: {A: {records: 5}, B: {records: 5}, C: {records: 5}}
        policy: {retries: 0, memory_limit_mb: 64, timeout: 60s}
    """, str(tmp_path / "s.yaml"))
    run = Coordinator(scenario).run()
    failed = [a for a in run.attempts if not a.ok]
    assert len(failed) == 3, run.transcript
    for attempt in failed:
        assert "accepted" in attempt.reason, attempt.event
        accepted = int(attempt.reason.split("accepted ")[1].split(" MiB")[0])
        assert accepted <= 16, f"{attempt.region} kept {accepted} MiB of stdout: {attempt.reason}"
        assert "output truncated" in attempt.stderr, attempt.stderr[-300:]


def test_an_attempts_stderr_is_what_it_wrote_and_nothing_more(tmp_path: Path, fork_path: str) -> None:
    # The sealed memfd is 16 MiB of zeros past what was written: only the written part is read back.
    scenario = load_one("skill: tests.skills:says_on_stderr\nregions: {A: {records: 5}, B: {records: 5}}\n",
                        str(tmp_path / "s.yaml"))
    run = Coordinator(scenario).run()
    assert run.outcome == "COMPLETE", run.transcript
    said = {attempt.region: attempt.stderr for attempt in run.attempts}
    assert said == {"A": "said on stderr", "B": ""}


# -- the cgroup v1 tier, end to end ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["timeout", "SIGKILL"])
def test_the_cgroup1_tier_contains_as_well(
    sandbox: Sandbox, reaper: None, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """``DISTPROC_CONTAINMENT=cgroup1`` (pids and freezer), as on a machine without a usable cgroup v2."""
    monkeypatch.setenv(containment.CHOICE_ENV, "cgroup1")
    monkeypatch.setattr(containment, "_CHOSEN", {})
    if containment.tier().name != "cgroup1":
        pytest.skip(f"no cgroup v1 pids hierarchy here: {containment.tier().reason}")
    if how == "SIGKILL":
        _killed_mid_run(sandbox, reaper, "everything", how)
        return
    test_timeout_kills_a_skill_that_joined_its_parents_process_group(sandbox, "fork-server", reaper)
