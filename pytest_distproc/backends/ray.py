"""Scale-out backend: every attempt runs on a Ray node, forked as an isolated child by our launcher actor there.

Why an actor and not one plain Ray task per attempt: a plain task occupies a whole Ray worker process
(~100 MB, about a second to start on a small machine) for as long as its child runs, and the
``expect.concurrent`` barrier needs *every* region alive at once, so 256 regions would need 256 Ray
workers. Instead each node gets one small async *launcher* actor (``num_cpus=0``,
:mod:`~pytest_distproc.backends.raylauncher`) that forks one child per attempt exactly like the fork
backend does. Each run opens one streaming generator per launcher that carries the messages of all
its attempts in batches, so a poll waits on one stream per node, whatever the number of regions.
Timeouts, retries and faults stay the coordinator's; Ray's own retries are off (``max_restarts=0``,
``max_task_retries=0``, ``retry_exceptions=False``), so every attempt is ours and countable.

Attempts are dealt to the nodes in turn; a retry goes to a node its region has not used yet when
there is one. The node faults (``node-loss``, ``node-stall``, ``worker-restart``,
:mod:`~pytest_distproc.backends.raynodes`) fire when their attempt says hello, are announced like
every fault, and their attempt is placed on a node they may act on.

Ray is an optional extra: this module imports it only when the backend is used.
"""

from __future__ import annotations

import atexit
import itertools
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_distproc.attempt import data
from pytest_distproc.attempt.messages import Job
from pytest_distproc.attempt.skills import Skill
from pytest_distproc.backends import raynodes
from pytest_distproc.backends.protocol import Handle
from pytest_distproc.backends.raylauncher import ROOT_PREFIX, Launcher
from pytest_distproc.backends.raynodes import NODE_FAULTS, Node
from pytest_distproc.errors import DistprocError

INSTALL_HINT = "pip install 'pytest-distproc[ray]'"
KILL_GRACE = 5.0  # after a kill, how long an unresponsive launcher gets before we give up on it
READY_TIMEOUT = 120.0  # starting the launcher actors (a Ray worker process each)
END_WAIT = 5.0  # closing: how long the streams get to end


def import_ray() -> Any:
    """Ray, or a clear error that says how to install it (never a silent fallback to fork)."""
    try:
        import ray
    except ImportError as exc:
        raise DistprocError(
            f"backend 'ray' needs Ray, which cannot be imported here ({exc}); "
            f"install the extra with: {INSTALL_HINT}  (or pick another backend: fork, inline)"
        ) from None
    return ray


class _Session:
    """The connection to Ray and the launcher actors (one per node), shared by every run of this process."""

    def __init__(self, ray: Any, address: str | None) -> None:
        self.ray = ray
        self.address = address
        self.nodes: list[Node] = []
        self.stale = True  # look for nodes without a launcher at the next run
        self.killed: set[str] = set()  # ids of the nodes a node-loss killed: Ray may list them alive a while

    def alive(self) -> list[Node]:
        if self.stale:
            self._start_launchers()
        return [n for n in self.nodes if not n.lost]

    def drop(self, node: Node, why: str) -> None:
        node.lost = node.lost or why
        self.stale = True

    def _start_launchers(self) -> None:
        ray = self.ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.nodes = [n for n in self.nodes if not n.lost]
        have = {n.id for n in self.nodes}
        listed = [n for n in ray.nodes() if n.get("Alive") and n["NodeID"] not in self.killed]
        head = next((n["NodeID"] for n in listed if n.get("Resources", {}).get("node:__internal_head__")), "")
        driver = ray.get_runtime_context().get_node_id()
        remote = ray.remote(Launcher)
        launchers = [
            remote.options(
                num_cpus=0,
                max_restarts=0,
                max_task_retries=0,
                max_concurrency=10_000,
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
            ).remote()
            for n in listed if n["NodeID"] not in have
        ]
        pending = [launcher.ready.remote() for launcher in launchers]
        ready: list[Any] = []
        failures: list[str] = []
        for launcher, ref in zip(launchers, pending, strict=True):
            try:
                ready.append((ray.get(ref, timeout=READY_TIMEOUT), launcher))
            except Exception as exc:  # that node died meanwhile: use the others
                ray.kill(launcher)
                failures.append(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}")
        if launchers and not ready and not self.nodes:
            raise DistprocError(
                f"backend 'ray': could not start a launcher actor on the {len(listed)} node(s) of the "
                f"Ray cluster at {self.address or 'local'}: {failures[0]}"
            )
        self.nodes += [raynodes.describe(r, launcher, head, driver) for r, launcher in ready]
        self.nodes.sort(key=lambda n: (not n.head, n.id))
        self.stale = False
