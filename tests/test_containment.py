"""The containment tiers on their own: detection, and a kill that reaches every session in a group."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pytest_distproc.attempt import confine
from pytest_distproc.backends import containment


@pytest.fixture
def fresh_tier(monkeypatch: pytest.MonkeyPatch) -> None:
    """Detection again, under the test's DISTPROC_CONTAINMENT, and again after it."""
    monkeypatch.setattr(containment, "_CHOSEN", {})


def test_detection_honours_the_choice_and_says_why(fresh_tier: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(containment.CHOICE_ENV, "none")
    assert containment.tier().describe() == f"none; {containment.CHOICE_ENV}=none"
    monkeypatch.setattr(containment, "_CHOSEN", {})
    monkeypatch.setenv(containment.CHOICE_ENV, "cgroup9")
    assert "'cgroup9' is not one of auto, cgroup2, cgroup1, none" in containment.tier().describe()


def test_detection_leaves_no_group_behind() -> None:
    """A process that detects its tier (the report header does) and runs nothing leaves no cgroup."""
    probe = "from pytest_distproc.backends import containment as c; t = c.tier(); print(t.name, *t.bases)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    name, *bases = done.stdout.split()
    assert name in containment.TIERS
    assert not [base for base in bases if os.path.exists(base)], "the probe removes what it made"


def _chain(groups: list[str], depth: int, ready: int) -> int:
    """Fork a process that joins ``groups`` and starts ``depth`` descendants, each in a session of its own."""
    pid = os.fork()
    if pid == 0:
        try:
            confine.join(groups)
            for _ in range(depth):
                if os.fork():
                    break
                os.setsid()
            else:
                os.write(ready, b"x")
            while True:
                time.sleep(60)
        finally:
            os._exit(1)
    return pid


@pytest.mark.parametrize("name", ["cgroup2", "cgroup1"])
def test_a_killed_group_takes_every_session_with_it(
    fresh_tier: None, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(containment.CHOICE_ENV, name)
    if containment.tier().name != name:
        pytest.skip(f"{name} is not available here: {containment.tier().reason}")
    groups = containment.RunGroups()
    read, write = os.pipe()
    pid = _chain(groups.paths("attempt"), 6, write)
    try:
        assert os.read(read, 1) == b"x"
        members = containment.procs(groups.paths("attempt")[0])
        assert len(members) == 7, members
        groups.kill("attempt")
        os.waitpid(pid, 0)
        deadline = time.monotonic() + 10
        while containment.populated(groups.paths("attempt")[0]) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not containment.populated(groups.paths("attempt")[0])
        groups.finish("attempt")
    finally:
        groups.close()
        for base in containment.tier().bases:
            containment.remove_tree(base, wait=5)
        os.close(read)
        os.close(write)
    assert not [d for d in groups.dirs if os.path.exists(d)]
    assert not [b for b in containment.tier().bases if os.path.exists(b)]
