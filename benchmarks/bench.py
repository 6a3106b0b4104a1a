"""What a user pays: whole pytest processes running one scenario item, against a plain pytest test doing the same.

Run from the repository root::

    python -m benchmarks.bench [--quick] [--json out.json]

A (ours) is ``pytest --distproc-scenarios FILE``: one scenario item, collected, run on the fork backend,
checked (expectations, invariants, the oracle) and its transcript written. B (the floor) is ``pytest
FILE.py``: one plain test that forks N children, each generating the region's records exactly as
:func:`pytest_distproc.attempt.data.load` does and summarizing them with
:func:`pytest_distproc.attempt.stats.summarize`, sends its summary back as one JSON line, and merges.
Each run is a fresh process tree measured by :mod:`benchmarks.tree` (CPU = user + sys of every process
in it, peak RSS = the largest process's). A and B run as a pair, back to back, the first of the two
alternating from pair to pair; the verdict is the median of the per-pair ratios, printed with their
spread. See benchmarks/README.md for the cases, the targets and how to read the table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks import latency, ray_bench

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 42
RECORDS = 100
GROWTH = (3, 32, 256, 1024, 4096)
"""Regions per scenario of the growth table, each held to the CPU target."""
RUNS_AT_ALL = 10_000
"""Regions of the case that must only run (one pair, no ratio target)."""
QUICK_GROWTH = (3, 32, 256)
BIG = (3, 1_000_000)
"""Regions and records per region of the big-data case."""
COLLECT_FILES = 10_000
QUICK_COLLECT_FILES = 1_000
PYTEST = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider")


# -- the targets: a registry the other benchmarks add theirs to ---------------------------------


@dataclass(frozen=True)
class Target:
    """One promise the benchmark checks: ``read(result)`` <= ``limit`` (None: not measured in this run)."""

    name: str
    limit: float
    unit: str
    read: Callable[[dict[str, Any]], float | None]


@dataclass(frozen=True)
class Phase:
    """A part of the benchmark: what it measures (into ``result[name]``) and the targets it answers."""

    name: str
    measure: Callable[[argparse.Namespace], dict[str, Any] | None]
    targets: Sequence[Target]


def _dig(*keys: str | int) -> Callable[[dict[str, Any]], float | None]:
    def read(result: dict[str, Any]) -> float | None:
        value: Any = result
        for key in keys:
            if not isinstance(value, dict) or str(key) not in value:
                return None
            value = value[str(key)]
        return float(value) if value is not None else None
    return read


# -- one measured process tree -------------------------------------------------------------------


ENVIRONMENT: dict[str, str] = {}
"""Changes to the environment of every measured run (see :func:`bytecode_cached`)."""


def bytecode_cached(prefix: str) -> None:
    """Measure with Python's default, bytecode cached (in ``prefix``, so the venv stays as it was): with
    ``PYTHONDONTWRITEBYTECODE`` set, every pytest start recompiles and re-rewrites every plugin (~3 s of
    CPU here, for A and B alike), which would hide what a scenario itself costs."""
    ENVIRONMENT.update(PYTHONPYCACHEPREFIX=prefix, PYTHONDONTWRITEBYTECODE="")


def measure_tree(command: Sequence[str], cwd: str) -> dict[str, Any]:
    """Wall, CPU and peak RSS of ``command`` and everything it started (see :mod:`benchmarks.tree`)."""
    env = {**os.environ, **ENVIRONMENT}
    if not env.get("PYTHONDONTWRITEBYTECODE"):
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-m", "benchmarks.tree", "--", *command], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"benchmarks.tree failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def measure_pairs(a: Sequence[str], b: Sequence[str], cwd: str, pairs: int, label: str) -> dict[str, Any]:
    """``pairs`` runs of A and B back to back, who goes first alternating; per-pair ratios A / B."""
    samples: list[dict[str, Any]] = []
    for index in range(pairs):
        print(f"  {label}: pair {index + 1}/{pairs}", file=sys.stderr, flush=True)
        order = ("a", "b") if index % 2 == 0 else ("b", "a")
        measured: dict[str, dict[str, Any]] = {}
        for side in order:
            measured[side] = measure_tree(a if side == "a" else b, cwd)
            if measured[side]["returncode"] != 0:
                raise RuntimeError(f"{label}: {'A' if side == 'a' else 'B'} failed "
                                   f"({measured[side]['returncode']}):\n{measured[side]['stdout_tail']}\n"
                                   f"{measured[side]['stderr_tail']}")
        samples.append({side: {k: v for k, v in m.items() if not k.endswith("_tail")} for side, m in measured.items()})
    return {"pairs": pairs, "samples": samples,
            "cpu": _ratios(samples, "cpu_s"), "wall": _ratios(samples, "wall_s"),
            "peak_rss": _ratios(samples, "peak_rss_kib"),
            "a": _medians(samples, "a"), "b": _medians(samples, "b")}


def _ratios(samples: list[dict[str, Any]], key: str) -> dict[str, Any]:
    ratios = [s["a"][key] / s["b"][key] if s["b"][key] else math.inf for s in samples]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "each": ratios}


def _medians(samples: list[dict[str, Any]], side: str) -> dict[str, float]:
    return {key: statistics.median(s[side][key] for s in samples)
            for key in ("wall_s", "cpu_s", "user_s", "sys_s", "peak_rss_kib")}


# -- the two sides of a run case -----------------------------------------------------------------


def scenario_yaml(regions: int, records: int) -> str:
    """A: one scenario as a user writes it, with the checks users keep (a glob order rule, the total)."""
    lines = [f"name: bench-{regions}x{records}", f"seed: {SEED}", "policy: {timeout: 600s}", "regions:"]
    lines += [f"  R{i}: {{records: {records}}}" for i in range(regions)]
    lines += ["expect:", "  outcome: COMPLETE", "  order:",
              '    - "process-region-*:COMPLETE < aggregate-results:IN_PROGRESS"',
              f"  aggregate: {{total: {{records: {regions * records}}}}}"]
    return "\n".join(lines) + "\n"


PLAIN_TEST = '''\
"""B: a plain pytest test forking {regions} children that do a region's work each, then merging."""
import json
import os

