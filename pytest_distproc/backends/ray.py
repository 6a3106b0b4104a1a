"""Scale-out backend: every attempt runs as a Ray actor task that forks an isolated child on a Ray node.

Why an actor and not one plain Ray task per attempt: a plain task occupies a whole Ray worker process
(~100 MB, about a second to start on a small machine) for as long as its child runs, and the
``expect.concurrent`` barrier needs *every* region alive at once, so 256 regions would need 256 Ray
workers. Instead each node gets one small async *launcher* actor (``num_cpus=0``) that forks one
child per attempt exactly like the fork backend does (``attempt.execute.run``: own process group, own temp
dir, scrubbed env, ``PR_SET_PDEATHSIG``), and streams the child's plain-data messages back as the
items of a streaming generator. The launcher enforces nothing on its own: timeouts, retries and
faults stay the coordinator's. Ray's own retries are off (``max_restarts=0``, ``max_task_retries=0``,
``retry_exceptions=False``), so every attempt is ours and countable.

Commands go the other way as actor calls: ``release`` (the barrier's go) and ``kill`` (a timeout:
SIGUSR1 for a stack dump, then SIGKILL to the child's whole process group, on the child's own node).
If the launcher dies, its attempts end as worded errors; if it does not answer a kill, the attempt
is reported as killed after a grace period.

Ray is an optional extra: this module imports it only when the backend is used.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_distproc.attempt import data
from pytest_distproc.attempt.messages import Job
from pytest_distproc.attempt.skills import Skill
from pytest_distproc.backends.fork import decode, exit_message, killpg, spawn
from pytest_distproc.backends.protocol import Handle
from pytest_distproc.errors import DistprocError

INSTALL_HINT = "pip install 'pytest-distproc[ray]'"
STACK_WAIT = 0.3
KILL_GRACE = 5.0  # after a kill, how long an unresponsive launcher gets before we give up on it
READY_TIMEOUT = 120.0  # starting the launcher actors (a Ray worker process each)
LINE_LIMIT = 16 * 1024 * 1024


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


# ---------------------------------------------------------------------------------------------
# Launcher side: runs inside a Ray worker process on some node.


@dataclass
class _Child:
    pid: int
    root: str
    workdir: str
    go: int
    stack: int  # memfds: the child's workdir may be a tmpfs in its own mount namespace, unseen from here
    stderr: int


class Launcher:
    """One per node: forks a child per attempt and streams its messages. Wrapped by ``ray.remote`` later."""

    def __init__(self) -> None:
        import ctypes  # noqa: F401 - the child uses it for PR_SET_PDEATHSIG; import it before forking

        self.children: dict[str, _Child] = {}
        self.pending: dict[str, list[tuple[str, bool]]] = {}  # commands that arrived before their attempt

    async def ready(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname()}

    async def attempt(self, key: str, job: Job, skill: Skill, barrier: bool) -> Any:
        """Fork the child, then yield every message it sends, and finally its ``exit``."""
        root = tempfile.mkdtemp(prefix="distproc-ray-")
        workdir = os.path.join(root, f"{job['task']}-a{job['attempt']}")  # the child makes it (attempt.execute.isolate)
        spawned = spawn(job, skill, workdir, barrier=barrier)
        pid, read_fd, go_write = spawned.pid, spawned.read_fd, spawned.go_write
        stack_fd, stderr_fd = spawned.stack_fd, spawned.stderr_fd
        child = _Child(pid, root, workdir, go_write, stack_fd, stderr_fd)
        self.children[key] = child
        reaped = False
        ended: dict[str, Any] | None = None
        try:
            for command, dump in self.pending.pop(key, []):
                await self._apply(child, command, dump)
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader(limit=LINE_LIMIT)
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
            )
            try:
                while True:
                    try:
                        line = await reader.readline()
                    except ValueError:  # a line past the limit: unreadable, like the fork backend's garbage
                        yield {"type": "garbage", "text": "(a line longer than 16 MiB)"}
                        continue
                    if not line:
                        break
                    if line.strip():
                        yield decode(line)
            finally:
                transport.close()
            status = await _reap(pid)
            reaped = True
            ended = _exit_message(child, status)
        finally:
            killpg(pid)  # anything the processor spawned into its group goes with it
            if not reaped:
                _reap_later(pid)
            _close(child)
            os.close(stack_fd)
            os.close(stderr_fd)
            self.children.pop(key, None)
            shutil.rmtree(root, ignore_errors=True)
        # Only once all is cleaned up: a driver may shut Ray down the moment it has this message, and
        # code after a generator's last yield then never runs (its temp dirs were left in /tmp).
        yield ended

    async def release(self, key: str) -> None:
        child = self.children.get(key)
        if child is None:
            self.pending.setdefault(key, []).append(("go", False))
            return
        await self._apply(child, "go", False)

    async def kill(self, key: str, dump_stack: bool) -> None:
        child = self.children.get(key)
        if child is None:
            self.pending.setdefault(key, []).append(("kill", dump_stack))
            return
        await self._apply(child, "kill", dump_stack)

    async def forget(self, key: str) -> None:
        self.pending.pop(key, None)

    async def _apply(self, child: _Child, command: str, dump_stack: bool) -> None:
        if command == "go":
            _close(child, write_go=True)
            return
        if dump_stack:
            try:
                os.kill(child.pid, signal.SIGUSR1)
                deadline = time.monotonic() + STACK_WAIT
                while time.monotonic() < deadline and not os.fstat(child.stack).st_size:
                    await asyncio.sleep(0.01)
            except ProcessLookupError:
                pass
        killpg(child.pid)


def _close(child: _Child, *, write_go: bool = False) -> None:
    if child.go >= 0:
        if write_go:
            try:
                os.write(child.go, b"g")
            except OSError:
                pass  # the child is already gone; its exit tells why
        os.close(child.go)
        child.go = -1


async def _reap(pid: int) -> int:
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        await asyncio.sleep(0.002)


def _reap_later(pid: int) -> None:
    """The generator was abandoned (its caller went away): kill the group and reap in the background."""

    async def reap() -> None:
        try:
            await _reap(pid)
        except ChildProcessError:
            pass

    try:
        asyncio.get_running_loop().create_task(reap())
    except RuntimeError:
        pass


def _exit_message(child: _Child, status: int) -> dict[str, Any]:
    return exit_message(status, child.stack, child.stderr)


# ---------------------------------------------------------------------------------------------
# Coordinator side.


class _Session:
    """The connection to Ray and the launcher actors, shared by every run of this process."""

    def __init__(self, ray: Any, address: str | None) -> None:
        self.ray = ray
        self.address = address
        self.launchers: list[Any] = []
        self.turn = itertools.count()

    def pick(self) -> Any:
        if not self.launchers:
            self._start_launchers()
        return self.launchers[next(self.turn) % len(self.launchers)]

    def drop(self, launcher: Any) -> None:
        if launcher in self.launchers:
            self.launchers.remove(launcher)

    def _start_launchers(self) -> None:
        ray = self.ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        remote = ray.remote(Launcher)
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
        launchers = [
            remote.options(
                num_cpus=0,
                max_restarts=0,
                max_task_retries=0,
                max_concurrency=10_000,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
            ).remote()
            for node in nodes
        ]
        try:
            ray.get([launcher.ready.remote() for launcher in launchers], timeout=READY_TIMEOUT)
        except Exception as exc:
            for launcher in launchers:
                ray.kill(launcher)
            raise DistprocError(
                f"backend 'ray': could not start a launcher actor on the {len(nodes)} node(s) of the "
                f"Ray cluster at {self.address or 'local'}: {type(exc).__name__}: {exc}"
            ) from None
        self.launchers = launchers


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
    """A Ray backend's :class:`Handle`: how to reach one attempt through the launcher actor that runs it."""

    key: str
    """The attempt's id on its launcher (a uuid4 hex), named in every ``release`` and ``kill`` call."""
    launcher: Any
    """The launcher actor (a Ray ActorHandle) that forked the attempt's child."""
    barrier: bool
    """Still waiting for the barrier's go: True until :meth:`RayBackend.release` sent it."""
    killed: float | None = None
    """When a kill was sent (``time.monotonic()``); None: not yet. Past ``KILL_GRACE`` the attempt is given up."""


