"""A lean fork server: attempts are forked from a small interpreter, not from the pytest process.

Why: a fork copies the parent's page tables, and every page either side writes afterwards is copied
again. Forking from a ~13 MiB interpreter that imported only the skill costs about half of forking
from a 40+ MiB pytest process (pytest, Hypothesis, plugins), and the child inherits no pytest state
and no fds of sibling attempts. One server per coordinator process, started on first use and gone
with it (socket EOF, or PR_SET_PDEATHSIG when the coordinator is killed).

Protocol: one JSON object per SOCK_SEQPACKET packet, fds travel with SCM_RIGHTS. Neither side can
deadlock the other: the server sends blocking, and the client never blocks sending without reading
(a full socket makes it read what the server sent, then send again), so a server blocked sending is
always drained. Spawns are pipelined: up to ``SPAWN_WINDOW`` are in flight while the client opens the
next one's pipes, and the server forks whatever has arrived back to back.

client -> server
    prepare {skill, sys_path, cwd}               -> prepared | error {message}
    spawn {id, job, barrier} + fds (pipe, stderr, stack[, go])   -> spawned {id, pid} | error {message}
    adopt {id, pid}                              the client handed an attempt to the standby ``pid``
                                                 itself: watch it and report its exit as ``id`` (no reply)
    reap {id}                                    kill the attempt's group and reap it (no reply)
    sweep                                        -> swept {killed}: descendants that escaped their
                                                    group (setsid) and were reparented to us
server -> client, unsolicited
    exit {id, pid, returncode, signal}           the child ended; it stays a zombie until ``reap``,
                                                 so its pid (and group) cannot be reused meanwhile
    standby {pid, group, run} + fd (its socket)  a child forked ahead for ``run`` (after each batch of
                                                 spawns, and after an adopt), set up and waiting for a
                                                 job on that socket; ``group``: its cgroup's name
"""

from __future__ import annotations

import array
import atexit
import collections
import faulthandler
import functools
import json
import os
import resource
import select
import selectors
import signal
import socket
import sys
import threading
from collections.abc import Mapping
from typing import Any, NamedTuple, NoReturn

from pytest_distproc.attempt import confine, faults, skills
from pytest_distproc.attempt import execute as region
from pytest_distproc.attempt.messages import ChildJob, Job
from pytest_distproc.backends import processes

DISABLE_ENV = "DISTPROC_FORK_SERVER"  # "off": fork every attempt from the coordinator itself
MAX_PACKET = 1 << 20
MAX_FDS = 4
UNSOLICITED = ("exit", "standby")
"""What the server sends of its own accord: kept as it passes, never taken for a reply."""
SPAWN_WINDOW = 64
"""Spawn requests in flight, unanswered: the fds they carry are open in the server until it forks."""
READ_BATCH = 256
"""Requests the server reads before it acts on them (spawns in a row are forked back to back)."""
START_TIMEOUT = 60.0
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36


class ForkServerError(RuntimeError):
    """The server could not be started or answered nonsense; the caller forks directly instead."""


# -- client side: the coordinator's end ------------------------------------------------------------


