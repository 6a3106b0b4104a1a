"""The Ray backend against plain Ray: is a scenario on ``backend: ray`` within 2x of what a user would write by hand?

B is the hand-written floor: N plain Ray tasks, each forking one child that does the region's work (the
``region-stats`` skill on the same generated records) and sends its summary back over a pipe. A is one
scenario of N regions on our Ray backend (``Coordinator.run()``: fork per attempt kept, TaskList, checks
of conservation, aggregation). A and B alternate within each pair, so both see the same machine;
the verdict is the median of the per-pair ratios A/B, with the spread (min..max) beside it.

    python -m benchmarks.ray_bench [--quick] [--regions 32 256] [--pairs 5]

It joins the cluster in ``DISTPROC_RAY_ADDRESS`` (with ``RAY_AUTH_TOKEN`` when the cluster uses token
auth), else starts a private local Ray for the run and stops it at exit. Exit status 0 when every
case meets the target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks.inprocess import make_scenario, region_ids, region_work, run_ray_backend

TARGET = 2.0
RECORDS = 100
SEED = 1


def _fork_task() -> Callable[[int, int, str], dict[str, float]]:
    """The plain-Ray variant's task body: fork one child that does the region's work, read its summary."""

    def forked(records: int, seed: int, region: str) -> dict[str, float]:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_fd)
                payload = json.dumps(region_work(records, seed, region)).encode()
                view = memoryview(payload)
                while view:
                    view = view[os.write(write_fd, view):]
            finally:
                os._exit(0)
        os.close(write_fd)
        chunks = []
        while chunk := os.read(read_fd, 65536):
            chunks.append(chunk)
        os.close(read_fd)
        os.waitpid(pid, 0)
        result: dict[str, float] = json.loads(b"".join(chunks))
        return result

    return forked


def measure(regions: int, pairs: int, ray: Any) -> dict[str, Any]:
    scenario = make_scenario(regions, RECORDS)
    # Defined here, so Ray ships the function by value: its workers need not import this module.
    task = ray.remote(max_retries=0)(_fork_task())
    ids = region_ids(regions)

    def ours() -> None:
        run_ray_backend(scenario)

    def plain() -> None:
        ray.get([task.remote(RECORDS, SEED, rid) for rid in ids])

    ours()
    plain()  # warm: the workers both variants use are started before the timed pairs
    ratios, a_times, b_times = [], [], []
    for index in range(pairs):
        order = (("a", ours), ("b", plain)) if index % 2 == 0 else (("b", plain), ("a", ours))
        took = {}
        for name, fn in order:
            began = time.perf_counter()
            fn()
            took[name] = time.perf_counter() - began
        a_times.append(took["a"])
        b_times.append(took["b"])
        ratios.append(took["a"] / took["b"])
    ratio = statistics.median(ratios)
    return {"regions": regions, "pairs": pairs, "ratio": ratio, "spread": (min(ratios), max(ratios)),
            "ms_per_region": {"ray_backend": 1000 * statistics.median(a_times) / regions,
                              "plain_ray": 1000 * statistics.median(b_times) / regions},
            "ok": ratio <= TARGET}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 pairs per case instead of 7")
    parser.add_argument("--pairs", type=int, default=None)
    parser.add_argument("--regions", type=int, nargs="+", default=[32, 256])
    args = parser.parse_args(argv)
    pairs = args.pairs or (3 if args.quick else 7)
    from pytest_distproc.backends import ray as ray_backend

    try:
        session = ray_backend.connect(os.environ.get("DISTPROC_RAY_ADDRESS") or None)
    except Exception as exc:
        print(f"SKIP: no Ray to measure on: {exc}")
        return 2
    ray = session.ray
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    print(f"Ray {ray.__version__}, {nodes} node(s), {RECORDS} records per region, "
          f"{pairs} A/B pairs per case, target <= {TARGET:g}x plain Ray tasks that each fork a child")
    print(f"{'regions':>8} {'ratio':>7} {'spread':>13} {'ms/region ours':>15} {'ms/region plain':>16}  verdict")
    verdicts = []
    for regions in args.regions:
        row = measure(regions, pairs, ray)
        low, high = row["spread"]
        ms = row["ms_per_region"]
        verdict = "PASS" if row["ok"] else "FAIL"
        verdicts.append(row["ok"])
        print(f"{regions:>8} {row['ratio']:>6.2f}x {low:>5.2f}..{high:<5.2f}x {ms['ray_backend']:>15.2f} "
              f"{ms['plain_ray']:>16.2f}  {verdict}", flush=True)
    print("PASS" if all(verdicts) else "FAIL")
    return 0 if all(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