class RayBackend:
    """Attempts as launcher-actor tasks on Ray nodes; messages arrive as streaming-generator items."""

    name = "ray"
    isolated = True

    def __init__(self, run_dir: str, address: str | None = None) -> None:
        self.run_dir = run_dir
        self.session = connect(address)
        self.ray = self.session.ray
        self.live: dict[RayHandle, Any] = {}  # handle -> its ObjectRefGenerator, until its exit arrived
        self.synthetic: list[tuple[Handle, dict[str, Any]]] = []
        self.session.pick()  # start the launchers now, not inside the first attempt's timeout

    def now(self) -> float:
        return time.monotonic()

    def start(self, job: Job, skill: Skill, *, barrier: bool) -> RayHandle:
        job = {**job, "source": _portable(job["source"])}
        key = uuid.uuid4().hex
        launcher = self.session.pick()
        generator = launcher.attempt.options(
            num_returns="streaming", max_task_retries=0, retry_exceptions=False
        ).remote(key, job, skill, barrier)
        handle = RayHandle(job, None, "", key=key, launcher=launcher, barrier=barrier)
        self.live[handle] = generator
        return handle

    def release(self, handle: Handle) -> None:
        if isinstance(handle, RayHandle) and handle.barrier and handle in self.live:
            handle.barrier = False
            handle.launcher.release.remote(handle.key)

    def kill(self, handle: Handle, *, dump_stack: bool) -> None:
        if not isinstance(handle, RayHandle) or handle not in self.live or handle.killed is not None:
            return
        handle.killed = time.monotonic()
        handle.launcher.kill.remote(handle.key, dump_stack)

    def poll(self, timeout: float) -> list[tuple[Handle, dict[str, Any]]]:
        out, self.synthetic = self.synthetic, []
        out.extend(self._give_up_on_unresponsive())
        if out:
            timeout = 0
        if not self.live:
            if timeout > 0:
                time.sleep(timeout)
            return out
        deadline = time.monotonic() + max(timeout, 0.0)
        while self.live:
            handles = list(self.live)
            generators = [self.live[h] for h in handles]
            wait = 0.0 if out else max(0.0, deadline - time.monotonic())
            ready, _ = self.ray.wait(generators, num_returns=1, timeout=wait)
            if not ready:
                break
            ready_ids = {id(g) for g in ready}
            for handle, generator in zip(handles, generators, strict=True):
                if id(generator) in ready_ids:
                    out.extend(self._next(handle, generator))
            if not out and time.monotonic() >= deadline:
                break
        return out

    def _next(self, handle: RayHandle, generator: Any) -> list[tuple[Handle, dict[str, Any]]]:
        try:
            ref = next(generator)
            message = self.ray.get(ref)
        except StopIteration:
            del self.live[handle]
            return [(handle, _lost(handle, "ended without reporting how its process exited"))]
        except Exception as exc:  # the launcher or its node died, or Ray refused the task
            del self.live[handle]
            if isinstance(exc, self.ray.exceptions.RayActorError):  # the launcher is gone: use the others
                self.session.drop(handle.launcher)
            error = {"type": "error", "kind": "exception", "error": type(exc).__name__,
                     "message": f"Ray lost the attempt: {str(exc).strip().splitlines()[0] if str(exc) else exc!r}"}
            return [(handle, error), (handle, _lost(handle, ""))]
        if not isinstance(message, dict):
            message = {"type": "garbage", "text": repr(message)[:200]}
        if message.get("type") == "hello" and isinstance(message.get("pid"), int):
            handle.pid = message["pid"]
        if message.get("type") == "exit":
            del self.live[handle]
            handle.workdir = ""
        return [(handle, message)]

    def _give_up_on_unresponsive(self) -> list[tuple[Handle, dict[str, Any]]]:
        out: list[tuple[Handle, dict[str, Any]]] = []
        now = time.monotonic()
        for handle in list(self.live):
            killed = handle.killed
            if killed is not None and now - killed > KILL_GRACE:
                del self.live[handle]
                out.append((handle, _lost(handle, f"its launcher did not confirm the kill within {KILL_GRACE:g} s",
                                          signal="SIGKILL")))
        return out

    def close(self) -> None:
        """Kill whatever still runs and wait briefly for the launchers to reap it. Safe to call twice."""
        if not self.live:
            return
        for handle in list(self.live):
            self.release(handle)
            if handle.killed is None:
                handle.killed = time.monotonic()
                handle.launcher.kill.remote(handle.key, False)
        deadline = time.monotonic() + KILL_GRACE
        while self.live and time.monotonic() < deadline:
            handles = list(self.live)
            ready, _ = self.ray.wait([self.live[h] for h in handles], num_returns=1, timeout=0.2)
            ready_ids = {id(g) for g in ready}
            for handle in handles:
                if id(self.live[handle]) in ready_ids:
                    self._next(handle, self.live[handle])
        self.live.clear()


def _portable(source: dict[str, Any]) -> dict[str, Any]:
    """A file is read here and shipped inline: a remote node does not see the coordinator's files."""
    if "file" in source:
        return {"region": source["region"], "inline": data.read_file(Path(source["file"]))}
    return source


def _lost(handle: Handle, why: str, *, signal: str | None = None) -> dict[str, Any]:
    return {"type": "exit", "returncode": None, "signal": signal, "stack": "", "stderr": why}