class ForkServer:
    """The coordinator's handle on its fork server."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.owner = os.getpid()
        self.sock = ours
        self.exits: dict[int, dict[str, Any]] = {}  # spawn id -> exit message, read but not yet consumed
        self.inbox: collections.deque[dict[str, Any]] = collections.deque()  # replies read while sending
        self.awaited: set[int] = set()  # spawn ids sent and not answered yet
        self.pids: dict[int, int] = {}  # spawn id -> pid, answered and not yet collected
        self.groups: dict[int, str] = {}  # spawn id -> cgroup name, for an attempt a standby took up
        self.standby: _HeldStandby | None = None  # the one the server forked last, announced to us
        self.dead = False
        self.next_id = 0
        self.prepared: tuple[object, ...] | None = None
        import subprocess  # here: the server process itself never needs it

        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        python_path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
        try:
            self.process = subprocess.Popen(
                [sys.executable, *_site_flags(), "-m", "pytest_distproc.backends.forkserver", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": python_path},
                start_new_session=True,  # a Ctrl-C at the terminal is the coordinator's to handle, not ours
            )
        finally:
            theirs.close()
        self.sock.settimeout(START_TIMEOUT)
        try:
            hello = self._receive()
        except (OSError, ValueError) as exc:
            self.close()
            raise ForkServerError(f"the fork server did not start: {exc}") from None
        if hello.get("op") != "ready":
            self.close()
            raise ForkServerError(f"the fork server did not start: {hello}")
        self.sock.settimeout(None)  # blocking from now on: receive() reads with MSG_DONTWAIT

    def fileno(self) -> int:
        return self.sock.fileno()

    def prepare(self, reference: str) -> None:
        """Make the server import the skill (with our sys.path and cwd) and hold the allow-listed part of
        our environment for its children; again only when one of them changed."""
        env = {key: os.environ[key] for key in region.ENV_ALLOWLIST if key in os.environ}
        wanted = (reference, tuple(sys.path), os.getcwd(), tuple(sorted(env.items())))
        if self.prepared == wanted:
            return
        self._release_standby()  # the server drops it: it holds the skill, path and environment of before
        self._send({"op": "prepare", "skill": reference, "sys_path": list(sys.path), "cwd": os.getcwd(), "env": env})
        self.prepared = None  # until it says so: a failed prepare may have changed its sys.path and cwd
        reply = self._reply()
        if reply.get("op") != "prepared":
            raise ForkServerError(str(reply.get("message", reply)))
        self.prepared = wanted

    def spawn(self, job: ChildJob, barrier: bool, fds: list[int]) -> int:
        """Ask for one child and return its spawn id at once; the caller may close ``fds`` right after
        (the kernel holds them in flight). At most ``SPAWN_WINDOW`` requests wait for their answer."""
        while len(self.awaited) >= SPAWN_WINDOW:
            self._answered(self._reply())
        self.next_id += 1
        self._send({"op": "spawn", "id": self.next_id, "job": job, "barrier": barrier}, fds)
        self.awaited.add(self.next_id)
        return self.next_id

    def hand_to_standby(self, job: ChildJob, fds: list[int]) -> int | None:
        """Hand ``job`` and its fds straight to the standby the server forked for its run, if it has one,
        and tell the server to ``adopt`` it: no fork, no set-up to wait for, and no hop through the
        server. Returns the spawn id (its pid is known at once, see :meth:`pids_of`), or None: spawn it."""
        self.receive()  # its announcement may be waiting
        held, self.standby = self.standby, None
        if held is None:
            return None
        try:
            if held.run != _run_of(job):
                return None
            _send_with_fds(held.sock, json.dumps(job).encode(), fds, socket.MSG_DONTWAIT)
        except OSError:
            return None  # it died meanwhile: the server reaps it
        finally:
            held.sock.close()
        self.next_id += 1
        self._send({"op": "adopt", "id": self.next_id, "pid": held.pid})
        self.pids[self.next_id] = held.pid
        if held.group:
            self.groups[self.next_id] = held.group
        return self.next_id

    def _release_standby(self) -> None:
        """Let go of the standby: the server kills it (at a sweep, a new prepare, or our exit)."""
        held, self.standby = self.standby, None
        if held is not None:
            held.sock.close()

    def pids_of(self, idents: list[int]) -> list[int]:
        """The pids of the children asked for as ``idents``, waiting for the answers still to come."""
        while self.awaited:  # every request in flight is the caller's: one run starts at a time
            self._answered(self._reply())
        return [self.pids.pop(ident) for ident in idents]

    def spawn_many(self, requests: list[tuple[ChildJob, bool, list[int]]]) -> list[tuple[int, int]]:
        """Fork one child per ``(job, barrier, fds)`` and return ``(id, pid)`` pairs (pipelined)."""
        idents = [self.spawn(job, barrier, fds) for job, barrier, fds in requests]
        return list(zip(idents, self.pids_of(idents), strict=True))

    def _answered(self, reply: dict[str, Any]) -> None:
        ident = reply.get("id")
        if reply.get("op") != "spawned" or ident not in self.awaited:
            raise ForkServerError(str(reply.get("message", reply)))
        self.awaited.discard(ident)
        self.pids[ident] = int(reply["pid"])

    def reap(self, ident: int) -> None:
        """Let the server kill what is left of the attempt's group and reap it: its pid is free after."""
        self.exits.pop(ident, None)
        if not self.dead:
            try:
                self._send({"op": "reap", "id": ident})
            except OSError:
                self.dead = True

    def sweep(self) -> list[int]:
        """Kill and reap whatever escaped an attempt's group and was reparented to the server; the
        reply comes after every earlier ``reap`` was done."""
        if self.dead:
            self._release_standby()
            return []
        try:
            self._send({"op": "sweep"})
            return [int(p) for p in self._reply().get("killed", [])]
        except (OSError, ValueError):
            self.dead = True
            return []
        finally:
            self._release_standby()  # after the server killed it: it never sees its socket close

    def usage(self) -> dict[str, dict[str, float]]:
        """The server's own and its reaped children's CPU seconds and peak RSS (KiB): a benchmark's view."""
        self._send({"op": "usage"})
        return dict(self._reply().get("usage", {}))

    def receive(self) -> None:
        """Read every pending message without blocking; exits are kept in :attr:`exits`."""
        try:
            self._drain()
        except (OSError, ValueError):
            self.dead = True

    def _drain(self) -> None:
        """Read whatever the server sent, without blocking: exits to :attr:`exits`, replies to :attr:`inbox`."""
        while True:
            try:
                message = self._receive(socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if message.get("op") in UNSOLICITED:
                self._keep(message)
            else:
                self.inbox.append(message)

    def close(self) -> None:
        """Close the socket (the server leaves on EOF) and wait for it, killing it if it lingers."""
        import subprocess
        self.dead = True
        self._release_standby()
        try:
            self.sock.close()
        finally:
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _reply(self) -> dict[str, Any]:
        """The next message that is not an exit (those are kept as they pass)."""
        if self.inbox:
            return self.inbox.popleft()
        while True:
            message = self._receive()
            if message.get("op") not in UNSOLICITED:
                return message
            self._keep(message)

    def _keep(self, message: dict[str, Any]) -> None:
        if message.get("op") == "exit":
            self.exits[int(message["id"])] = message

    def _send(self, message: Mapping[str, Any], fds: list[int] | None = None) -> None:
        """Send without ever blocking while the server may be blocked sending to us: when our socket is
        full, read what it sent (into :attr:`inbox` and :attr:`exits`) and wait until either side moves."""
        payload = json.dumps(message).encode()
        while True:
            try:
                _send_with_fds(self.sock, payload, fds or [], socket.MSG_DONTWAIT)
                return
            except BlockingIOError:
                waiting = select.poll()  # not select.select: our fd may be past FD_SETSIZE
                waiting.register(self.sock, select.POLLIN | select.POLLOUT)
                if any(event & (select.POLLIN | select.POLLHUP | select.POLLERR) for _, event in waiting.poll()):
                    self._drain()

    def _receive(self, flags: int = 0) -> dict[str, Any]:
        """The next message; a standby's announcement keeps the socket it came with."""
        payload, fds = _recv_with_fds(self.sock, flags)
        message = self._decode(payload) if payload or not fds else {"op": "garbage"}
        if message.get("op") == "standby" and len(fds) == 1:
            self._release_standby()
            run = message.get("run") or ["", [], 0]
            self.standby = _HeldStandby(int(message["pid"]), str(message.get("group", "")),
                                        (str(run[0]), tuple(str(g) for g in run[1]), int(run[2])),
                                        socket.socket(fileno=fds[0]))
        else:
            for fd in fds:
                os.close(fd)
        return message

    def _decode(self, payload: bytes) -> dict[str, Any]:
        if not payload:
            self.dead = True
            raise ConnectionError("the fork server closed its socket")
        message = json.loads(payload)
        if not isinstance(message, dict):
            raise ValueError(f"unexpected message from the fork server: {message!r}")
        return message


_SHARED: list[ForkServer] = []


def shared() -> ForkServer | None:
    """This process's fork server, started on first use; None where attempts must be forked directly:
    disabled by ``DISTPROC_FORK_SERVER=off``, off the main thread, or when it cannot start."""
    if os.environ.get(DISABLE_ENV, "").lower() in ("off", "0", "no", "false"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None  # one socket, one reader: other threads fork directly
    if _SHARED and (_SHARED[0].dead or _SHARED[0].owner != os.getpid()):
        stale = _SHARED.pop()
        if stale.owner == os.getpid():
            stale.close()
    if not _SHARED:
        try:
            _SHARED.append(ForkServer())
        except (OSError, ForkServerError):
            return None
    return _SHARED[0]


def current() -> ForkServer | None:
    """This process's running fork server, if it has one (never starts one)."""
    return next((s for s in _SHARED if s.owner == os.getpid() and not s.dead), None)


def server_pids() -> set[int]:
    """Pids of this process's fork servers: children of ours that no run's orphan sweep may kill."""
    return {server.process.pid for server in _SHARED if server.owner == os.getpid()}


def portable(reference: str, skill: skills.Skill, jobs: list[Job]) -> str | None:
    """The skill reference the server can import on its own, or None when these jobs need the
    coordinator's memory: a skill defined in a conftest, a closure, or a fault kind a plugin added."""
    if not all(_builtin_fault(str(f.get("kind"))) for job in jobs for f in job.get("faults", ())):
        return None
    if skills.BUILTIN.get(reference) is skill:
        return reference
    if os.path.isabs(reference):
        return reference  # a SKILL.md directory (``dir`` or ``dir#script``): the loader made it absolute
    if ":" in reference:
        return reference  # package.module:function: the server imports it as the coordinator did
    # a name a plugin, a conftest or an entry point registered: the server knows it only by where it lives
    module, name = getattr(skill, "__module__", None), getattr(skill, "__qualname__", "")
    if not module or module == "__main__" or "<" in name or module.rpartition(".")[2] == "conftest":
        return None
    return f"{module}:{name}" if "." not in name else None


def _builtin_fault(kind: str) -> bool:
    """Whether the server, which never saw the plugins' hooks, runs ``kind`` as the coordinator would."""
    return kind in faults.BUILTIN and faults.installed().get(kind) is faults.BUILTIN[kind]


@atexit.register
def close_shared() -> None:
    """Close this process's fork servers and wait for them to exit (the next :func:`shared` starts a new one)."""
    while _SHARED:
        server = _SHARED.pop()
        if server.owner == os.getpid():
            server.close()


# -- server side -----------------------------------------------------------------------------------


class _Server:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.selector = selectors.DefaultSelector()
        self.selector.register(sock, selectors.EVENT_READ, None)
        self.pids: dict[int, int] = {}  # spawn id -> pid, until reaped
        self.pidfds: dict[int, int] = {}  # spawn id -> pidfd, until the child was seen to exit
        self.skill: skills.Skill | None = None
        self.standby: _Standby | None = None
        self.inherited: dict[str, Any] = {"bounding_set": confine.drop_inheritable()}  # see ChildJob.inherited
        self.standbys = 0  # how many were forked: each one's cgroup gets a name of its own
        self.address_space = region.address_space()
        # Our faulthandler writes to this fd; each child puts its stack memfd there (one dup2, no setup).
        self.stack_slot = os.open(os.devnull, os.O_WRONLY)
        faulthandler.register(signal.SIGUSR1, file=self.stack_slot, all_threads=True, chain=True)
        faulthandler.enable(file=self.stack_slot)

    def serve(self) -> None:
        self._send({"op": "ready", "pid": os.getpid()})
        while True:
            for key, _ in self.selector.select():
                if key.data is None:
                    if not self._handle_request():
                        return
                else:
                    self._report_exit(key.data)

    def _handle_request(self) -> bool:
        """Handle every request waiting on the socket; spawns in a row are forked back to back."""
        requests: list[tuple[dict[str, Any], list[int]]] = []
        flags = 0
        while len(requests) < READ_BATCH:
            try:
                payload, fds = _recv_with_fds(self.sock, flags)
            except BlockingIOError:
                break
            except ConnectionError:
                return False
            if not payload:
                return False
            requests.append((json.loads(payload), fds))
            flags = socket.MSG_DONTWAIT
        spawns: list[tuple[dict[str, Any], list[int]]] = []
        for message, fds in requests:
            if message.get("op") == "spawn":
                spawns.append((message, fds))
                continue
            self._spawn(spawns)
            spawns = []
            op = message.get("op")
            if op == "prepare":
                self._prepare(message)
            elif op == "adopt":
                self._adopt(int(message["id"]), int(message["pid"]))
            elif op == "reap":
                self._reap(int(message["id"]))
            elif op == "sweep":
                self._send({"op": "swept", "killed": self.sweep()})
            elif op == "usage":
                self._send({"op": "usage", "usage": {"self": _usage(resource.RUSAGE_SELF),
                                                     "children": _usage(resource.RUSAGE_CHILDREN)}})
        self._spawn(spawns)
        return True

    def _prepare(self, message: Mapping[str, Any]) -> None:
        self._drop_standby()  # it holds the skill, path and environment of before
        if str(message["skill"]) not in skills.BUILTIN:
            _with_site()
        sys.path[:] = [str(p) for p in message["sys_path"]]
        try:
            os.chdir(message["cwd"])
            self.skill = skills.resolve(str(message["skill"]))
        except Exception as exc:  # the client forks directly instead, and resolves the skill itself
            self.skill = None
            self._send({"op": "error", "message": f"{type(exc).__name__}: {exc}"})
            return
        finally:  # an import may have set a SIGTERM handler of its own: ours must stay, for us and our children
            signal.signal(signal.SIGTERM, _on_parent_death)
        region.keep_only_env(message["env"])  # after the import, which saw the coordinator's environment
        # and /proc/<server>/environ, the block exec gave us: our children inherit it as it is now
        self.inherited["environ_block"] = confine.rewrite_environ_block(dict(os.environ))
        self.address_space = region.address_space()
        self._send({"op": "prepared"})

    def _spawn(self, requests: list[tuple[dict[str, Any], list[int]]]) -> None:
        """Fork one child per request with nothing in between: every page we write between two forks
        is copied once more while the children share it. The bookkeeping comes after, and a standby for
        the run last."""
        if not requests:
            return
        ready = []
        for message, fds in requests:
            if self.skill is None or len(fds) < 3:
                for fd in fds:
                    os.close(fd)
                self._send({"op": "error", "id": message.get("id"), "message": "spawn before prepare, or fds missing"})
                continue
            job = self._with_our_part(message["job"], fds)
            ready.append((int(message["id"]), job, fds, fds[3] if len(fds) > 3 else -1))
        pids = []
        with processes.gc_frozen():
            for _ident, job, fds, go_read in ready:
                pid = os.fork()
                if pid == 0:  # child
                    region.run(job, self.skill, fds[0], go_read)  # type: ignore[arg-type]
                pids.append(pid)
        for (ident, _job, fds, _go), pid in zip(ready, pids, strict=True):
            try:
                os.setpgid(pid, pid)
            except OSError:
                pass  # the child already did it, or already exited
            for fd in fds:
                os.close(fd)
            self._watch(ident, pid)
            self._send({"op": "spawned", "id": ident, "pid": pid})
        if ready and (self.standby is None or self.standby.run != _run_of(ready[-1][1])):
            self._stand_by(_run_of(ready[-1][1]))

    def _with_our_part(self, job: Mapping[str, Any], fds: list[int]) -> dict[str, Any]:
        """A job as a child of ours runs it: the fds it came with (pipe, stderr, stack[, go]) and what we hold."""
        return {**job, "stderr_fd": fds[1], "stack_fd": fds[2], "address_space": self.address_space,
                "stack_slot": self.stack_slot, "env_scrubbed": True, "inherited": self.inherited}

    def _watch(self, ident: int, pid: int) -> None:
        self.pids[ident] = pid
        self.pidfds[ident] = os.pidfd_open(pid)
        self.selector.register(self.pidfds[ident], selectors.EVENT_READ, ident)

    def _stand_by(self, run: tuple[str, tuple[str, ...], int]) -> None:
        """Fork a standby child for ``run``: it sets itself up as far as no particular attempt is concerned
        (:func:`pytest_distproc.attempt.execute.stand_by`) and waits to be handed one. Its socket goes to
        the coordinator, which hands it the next attempt of that run itself (one hop less than through
        us) and tells us to ``adopt`` it. Why: a retry then starts with nothing left to wait for. One at
        a time, so a run that never needs it pays one fork; the sweep that ends a run kills it."""
        self._drop_standby()
        self.standbys += 1
        name = f"standby-{self.standbys}"
        cgroups = [os.path.join(group_dir, name) for group_dir in run[1]]
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with processes.gc_frozen():  # the child stays inside: its heap stays frozen
            pid = os.fork()
            if pid == 0:
                self._wait_for_a_job(theirs, ours, cgroups, run)
        theirs.close()
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass
        self.standby = _Standby(pid, run)
        try:
            self._send({"op": "standby", "pid": pid, "group": name if cgroups else "",
                        "run": [run[0], list(run[1]), run[2]]}, [ours.fileno()])
        finally:
            ours.close()

    def _wait_for_a_job(self, theirs: socket.socket, ours: socket.socket, cgroups: list[str],
                        run: tuple[str, tuple[str, ...], int]) -> NoReturn:
        """The standby child: set up, wait to be handed a job and its fds, run it. Never returns."""
        try:
            ours.close()
            region.ISOLATION["standby"] = True
            region.stand_by(cgroups, run[0], run[2], keep=(theirs.fileno(), self.stack_slot), inherited=self.inherited,
                            ahead=True)
            payload, fds = _recv_with_fds(theirs, 0)
            if not payload or len(fds) < 3:  # let go before it was needed, or the coordinator is gone:
                os.kill(os.getpid(), signal.SIGKILL)  # nothing ran here, so nothing is saved on the way out
                # (coverage's `patch = _exit` writes a data file at os._exit; killed mid-write, it is junk)
            theirs.close()
            job = self._with_our_part(json.loads(payload), fds)
            region.run(job, self.skill, fds[0], fds[3] if len(fds) > 3 else -1,  # type: ignore[arg-type]
                       standing_by=True)
        finally:
            os._exit(region.EXIT_ERROR)

    def _adopt(self, ident: int, pid: int) -> None:
        """The coordinator handed an attempt to the standby ``pid``: it is an attempt like any other now."""
        if self.standby is None or self.standby.pid != pid:
            self._send({"op": "exit", "id": ident, "pid": pid, "returncode": None, "signal": None})
            return  # not ours to watch (it was dropped): the coordinator sees its death through its pidfd
        run, self.standby = self.standby.run, None
        self._watch(ident, pid)
        self._stand_by(run)

    def _drop_standby(self) -> None:
        standby, self.standby = self.standby, None
        if standby is None:
            return
        try:
            os.kill(standby.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.waitpid(standby.pid, 0)
        except ChildProcessError:
            pass

    def _report_exit(self, ident: int) -> None:
        pidfd = self.pidfds.pop(ident, None)
        if pidfd is None:
            return  # reaped in this same round: the client saw the death through a pidfd of its own
        self.selector.unregister(pidfd)
        try:
            info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOWAIT)
        finally:
            os.close(pidfd)
        message: dict[str, Any] = {"op": "exit", "id": ident, "pid": self.pids[ident],
                                   "returncode": None, "signal": None}
        if info is not None and info.si_code == os.CLD_EXITED:
            message["returncode"] = info.si_status
        elif info is not None:
            message["signal"] = info.si_status
        self._send(message)

    def _reap(self, ident: int) -> None:
        pid = self.pids.pop(ident, None)
        if pid is None:
            return
        try:
            os.killpg(pid, signal.SIGKILL)  # what is left of its group, while the pid is still ours
        except OSError:
            pass
        pidfd = self.pidfds.pop(ident, None)
        if pidfd is not None:  # reaped before it was seen to exit: the client is closing a run
            self.selector.unregister(pidfd)
            os.close(pidfd)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass

    def sweep(self) -> list[int]:
        """Kill and reap our children that are no attempt: descendants reparented to us (we are a subreaper).
        The run's standby goes first (asked for at a run's end, it is no stray)."""
        self._drop_standby()
        killed = []
        for _ in range(10):
            strays = processes.children_of(os.getpid()) - set(self.pids.values())
            if not strays:
                break
            killed += [pid for pid in strays if processes.kill_and_reap(pid)]
        return killed

    def _send(self, message: Mapping[str, Any], fds: list[int] | None = None) -> None:
        _send_with_fds(self.sock, json.dumps(message).encode(), fds or [])


class _HeldStandby(NamedTuple):
    """The coordinator's end of a standby: its pid, its cgroup's name, what it was set up for, its socket."""

    pid: int
    group: str
    run: tuple[str, tuple[str, ...], int]
    sock: socket.socket


class _Standby(NamedTuple):
    """A child forked ahead for one run, waiting on its socket (held by the coordinator) to be handed an attempt."""

    pid: int
    run: tuple[str, tuple[str, ...], int]
    """What it was set up for (:func:`_run_of`): a job of another run, or with another memory limit, forks."""


COVERAGE_SUBPROCESS = ("COVERAGE_PROCESS_START", "COVERAGE_PROCESS_CONFIG")
"""What tells coverage's ``.pth`` file to measure a new Python process (pytest-cov sets one of them)."""


def _site_flags() -> list[str]:
    """``-S``: the server starts without the ``site`` module, a third of its start-up CPU (the virtualenv's
    ``.pth`` files, an editable install's import finder). Our own code and the standard library need none
    of it; a user's skill may, so the server runs :func:`site.main` before it imports one (:func:`_with_site`).
    Coverage's subprocess measurement starts from a ``.pth`` file: when it is on, the server starts as usual."""
    return [] if any(os.environ.get(name) for name in COVERAGE_SUBPROCESS) else ["-S"]


@functools.cache
def _with_site() -> None:
    """What ``-S`` left out, before a user's skill is imported: site-packages, ``.pth`` files (editable
    installs' finders), ``sitecustomize``; once (``sys.flags.no_site`` stays set). The coordinator's
    ``sys.path`` is set right after."""
    if sys.flags.no_site:
        import site

        site.main()


def _run_of(job: Mapping[str, Any]) -> tuple[str, tuple[str, ...], int]:
    """What a standby must share with a job to take it up: the run dir, the run's cgroup dirs, the memory limit."""
    return (os.path.dirname(str(job["workdir"])), tuple(os.path.dirname(str(g)) for g in job.get("cgroups") or ()),
            int(job.get("memory_limit_mb") or 0))


def _usage(who: int) -> dict[str, float]:
    usage = resource.getrusage(who)
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "maxrss_kib": usage.ru_maxrss}


def _send_with_fds(sock: socket.socket, payload: bytes, fds: list[int], flags: int = 0) -> None:
    """``socket.send_fds`` that honours ``flags`` (before Python 3.12 it drops them, and blocks)."""
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([payload], ancillary, flags)


def _recv_with_fds(sock: socket.socket, flags: int) -> tuple[bytes, list[int]]:
    """``socket.recv_fds`` that honours ``flags`` (before Python 3.12 it drops them)."""
    payload, ancillary, _flags, _addr = sock.recvmsg(MAX_PACKET, socket.CMSG_LEN(MAX_FDS * 4), flags)
    fds: list[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += array.array("i", data[: len(data) - len(data) % 4]).tolist()
    return payload, fds


_RUNNING: list[_Server] = []
_PARENT: list[int] = []


def _on_parent_death(signum: int, frame: Any) -> None:
    """SIGTERM from PR_SET_PDEATHSIG: the coordinator was killed. Our attempts get their own when we
    exit (their handler removes their temp dirs); what escaped their groups is ours to kill.
    Attempts inherit this handler: in them it is :func:`pytest_distproc.attempt.execute.on_sigterm`."""
    if os.getpid() != _PARENT[1]:
        region.on_sigterm(signum, frame)  # an attempt (before its set-up, it just exits)
        return
    if os.getppid() == _PARENT[0]:
        return  # the thread that started us ended, not the coordinator
    for server in _RUNNING:
        server.sweep()
    os._exit(0)


def main(argv: list[str]) -> None:
    _PARENT[:] = [os.getppid(), os.getpid()]
    processes.raise_fd_limit()  # a pidfd per live attempt, and the fds of the spawns in flight
    signal.signal(signal.SIGTERM, _on_parent_death)
    region.SERVER_SIGTERM = _on_parent_death  # our attempts keep it (see attempt.execute._die_with_parent)
    if region._PRCTL is not None:
        region._PRCTL(confine.PR_SET_DUMPABLE, 0)  # attempts may not read our memory, fds or environment
        region._PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)
        region._PRCTL(PR_SET_CHILD_SUBREAPER, 1)  # escapees come to us, and the sweep kills them
    if os.getppid() != _PARENT[0]:
        os._exit(0)  # the coordinator died before PR_SET_PDEATHSIG took effect
    server = _Server(socket.socket(fileno=int(argv[0])))
    _RUNNING.append(server)
    server.serve()
    # The coordinator closed its end. Attempts still running (it died: this races with its parent-death
    # signal) are not killed here: they get theirs when we exit, and remove their temp dirs.
    server.sweep()


if __name__ == "__main__":
    main(sys.argv[1:])
