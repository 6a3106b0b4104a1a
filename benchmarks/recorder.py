"""The hook recorder's cost per Claude Code hook event, as a user's session pays it.

Run from the repository root::

    python -m benchmarks.recorder [--events 200]

Claude Code starts the hook command once per event and waits for it. Each variant gets the same
PostToolUse payload (a TaskUpdate result, ~1 KB) on stdin, ``--events`` times, and appends to a log in
a temp dir; medians are reported. ``recorder.sh`` (one ``date``, one ``tr``, one ``printf`` append) is
what we install; a Python one-liner doing the same is the baseline the docs compare it with, and an empty
``/bin/sh -c :`` the floor any command hook pays. The log
is then imported to check that every line was kept whole.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from pytest_distproc.claude_code.__main__ import recorder_path
from pytest_distproc.claude_code.recording import read_hook_log

TARGET_MS = 50.0
"""Per event, on a loaded 2-core machine: a fraction of a Python hook's start-up, and of a model turn."""
PAYLOAD = json.dumps({
    "session_id": "5b0c2d3e-0000-4000-8000-000000000000", "transcript_path": "/home/u/.claude/projects/p/s.jsonl",
    "cwd": "/home/u/project", "hook_event_name": "PostToolUse", "tool_name": "TaskUpdate",
    "agent_id": "ac3ea04284ad01ba8", "agent_type": "general-purpose",
    "tool_input": {"taskId": "2", "status": "in_progress"}, "tool_use_id": "toolu_0123456789",
    "tool_response": {"success": True, "taskId": "2", "updatedFields": ["status"],
                      "statusChange": {"from": "pending", "to": "in_progress"}, "padding": "x" * 600},
    "duration_ms": 12,
}).encode()
PYTHON_HOOK = ("import json,sys,time; line=json.dumps({'t': time.time(), 'hook': json.load(sys.stdin)}); "
               "open(sys.argv[1], 'a').write(line + '\\n')")


def per_event(command: list[str], events: int) -> list[float]:
    times = []
    for _ in range(events):
        start = time.perf_counter()
        subprocess.run(command, input=PAYLOAD, check=True)
        times.append(time.perf_counter() - start)
    return times


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recorder", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        shell_log, python_log = Path(tmp) / "sh.jsonl", Path(tmp) / "py.jsonl"
        shell = per_event(["/bin/sh", str(recorder_path()), str(shell_log)], args.events)
        python = per_event([sys.executable, "-c", PYTHON_HOOK, str(python_log)], max(20, args.events // 5))
        floor = per_event(["/bin/sh", "-c", ":"], max(20, args.events // 5))
        kept = len(read_hook_log(shell_log).hooks)
    median_ms = statistics.median(shell) * 1000
    print(f"recorder.sh: median {median_ms:.1f} ms per event, p90 {statistics.quantiles(shell, n=10)[-1] * 1000:.1f} "
          f"ms ({args.events} events, {kept} lines kept whole)")
    print(f"floor (/bin/sh -c :): median {statistics.median(floor) * 1000:.1f} ms per event")
    print(f"python hook baseline: median {statistics.median(python) * 1000:.1f} ms per event")
    ok = median_ms <= TARGET_MS and kept == args.events
    print(f"target: <= {TARGET_MS:.0f} ms per event, every line whole: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
