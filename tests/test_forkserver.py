"""The fork server: attempts are forked from it, it survives runs, and it steps aside when it must."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_distproc.attempt import skills
from pytest_distproc.backends import containment, forkserver, processes
from pytest_distproc.run.coordinator import Coordinator
from pytest_distproc.run.model import Run
from pytest_distproc.scenario.loader import load_one
from tests.helpers import Sandbox

PROBE = """
seed: 1
skill: tests.skills:parent_probe
regions: {A: {records: 3}, B: {records: 3}, C: {records: 3}}
"""


def _parents(tmp_path: Path) -> set[int]:
    run = Coordinator(load_one(PROBE, str(tmp_path / "s.yaml"))).run()
    assert run.outcome == "COMPLETE", run.transcript
    return {int(run.regions[r]["parent_pid"]) for r in ("A", "B", "C")}


def test_attempts_are_forked_by_one_fork_server_that_outlives_the_run(tmp_path: Path) -> None:
    first, second = _parents(tmp_path), _parents(tmp_path)
    assert first == second == forkserver.server_pids(), "every attempt of both runs came from the same server"
    assert os.getpid() not in first
    (server,) = first
    assert Path(f"/proc/{server}").exists()
    with open(f"/proc/{server}/task/{server}/children") as handle:
        assert handle.read().split() == [], "the server reaped every attempt once the runs ended"


def test_fork_server_off_forks_from_the_coordinator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(forkserver.DISABLE_ENV, "off")
    assert _parents(tmp_path) == {os.getpid()}


@pytest.fixture(params=["on", "off"])
def run_both_ways(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str], Run]:
    """Runs a scenario with its attempts forked by the fork server ("on") or by the coordinator ("off")."""
    monkeypatch.setenv(forkserver.DISABLE_ENV, request.param)
    return lambda text: Coordinator(load_one(text, str(tmp_path / "s.yaml"))).run()


def test_attempts_inherit_a_frozen_heap_and_the_coordinator_does_not_keep_it(
    run_both_ways: Callable[[str], Run],
) -> None:
    run = run_both_ways(PROBE)
    frozen = [run.regions[r]["gc_frozen"] for r in ("A", "B", "C")]
    assert all(count > 0 for count in frozen), f"attempts' collections would copy inherited pages: {frozen}"
    assert gc.get_freeze_count() == 0, "the coordinator collects its own objects again after the forks"


def test_a_skill_may_terminate_a_process_pool_of_its_own(run_both_ways: Callable[[str], Run]) -> None:
    # The pool's workers inherit the attempt's SIGTERM handler; Pool.terminate() must not make them
    # take the attempt for an orphan and kill its whole group.
    run = run_both_ways("seed: 2\nskill: tests.skills:pool_sum\nregions: {A: {records: 20}, B: {records: 20}}\n")
    assert run.outcome == "COMPLETE", run.transcript
    assert len(run.attempts) == 2


def test_a_process_an_attempt_forks_is_born_with_sigterm_blocked(run_both_ways: Callable[[str], Run]) -> None:
    # The deterministic form of the race above (it hung 1 run in ~100-1,000 under load): a SIGTERM reaching
    # a child before CPython's at-fork clean-up met our inherited Python handler, whose pending mark the
    # clean-up then erased. Born blocked, the signal waits in the kernel until SIGTERM means "die".
    run = run_both_ways("seed: 2\nskill: tests.birth_skills:sigterm_at_birth\nregions: {A: {records: 5}}\n")
    assert run.outcome == "COMPLETE", run.transcript
    assert run.regions["A"]["sigterm_at_birth"] == "blocked"
    assert run.regions["A"]["sigterm_once_running"] == "unblocked"
    assert run.regions["A"]["sigterm_in_attempt"] == "unblocked"


def test_a_retry_is_taken_up_by_the_standby_and_nothing_stays_behind(tmp_path: Path) -> None:
    run = Coordinator(load_one("seed: 2\nskill: tests.skills:standby_probe\npolicy: {retries: 1, backoff: 0s}\n"
                               "regions: {A: {records: 5}}\n", str(tmp_path / "s.yaml"))).run()
    assert run.outcome == "COMPLETE", run.transcript
    assert [a.attempt for a in run.attempts] == [1, 2]
    region = run.regions["A"]
    assert region["standby"] == 1, "the first attempt's batch left a standby for the retry"
    assert (region["own_dir"], region["region_env"], region["attempt_env"]) == (1, "A", "2")
    if containment.tier().name != "none":
        assert region["cgroup"] == "True"
    server = forkserver.current()
    assert server is not None
    assert processes.children_of(server.process.pid) == set(), "the run's standby is gone with the run"


def test_a_skills_own_sigterm_handler_survives_its_forks(run_both_ways: Callable[[str], Run]) -> None:
    run = run_both_ways("seed: 2\nskill: tests.skills:handler_survives_fork\nregions: {A: {records: 5}}\n")
    assert run.outcome == "COMPLETE", run.transcript
    assert run.regions["A"]["child_handler"] == "kept"


def test_a_frozen_heap_is_left_frozen_by_a_nested_fork() -> None:
    from pytest_distproc.backends.processes import gc_frozen

    gc.freeze()  # as in an attempt that runs a coordinator of its own
    try:
        frozen = gc.get_freeze_count()
        with gc_frozen():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_the_coordinators_current_environment_reaches_a_served_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _parents(tmp_path)  # the server is up, holding the environment of that run
    monkeypatch.setenv("PYTHONHASHSEED", "4242")
    run = Coordinator(load_one(PROBE, str(tmp_path / "s.yaml"))).run()
    assert {run.regions[r]["hash_seed"] for r in ("A", "B", "C")} == {"4242"}


def _closure_skill() -> skills.Skill:
    def inner(records: list[dict[str, float]], context: object) -> dict[str, float]:
        return {}

    return inner  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("reference", "skill", "faults", "portable"),
    [
        ("region-stats", skills.region_stats, [], "region-stats"),
        ("tests.skills:parent_probe", None, [], "tests.skills:parent_probe"),
        ("region-stats", skills.region_stats, [{"kind": "crash"}], "region-stats"),
        ("region-stats", skills.region_stats, [{"kind": "made-up-by-a-plugin"}], None),
        ("from-a-hook", _closure_skill(), [], None),
    ],
)
def test_what_the_fork_server_can_import_itself(
    reference: str, skill: skills.Skill | None, faults: list[dict[str, str]], portable: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert forkserver.portable(reference, skill or skills.region_stats, [{"faults": faults}]) == portable


def test_a_conftest_skill_is_forked_from_the_coordinator(monkeypatch: pytest.MonkeyPatch) -> None:
    def in_conftest(records: list[dict[str, float]], context: object) -> dict[str, float]:
        return {}

    in_conftest.__module__ = "tests.conftest"
    in_conftest.__qualname__ = "in_conftest"
    assert forkserver.portable("conftest-skill", in_conftest, [{}]) is None  # type: ignore[arg-type]


SITE_FINDER = '''\
"""Makes the module ``site_only_skills`` importable, as an editable install's .pth file makes a package."""
import importlib.abc
import importlib.util
import sys

