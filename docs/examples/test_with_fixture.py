"""Scenarios inside ordinary tests: the ``distproc`` fixture runs them and you assert on the run."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize("kind", ["raise", "crash", "hang"])
def test_a_single_retry_absorbs_any_first_failure(distproc: Any, kind: str) -> None:
    run = distproc.run({
        "seed": 1,
        "regions": {"A": {"records": 50}, "B": {"records": 50}},
        "policy": {"timeout": "1s", "retries": 1},
        "faults": [{"region": "B", "kind": kind, "attempts": [1]}],
    })
    assert run.outcome == "COMPLETE"
    assert [s.value for s in run.tasks.sequence("process-region-b")] == [
        "PENDING", "IN_PROGRESS", "FAILED", "IN_PROGRESS", "COMPLETE"]
    assert run.total is not None and run.total["count"] == 100
    assert distproc.check(run) == []  # the scenario's expectations (none here) and every invariant


def test_partial_total_leaves_the_failed_region_out(distproc: Any) -> None:
    run = distproc.run("""
        seed: 1
        regions: {A: {inline: [{value: 1}, {value: 3}]}, B: {records: 10}}
        policy: {retries: 0, on_region_failure: partial}
        faults: [{region: B, kind: signal, signal: SEGV}]
    """)
    assert run.missing == ["B"]
    assert run.total == pytest.approx({"count": 2, "sum": 4, "min": 1, "max": 3, "mean": 2, "variance": 1})
    assert "was killed by SIGSEGV" in run.transcript
