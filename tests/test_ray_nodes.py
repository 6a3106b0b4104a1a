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

from pytest_distproc.backends import raynodes
from pytest_distproc.backends.raynodes import Node
from pytest_distproc.checks.expectations import check_distinct_nodes, check_spread
from pytest_distproc.errors import ScenarioError
from pytest_distproc.report.text import timeline
from pytest_distproc.run.model import AttemptRecord, Run, create_tasks
from pytest_distproc.scenario.loader import load_one
from pytest_distproc.tasklist import TaskList
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
    _outcome, report = ran
    summary = _history(report, "ray-spread-over-three-nodes")
    nodes = {a["node"]["id"] for a in summary["attempts"]}
    assert len(nodes) == 3
    html = "\n".join(p.read_text() for p in report.rglob("*.html"))
    assert len(set(re.findall(r'class="node" data-node="(\w+)"', html))) >= 3  # one lane colour per node
    events = "".join(p.read_text() for p in report.glob("*ray-spread-over-three-nodes*/events.jsonl"))
    assert len(set(re.findall(r"is running on node (\w{6})", events))) == 3


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


# -- without a cluster: the contract and the checks on plain data ---------------------------------

PLACED = """\
name: placed
regions: {A: {records: 3}, B: {records: 3}}
policy: {retries: 1}
expect:
"""


def test_placement_expectations_load() -> None:
    scenario = load_one(PLACED + "  spread: {min_nodes: 2}\n  attempts_on_distinct_nodes: true\n", "p.yaml")
    assert (scenario.expect.min_nodes, scenario.expect.distinct_nodes) == (2, True)


@pytest.mark.parametrize(("body", "path", "fragment"), [
    ("  spread: {min_nodes: 0}\n", "$.expect.spread.min_nodes", "an integer of at least 1"),
    ("  spread: {nodes: 2}\n", "$.expect.spread", "min_nodes"),
    ("  attempts_on_distinct_nodes: yes please\n", "$.expect.attempts_on_distinct_nodes", "true or false"),
])
def test_bad_placement_expectations_are_located(body: str, path: str, fragment: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_one(PLACED + body, "p.yaml")
    problems = [p for p in caught.value.problems if p.path == path]
    assert problems and fragment in problems[0].message and problems[0].line == 5, caught.value.problems


def _run_on(nodes: list[str | None]) -> Run:
    scenario = load_one(PLACED + "  spread: {min_nodes: 3}\n", "p.yaml")
    run = Run(scenario, 1, "ray", TaskList())
    for index, name in enumerate(nodes):
        task = "process-region-a" if index < 2 else "process-region-b"
        run.attempts.append(AttemptRecord(task, task[-1].upper(), index % 2 + 1, 10 + index, 0.0,
                                          node={"id": name * 4, "name": name} if name else None))
    return run


def test_spread_and_distinct_nodes_are_checked_on_the_history() -> None:
    assert check_spread(_run_on(["aaaaaa", "bbbbbb", "cccccc"]), 3) == []
    assert check_spread(_run_on(["aaaaaa", "bbbbbb", "aaaaaa"]), 3) == [
        "spread: expected the attempts on at least 3 nodes, got 2 (aaaaaa, bbbbbb)"]
    assert check_distinct_nodes(_run_on(["aaaaaa", "bbbbbb", "aaaaaa"])) == []
    assert check_distinct_nodes(_run_on(["aaaaaa", "aaaaaa"])) == [
        "attempts_on_distinct_nodes: process-region-a attempts 1 and 2 both ran on node aaaaaa"]
    assert "placement is checked on backend: ray" in check_spread(_run_on([None, None]), 1)[0]


def test_node_fault_refusals_say_what_access_is_needed() -> None:
    def node(name: str, **kw: Any) -> Node:
        return Node(name * 5, name, None, 1, 1, "another-boot", os.getuid(), "/tmp", **kw)

    one = raynodes.refusal("worker-restart", [node("a")], "127.0.0.1:1")
    assert "needs a Ray cluster of at least 2 nodes" in one and "has 1" in one
    far = raynodes.refusal("node-loss", [node("h", head=True), node("b")], "127.0.0.1:1")
    assert "a worker node (not the head, not the driver's own) on this machine" in far
    assert "h: the head node; b: on another machine" in far
    assert raynodes.refusal("worker-restart", [node("h", head=True), node("b")], "127.0.0.1:1") == ""


def test_the_text_timeline_names_each_task_s_nodes() -> None:
    rows = timeline(_with_tasks(_run_on(["aaaaaa", "bbbbbb", "cccccc"]))).splitlines()
    assert next(r for r in rows if r.startswith("process-region-a")).endswith("; on node aaaaaa, bbbbbb)")
    assert next(r for r in rows if r.startswith("process-region-b")).endswith("; on node cccccc)")
    assert "on node" not in timeline(_with_tasks(_run_on([None, None])))


def _with_tasks(run: Run) -> Run:
    create_tasks(run.tasks, run.scenario)
    run.ended = 1.0
    return run