_SESSION: _Session | None = None


def connect(address: str | None) -> _Session:
    """Attach to Ray once per process: ``address`` if given, else a private local Ray on this machine."""
    global _SESSION
    if not address and _SESSION is None:
        _private_token()  # before Ray reads its config
    ray = import_ray()
    if _SESSION is not None and ray.is_initialized():
        return _SESSION
    if not ray.is_initialized():
        common: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
        try:
            if address:
                ray.init(address=address, **common)
            else:
                # "local" ignores RAY_ADDRESS and never joins another cluster by accident.
                temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: socket paths fit 107 bytes
                atexit.register(_shutdown_private, ray, temp_dir)
                ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1",
                         _temp_dir=temp_dir, **common)
        except Exception as exc:
            where = f"the Ray cluster at {address!r}" if address else "a local Ray on 127.0.0.1"
            hint = (
                "is a Ray head running there (`ray start --head`)? Use its GCS address host:port "
                "(see docs/ray.md)" if address else "see docs/ray.md"
            )
            raise DistprocError(f"backend 'ray': cannot start or reach {where}: "
                                f"{type(exc).__name__}: {exc}; {hint}") from None
    _SESSION = _Session(ray, address)
    return _SESSION


def _shutdown_private(ray: Any, temp_dir: str) -> None:
    """At exit: stop the private local Ray (Ray's own hook would run only after us), then remove its files."""
    try:
        ray.shutdown()
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)


def _private_token() -> None:
    """Token authentication for the private local Ray, with a token that lives only in this process's env.

    Ray listens on all interfaces even when told 127.0.0.1, so its token authentication matters; left
    to itself, a new local Ray writes a token to ~/.ray/auth_token, which then switches every later
    ``ray start`` and driver of this user to token mode. An explicit RAY_AUTH_MODE is respected.
    """
    if "RAY_AUTH_MODE" in os.environ:
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    if "ray" in sys.modules:  # imported earlier by someone else: make Ray re-read its config
        try:
            from ray._raylet import Config  # type: ignore[attr-defined]

            Config.initialize("")
        except Exception:
            pass  # an older Ray without token authentication: nothing to refresh


@dataclass(eq=False, kw_only=True)
class RayHandle(Handle):
    """A Ray backend's :class:`Handle`: how to reach one attempt through the launcher that runs it."""

    key: str
    """The attempt's id on its launcher (a uuid4 hex), named in every ``release`` and ``kill`` call."""
    where: Node
    """The node (and so the launcher actor) that forked the attempt's child."""
    barrier: bool
    """Still waiting for the barrier's go: True until :meth:`RayBackend.release` sent it."""
    killed: float | None = None
    """When a kill was sent (``time.monotonic()``); None: not yet. Past ``KILL_GRACE`` the attempt is given up."""
    node_faults: tuple[Mapping[str, Any], ...] = ()
    """The node faults of this attempt, fired by the driver when the attempt says hello."""
    held_until: float | None = None
    """An attempt with node faults is held at its go pipe, so the fault strikes while it runs, not after it
    finished: forever (None) under node-loss and worker-restart, until its stall ends under node-stall."""
    wants_go: bool = False


