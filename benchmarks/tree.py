"""Run one command as a process tree and report what the whole tree cost: wall, CPU, peak RSS.

``python -m benchmarks.tree -- COMMAND...`` prints one JSON line. This process becomes a child subreaper
(``PR_SET_CHILD_SUBREAPER``) before it starts the command, so a descendant the command leaves to
outlive it (a fork server, an attempt's child) is reparented here and reaped: its CPU and peak RSS are
counted too, as ``getrusage(RUSAGE_CHILDREN)`` only counts processes someone waited for. One fresh
process per measurement, because ``ru_maxrss`` of the children is a maximum over everything ever reaped.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
REAP_GRACE_S = 10.0
"""Seconds the orphans a command left may take to exit before they are counted as left behind."""


def measure(command: list[str]) -> dict[str, object]:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the same, generous fd limit for A and B
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    left = 0
    deadline = time.monotonic() + REAP_GRACE_S
    while True:  # reap whatever was reparented to us; it belongs to the tree
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            if time.monotonic() > deadline:
                left += 1
                break
            time.sleep(0.01)
    tree_wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"returncode": proc.returncode, "wall_s": wall, "tree_wall_s": tree_wall,
            "user_s": usage.ru_utime, "sys_s": usage.ru_stime, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_kib": usage.ru_maxrss, "orphans_left": left, "nofile_soft_was": soft,
            "stdout_tail": proc.stdout[-3000:], "stderr_tail": proc.stderr[-3000:]}


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "--" or len(argv) < 2:
        print("usage: python -m benchmarks.tree -- COMMAND...", file=sys.stderr)
        return 2
    print(json.dumps(measure(argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
