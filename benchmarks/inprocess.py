"""Diagnostics inside one process: ``Coordinator.run()`` against a bare ``os.fork`` floor, a pool and Ray.

What users pay (whole pytest processes, the targets) is :mod:`benchmarks.bench`; this one times only the
coordinator, for finding where a cost lives.

Run from the repository root::

    python -m benchmarks.inprocess [--quick] [--json out.json]

Every variant does the same per-region work, in the same process tree and the same run: generate
the region's records exactly as :func:`pytest_distproc.attempt.data.load` does for
``{"generate": n, "seed": s, "region": id}``, summarize them with
:func:`pytest_distproc.attempt.stats.summarize`, send the summary back as JSON (or pickle, for the pool),
and merge the summaries in the parent. Variants are interleaved round-robin within each repetition,
so drift in machine load (the cores are shared) spreads over all of them alike; medians are reported.

See benchmarks/README.md for what is measured, the targets, and how to read the table.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import multiprocessing
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from pytest_distproc.attempt import data
from pytest_distproc.attempt import stats as summary
from pytest_distproc.backends import forkserver
from pytest_distproc.run.coordinator import Coordinator
from pytest_distproc.scenario.loader import load_one
from pytest_distproc.scenario.model import Scenario

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED = 42
CASES = (  # name, regions, records per region
    ("3x100", 3, 100),
    ("32x100", 32, 100),
    ("256x100", 256, 100),
    ("3x1M", 3, 1_000_000),
)
TARGET_RATIO_SMALL = 1.5  # fork backend / bare fork, at 3 and 32 regions
TARGET_MS_PER_REGION = 2.0  # fork backend, at 256 regions
TARGET_IDEAL_RATIO = 1.3  # fork backend / ideal parallel time, at 3 x 1M
TARGET_COLLECT_S = 2.0  # pytest --collect-only of 1000 scenario files
COLLECT_FILES = 1000
VARIANTS = ("fork_backend", "bare_fork", "pool")
RAY = "ray_backend"  # measured too when ray is installed: a private local Ray on 127.0.0.1
NO_HYPOTHESIS = ("-p", "no:hypothesispytest")


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def region_ids(count: int) -> list[str]:
    return [f"R{i}" for i in range(count)]


# -- the per-region work, shared by every variant ------------------------------------------------


def region_work(records: int, seed: int, region: str) -> dict[str, float]:
    """What the built-in ``region-stats`` skill does in the child, on the same generated records."""
    rows = data.load({"generate": records, "seed": seed, "region": region})
    return summary.summarize(data.values(rows))


def _region_work_args(args: tuple[int, int, str]) -> dict[str, float]:
    return region_work(*args)


# -- variants ------------------------------------------------------------------------------------


def make_scenario(regions: int, records: int) -> Scenario:
    lines = [f"name: bench-{regions}x{records}", f"seed: {SEED}", "policy: {timeout: 600s}", "regions:"]
    lines += [f"  {rid}: {{records: {records}}}" for rid in region_ids(regions)]
    return load_one("\n".join(lines) + "\n", os.path.join(REPO, "benchmarks", "generated.yaml"))


def run_fork_backend(scenario: Scenario) -> dict[str, float]:
    run = Coordinator(scenario).run()
    if run.outcome != "COMPLETE" or run.total is None:
        raise RuntimeError(f"fork backend run of {scenario.name} ended {run.outcome}:\n{run.transcript}")
    return run.total


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view):]


def run_ray_backend(scenario: Scenario) -> dict[str, float]:
    """The same scenario on the Ray backend: each attempt a Ray task forking its own child in a worker."""
    run = Coordinator(scenario, backend="ray").run()
    if run.outcome != "COMPLETE" or run.total is None:
        raise RuntimeError(f"ray backend run of {scenario.name} ended {run.outcome}:\n{run.transcript}")
    return run.total


def measure_ray(cases: Sequence[tuple[str, int, int]], repeats: int, repeats_1m: int) -> dict[str, Any]:
    """The ray backend on a private local Ray, beside a bare fork measured again (an idle Ray's background
    work slows everything next to it). Never raises: whatever fails is recorded, and Ray is shut down."""
    out: dict[str, Any] = {"status": "measured", "start_ms": None, "cases": {}}
    try:
        from pytest_distproc.backends import ray as ray_backend

        ray = ray_backend.import_ray()
    except ImportError as exc:
        return {**out, "status": f"not installed ({exc}): pip install -e '.[ray]'"}
    except Exception as exc:  # e.g. DistprocError from import_ray when ray cannot be imported
        return {**out, "status": f"unavailable: {exc}"}
    try:
        started = time.perf_counter()
        ray_backend.connect(None)
        run_ray_backend(make_scenario(3, 100))  # workers start on first use: not in the timed runs
        out["start_ms"] = 1000 * (time.perf_counter() - started)
        for name, regions, records in cases:
            print(f"measuring {name} on ray ...", file=sys.stderr, flush=True)
            try:
                phase = measure_case(regions, records, repeats_1m if records >= 100_000 else repeats,
                                     only=(RAY,), serial=False)
            except Exception as exc:
                out["cases"][name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
                continue
            out["cases"][name] = {**phase[RAY], "bare_fork_beside": phase["bare_fork"],
                                  "ratio_to_bare_fork_beside": phase["ratio_to_bare_fork"][RAY],
                                  "ms_per_region": phase["ms_per_region"][RAY]}
    except Exception as exc:
        out["status"] = f"failed: {type(exc).__name__}: {exc}"[:2000]
    finally:
        try:
            ray.shutdown()  # now, not at exit: nothing measured after this runs beside an idle Ray
        except Exception:
            pass
    return out


def run_bare_fork(regions: Sequence[str], records: int) -> dict[str, float]:
    """The floor: fork every child, each writes its summary as one JSON line, parent reads, reaps, merges."""
    children: list[tuple[str, int, int]] = []
    for rid in regions:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: never returns
            code = 1
            try:
                os.close(read_fd)
                _write_all(write_fd, (json.dumps(region_work(records, SEED, rid)) + "\n").encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_fd)
        children.append((rid, pid, read_fd))
    parts: dict[str, dict[str, float]] = {}
    for rid, pid, read_fd in children:
        chunks = []
        while chunk := os.read(read_fd, 65536):
            chunks.append(chunk)
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"bare fork child for {rid} failed with status {status}")
        parts[rid] = json.loads(b"".join(chunks))
    return summary.merge(parts[rid] for rid in regions)


def run_pool(regions: Sequence[str], records: int) -> dict[str, float]:
    """ProcessPoolExecutor with the fork context; pool creation and shutdown included."""
    context = multiprocessing.get_context("fork")
    workers = min(len(regions), cores())
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        parts = list(pool.map(_region_work_args, [(records, SEED, rid) for rid in regions]))
    return summary.merge(parts)


def run_serial(regions: Sequence[str], records: int) -> float:
    """Seconds of the per-region work done one after the other in this process (for the ideal time)."""
    started = time.perf_counter()
    for rid in regions:
        region_work(records, SEED, rid)
    return time.perf_counter() - started


def _same_total(a: dict[str, float], b: dict[str, float]) -> bool:
    return int(a["count"]) == int(b["count"]) and all(
        summary.close(float(a[k]), float(b[k]), rel=1e-9, abs_tol=1e-6) for k in ("sum", "min", "max", "mean")
    )


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _server_cpu() -> float:
    """CPU seconds of the fork server and of the attempts it reaped (they are not our children)."""
    server = forkserver.current()
    if server is None:
        return 0.0
    usage = server.usage()
    return float(usage["self"]["cpu_s"] + usage["children"]["cpu_s"])


def _timed(fn: Callable[[], Any]) -> tuple[float, float, float, Any]:
    """Wall seconds, CPU seconds of this process, CPU seconds of the children reaped meanwhile (the
    fork server and its attempts count as children), result."""
    gc.collect()
    own, kids, served = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN), _server_cpu()
    started = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - started
    kids_cpu = _cpu(resource.RUSAGE_CHILDREN) - kids + _server_cpu() - served
    return wall, _cpu(resource.RUSAGE_SELF) - own, kids_cpu, result


def measure_case(
    regions: int, records: int, repeats: int, only: Sequence[str] = VARIANTS, serial: bool = True
) -> dict[str, Any]:
    ids = region_ids(regions)
    scenario = make_scenario(regions, records)
    every: dict[str, Callable[[], Any]] = {
        "fork_backend": lambda: run_fork_backend(scenario),
        "bare_fork": lambda: run_bare_fork(ids, records),
        "pool": lambda: run_pool(ids, records),
        RAY: lambda: run_ray_backend(scenario),
    }
    variants = {name: fn for name, fn in every.items() if name in only or name == "bare_fork"}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    parent_cpu: dict[str, list[float]] = {name: [] for name in variants}
    child_cpu: dict[str, list[float]] = {name: [] for name in variants}
    serial_s: list[float] = []
    totals: dict[str, dict[str, float]] = {}
    for rep in range(repeats):
        order = list(variants)
        order = order[rep % len(order):] + order[: rep % len(order)]  # rotate who goes first
        for name in order:
            seconds, own, kids, total = _timed(variants[name])
            samples[name].append(seconds)
            parent_cpu[name].append(own)
            child_cpu[name].append(kids)
            totals[name] = total
        if records >= 100_000 and serial:
            gc.collect()
            serial_s.append(run_serial(ids, records))
    reference = totals["bare_fork"]
    for name, total in totals.items():
        if not _same_total(total, reference):
            raise RuntimeError(f"{name} total {total} differs from the bare fork's {reference}")
    out: dict[str, Any] = {"regions": regions, "records_per_region": records, "repeats": repeats}
    for name, values in samples.items():
        out[name] = {"median_s": statistics.median(values), "min_s": min(values), "samples_s": values,
                     "parent_cpu_ms_per_region": 1000 * statistics.median(parent_cpu[name]) / regions,
                     "children_cpu_ms_per_region": 1000 * statistics.median(child_cpu[name]) / regions}
    floor = out["bare_fork"]["median_s"]
    out["ratio_to_bare_fork"] = {name: out[name]["median_s"] / floor for name in variants}
    out["ms_per_region"] = {name: 1000 * out[name]["median_s"] / regions for name in variants}
    if serial_s:
        ideal = statistics.median(serial_s) / min(regions, cores())
        out["serial_s"] = {"median_s": statistics.median(serial_s), "samples_s": serial_s}
        out["ideal_s"] = ideal
        out["ratio_to_ideal"] = {name: out[name]["median_s"] / ideal for name in variants}
    return out


# -- peak RSS of a 256-region run, in a subprocess of its own ------------------------------------


def rss_probe(variant: str) -> dict[str, Any]:
    """Run one 256 x 100 run of ``variant`` in this (fresh) process and report its maxrss numbers."""
    ids = region_ids(256)
    if variant == "fork_backend":
        scenario = make_scenario(256, 100)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        run_fork_backend(scenario)
    elif variant == "bare_fork":
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        run_bare_fork(ids, 100)
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        run_pool(ids, 100)
    running = forkserver.current() if variant == "fork_backend" else None
    server = running.usage() if running else None
    return {
        "variant": variant,
        "fork_server_maxrss_kib": server["self"]["maxrss_kib"] if server else None,
        "fork_server_children_maxrss_kib": server["children"]["maxrss_kib"] if server else None,
        # ru_maxrss is in KiB on Linux and survives execve: a subprocess starts with its parent's
        # peak. measure_rss() therefore runs before the big cases; VmHWM is this mm's own peak.
        "self_maxrss_before_kib": before,
        "self_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "self_vmhwm_kib": _vmhwm_kib(),
        "children_maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    }


def _vmhwm_kib() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for row in handle:
                if row.startswith("VmHWM:"):
                    return int(row.split()[1])
    except OSError:
        pass
    return None


def measure_rss() -> dict[str, Any]:
    out = {}
    for variant in ("fork_backend", "bare_fork", "pool"):
        proc = subprocess.run([sys.executable, "-m", "benchmarks.inprocess", "--rss-probe", variant],
                              cwd=REPO, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"rss probe {variant} failed:\n{proc.stderr}")
        out[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# -- collection of 1000 scenario files -----------------------------------------------------------


def scenario_text(index: int) -> str:
    """A realistic scenario file: 1-5 regions, expectations, and a fault with a retry every third file."""
    regions = 1 + index % 5
    ids = [chr(ord("A") + i) for i in range(regions)]
    tasks = [f"process-region-{rid.lower()}" for rid in ids]
    faulted = index % 3 == 0
    lines = [
        f"name: generated-{index:04d}",
        f"description: Generated scenario {index} with {regions} region(s).",
        f"seed: {index}",
        "regions:",
        *(f"  {rid}: {{records: {100 + i}}}" for i, rid in enumerate(ids)),
        "policy: {timeout: 5s, retries: 1, backoff: 0s}",
    ]
    if faulted:
        lines += ["faults:", f"  - {{region: {ids[-1]}, kind: raise, attempts: [1]}}"]
    lines += [
        "expect:",
        "  outcome: COMPLETE",
        "  status: {" + ", ".join(f"{t}: COMPLETE" for t in tasks) + ", aggregate-results: COMPLETE}",
        "  transitions:",
    ]
    for task in tasks:
        retried = faulted and task == tasks[-1]
        states = "PENDING, IN_PROGRESS, " + ("FAILED, IN_PROGRESS, COMPLETE" if retried else "COMPLETE")
        lines.append(f"    {task}: [{states}]")
    lines += [
        "    aggregate-results: [BLOCKED, IN_PROGRESS, COMPLETE]",
        "  order:",
        '    - "process-region-*:COMPLETE < aggregate-results:IN_PROGRESS"',
        "  aggregate:",
        f"    total: {{records: {sum(100 + i for i in range(regions))}}}",
    ]
    return "\n".join(lines) + "\n"


def _collect_once(directory: str, *extra: str, env: dict[str, str] | None = None) -> tuple[float, int, str]:
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "--distproc-scenarios", directory,
               "-p", "no:cacheprovider", *extra]
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False, env=env)
    seconds = time.perf_counter() - started
    found = re.search(r"(\d+) tests? collected", proc.stdout)
    collected = int(found.group(1)) if found else 0
    if proc.returncode not in (0, 5):  # 5: nothing collected (the empty baseline)
        raise RuntimeError(f"collection failed ({proc.returncode}):\n"
                           f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return seconds, collected, proc.stdout


def _cached_bytecode_env(prefix: str) -> dict[str, str]:
    """Python's default (bytecode cached), with the cache in ``prefix`` so the venv is left as it was.

    pytest keeps the assertion-rewritten plugin modules (all of hypothesis, xdist, ours) in the same
    cache; with PYTHONDONTWRITEBYTECODE set it rewrites them from source in every run.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = prefix
    return env