class RayBackend:
    """Attempts on launcher actors on Ray nodes; their messages arrive in batches, one stream per node."""

    name = "ray"
    isolated = True
    node_faults = NODE_FAULTS

    def __init__(self, run_dir: str, address: str | None = None) -> None:
        self.run_dir = run_dir
        self.session = connect(address)
        self.ray = self.session.ray
        self.run = uuid.uuid4().hex
        self.streams: dict[Node, Any] = {}  # node -> this run's stream of batches from its launcher
        self.live: dict[str, RayHandle] = {}  # key -> handle, until its exit arrived
        self.synthetic: list[tuple[Handle, dict[str, Any]]] = []
        self.used: dict[str, set[str]] = {}  # task -> ids of the nodes its attempts ran on
        self.timers: list[threading.Timer] = []
        self.turn = itertools.count()
        self.session.alive()  # start the launchers now, not inside the first attempt's timeout

    def now(self) -> float:
        return time.monotonic()

    def check_faults(self, kinds: set[str]) -> None:
        """Refuse node faults this cluster cannot take, before anything starts."""
        nodes = self.session.alive()
        for kind in sorted(kinds & set(NODE_FAULTS)):
            why = raynodes.refusal(kind, nodes, self.session.address or "local")
            if why:
                raise DistprocError(why)

    # -- starting ------------------------------------------------------------------------------------
    def start(self, job: Job, skill: Skill, *, barrier: bool) -> RayHandle:
        return self.start_many([job], skill, barrier=barrier)[0]

    def start_many(self, jobs: list[Job], skill: Skill, *, barrier: bool) -> list[RayHandle]:
        """One actor call per node for the whole wave; each job placed by :meth:`_place`."""
        handles: list[RayHandle] = []
        waves: dict[Node, list[tuple[str, Job, Skill, bool]]] = {}
        for job in jobs:
            node = self._place(job)
            faults = tuple(f for f in job.get("faults", ()) if f.get("kind") in NODE_FAULTS)
            portable: Job = {**job, "source": _portable(job["source"])}
            held = barrier or bool(faults)
            handle = RayHandle(job, None, "", key=uuid.uuid4().hex, where=node, barrier=held, node=node.label,
                               node_faults=faults)
            self.live[handle.key] = handle
            self.used.setdefault(handle.task, set()).add(node.id)
            waves.setdefault(node, []).append((handle.key, portable, skill, held))
            handles.append(handle)
        for node, wave in waves.items():
            if node not in self.streams:
                self.streams[node] = node.launcher.stream.options(num_returns="streaming").remote(self.run)
            node.launcher.attempts.remote(self.run, wave)
        return handles

    def _place(self, job: Job) -> Node:
        """In turn over the live nodes; a retry prefers a node its region has not run on; an attempt with a
        node-loss or node-stall goes to a node the driver may act on."""
        nodes = self.session.alive()
        if not nodes:
            raise DistprocError(f"backend 'ray': no node of the Ray cluster at {self.session.address or 'local'} "
                                "is left to run an attempt on")
        kinds = {f.get("kind") for f in job.get("faults", ())}
        if kinds & set(raynodes.HOST_FAULTS):
            nodes = [n for n in nodes if raynodes.actionable(n)] or nodes
        fresh = [n for n in nodes if n.id not in self.used.get(str(job["task"]), set())] or nodes
        return fresh[next(self.turn) % len(fresh)]

    # -- commands ------------------------------------------------------------------------------------
    def release(self, handle: Handle) -> None:
        if isinstance(handle, RayHandle) and handle.node_faults:
            handle.wants_go = True  # the node fault decides when (see RayHandle.held_until)
            return
        self._go(handle)

    def _go(self, handle: Handle) -> None:
        if isinstance(handle, RayHandle) and handle.barrier and handle.key in self.live:
            handle.barrier = False
            handle.where.launcher.release.remote(handle.key)

    def kill(self, handle: Handle, *, dump_stack: bool) -> None:
        if not isinstance(handle, RayHandle) or handle.key not in self.live or handle.killed is not None:
            return
        handle.killed = time.monotonic()
        handle.where.launcher.kill.remote(handle.key, dump_stack)

    # -- messages ------------------------------------------------------------------------------------
    def poll(self, timeout: float) -> list[tuple[Handle, dict[str, Any]]]:
        out, self.synthetic = self.synthetic, []
        out.extend(self._give_up_on_unresponsive())
        self._release_after_stalls()
        deadline = time.monotonic() + max(timeout, 0.0)
        while self.streams:
            nodes = list(self.streams)
            wait = 0.0 if out else max(0.0, deadline - time.monotonic())
            ready, _ = self.ray.wait([self.streams[n] for n in nodes], num_returns=1, timeout=wait)
            if not ready:
                break
            ready_ids = {id(g) for g in ready}
            for node in nodes:
                if id(self.streams[node]) in ready_ids:
                    out.extend(self._take(node))
            if out or time.monotonic() >= deadline:
                break
        if not self.streams and not out and timeout > 0:
            time.sleep(timeout)
        return out

    def _take(self, node: Node) -> list[tuple[Handle, dict[str, Any]]]:
        """The next batch of ``node``'s stream, or, if the stream broke, a worded loss for each of its attempts."""
        try:
            batch = self.ray.get(next(self.streams[node]))
        except StopIteration:
            del self.streams[node]
            return self._lose(node, "its launcher ended the stream early")
        except Exception as exc:  # the launcher or its node died
            del self.streams[node]
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            why = node.lost or f"{type(exc).__name__}: {first}"
            self.session.drop(node, why)
            return self._lose(node, why)
        out: list[tuple[Handle, dict[str, Any]]] = []
        for key, message in batch:
            handle = self.live.get(key)
            if handle is None:
                continue
            if not isinstance(message, dict):
                message = {"type": "garbage", "text": repr(message)[:200]}
            out.append((handle, message))
            kind = message.get("type")
            if kind == "hello" and isinstance(message.get("pid"), int):
                handle.pid = message["pid"]
                out.extend(self._fire_node_faults(handle))
            elif kind == "exit":
                del self.live[key]
        return out

    def _lose(self, node: Node, why: str) -> list[tuple[Handle, dict[str, Any]]]:
        out: list[tuple[Handle, dict[str, Any]]] = []
        for handle in [h for h in self.live.values() if h.where is node]:
            del self.live[handle.key]
            error = {"type": "error", "kind": "exception", "error": "RayNodeLost",
                     "message": f"Ray lost the attempt on node {node.name}: {why}"}
            out += [(handle, error), (handle, _lost(handle, ""))]
        return out

    # -- node faults ---------------------------------------------------------------------------------
    def _fire_node_faults(self, handle: RayHandle) -> list[tuple[Handle, dict[str, Any]]]:
        """Announce, then act: the attempt runs on ``handle.where`` right now (it just said hello)."""
        out: list[tuple[Handle, dict[str, Any]]] = []
        node = handle.where
        for fault in handle.node_faults:
            kind = str(fault["kind"])
            out.append((handle, {"type": "fault", "fault": {**fault, "node": node.label}}))
            if kind == "worker-restart":
                node.launcher.die.remote()
                self.session.drop(node, f"its Ray worker process (launcher pid {node.launcher_pid}) died "
                                        "(fault worker-restart)")
            elif kind == "node-loss":
                raynodes.kill(node, f"the node was killed (fault node-loss; raylet pid {node.raylet})")
                self.session.killed.add(node.id)
                self.session.drop(node, node.lost)
                for root in Path(node.tmp).glob(f"{ROOT_PREFIX}{node.launcher_pid}-*"):
                    shutil.rmtree(root, ignore_errors=True)
            elif kind == "node-stall":
                seconds = float(fault.get("seconds") or 2.0)
                self.timers.append(raynodes.stall(node, seconds))
                handle.held_until = time.monotonic() + seconds
        return out

    def _release_after_stalls(self) -> None:
        """A stalled attempt that outlived its stall (a timeout longer than the stall) goes on running."""
        now = time.monotonic()
        for handle in self.live.values():
            if handle.wants_go and handle.held_until is not None and now >= handle.held_until:
                handle.wants_go = False
                self._go(handle)

    def _give_up_on_unresponsive(self) -> list[tuple[Handle, dict[str, Any]]]:
        out: list[tuple[Handle, dict[str, Any]]] = []
        now = time.monotonic()
        for handle in list(self.live.values()):
            killed = handle.killed
            if killed is not None and now - killed > KILL_GRACE:
                del self.live[handle.key]
                out.append((handle, _lost(handle, f"its launcher did not confirm the kill within {KILL_GRACE:g} s",
                                          signal="SIGKILL")))
        return out

    # -- the end -------------------------------------------------------------------------------------
    def close(self) -> None:
        """Continue stalled nodes, kill whatever still runs, end this run's streams. Safe to call twice."""
        for timer in self.timers:
            timer.cancel()
        for node in self.session.nodes:
            raynodes.resume(node)
        self.timers.clear()
        for handle in list(self.live.values()):
            self._go(handle)
            if handle.killed is None:
                handle.killed = time.monotonic()
                handle.where.launcher.kill.remote(handle.key, False)
        deadline = time.monotonic() + KILL_GRACE
        while self.live and self.streams and time.monotonic() < deadline:
            self.poll(0.2)
        self.live.clear()
        for node in list(self.streams):
            if not node.lost:
                node.launcher.end.remote(self.run)
        deadline = time.monotonic() + END_WAIT
        while self.streams and time.monotonic() < deadline:
            nodes = list(self.streams)
            ready, _ = self.ray.wait([self.streams[n] for n in nodes], num_returns=1, timeout=0.2)
            for node in nodes:
                if any(r is self.streams[node] for r in ready):
                    try:
                        self.ray.get(next(self.streams[node]))
                    except Exception:  # StopIteration: ended as asked; anything else: gone anyway
                        del self.streams[node]
        self.streams.clear()
        if self.session.stale:
            self.session.alive()  # a new launcher where one died: it removes the dead one's temp roots


def _portable(source: dict[str, Any]) -> dict[str, Any]:
    """A file is read here and shipped inline: a remote node does not see the coordinator's files."""
    if "file" in source:
        return {"region": source["region"], "inline": data.read_file(Path(source["file"]))}
    return source


def _lost(handle: Handle, why: str, *, signal: str | None = None) -> dict[str, Any]:
    return {"type": "exit", "returncode": None, "signal": signal, "stack": "", "stderr": why}
