"""The coordinator over real forked processes: isolation, proven concurrency, order, cleanup."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from pytest_distproc.attempt import stats as summary
from pytest_distproc.checks import expectations
from pytest_distproc.run.coordinator import Coordinator
from pytest_distproc.run.rundir import RUN_DIR_PREFIX, run_root
from pytest_distproc.scenario.loader import load_one

THREE = """
expect: {concurrent: ["process-region-*"]}
seed: 42
regions: {A: {records: 1000}, B: {records: 1000}, C: {records: 1000}}
"""


def test_seed_workflow_runs_concurrently_and_aggregates_after_all_regions() -> None:
    run = Coordinator(load_one(THREE, "/tmp/seed.yaml")).run()
    assert run.outcome == "COMPLETE"
    together = [e for e in run.tasks.events if e.kind == "together"]
    assert together and together[0].data["tasks"] == ["process-region-a", "process-region-b", "process-region-c"]
    assert expectations.check_concurrent(run, ("process-region-*",)) == []
    assert expectations.check_order(run, "process-region-*:COMPLETE < aggregate-results:IN_PROGRESS") == []
    pids = {a.pid for a in run.attempts}
    assert len(pids) == 3 and os.getpid() not in pids
    assert expectations.check_invariants(run) == []


def test_merged_total_equals_summary_over_all_records() -> None:
    run = Coordinator(load_one(THREE, "/tmp/seed.yaml")).run()
    assert run.total is not None
    from pytest_distproc.attempt import data
    from pytest_distproc.attempt.data import source_of

    everything = [v for spec in run.scenario.regions for v in data.values(data.load(source_of(spec, 42)))]
    reference = summary.summarize(everything)
    for key in summary.FIELDS:
        assert summary.close(run.total[key], reference[key], rel=1e-9), key


def test_inline_context_cannot_prove_concurrency() -> None:
    run = Coordinator(load_one(THREE + "context: inline\n", "/tmp/seed.yaml")).run()
    assert run.outcome == "COMPLETE"
    assert {a.pid for a in run.attempts} == {os.getpid()}
    mismatches = expectations.check_concurrent(run, ("process-region-*",))
    assert mismatches and "no two of them were ever running at once on backend inline" in mismatches[0]


def test_same_seed_same_results_different_seed_different_data() -> None:
    first = Coordinator(load_one(THREE, "/tmp/seed.yaml")).run()
    second = Coordinator(load_one(THREE, "/tmp/seed.yaml")).run()
    other = Coordinator(load_one(THREE.replace("42", "43"), "/tmp/seed.yaml")).run()
    assert first.regions == second.regions
    assert first.regions != other.regions


def own_run_dirs() -> set[Path]:
    """Run dirs of coordinators in this process (``distproc-<coordinator pid>-<random>``): the shared run
    root also holds those of other runs on this machine, which come and go as they please."""
    return set(Path(run_root()).glob(f"{RUN_DIR_PREFIX}{os.getpid()}-*"))


def test_run_leaves_no_temp_dir() -> None:
    seen: list[Path] = []

    def observe(transition: object) -> None:
        seen.extend(own_run_dirs())

    before = own_run_dirs()
    scenario = load_one(THREE + "faults: [{region: A, kind: crash}]\npolicy: {retries: 1}\n", "/tmp/s.yaml")
    Coordinator(scenario, observers=(observe,)).run()
    assert set(seen) - before, f"the run dir was not under {run_root()}, where this test looks"
    assert own_run_dirs() == before


def test_run_dirs_follow_tmpdir_when_it_is_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert run_root() == str(tmp_path)
    monkeypatch.delenv("TMPDIR")
    assert run_root() in ("/dev/shm", tempfile.gettempdir())


def test_processor_sees_scrubbed_environment_and_own_temp_dir(monkeypatch: object, tmp_path: Path) -> None:
    os.environ["DISTPROC_SECRET_TOKEN"] = "hunter2"
    try:
        text = """
seed: 1
skill: tests.skills:environment_probe
regions: {A: {records: 3}, B: {records: 3}}
"""
        run = Coordinator(load_one(text, str(tmp_path / "s.yaml"))).run()
    finally:
        del os.environ["DISTPROC_SECRET_TOKEN"]
    assert run.outcome == "COMPLETE", run.transcript
    for region_id in ("A", "B"):
        probe = run.regions[region_id]
        assert probe["secret_visible"] == 0
        assert probe["own_tmp"] == 1
        assert probe["module_state"] == 1  # each fork starts from the coordinator's state, not a sibling's
    from tests import skills

    assert skills.CALLS == []  # the children's module state never came back to the coordinator
