"""What would the fork backend gain from two environment-level fixes? Measured, not guessed.

    python -m benchmarks.whatif [--repeats N] [--json out.json]

Each condition runs in a fresh interpreter (imports and ``tempfile.tempdir`` are sticky) and times
``Coordinator(...).run()`` against the bare-fork floor of :mod:`benchmarks.inprocess`, at 3, 32 and 256
regions of 100 records:

- ``baseline``: as shipped.
- ``ctypes``: ``ctypes`` imported and libc loaded in the coordinator before forking, so the child's
  ``import ctypes`` in ``attempt.execute._die_with_parent`` is a dict lookup (what moving that import and
  the ``CDLL(None)`` to module level in attempt/execute.py would do).
- ``tmpfs``: the run dir on tmpfs (``/dev/shm``) instead of the default temp dir, so the
  per-attempt ``mkdtemp`` in the coordinator and the two files each child creates (stderr.txt,
  stack.txt) cost tmpfs prices.
- ``both``.
- ``all``: both, and no start barrier (children run as soon as they are forked instead of waiting
  for every sibling's hello), as the coordinator could do when the scenario has no
  ``expect.concurrent`` to prove.

No core file is changed: the conditions are applied in the benchmark process only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from benchmarks import inprocess as bench

CONDITIONS = ("baseline", "ctypes", "tmpfs", "both", "all")
SMALL = (("3x100", 3), ("32x100", 32), ("256x100", 256))


def apply(condition: str) -> None:
    if condition in ("ctypes", "both", "all"):
        import ctypes

        ctypes.CDLL(None, use_errno=True)
    if condition == "all":
        from pytest_distproc.backends.fork import ForkBackend

        start = ForkBackend.start

        def start_without_barrier(self: Any, job: Any, skill: Any, *, barrier: bool) -> Any:
            return start(self, job, skill, barrier=False)

        ForkBackend.start = start_without_barrier  # type: ignore[method-assign]
    if condition in ("tmpfs", "both", "all"):
        if not os.path.isdir("/dev/shm"):
            raise SystemExit("no /dev/shm here; the tmpfs condition needs it")
        tempfile.tempdir = "/dev/shm"


def child(condition: str, repeats: int) -> dict[str, Any]:
    apply(condition)
    out = {}
    for name, regions in SMALL:
        case = bench.measure_case(regions, 100, repeats, only=("fork_backend",))
        out[name] = {
            "fork_backend_median_s": case["fork_backend"]["median_s"],
            "bare_fork_median_s": case["bare_fork"]["median_s"],
            "ratio_to_bare_fork": case["ratio_to_bare_fork"]["fork_backend"],
            "ms_per_region": case["ms_per_region"]["fork_backend"],
            "parent_cpu_ms_per_region": case["fork_backend"]["parent_cpu_ms_per_region"],
            "children_cpu_ms_per_region": case["fork_backend"]["children_cpu_ms_per_region"],
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.whatif", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--child", choices=CONDITIONS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.repeats)))
        return 0
    results = {}
    for condition in CONDITIONS:
        print(f"measuring {condition} ...", file=sys.stderr, flush=True)
        command = [sys.executable, "-m", "benchmarks.whatif", "--child", condition,
                   "--repeats", str(args.repeats)]
        proc = subprocess.run(command, cwd=bench.REPO, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit(f"{condition} failed:\n{proc.stderr}")
        results[condition] = json.loads(proc.stdout.strip().splitlines()[-1])
    head = f"{'condition':<10} " + " ".join(f"{name + ' fork/bare':>17} {'ms/reg':>7}" for name, _ in SMALL)
    print(head)
    print("-" * len(head))
    for condition, cases in results.items():
        cells = [f"{cases[name]['ratio_to_bare_fork']:>16.2f}x {cases[name]['ms_per_region']:>7.2f}"
                 for name, _ in SMALL]
        print(f"{condition:<10} " + " ".join(cells))
    print("\nCPU ms per region at 256x100, coordinator / children:")
    for condition, cases in results.items():
        case = cases["256x100"]
        cpu = case["parent_cpu_ms_per_region"], case["children_cpu_ms_per_region"]
        print(f"  {condition:<10} {cpu[0]:.2f} / {cpu[1]:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"repeats": args.repeats, "conditions": results}, handle, indent=2)
            handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
