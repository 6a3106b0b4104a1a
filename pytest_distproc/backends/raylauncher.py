"""The Ray backend's launcher actor: one per node, forks a child per attempt and streams their messages.

It runs inside a Ray worker process. Every attempt's messages go to the outbox of its run, and one
long-lived streaming generator per run and launcher (:meth:`Launcher.stream`) hands them to the
driver in batches: the driver waits on one stream per node, not one per attempt, so what a poll
costs does not grow with the number of regions. Starting attempts is one actor call per node and
wave (:meth:`Launcher.attempts`), not one per attempt.

The launcher enforces nothing on its own: timeouts, retries and faults stay the coordinator's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_distproc.attempt.messages import Job
from pytest_distproc.attempt.skills import Skill
from pytest_distproc.backends.fork import decode, exit_message, killpg, spawn

STACK_WAIT = 0.3
LINE_LIMIT = 16 * 1024 * 1024
ROOT_PREFIX = "distproc-ray-"
"""A child's temp root is ``<tmp>/distproc-ray-<launcher pid>-*``: whoever outlives a killed launcher on
its node (a new launcher, or the driver that killed the node) can tell its leftovers and remove them."""


@dataclass
class _Child:
    pid: int
    root: str
    go: int
    stack: int  # memfds: the child's workdir may be a tmpfs in its own mount namespace, unseen from here
    stderr: int


class Launcher:
    """One per node: forks a child per attempt, streams its messages. Wrapped by ``ray.remote`` by the driver."""

    def __init__(self) -> None:
        import ctypes  # noqa: F401 - the child uses it for PR_SET_PDEATHSIG; import it before forking

        self.children: dict[str, _Child] = {}
        self.pending: dict[str, list[tuple[str, bool]]] = {}  # commands that arrived before their attempt
        self.outboxes: dict[str, asyncio.Queue[tuple[str, dict[str, Any]] | None]] = {}
        self.pumps: set[asyncio.Task[None]] = set()

    async def ready(self) -> dict[str, Any]:
        """Where this launcher runs: what the driver needs to name the node and, if it may, act on it."""
        import ray

        sweep_dead_roots()
        return {"pid": os.getpid(), "host": socket.gethostname(), "node": ray.get_runtime_context().get_node_id(),
                "raylet": os.getppid(), "boot": boot_id(), "uid": os.getuid(), "tmp": tempfile.gettempdir()}

    def _outbox(self, run: str) -> asyncio.Queue[tuple[str, dict[str, Any]] | None]:
        box = self.outboxes.get(run)
        if box is None:
            box = self.outboxes[run] = asyncio.Queue()
        return box

    async def stream(self, run: str) -> Any:
        """Every message of the run's attempts on this node, as ``[(key, message), ...]`` batches, until
        :meth:`end`."""
        box = self._outbox(run)
        try:
            while True:
                batch = [await box.get()]
                while not box.empty():
                    batch.append(box.get_nowait())
                items = [item for item in batch if item is not None]
                if items:
                    yield items
                if len(items) < len(batch):
                    return
        finally:
            self.outboxes.pop(run, None)

    async def end(self, run: str) -> None:
        self._outbox(run).put_nowait(None)

    async def attempts(self, run: str, wave: list[tuple[str, Job, Skill, bool]]) -> list[int]:
        """Fork one child per ``(key, job, skill, barrier)``; their messages follow on the run's stream."""
        return [self._start(run, key, job, skill, barrier) for key, job, skill, barrier in wave]

    def _start(self, run: str, key: str, job: Job, skill: Skill, barrier: bool) -> int:
        box = self._outbox(run)
        root = tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-")
        workdir = os.path.join(root, f"{job['task']}-a{job['attempt']}")  # the child makes it (attempt.execute)
        try:
            spawned = spawn(job, skill, workdir, barrier=barrier)
        except Exception as exc:  # no fds or processes left on this node: a worded error, not a lost stream
            shutil.rmtree(root, ignore_errors=True)
            box.put_nowait((key, {"type": "error", "kind": "exception", "error": type(exc).__name__,
                                  "message": f"could not fork on {socket.gethostname()}: {exc}"}))
            box.put_nowait((key, {"type": "exit", "returncode": None, "signal": None, "stack": "", "stderr": ""}))
            return 0
        child = _Child(spawned.pid, root, spawned.go_write, spawned.stack_fd, spawned.stderr_fd)
        self.children[key] = child
        for command, _dump in self.pending.pop(key, []):
            self._apply_now(child, command)
        pump = asyncio.get_running_loop().create_task(self._pump(box, key, child, spawned.read_fd))
        self.pumps.add(pump)
        pump.add_done_callback(self.pumps.discard)
        return spawned.pid

    async def _pump(self, box: asyncio.Queue[Any], key: str, child: _Child, read_fd: int) -> None:
        """Read the child's JSON lines into the outbox, reap it, clean up, and only then send its ``exit``."""
        reaped = False
        ended: dict[str, Any] = {"type": "exit", "returncode": None, "signal": None, "stack": "",
                                 "stderr": "the launcher stopped reading it"}
        try:
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
                        box.put_nowait((key, {"type": "garbage", "text": "(a line longer than 16 MiB)"}))
                        continue
                    if not line:
                        break
                    if line.strip():
                        box.put_nowait((key, decode(line)))
            finally:
                transport.close()
            ended = exit_message(await _reap(child.pid), child.stack, child.stderr)
            reaped = True
        finally:
            killpg(child.pid)  # anything the processor spawned into its group goes with it
            if not reaped:
                _reap_later(child.pid)
            _close_go(child)
            os.close(child.stack)
            os.close(child.stderr)
            self.children.pop(key, None)
            shutil.rmtree(child.root, ignore_errors=True)
            # Only once all is cleaned up: a driver may stop Ray the moment it has this message.
            box.put_nowait((key, ended))

    async def release(self, key: str) -> None:
        await self._command(key, "go", False)

    async def kill(self, key: str, dump_stack: bool) -> None:
        await self._command(key, "kill", dump_stack)

    async def forget(self, key: str) -> None:
        self.pending.pop(key, None)

    async def die(self) -> None:
        """The ``worker-restart`` fault: this Ray worker process dies at once; its children follow it
        (``PR_SET_PDEATHSIG``), and the next launcher on this node removes their temp roots."""
        os.kill(os.getpid(), signal.SIGKILL)

    async def _command(self, key: str, command: str, dump_stack: bool) -> None:
        child = self.children.get(key)
        if child is None:
            self.pending.setdefault(key, []).append((command, dump_stack))
            return
        if command == "kill" and dump_stack:
            try:
                os.kill(child.pid, signal.SIGUSR1)
                deadline = time.monotonic() + STACK_WAIT
                while time.monotonic() < deadline and not os.fstat(child.stack).st_size:
                    await asyncio.sleep(0.01)
            except ProcessLookupError:
                pass
        self._apply_now(child, command)

    def _apply_now(self, child: _Child, command: str) -> None:
        if command == "go":
            _close_go(child, write=True)
        else:
            killpg(child.pid)


def _close_go(child: _Child, *, write: bool = False) -> None:
    if child.go >= 0:
        if write:
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
    """The pump was cancelled before its child ended: its group is killed, reap it in the background."""

    async def reap() -> None:
        try:
            await _reap(pid)
        except ChildProcessError:
            pass

    try:
        asyncio.get_running_loop().create_task(reap())
    except RuntimeError:
        pass


def boot_id() -> str:
    """This machine's boot id: the driver may act on a node's pids only when it is the same machine."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def sweep_dead_roots(tmp: str | None = None) -> list[str]:
    """Remove the temp roots of launchers of this user that no longer run (killed with their node or worker)."""
    removed = []
    for root in Path(tmp or tempfile.gettempdir()).glob(f"{ROOT_PREFIX}*-*"):
        owner = root.name[len(ROOT_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not _runs(int(owner)) and root.stat().st_uid == os.getuid():
            shutil.rmtree(root, ignore_errors=True)
            removed.append(str(root))
    return removed


def _runs(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
