"""Latency of the process layer: how late a hang is killed, how fast a killed attempt is replaced, and
whether a run of 10,000 regions runs at all.

Run from the repository root::

    python -m benchmarks.latency [--quick] [--pairs N] [--regions N]

Three numbers, each printed against its target; the exit status is non-zero when one is missed:

- **overshoot**: a region that hangs with ``policy.timeout: 0.2s`` (retries 0); how long after its
  deadline the coordinator saw it dead (``AttemptRecord.ended - started - timeout``), median over the
  runs (target <= 15 ms), with the spread, beside the machine's floor measured in turn with it (a bare
  parent that sleeps until the deadline, SIGKILLs its child and sees it dead);
- **kill -> next running**: a region whose first attempt SIGKILLs itself (``retries: 1``, no backoff);
  from the moment it sends the signal to the moment the second attempt's skill runs, against a bare
  re-fork doing the same (a parent forks a child that SIGKILLs itself, waits for it on a pidfd and forks
  the next). A and B alternate, one pair at a time, and the target (<= 1.5x) is on the median of the
  per-pair ratios; the spread is the ratios' interquartile range. Both sides read ``time.monotonic()``
  (one clock for the whole machine) in the child just before the kill and as the next child starts;
- **scale**: a run of ``--regions`` regions (10,000 by default, 2,000 with ``--quick``) with a cheap
  skill completes (it holds more fds than a common hard limit allows at once: attempts wait for room).
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_distproc.attempt import stats
from pytest_distproc.run.coordinator import Coordinator
from pytest_distproc.run.model import Run
from pytest_distproc.scenario.loader import load_one

OVERSHOOT_TARGET = 0.015
RESTART_TARGET = 1.5
TIMEOUT = 0.2

HANG = f"""\
name: hang
regions: {{A: {{inline: [{{value: 1}}]}}}}
policy: {{timeout: {TIMEOUT}s, retries: 0}}
faults: [{{region: A, kind: hang}}]
"""

KILLED_ONCE = """\
name: killed-once
skill: benchmarks.latency:killed_once
regions: {A: {inline: [{value: 1}]}}
policy: {timeout: 30s, retries: 1, backoff: 0s}
"""


def killed_once(records: list[dict[str, Any]], context: Mapping[str, Any]) -> dict[str, float]:
    """The skill of the restart measure: its first attempt notes the time and SIGKILLs itself, the next
    notes when it runs. The times go to stderr, which the coordinator keeps per attempt."""
    os.write(2, f"\nat {time.monotonic()!r}\n".encode())
    if context["attempt"] == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return stats.summarize([r["value"] for r in records])


def _noted(run: Run, attempt: int) -> float:
    text = run.attempts[attempt - 1].stderr
    return float(text.rsplit("at ", 1)[1].split()[0])


def overshoot() -> float:
    """One hang: seconds between its deadline and the coordinator seeing it dead."""
    run = Coordinator(load_one(HANG, "hang.yaml")).run()
    record = run.attempts[0]
    assert record.timed_out and record.ended is not None, run.transcript
    return record.ended - record.started - TIMEOUT


def overshoot_bare() -> float:
    """The machine's own floor: a parent sleeps until a child's deadline, SIGKILLs it, sees it dead."""
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        time.sleep(3600)
        os._exit(0)
    pidfd = os.pidfd_open(pid)
    try:
        select.select([pidfd], [], [], max(0.0, started + TIMEOUT - time.monotonic()))
        os.kill(pid, signal.SIGKILL)
        select.select([pidfd], [], [])
        seen = time.monotonic()
    finally:
        os.waitpid(pid, 0)
        os.close(pidfd)
    return seen - started - TIMEOUT


def restart_ours() -> float:
    """Seconds from attempt 1's SIGKILL to attempt 2's skill running, through the coordinator."""
    run = Coordinator(load_one(KILLED_ONCE, "killed-once.yaml")).run()
    assert run.outcome == "COMPLETE" and len(run.attempts) == 2, run.transcript
    return _noted(run, 2) - _noted(run, 1)


def restart_bare() -> float:
    """The same through a bare parent: fork, wait for the death on a pidfd, fork again."""
    read, write = os.pipe()
    try:
        times = []
        for attempt in (1, 2):
            pid = os.fork()
            if pid == 0:
                os.write(write, f"{time.monotonic()!r}\n".encode())
                if attempt == 1:
                    os.kill(os.getpid(), signal.SIGKILL)
                os._exit(0)
            pidfd = os.pidfd_open(pid)
            select.select([pidfd], [], [])
            os.waitpid(pid, 0)
            os.close(pidfd)
        for line in os.read(read, 4096).split():
            times.append(float(line))
        return times[1] - times[0]
    finally:
        os.close(read)
        os.close(write)


def scale(regions: int) -> tuple[str, float]:
    """The outcome and the wall time of one run of ``regions`` one-record regions."""
    listed = ", ".join(f"R{i}: {{inline: [{{value: {i}}}]}}" for i in range(regions))
    scenario = load_one(f"name: scale\npolicy: {{timeout: 600s}}\nregions: {{{listed}}}\n", "scale.yaml")
    started = time.perf_counter()
    run = Coordinator(scenario).run()
    return run.outcome, time.perf_counter() - started


def _spread(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 4:
        return min(values), max(values)
    quartiles = statistics.quantiles(values, n=4)
    return quartiles[0], quartiles[2]


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def measure(pairs: int, regions: int, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the three measures (the scale run only when ``regions``), print each against its target, and return
    the numbers (``ok``: every target met), as :mod:`benchmarks.bench`'s ``latency`` phase reads them."""
    restart_ours()  # warm-up: the fork server starts on first use
    late, floor = [], []
    for _ in range(pairs):
        late.append(overshoot())
        floor.append(overshoot_bare())
    median_late = statistics.median(late)
    low, high = _spread(late)
    say(f"overshoot past a {TIMEOUT:g} s timeout: median {median_late * 1000:.1f} ms "
        f"(IQR {low * 1000:.1f}-{high * 1000:.1f}, max {max(late) * 1000:.1f}) over {pairs} runs, the machine's "
        f"floor (sleep, SIGKILL, see it dead) {statistics.median(floor) * 1000:.1f} ms; "
        f"target <= {OVERSHOOT_TARGET * 1000:g} ms: {_verdict(median_late <= OVERSHOOT_TARGET)}")
    ratios, ours, bare = [], [], []
    for index in range(pairs):
        if index % 2 == 0:  # A first, then B; the next pair the other way round
            a, b = restart_ours(), restart_bare()
        else:
            b, a = restart_bare(), restart_ours()
        ours.append(a)
        bare.append(b)
        ratios.append(a / b)
    ratio = statistics.median(ratios)
    low, high = _spread(ratios)
    say(f"SIGKILL -> next attempt running: ours median {statistics.median(ours) * 1000:.2f} ms, bare re-fork "
        f"{statistics.median(bare) * 1000:.2f} ms; per-pair ratio median {ratio:.2f}x (IQR {low:.2f}-{high:.2f}) "
        f"over {pairs} pairs; target <= {RESTART_TARGET:g}x: {_verdict(ratio <= RESTART_TARGET)}")
    result: dict[str, Any] = {"overshoot_ms": median_late * 1000,
                              "overshoot_spread_ms": tuple(v * 1000 for v in _spread(late)),
                              "restart_ratio": ratio, "restart_spread": (low, high)}
    outcome = "COMPLETE"
    if regions:
        outcome, seconds = scale(regions)
        say(f"{regions:,} regions: {outcome} in {seconds:.1f} s ({seconds / regions * 1000:.2f} ms a region); "
            f"target: runs to COMPLETE: {_verdict(outcome == 'COMPLETE')}")
        result["scale"] = {"regions": regions, "outcome": outcome, "seconds": seconds}
    result["ok"] = median_late <= OVERSHOOT_TARGET and ratio <= RESTART_TARGET and outcome == "COMPLETE"
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="15 runs and pairs, 2,000 regions")
    parser.add_argument("--pairs", type=int, help="runs of the overshoot and pairs of the restart measure")
    parser.add_argument("--regions", type=int, help="regions of the scale run")
    args = parser.parse_args(argv)
    pairs = args.pairs or (15 if args.quick else 60)
    regions = args.regions or (2000 if args.quick else 10_000)
    return 0 if measure(pairs, regions)["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
