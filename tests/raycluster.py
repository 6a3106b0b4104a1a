"""A real multi-node Ray cluster on 127.0.0.1 for the tests: one ``ray start --block`` per node.

Each node is its own raylet (the head also runs the GCS), started in a process group of its own with
distinct ports and a token of this cluster only, so the node faults can kill or stop exactly one node.
``stop`` ends every group it started and checks that nothing is left: no process of the cluster and
no session dir. Run as ``python -m tests.raycluster`` to start one by hand (Ctrl-C stops it).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 180.0
# Faster node-death detection than Ray's default (3 s x 5): a killed raylet is declared dead within ~10 s,
# while a node that is only slow (a loaded CI machine) or stalled for 2 s by a node-stall stays alive.
SYSTEM_CONFIG = {"health_check_initial_delay_ms": 1000, "health_check_period_ms": 1000,
                 "health_check_timeout_ms": 2000, "health_check_failure_threshold": 10}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RayCluster:
    address: str
    base: Path  # everything of the cluster: its temp dir, the workers' TMPDIR, the start logs
    env: dict[str, str]  # what a driver needs to join it (its auth token)
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    started_in: float = 0.0

    @property
    def tmpdir(self) -> Path:
        """Where the Ray workers (and so our launchers) create their temp dirs."""
        return self.base / "w"

    def stop(self) -> list[str]:
        """Stop every node (workers first, the head last), remove the cluster's dir (its session dirs: Ray
        keeps them after a stop) and return what is left, if anything."""
        for process in reversed(self.nodes):
            stop_node(process)
        left = leftovers(self.base)
        shutil.rmtree(self.base, ignore_errors=True)
        return left + ([str(self.base)] if self.base.exists() else [])


def start(nodes: int = 3, *, cpus: int = 1) -> RayCluster:
    """Start a head and ``nodes - 1`` worker nodes on 127.0.0.1; each ``ray start --block`` in its own group."""
    ray_cli = Path(sys.executable).with_name("ray")
    base = Path(tempfile.mkdtemp(prefix="dpray-", dir="/tmp"))  # short: socket paths fit 107 bytes
    (base / "w").mkdir()
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = {**os.environ, "TMPDIR": str(base / "w"), "RAY_USAGE_STATS_ENABLED": "0", **auth}
    env.pop("RAY_ADDRESS", None)
    port = free_port()
    # Each node's worker ports: below the kernel's ephemeral range (32768-60999), where free_port() never
    # lands, and apart from those of the cluster .ci/run starts (10002-25999).
    cluster = RayCluster(f"127.0.0.1:{port}", base, auth)
    began = time.monotonic()
    try:
        for index in range(nodes):
            common = ["--node-ip-address=127.0.0.1", f"--num-cpus={cpus}", "--disable-usage-stats", "--block",
                      f"--node-manager-port={free_port()}", f"--object-manager-port={free_port()}",
                      f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
                      f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
                      f"--min-worker-port={26000 + 1500 * index}", f"--max-worker-port={27499 + 1500 * index}"]
            if index == 0:
                args = ["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={base / 't'}",
                        f"--system-config={json.dumps(SYSTEM_CONFIG)}"]
            else:
                args = [f"--address={cluster.address}"]
            log_path = base / f"node{index}.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen([str(ray_cli), "start", *args, *common], stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                           start_new_session=True)
            cluster.nodes.append(process)
            while "Ray runtime started" not in log_path.read_text(errors="replace"):
                if process.poll() is not None or time.monotonic() - began > START_TIMEOUT:
                    raise RuntimeError(f"could not start Ray node {index}:\n" + log_path.read_text()[-3000:])
                time.sleep(0.2)
        _wait_for_nodes(cluster, nodes, began)
    except BaseException:
        cluster.stop()
        raise
    cluster.started_in = time.monotonic() - began
    return cluster


def _wait_for_nodes(cluster: RayCluster, nodes: int, began: float) -> None:
    """Every raylet registered with the GCS (asked from a short-lived process: this one stays no driver)."""
    probe = (f"import ray; ray.init(address={cluster.address!r}, log_to_driver=False, configure_logging=False); "
             "print(sum(1 for n in ray.nodes() if n['Alive']))")
    env = {**os.environ, **cluster.env, "RAY_USAGE_STATS_ENABLED": "0"}
    while True:
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
        if out.stdout.strip() == str(nodes):
            return
        if time.monotonic() - began > START_TIMEOUT:
            raise RuntimeError(f"only {out.stdout.strip() or 0} of {nodes} Ray nodes joined:\n{out.stderr[-2000:]}")
        time.sleep(0.5)


def stop_node(process: subprocess.Popen[bytes]) -> None:
    """`ray start --block` stops its node on SIGTERM; SIGKILL for our own process group if it lingers.
    A node a test stopped (SIGSTOP) is continued first, or it could not stop."""
    try:
        os.killpg(process.pid, signal.SIGCONT)
        process.send_signal(signal.SIGTERM)
        process.wait(40)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # leftovers of the group we started, and only those
    except ProcessLookupError:
        pass
    process.wait(10)


def leftovers(base: Path, timeout: float = 15.0) -> list[str]:
    """Processes whose command line or environment names the cluster's dir, after a grace."""
    deadline = time.monotonic() + timeout
    while True:
        found = [f"{pid}: {cmd[:300]}" for pid, cmd in _processes() if str(base) in cmd]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def _processes() -> list[tuple[int, str]]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                environ = (entry / "environ").read_bytes().decode(errors="replace")
            except OSError:
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] if (entry / "stat").exists() else ""
            if state != "Z":
                out.append((int(entry.name), cmd + " " + environ.replace("\0", " ")))
    return out


if __name__ == "__main__":
    started = start(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
    print(f"address {started.address} ({started.started_in:.1f} s); export "
          + " ".join(f"{k}={v}" for k, v in started.env.items()), flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill PID` stops it too
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        print("left:", started.stop())