def measure_collection(repeats: int) -> dict[str, Any]:
    top = tempfile.mkdtemp(prefix="distproc-bench-collect-")
    try:
        many = os.path.join(top, "scenarios")
        empty = os.path.join(top, "empty")
        os.makedirs(many)
        os.makedirs(empty)
        for index in range(COLLECT_FILES):
            with open(os.path.join(many, f"s{index:04d}.yaml"), "w", encoding="utf-8") as handle:
                handle.write(scenario_text(index))
        cached = _cached_bytecode_env(os.path.join(top, "pycache"))
        _collect_once(many, env=cached)  # warm the bytecode cache: not timed
        runs: dict[str, list[float]] = {name: [] for name in (
            "full", "empty", "cached_full", "cached_empty", "no_hypothesis_full", "no_hypothesis_empty")}
        collected = 0
        for _ in range(repeats):
            seconds, collected, output = _collect_once(many)
            if collected != COLLECT_FILES:
                raise RuntimeError(f"collected {collected} of {COLLECT_FILES} scenarios:\n{output[-3000:]}")
            runs["full"].append(seconds)
            runs["empty"].append(_collect_once(empty)[0])
            runs["cached_full"].append(_collect_once(many, env=cached)[0])
            runs["cached_empty"].append(_collect_once(empty, env=cached)[0])
            # Diagnostics: without hypothesis' pytest plugin, which imports all of hypothesis at the end.
            runs["no_hypothesis_full"].append(_collect_once(many, *NO_HYPOTHESIS)[0])
            runs["no_hypothesis_empty"].append(_collect_once(empty, *NO_HYPOTHESIS)[0])
    finally:
        shutil.rmtree(top, ignore_errors=True)
    medians = {name: statistics.median(samples) for name, samples in runs.items()}
    return {
        "files": COLLECT_FILES,
        "collected": collected,
        "repeats": repeats,
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", ""),
        "median_s": medians["full"],
        "empty_dir_median_s": medians["empty"],
        "ms_per_file_over_startup": 1000 * (medians["full"] - medians["empty"]) / COLLECT_FILES,
        "bytecode_cached": {
            "median_s": medians["cached_full"],
            "empty_dir_median_s": medians["cached_empty"],
            "ms_per_file_over_startup": 1000 * (medians["cached_full"] - medians["cached_empty"]) / COLLECT_FILES,
        },
        "without_hypothesis_plugin": {
            "args": list(NO_HYPOTHESIS),
            "median_s": medians["no_hypothesis_full"],
            "empty_dir_median_s": medians["no_hypothesis_empty"],
        },
        "samples_s": runs,
        "temp_dir_removed": not os.path.exists(top),
    }


