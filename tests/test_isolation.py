"""Isolation that holds under fork, and the same probes leaking under ``context: inline``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_distproc.run.coordinator import Coordinator
from pytest_distproc.run.model import Run
from pytest_distproc.scenario.loader import load_one
from tests import skills

PROBE = """
seed: 1
skill: tests.skills:isolation_probe
context: {context}
regions: {{A: {{records: 3}}, B: {{records: 3}}, C: {{records: 3}}}}
expect: {{concurrent: ["process-region-*"]}}
"""


@pytest.fixture
def secret() -> Iterator[None]:
    os.environ["DISTPROC_SECRET_TOKEN"] = "hunter2"
    skills.CALLS.clear()
    try:
        yield
    finally:
        del os.environ["DISTPROC_SECRET_TOKEN"]
        skills.CALLS.clear()


def probe(context: str, tmp_path: Path) -> Run:
    run = Coordinator(load_one(PROBE.format(context=context), tmp_path / "probe.yaml")).run()
    assert run.outcome == "COMPLETE", run.transcript
    return run


def private_workdirs(run: Run) -> bool:
    return all(e.data.get("isolation", {}).get("private_workdir") for e in run.tasks.events if e.kind == "started")


def test_fork_hides_secrets_module_state_and_sibling_temp_dirs(secret: None, tmp_path: Path) -> None:
    run = probe("fork", tmp_path)
    for region_id in "ABC":
        result = run.regions[region_id]
        assert result["secret_visible"] == 0, "only allowlisted environment variables reach a processor"
        assert result["module_state"] == 1, "each fork starts from the coordinator's module state"
        if private_workdirs(run):
            assert result["sibling_files_seen"] == 0, "a sibling's temp dir is private"
            assert result["foreign_files_here"] == 0, "nothing a sibling planted reaches our temp dir"
    assert skills.CALLS == [], "the children's module state never comes back to the coordinator"


def test_private_temp_dirs_are_in_force_as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("a private tmpfs per attempt needs CAP_SYS_ADMIN; this run is not root")
    run = Coordinator(load_one("regions: {A: {records: 1}, B: {records: 1}}", "/tmp/p.yaml")).run()
    assert private_workdirs(run)


def test_inline_context_leaks_what_fork_isolates(secret: None, tmp_path: Path) -> None:
    run = probe("inline", tmp_path)
    results = [run.regions[r] for r in "ABC"]
    assert all(r["secret_visible"] == 1 for r in results), "inline runs in the coordinator's environment"
    assert [r["module_state"] for r in results] == [1, 2, 3], "inline regions see each other's module state"
    assert skills.CALLS == ["A", "B", "C"], "and the coordinator sees theirs"


def test_a_processor_holds_no_fd_of_a_sibling(tmp_path: Path) -> None:
    text = """
seed: 1
skill: tests.skills:open_fds
regions: {A: {records: 3}, B: {records: 3}, C: {records: 3}}
expect: {concurrent: ["process-region-*"]}
"""
    run = Coordinator(load_one(text, tmp_path / "fds.yaml")).run()
    assert run.outcome == "COMPLETE", run.transcript
    for region_id in "ABC":
        assert run.regions[region_id]["sibling_fds"] == 0
        assert run.regions[region_id]["fds"] <= 8  # stdio, channel, go pipe, two memfds, the listing's own fd