SOURCE = """
import os

from pytest_distproc.attempt import stats as summary


def checked_stats(records, context):
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as handle:
        parent = handle.read().replace(b"\\\\0", b" ").decode()
    if "pytest_distproc.backends.forkserver" not in parent:
        raise RuntimeError(f"forked by {parent!r}, not by the fork server")
    return summary.summarize([r["value"] for r in records])
"""


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name == "site_only_skills" else None

    def exec_module(self, module):
        exec(SOURCE, module.__dict__)


sys.meta_path.append(_Finder())
'''


def test_a_skill_importable_only_through_site_is_still_forked_by_the_fork_server(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server starts without the site module (-S): it must run it before it imports a user's skill,
    # whose package may be importable only through what site runs (here a sitecustomize's finder; in a
    # virtualenv, an editable install's .pth file). Else the server cannot import the skill, the attempts
    # are forked from pytest instead, and the skill says so.
    hooks = sandbox.pytester.path / "site_hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITE_FINDER)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(hooks), os.environ.get("PYTHONPATH")) if p))
    monkeypatch.delenv(forkserver.DISABLE_ENV, raising=False)
    sandbox.scenario("site", """\
        name: site
        seed: 3
        skill: site_only_skills:checked_stats
        regions: {A: {records: 4}, B: {records: 4}}
        expect: {aggregate: {total: {records: 8}}}
        """)
    result = sandbox.run("--distproc-scenarios", "-rA")
    result.assert_outcomes(passed=1)
    sandbox.assert_clean()