# -- report --------------------------------------------------------------------------------------


def targets(cases: dict[str, Any], collection: dict[str, Any] | None) -> list[dict[str, Any]]:
    out = []

    def add(name: str, value: float, limit: float, unit: str) -> None:
        out.append({"target": name, "value": value, "limit": limit, "unit": unit, "pass": value <= limit})

    for case in ("3x100", "32x100"):
        if case in cases:
            add(f"fork backend / bare fork at {case}", cases[case]["ratio_to_bare_fork"]["fork_backend"],
                TARGET_RATIO_SMALL, "x")
    if "256x100" in cases:
        add("fork backend ms per region at 256x100", cases["256x100"]["ms_per_region"]["fork_backend"],
            TARGET_MS_PER_REGION, "ms")
    if "3x1M" in cases:
        add("fork backend / ideal at 3x1M", cases["3x1M"]["ratio_to_ideal"]["fork_backend"],
            TARGET_IDEAL_RATIO, "x")
    if collection is not None:
        flag = collection["PYTHONDONTWRITEBYTECODE"]
        add(f"collect {COLLECT_FILES} scenario files, bytecode cached (Python's default)",
            collection["bytecode_cached"]["median_s"], TARGET_COLLECT_S, "s")
        add(f"collect {COLLECT_FILES} scenario files, environment as is (PYTHONDONTWRITEBYTECODE={flag or 'unset'})",
            collection["median_s"], TARGET_COLLECT_S, "s")
    return out


