"""The ray backend against a real Ray cluster on this machine, always through a pytest subprocess.

The cluster is the one CI exports in ``DISTPROC_RAY_ADDRESS``; without it, a session fixture starts
one with ``ray start --head --block`` on 127.0.0.1 and stops exactly that process group afterwards.
Everything that needs Ray is skipped, with the reason, only when Ray cannot be imported; the test
of the missing-Ray error runs always. This process never becomes a Ray driver itself: the pytest
subprocesses do, so the fork tests in this session never fork a process full of Ray threads.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import Sandbox
from tests.raycluster import free_port, stop_node

ROOT = Path(__file__).resolve().parents[1]
HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray cannot be imported: pip install 'pytest-distproc[ray]'")
START_TIMEOUT = 180.0
ITEM = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR)\b", re.MULTILINE)
PID = re.compile(r"\(pid (\d+)\)")


@dataclass
class Cluster:
    address: str
    tmpdir: Path  # where the Ray workers (and so our launchers) create their temp dirs
    started_in: float | None  # seconds `ray start` took, when this session started it
    env: dict[str, str]  # what a driver needs to join it (its auth token)



@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Cluster]:
    if not HAVE_RAY:
        pytest.skip("Ray cannot be imported: pip install 'pytest-distproc[ray]'")
    exported = os.environ.get("DISTPROC_RAY_ADDRESS")
    if exported:
        auth = {k: v for k, v in os.environ.items() if k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
        yield Cluster(exported, Path(tempfile.gettempdir()), None, auth)
        return
    ray_cli = Path(sys.executable).with_name("ray")
    base = Path(tempfile.mkdtemp(prefix="distproc-raytest-", dir="/tmp"))  # short: socket paths fit 107 bytes
    workers_tmp = base / "w"
    workers_tmp.mkdir()
    port = free_port()
    log = (base / "start.log").open("wb")
    # Token auth with a token of our own, so neither an ambient ~/.ray/auth_token nor its absence matters.
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = {**os.environ, "TMPDIR": str(workers_tmp), "RAY_USAGE_STATS_ENABLED": "0", **auth}
    env.pop("RAY_ADDRESS", None)
    began = time.monotonic()
    process = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={base / 't'}", "--block"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
    )
    try:
        while "Ray runtime started" not in (base / "start.log").read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() - began > START_TIMEOUT:
                pytest.fail("could not start a local Ray cluster:\n" + (base / "start.log").read_text()[-3000:])
            time.sleep(0.2)
        yield Cluster(f"127.0.0.1:{port}", workers_tmp, time.monotonic() - began, auth)
    finally:
        stop_node(process)
        log.close()
        shutil.rmtree(base, ignore_errors=True)



@dataclass
class Outcome:
    output: str
    items: dict[str, str]
    seconds: float
    returncode: int

    def pids(self) -> set[int]:
        return {int(p) for p in PID.findall(self.output)}


def run_pytest(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 240) -> Outcome:
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", *args],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL,
    )
    output = proc.stdout + proc.stderr
    return Outcome(output, dict(ITEM.findall(output)), time.monotonic() - began, proc.returncode)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def launcher_processes() -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmdline.startswith("ray::Launcher"):
                found.append(f"{entry.name}: {cmdline.strip()}")
    return found


def wait_until(check: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and check():  # type: ignore[operator]
        time.sleep(0.2)


# -- the shipped scenarios ------------------------------------------------------------------------

EXTRAS = {
    "hung-stack.yaml": """\
        # Fails on purpose: the report must show the hung child's stack, dumped on its Ray node.
        name: hung-stack-is-reported
        seed: 3
        regions: {A: {records: 20}, B: {records: 20}}
        policy: {timeout: 1s, retries: 0}
        faults: [{region: B, kind: hang, attempts: [1]}]
        expect: {outcome: COMPLETE}
        """,
    "wide.yaml": """\
        # More regions than the cluster has CPUs, all proven alive at one moment.
        name: eight-regions-together
        seed: 4
        regions: {A: {records: 10}, B: {records: 10}, C: {records: 10}, D: {records: 10},
                  E: {records: 10}, F: {records: 10}, G: {records: 10}, H: {records: 10}}
        backend: ray
        expect:
          concurrent: ["process-region-*"]
          attempts: {process-region-a: 1, process-region-h: 1}
          aggregate: {total: {records: 80}}
        """,
}


@pytest.fixture(scope="module")
def shipped(ray_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """One pytest run of seed.yaml, retry.yaml and faults/*.yaml on the cluster (one Ray driver, reused)."""
    work = tmp_path_factory.mktemp("ray-shipped")
    (work / "pytest.ini").write_text("[pytest]\n")
    scenarios = work / "scenarios"
    scenarios.mkdir()
    for name in ("seed.yaml", "retry.yaml"):
        shutil.copy(ROOT / "scenarios" / name, scenarios / name)
    for folder in ("faults", "data", "golden"):  # goldens: the expected transcripts some of them name
        if (ROOT / "scenarios" / folder).is_dir():
            shutil.copytree(ROOT / "scenarios" / folder, scenarios / folder)
    return run_pytest(work, "--distproc-scenarios", "scenarios", "--distproc-backend", "ray",
                      "--distproc-ray-address", ray_cluster.address, "--distproc-seed=1",
                      env={**os.environ, **ray_cluster.env})


@pytest.fixture(scope="module")
def extras(ray_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """A second run; the address comes from the ini this time."""
    work = tmp_path_factory.mktemp("ray-extras")
    (work / "pytest.ini").write_text(f"[pytest]\ndistproc_ray_address = {ray_cluster.address}\n")
    for name, text in EXTRAS.items():
        (work / name).write_text(textwrap.dedent(text))
    return run_pytest(work, "--distproc-scenarios", ".", "--distproc-backend", "ray",
                      env={**os.environ, **ray_cluster.env})


@needs_ray
def test_every_shipped_scenario_passes_on_ray(shipped: Outcome) -> None:
    assert shipped.items, shipped.output[-5000:]
    failed = {k: v for k, v in shipped.items.items() if v != "PASSED"}
    assert not failed, f"{failed}\n{shipped.output[-8000:]}"
    names = " ".join(shipped.items)
    for kind in ("seed-three-regions", "retry-after-raise", "crash-recovers", "signal-gives-up", "hang-recovers",
                 "hang-partial", "oom-recovers"):
        assert kind in names
    assert shipped.returncode == 0
    assert "backend ray" in shipped.output  # the header names it


@needs_ray
def test_faults_are_worded_events_with_child_pids(shipped: Outcome) -> None:
    out = shipped.output
    assert re.search(r"process-region-b attempt 1 \(pid \d+\) crashed with exit code 7 after", out)
    assert re.search(r"process-region-b attempt 1 \(pid \d+\) was killed by SIGKILL after", out)
    assert re.search(r"process-region-b attempt 1 \(pid \d+\) timed out \(limit 1 s\) and was killed with SIGKILL",
                     out)
    assert "(pid None)" not in out


@needs_ray
def test_nothing_survives_the_runs(shipped: Outcome, extras: Outcome, ray_cluster: Cluster) -> None:
    pids = shipped.pids() | extras.pids()
    assert pids
    wait_until(lambda: [p for p in pids if alive(p)] or launcher_processes())
    assert [p for p in pids if alive(p)] == [], "a forked child outlived its run"
    assert launcher_processes() == [], "a launcher actor outlived its driver"
    assert sorted(p.name for p in ray_cluster.tmpdir.glob("distproc-ray-*")) == []


@needs_ray
def test_hung_child_is_killed_by_our_timeout_with_its_stack(extras: Outcome) -> None:
    assert extras.items["hung-stack.yaml::hung-stack-is-reported"] == "FAILED"
    out = extras.output
    assert "timed out (limit 1 s) and was killed with SIGKILL" in out
    stack = out.split("stack of hung process-region-b attempt 1 (pid ", 1)[1]
    assert "_hang" in stack[:3000], stack[:3000]
    assert "seed: 3  backend: ray" in out


@needs_ray
def test_more_regions_than_cpus_are_proven_concurrent(extras: Outcome) -> None:
    assert extras.items["wide.yaml::eight-regions-together"] == "PASSED", extras.output[-5000:]


@needs_ray
def test_without_an_address_a_private_local_ray_is_started(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    shutil.copy(ROOT / "scenarios" / "seed.yaml", tmp_path / "seed.yaml")
    if (ROOT / "scenarios" / "golden").is_dir():
        shutil.copytree(ROOT / "scenarios" / "golden", tmp_path / "golden")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "DISTPROC_RAY_"))}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    token_file = Path.home() / ".ray" / "auth_token"
    had_token, ray_dirs = token_file.exists(), set(Path("/tmp").glob("ray-*"))
    (tmp_path / "lone.yaml").write_text(textwrap.dedent("""\
        # A node fault on a one-node Ray: refused before anything starts, saying what is missing.
        name: node-loss-on-one-node
        seed: 1
        regions: {A: {records: 5}, B: {records: 5}}
        policy: {retries: 1}
        faults: [{region: B, kind: node-loss}]
        """))
    outcome = run_pytest(tmp_path, "--distproc-scenarios", ".", "--distproc-backend", "ray", env=env)
    assert outcome.items == {"seed.yaml::seed-three-regions": "PASSED",
                             "lone.yaml::node-loss-on-one-node": "FAILED"}, outcome.output[-5000:]
    assert ("lone.yaml:2: fault node-loss needs a Ray cluster of at least 2 nodes (one to act on, one for the "
            "retries), but the cluster at local has 1") in outcome.output
    assert token_file.exists() == had_token, "the private Ray wrote a token into ~/.ray"
    assert set(Path("/tmp").glob("ray-*")) <= ray_dirs, "the private Ray left its temp dir behind"


# -- without Ray ----------------------------------------------------------------------------------


def test_missing_ray_is_a_clear_error_not_a_fallback(sandbox: Sandbox) -> None:
    sandbox.pytester.makeconftest("import sys\nsys.modules['ray'] = None  # as if Ray were not installed\n")
    sandbox.scenario(
        "on-ray",
        """\
        name: wants-ray
        seed: 1
        backend: ray
        regions: {A: {records: 5}, B: {records: 5}}
        """,
    )
    result = sandbox.run("--distproc-scenarios")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "backend 'ray' needs Ray" in out
    assert "pip install 'pytest-distproc[ray]'" in out
    assert "Traceback" not in out and "pytest_distproc/backends" not in out
    assert "COORDINATING" not in out  # nothing ran on fork instead
    sandbox.assert_clean()
