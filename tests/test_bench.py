"""The benchmark's one command keeps working, and what it measures is the whole process tree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks import bench

REPO = Path(__file__).resolve().parent.parent

ORPHAN_BURNING_CPU = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:  # reparented away from the command, which has exited by then
        end = time.process_time() + 0.6
        while time.process_time() < end:
            pass
    os._exit(0)
os.wait()
"""


def test_the_tree_counts_the_cpu_of_a_descendant_that_outlived_the_command() -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.tree", "--", sys.executable, "-c", ORPHAN_BURNING_CPU],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    measured = json.loads(proc.stdout)
    assert measured["returncode"] == 0 and measured["orphans_left"] == 0
    assert measured["cpu_s"] >= 0.55  # the orphan's 0.6 s: reparented to the tree and reaped there


def test_a_target_passes_or_fails_on_the_median_of_the_per_pair_ratios() -> None:
    result = {"growth": {"3": {"cpu": {"median": 1.1}}, "32": {"cpu": {"median": 1.3}}}}
    found = {v["target"]: v["pass"] for v in bench.verdicts(result)}
    assert found == {"CPU, one scenario / plain test forking N, at 3 regions": True,
                     "CPU, one scenario / plain test forking N, at 32 regions": False}  # the rest: not measured
    extra = bench.Phase("latency", lambda args: None, [bench.Target("overshoot", 15, "ms", lambda r: r["ms"])])
    assert bench.verdicts({"ms": 20.0}, [extra]) == [
        {"target": "overshoot", "value": 20.0, "limit": 15, "unit": "ms", "pass": False}]


def test_a_tiny_benchmark_run_prints_the_pair_table_and_the_targets_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "benchmarks.bench", "--regions", "3", "--pairs", "2", "--no-big",
               "--no-collection", "--no-runs-at-all", "--no-latency", "--no-ray", "--json", str(out)]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "3 x 100" in proc.stdout and "CPU, one scenario / plain test forking N, at 3 regions" in proc.stdout
    result = json.loads(out.read_text())
    case = result["growth"]["3"]
    assert case["pairs"] == 2 and len(case["cpu"]["each"]) == 2
    first, second = case["samples"]
    assert list(first) == ["a", "b"] and list(second) == ["b", "a"]  # who goes first alternates
    assert case["a"]["cpu_s"] > 0 and case["b"]["cpu_s"] > 0
    assert [t["target"] for t in result["targets"]] == ["CPU, one scenario / plain test forking N, at 3 regions"]