def render(result: dict[str, Any]) -> str:
    cases, lines = result["cases"], []
    meta = result["meta"]
    lines.append(f"pytest-distproc benchmark  python {meta['python']}  cores {meta['cores']}  "
                 f"load {meta['loadavg_start'][0]:.2f}->{meta['loadavg_end'][0]:.2f}  "
                 f"repeats {meta['repeats']} (1M: {meta['repeats_1m']})  "
                 f"tempdir {meta['tempdir']} ({meta['tempdir_fs']})  git {meta['git']}")
    start = meta.get("fork_server_start_ms")
    lines.append(f"fork server: started once in {start:.0f} ms, not in the runs below" if start else "fork server: off")
    lines.append("")
    head = (f"{'case':<9} {'fork backend':>13} {'bare fork':>11} {'pool':>11} "
            f"{'fork/bare':>10} {'pool/bare':>10} {'fork ms/reg':>12} {'bare ms/reg':>12}")
    lines += ["median wall time per run (fork backend = Coordinator(...).run())", head, "-" * len(head)]
    for name, case in cases.items():
        ratio, per = case["ratio_to_bare_fork"], case["ms_per_region"]
        lines.append(
            f"{name:<9} {_ms(case['fork_backend']['median_s']):>13} {_ms(case['bare_fork']['median_s']):>11} "
            f"{_ms(case['pool']['median_s']):>11} {ratio['fork_backend']:>9.2f}x {ratio['pool']:>9.2f}x "
            f"{per['fork_backend']:>12.2f} {per['bare_fork']:>12.2f}"
        )
    ray = result.get("ray")
    if ray:
        if ray["start_ms"] is not None:
            lines += ["", f"ray backend (a private local Ray on 127.0.0.1, started in {ray['start_ms']:.0f} ms with a "
                      "warm-up run; measured last, beside a bare fork run again)"]
        else:
            lines += ["", f"ray backend: {ray['status']}"]
        for name, case in ray["cases"].items():
            if "error" in case:
                lines.append(f"{name:<9} failed: {case['error'][:200]}")
                continue
            lines.append(f"{name:<9} {_ms(case['median_s']):>13}  bare fork beside it "
                         f"{_ms(case['bare_fork_beside']['median_s'])}: {case['ratio_to_bare_fork_beside']:.2f}x, "
                         f"{case['ms_per_region']:.2f} ms per region")
        if ray["start_ms"] is not None and not ray["status"].startswith("measured"):
            lines.append(f"  {ray['status'][:300]}")
    lines += ["", "median CPU ms per region, parent / children (children: reaped during the run, all cores)"]
    for name, case in cases.items():
        cells = [f"{v} {case[v]['parent_cpu_ms_per_region']:.2f} / "
                 f"{case[v]['children_cpu_ms_per_region']:.2f}" for v in VARIANTS]  # Ray's workers are not ours
        lines.append(f"{name:<9} " + "   ".join(cells))
    if "3x1M" in cases:
        case = cases["3x1M"]
        lines += [
            "",
            f"3x1M: serial per-region work {_ms(case['serial_s']['median_s'])}, ideal = serial / "
            f"min(3, {meta['cores']} cores) = {_ms(case['ideal_s'])}",
            "      ratio to ideal: " + ", ".join(f"{k} {v:.2f}x" for k, v in case["ratio_to_ideal"].items()),
        ]
    if result.get("rss"):
        lines += ["", "peak RSS of one 256x100 run in a fresh subprocess (maxrss, MiB)"]
        for variant, rss in result["rss"].items():
            hwm = rss.get("self_vmhwm_kib")
            lines.append(f"  {variant:<13} self {rss['self_maxrss_kib'] / 1024:7.1f}  "
                         f"(before run {rss['self_maxrss_before_kib'] / 1024:.1f}, "
                         f"VmHWM {hwm / 1024 if hwm else float('nan'):.1f})  "
                         f"largest child {rss['children_maxrss_kib'] / 1024:7.1f}")
            if rss.get("fork_server_maxrss_kib"):
                lines.append(f"  {'':<13} fork server {rss['fork_server_maxrss_kib'] / 1024:.1f}, largest attempt "
                             f"{rss['fork_server_children_maxrss_kib'] / 1024:.1f}")
    collection = result.get("collection")
    if collection:
        bare, cached = collection["without_hypothesis_plugin"], collection["bytecode_cached"]
        lines += [
            "",
            f"collection: pytest --collect-only -q --distproc-scenarios DIR ({collection['files']} files), medians",
            f"  bytecode cached:  {cached['median_s']:.2f} s; empty dir {cached['empty_dir_median_s']:.2f} s; "
            f"{cached['ms_per_file_over_startup']:.2f} ms per file over start-up",
            f"  environment as is (PYTHONDONTWRITEBYTECODE={collection['PYTHONDONTWRITEBYTECODE'] or 'unset'}): "
            f"{collection['median_s']:.2f} s; empty dir {collection['empty_dir_median_s']:.2f} s; "
            f"{collection['ms_per_file_over_startup']:.2f} ms per file over start-up",
            f"    of which -p no:hypothesispytest saves: {collection['median_s'] - bare['median_s']:.2f} s "
            f"(empty dir {bare['empty_dir_median_s']:.2f} s without it)",
        ]
    lines += ["", "targets"]
    for t in result["targets"]:
        verdict = "PASS" if t["pass"] else "MISS"
        lines.append(f"  [{verdict}] {t['target']}: {t['value']:.2f} {t['unit']} "
                     f"(target <= {t['limit']:g} {t['unit']})")
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.2f} s"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inprocess", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=textwrap.dedent(__doc__.split("\n", 1)[1]))
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (3, and 1 for 3x1M)")
    parser.add_argument("--json", metavar="PATH", help="write every number as JSON to PATH")
    parser.add_argument("--repeats", type=int, default=None,
                        help="repetitions of the small cases (default 7, 3 with --quick)")
    parser.add_argument("--cases", default=",".join(c[0] for c in CASES),
                        help="comma-separated subset of " + ", ".join(c[0] for c in CASES))
    parser.add_argument("--no-collection", action="store_true", help="skip the collection benchmark")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak RSS subprocesses")
    parser.add_argument("--no-ray", action="store_true", help="skip the ray backend (measured when ray is installed)")
    parser.add_argument("--rss-probe", choices=("fork_backend", "bare_fork", "pool"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_probe:
        print(json.dumps(rss_probe(args.rss_probe)))
        return 0
    repeats = args.repeats or (3 if args.quick else 7)
    repeats_1m = 1 if args.quick else max(1, min(repeats, 5))
    wanted = {c.strip() for c in args.cases.split(",") if c.strip()}
    unknown = wanted - {c[0] for c in CASES}
    if unknown:
        parser.error(f"unknown case(s) {', '.join(sorted(unknown))}")
    meta = {"python": platform.python_version(), "platform": platform.platform(), "cores": cores(),
            "repeats": repeats, "repeats_1m": repeats_1m, "loadavg_start": os.getloadavg(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git": _git_head(),
            "tempdir": tempfile.gettempdir(), "tempdir_fs": _fs_type(tempfile.gettempdir()),
            "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", "")}
    started = time.perf_counter()
    server = forkserver.shared()  # started once per process, like in a pytest session: timed apart
    meta["fork_server_start_ms"] = 1000 * (time.perf_counter() - started) if server else None
    rss = None
    if not args.no_rss:  # first: a subprocess inherits this process's ru_maxrss, which 3x1M inflates
        print("measuring peak RSS ...", file=sys.stderr, flush=True)
        rss = measure_rss()
    cases: dict[str, Any] = {}
    for name, regions, records in CASES:
        if name in wanted:
            print(f"measuring {name} ...", file=sys.stderr, flush=True)
            cases[name] = measure_case(regions, records, repeats_1m if records >= 100_000 else repeats)
    collection = None
    if not args.no_collection:
        print("measuring collection ...", file=sys.stderr, flush=True)
        collection = measure_collection(1 if args.quick else 3)
    meta["loadavg_end"] = os.getloadavg()
    ray = None
    if not args.no_ray and cases:  # last: an idle Ray takes CPU in the background; shut down after
        print("starting a local Ray ...", file=sys.stderr, flush=True)
        ray = measure_ray([c for c in CASES if c[0] in cases], repeats, repeats_1m)
    result = {"meta": meta, "cases": cases, "rss": rss, "collection": collection, "ray": ray,
              "targets": targets(cases, collection)}
    print(render(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2, default=_json_default)
            handle.write("\n")
    return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _fs_type(path: str) -> str:
    """The mount's filesystem type (ext4, tmpfs, ...): per-attempt temp dirs cost very different amounts."""
    best, kind = "", "?"
    try:
        with open("/proc/mounts", encoding="utf-8") as handle:
            for row in handle:
                parts = row.split()
                mount = parts[1] if len(parts) >= 3 else ""
                if mount and os.path.realpath(path).startswith(mount) and len(mount) > len(best):
                    best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def _git_head() -> str:
    try:
        proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=False)
    except OSError:
        return ""
    return proc.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
