"""The benchmark's one command keeps working: a tiny run prints its table and targets and writes JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_a_quick_benchmark_run_prints_ratios_and_targets_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [sys.executable, "-m", "benchmarks.bench", "--quick", "--repeats", "1", "--cases", "3x100",
               "--no-rss", "--no-collection", "--no-ray", "--json", str(out)]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "fork backend / bare fork at 3x100" in proc.stdout
    result = json.loads(out.read_text())
    case = result["cases"]["3x100"]
    assert set(case["ratio_to_bare_fork"]) == {"fork_backend", "bare_fork", "pool"}
    assert case["ratio_to_bare_fork"]["bare_fork"] == 1.0
    assert case["fork_backend"]["median_s"] > 0 and case["bare_fork"]["median_s"] > 0
    assert [t["target"] for t in result["targets"]] == ["fork backend / bare fork at 3x100"]
