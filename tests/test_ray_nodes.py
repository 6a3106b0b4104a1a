"""Node faults and placement on a real 3-node Ray cluster on 127.0.0.1, started for this module only.

The cluster is this module's own (tests/raycluster.py): node-loss kills one of its nodes, which no
other test may share. One pytest subprocess (the Ray driver) runs the shipped scenarios/ray/ and a
node-loss scenario last; then the cluster is stopped and must leave nothing: no raylet, GCS or
worker process, no session dir, no temp dir of ours.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import raycluster
from tests.helpers import Sandbox
from tests.test_ray import HAVE_RAY, ROOT, Outcome, alive, needs_ray, run_pytest

NODE_LOSS = """\
    # Runs last: it kills a node of the cluster for good.
    name: zz-node-loss-recovers
    seed: 5
    backend: ray
    regions: {A: {records: 20}, B: {records: 20}, C: {records: 20}}
    policy: {retries: 1, timeout: 60s}
    faults: [{region: B, kind: node-loss, attempts: [1]}]
    expect:
      outcome: COMPLETE
      attempts: {process-region-b: 2}
      attempts_on_distinct_nodes: true
      aggregate: {total: {records: 60}}
    """


@pytest.fixture(scope="module")
def cluster() -> Iterator[raycluster.RayCluster]:
    if not HAVE_RAY:
        pytest.skip("Ray cannot be imported: pip install 'pytest-distproc[ray]'")
    started = raycluster.start(3)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def ran(cluster: raycluster.RayCluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[Outcome, Path]:
    work = tmp_path_factory.mktemp("ray-nodes")
    (work / "pytest.ini").write_text("[pytest]\n")
    shutil.copytree(ROOT / "scenarios" / "ray", work / "ray")
    (work / "ray" / "zz-node-loss.yaml").write_text(textwrap.dedent(NODE_LOSS))
    report = work / "report"
    env = {**os.environ, **cluster.env, "DISTPROC_RAY_ADDRESS": cluster.address, "TMPDIR": str(cluster.tmpdir)}
    outcome = run_pytest(work, "--distproc-scenarios", "ray", "-rA", f"--distproc-report={report}", env=env,
                         timeout=400)
    return outcome, report


def _history(report: Path, name: str) -> dict[str, Any]:
    """The scenario's JSON report (``--distproc-report DIR``: ``DIR/<slug>/summary.json``)."""
    for path in report.glob(f"*{name}*/summary.json"):
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    raise AssertionError(f"no JSON report of {name} in {sorted(p.name for p in report.iterdir())}")


@needs_ray
def test_every_ray_scenario_passes_on_three_nodes(ran: tuple[Outcome, Path]) -> None:
    outcome, _ = ran
    assert len(outcome.items) == 4, outcome.output[-5000:]
    failed = {k: v for k, v in outcome.items.items() if v != "PASSED"}
    assert not failed, f"{failed}\n{outcome.output[-8000:]}"


@needs_ray
def test_the_history_of_a_three_node_run_shows_all_three_nodes(ran: tuple[Outcome, Path]) -> None:
    outcome, report = ran
    summary = _history(report, "ray-spread-over-three-nodes")
    nodes = {a["node"]["id"] for a in summary["attempts"]}
    assert len(nodes) == 3
    html = "\n".join(p.read_text() for p in report.rglob("*.html"))
    assert len(set(re.findall(r'class="node" data-node="(\w+)"', html))) >= 3  # one lane colour per node
    assert re.search(r"COMPLETE \(1 attempt; on node \w{6}\)", outcome.output)  # the text timeline


@needs_ray
def test_worker_restart_is_a_worded_failure_and_the_retry_runs_elsewhere(ran: tuple[Outcome, Path]) -> None:
    out = ran[0].output
    assert re.search(r"\* attempt 1: injected worker-restart on node (\w{6})", out)
    assert re.search(r"process-region-a attempt 1 \(pid \d+\) raised RayNodeLost: Ray lost the attempt on node "
                     r"\w{6}: its Ray worker process \(launcher pid \d+\) died \(fault worker-restart\)", out)


@needs_ray
def test_node_stall_our_timeout_decides(ran: tuple[Outcome, Path]) -> None:
    out = ran[0].output
    stalled = re.search(r"\* attempt 1: injected node-stall on node (\w{6})", out)
    assert stalled, out[-5000:]
    assert re.search(r"process-region-c attempt 1 \(pid \d+\) timed out \(limit 1 s\) and was killed with SIGKILL",
                     out)


@needs_ray
def test_node_loss_names_the_node_and_the_retry_lands_on_a_survivor(ran: tuple[Outcome, Path]) -> None:
    outcome, report = ran
    out = outcome.output
    lost = re.search(r"\* attempt 1: injected node-loss on node (\w{6})", out)
    assert lost, out[-5000:]
    assert re.search(rf"process-region-b attempt 1 \(pid \d+\) raised RayNodeLost: Ray lost the attempt on node "
                     rf"{lost[1]}: the node was killed \(fault node-loss; raylet pid \d+\)", out)
    summary = _history(report, "zz-node-loss-recovers")
    b = [a for a in summary["attempts"] if a["task"] == "process-region-b"]
    assert b[0]["node"]["name"] == lost[1] and b[1]["node"]["name"] != lost[1] and b[1]["ok"]


@needs_ray
def test_nothing_is_left_after_the_cluster_stops(ran: tuple[Outcome, Path], cluster: raycluster.RayCluster) -> None:
    pids = ran[0].pids()
    assert pids
    assert [p for p in pids if alive(p)] == [], "a forked child outlived its run"
    assert sorted(p.name for p in cluster.tmpdir.glob("distproc-ray-*")) == []
    base = cluster.base
    assert cluster.stop() == [], "a process or session dir of the cluster outlived it"
    assert not base.exists()


def test_a_node_fault_on_another_backend_is_refused(sandbox: Sandbox) -> None:
    sandbox.scenario(
        "on-fork",
        """\
        name: node-loss-on-fork
        seed: 1
        regions: {A: {records: 5}, B: {records: 5}}
        policy: {retries: 1}
        faults: [{region: B, kind: node-loss}]
        """,
    )
    result = sandbox.run("--distproc-scenarios")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "fault node-loss acts on a Ray node: it needs backend: ray (this run's backend is fork" in out
    assert "Traceback" not in out
    sandbox.assert_clean()