from pytest_distproc.attempt import data, stats

REGIONS = [f"R{{i}}" for i in range({regions})]


def test_fork_join():
    read_fd, write_fd = os.pipe()
    pids = []
    for region in REGIONS:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(read_fd)
                rows = data.load({{"generate": {records}, "seed": {seed}, "region": region}})
                line = json.dumps({{"region": region, "summary": stats.summarize(data.values(rows))}}) + "\\n"
                os.write(write_fd, line.encode())  # one line under PIPE_BUF: written whole
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        parts = {{m["region"]: m["summary"] for m in map(json.loads, pipe.read().splitlines())}}
    assert all(os.waitpid(pid, 0)[1] == 0 for pid in pids)
    total = stats.merge(parts[region] for region in REGIONS)
    assert total["count"] == {regions} * {records}
'''


def measure_case(regions: int, records: int, pairs: int, top: str) -> dict[str, Any]:
    folder = tempfile.mkdtemp(prefix=f"case-{regions}x{records}-", dir=top)
    with open(os.path.join(folder, "scenario.yaml"), "w", encoding="utf-8") as handle:
        handle.write(scenario_yaml(regions, records))
    with open(os.path.join(folder, "test_plain.py"), "w", encoding="utf-8") as handle:
        handle.write(PLAIN_TEST.format(regions=regions, records=records, seed=SEED))
    a = (*PYTEST, "--distproc-scenarios", "scenario.yaml")
    b = (*PYTEST, "test_plain.py")
    out = measure_pairs(a, b, folder, pairs, f"{regions}x{records}")
    print(f"  {regions}x{records}: CPU A/B {_spread(out['cpu'])}, wall A/B {_spread(out['wall'])}, peak RSS A/B "
          f"{_spread(out['peak_rss'])}", file=sys.stderr, flush=True)
    return {"regions": regions, "records": records, **out}


# -- phases --------------------------------------------------------------------------------------


def measure_growth(args: argparse.Namespace) -> dict[str, Any] | None:
    counts = args.regions
    if not counts:
        return None
    cases: dict[str, Any] = {}
    with _workdir() as top:
        for regions in counts:
            pairs = args.pairs or _pairs(regions, args.quick)
            cases[str(regions)] = measure_case(regions, RECORDS, pairs, top)
    return cases


def _pairs(regions: int, quick: bool) -> int:
    if quick:
        return 3 if regions <= 256 else 1
    return 11 if regions <= 32 else 7 if regions <= 256 else 5 if regions <= 1024 else 3 if regions <= 4096 else 1


def measure_big(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.no_big:
        return None
    regions, records = BIG
    with _workdir() as top:
        return measure_case(regions, records, args.pairs or (1 if args.quick else 5), top)


def measure_collection(args: argparse.Namespace) -> dict[str, Any] | None:
    """``pytest --collect-only`` of N scenario files against N trivial ``.py`` test files."""
    if args.no_collection:
        return None
    files = args.collect_files or (QUICK_COLLECT_FILES if args.quick else COLLECT_FILES)
    with _workdir() as top:
        scenarios, plain = os.path.join(top, "scenarios"), os.path.join(top, "plain")
        os.makedirs(scenarios)
        os.makedirs(plain)
        for index in range(files):
            with open(os.path.join(scenarios, f"s{index:05d}.yaml"), "w", encoding="utf-8") as handle:
                handle.write(collection_scenario(index))
            with open(os.path.join(plain, f"test_{index:05d}.py"), "w", encoding="utf-8") as handle:
                handle.write(f"def test_{index:05d}():\n    assert {index} == {index}\n")
        a = (*PYTEST, "--collect-only", "--distproc-scenarios", "scenarios")
        b = (*PYTEST, "--collect-only", "plain")
        if not args.env_as_is:  # B's first collection compiles its N fresh files: a cost paid once, not per run
            print(f"  collect {files}: warming both sides' caches (not timed)", file=sys.stderr, flush=True)
            measure_tree(a, top)
            measure_tree(b, top)
        out = measure_pairs(a, b, top, args.pairs or (1 if args.quick else 5), f"collect {files}")
    return {"files": files, **out}


def collection_scenario(index: int) -> str:
    """A realistic scenario file: 1-5 regions, expectations, and a fault with a retry every third file."""
    ids = [chr(ord("A") + i) for i in range(1 + index % 5)]
    tasks = [f"process-region-{rid.lower()}" for rid in ids]
    faulted = index % 3 == 0
    lines = [f"name: generated-{index:05d}", f"description: Generated scenario {index}.", f"seed: {index}",
             "regions:", *(f"  {rid}: {{records: {100 + i}}}" for i, rid in enumerate(ids)),
             "policy: {timeout: 5s, retries: 1, backoff: 0s}"]
    if faulted:
        lines += ["faults:", f"  - {{region: {ids[-1]}, kind: raise, attempts: [1]}}"]
    lines += ["expect:", "  outcome: COMPLETE",
              "  status: {" + ", ".join(f"{t}: COMPLETE" for t in tasks) + ", aggregate-results: COMPLETE}",
              "  transitions:"]
    for task in tasks:
        retried = faulted and task == tasks[-1]
        lines.append(f"    {task}: [PENDING, IN_PROGRESS, {'FAILED, IN_PROGRESS, ' if retried else ''}COMPLETE]")
    lines += ["    aggregate-results: [BLOCKED, IN_PROGRESS, COMPLETE]", "  order:",
              '    - "process-region-*:COMPLETE < aggregate-results:IN_PROGRESS"',
              f"  aggregate: {{total: {{records: {sum(100 + i for i in range(len(ids)))}}}}}"]
    return "\n".join(lines) + "\n"


def measure_runs_at_all(args: argparse.Namespace) -> dict[str, Any] | None:
    if not args.runs_at_all:
        return None
    with _workdir() as top:
        try:
            return {"ran": 1, **measure_case(RUNS_AT_ALL, RECORDS, 1, top)}
        except RuntimeError as exc:
            return {"ran": 0, "error": str(exc)[-3000:]}


class _workdir:
    """A temp dir for one phase's files, removed after it whatever happens."""

    def __enter__(self) -> str:
        self.path = tempfile.mkdtemp(prefix="distproc-bench-")
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


CPU_RATIO = 1.2
MEMORY_RATIO = 1.2
COLLECT_RATIO = 1.0

LATENCY_PAIRS = (10, 60)
"""Runs of the overshoot and A/B pairs of the restart measure (``--quick``, full)."""
RAY_REGIONS = (32, 256)


def measure_latency(args: argparse.Namespace) -> dict[str, Any] | None:
    """benchmarks/latency.py's process-layer latencies; its 10,000-region run is ``runs_at_all``'s here."""
    if args.no_latency:
        return None
    return latency.measure(LATENCY_PAIRS[0] if args.quick else LATENCY_PAIRS[1], 0,
                           say=lambda line: print(line, file=sys.stderr, flush=True))


def measure_ray(args: argparse.Namespace) -> dict[str, Any] | None:
    """benchmarks/ray_bench.py on the Ray that ``DISTPROC_RAY_ADDRESS`` names (not with ``--quick``)."""
    if args.quick or args.no_ray or not os.environ.get("DISTPROC_RAY_ADDRESS"):
        return None
    from pytest_distproc.backends import ray as ray_backend

    ray = ray_backend.connect(os.environ["DISTPROC_RAY_ADDRESS"]).ray
    return {str(n): ray_bench.measure(n, 7, ray) for n in RAY_REGIONS}


PHASES: list[Phase] = [
    Phase("growth", measure_growth,
          [Target(f"CPU, one scenario / plain test forking N, at {n} regions", CPU_RATIO, "x",
                  _dig("growth", n, "cpu", "median")) for n in GROWTH]),
    Phase("runs_at_all", measure_runs_at_all,
          [Target(f"{RUNS_AT_ALL} regions run at all (failed runs)", 0, "",
                  lambda r: None if r.get("runs_at_all") is None else 1.0 - r["runs_at_all"]["ran"])]),
    Phase("big", measure_big,
          [Target(f"CPU at {BIG[0]} x {BIG[1]:,} records", CPU_RATIO, "x", _dig("big", "cpu", "median")),
           Target(f"peak RSS at {BIG[0]} x {BIG[1]:,} records", MEMORY_RATIO, "x", _dig("big", "peak_rss", "median"))]),
    Phase("collection", measure_collection,
          [Target("CPU, collecting N scenario files / N trivial .py test files", COLLECT_RATIO, "x",
                  _dig("collection", "cpu", "median"))]),
    Phase("latency", measure_latency,
          [Target("hang overshoot past its timeout (median)", latency.OVERSHOOT_TARGET * 1000, " ms",
                  _dig("latency", "overshoot_ms")),
           Target("SIGKILL -> next attempt running / a bare re-fork", latency.RESTART_TARGET, "x",
                  _dig("latency", "restart_ratio"))]),
    Phase("ray", measure_ray,
          [Target(f"Ray backend / plain Ray tasks forking a child, at {n} regions", ray_bench.TARGET, "x",
                  _dig("ray", n, "ratio")) for n in RAY_REGIONS]),
]


def verdicts(result: dict[str, Any], phases: Sequence[Phase] = ()) -> list[dict[str, Any]]:
    out = []
    for phase in phases or PHASES:
        for target in phase.targets:
            value = target.read(result)
            if value is not None:
                out.append({"target": target.name, "value": value, "limit": target.limit, "unit": target.unit,
                            "pass": value <= target.limit})
    return out


# -- report --------------------------------------------------------------------------------------


def render(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [f"pytest-distproc benchmark: whole pytest processes, A = one scenario item, B = a plain test forking N "
             f"(python {meta['python']}, {meta['cores']} cores, load {meta['loadavg_start'][0]:.2f}->"
             f"{meta['loadavg_end'][0]:.2f}, bytecode {meta['bytecode']}, {meta['seconds']:.0f} s wall, "
             f"{meta['cpu_s']:.0f} s CPU, git {meta['git']})", ""]
    head = (f"{'case':<14} {'pairs':>5} {'A cpu':>8} {'B cpu':>8} {'CPU A/B median [min-max]':>26} "
            f"{'A wall':>8} {'B wall':>8} {'wall A/B median [min-max]':>26} {'A/B peak RSS':>13}")
    lines += [head, "-" * len(head)]
    rows = [(f"{n} x {RECORDS}", case) for n, case in (result.get("growth") or {}).items()]
    at_all = result.get("runs_at_all")
    if at_all and at_all.get("ran"):
        rows.append((f"{RUNS_AT_ALL} x {RECORDS}", at_all))
    if result.get("big"):
        rows.append((f"{BIG[0]} x {BIG[1]:,}", result["big"]))
    if result.get("collection"):
        rows.append((f"collect {result['collection']['files']}", result["collection"]))
    for label, case in rows:
        lines.append(f"{label:<14} {case['pairs']:>5} {case['a']['cpu_s']:>7.2f}s {case['b']['cpu_s']:>7.2f}s "
                     f"{_spread(case['cpu']):>26} {case['a']['wall_s']:>7.2f}s {case['b']['wall_s']:>7.2f}s "
                     f"{_spread(case['wall']):>26} {case['peak_rss']['median']:>12.2f}x")
    if at_all and not at_all.get("ran"):
        lines.append(f"{RUNS_AT_ALL} regions did not run: {at_all['error'][-500:]}")
    if result.get("big"):
        big = result["big"]
        lines.append(f"{'':14} peak RSS at {BIG[0]} x {BIG[1]:,}: A {big['a']['peak_rss_kib'] / 1024:.0f} MiB, "
                     f"B {big['b']['peak_rss_kib'] / 1024:.0f} MiB (the largest process of each tree)")
    lines += ["", "targets (median of the per-pair ratios)"]
    for verdict in result["targets"]:
        lines.append(f"  {'PASS' if verdict['pass'] else 'FAIL'}  {verdict['target']}: {verdict['value']:.2f}"
                     f"{verdict['unit']} (target <= {verdict['limit']:g}{verdict['unit']})")
    return "\n".join(lines)


def _spread(ratios: dict[str, Any]) -> str:
    return f"{ratios['median']:.2f}x [{ratios['min']:.2f}-{ratios['max']:.2f}]"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=(__doc__ or "").split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"regions {', '.join(map(str, QUICK_GROWTH))} (3 pairs), 3 x 1M once, collection of "
                             f"{QUICK_COLLECT_FILES} files once; no {RUNS_AT_ALL} regions (under 2 minutes on 2 cores)")
    parser.add_argument("--regions", type=lambda s: [int(n) for n in s.split(",") if n], default=None,
                        help=f"region counts of the growth table (default {','.join(map(str, GROWTH))})")
    parser.add_argument("--pairs", type=int, default=None, help="pairs per case (default: by size)")
    parser.add_argument("--collect-files", type=int, default=None, help=f"files to collect (default {COLLECT_FILES})")
    parser.add_argument("--no-big", action="store_true", help=f"skip {BIG[0]} x {BIG[1]:,} records")
    parser.add_argument("--no-collection", action="store_true", help="skip the collection pair")
    parser.add_argument("--no-latency", action="store_true", help="skip benchmarks/latency.py's measures")
    parser.add_argument("--no-ray", action="store_true",
                        help="skip benchmarks/ray_bench.py (it runs only without --quick, on DISTPROC_RAY_ADDRESS)")
    parser.add_argument("--runs-at-all", action=argparse.BooleanOptionalAction, default=None,
                        help=f"run {RUNS_AT_ALL} regions once (default: on, off with --quick)")
    parser.add_argument("--env-as-is", action="store_true",
                        help="keep PYTHONDONTWRITEBYTECODE if set (default: bytecode cached, Python's default)")
    parser.add_argument("--json", metavar="PATH", help="write every number as JSON to PATH")
    args = parser.parse_args(argv)
    if args.regions is None:
        args.regions = list(QUICK_GROWTH if args.quick else GROWTH)
    if args.runs_at_all is None:
        args.runs_at_all = not args.quick
    meta = {"python": platform.python_version(), "platform": platform.platform(), "cores": _cores(),
            "loadavg_start": os.getloadavg(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git": _git_head(),
            "quick": args.quick}
    result: dict[str, Any] = {"meta": meta}
    started = time.perf_counter()
    with _workdir() as cache:
        if not args.env_as_is:
            bytecode_cached(cache)
            print("warming the bytecode cache (not timed) ...", file=sys.stderr, flush=True)
            with _workdir() as top:
                measure_case(3, RECORDS, 1, top)
        meta["bytecode"] = "as is" if args.env_as_is else "cached"
        for phase in PHASES:
            print(f"measuring {phase.name} ...", file=sys.stderr, flush=True)
            result[phase.name] = phase.measure(args)
            _write_json(args.json, result)  # after every phase: a long run stopped midway keeps what it measured
    meta["loadavg_end"] = os.getloadavg()
    meta["seconds"] = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # every tree, reaped by its benchmarks.tree
    meta["cpu_s"] = usage.ru_utime + usage.ru_stime
    result["targets"] = verdicts(result)
    print(render(result))
    _write_json(args.json, result)
    return 0


def _write_json(path: str | None, result: dict[str, Any]) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2, default=str)
            handle.write("\n")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _git_head() -> str:
    try:
        proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=False)
    except OSError:
        return ""
    return proc.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
