"""The default backend: every attempt in a freshly forked process of its own group and temp dir."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import selectors
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pytest_distproc.attempt import execute as region
from pytest_distproc.attempt.messages import MAX_DEPTH, MAX_MESSAGE_BYTES, ChildJob, Job, child_job, garbage
from pytest_distproc.attempt.skills import Skill
from pytest_distproc.backends import bounded, containment, forkserver, guardian, processes
from pytest_distproc.backends.protocol import Handle

STACK_WAIT = 0.3
STACK_SETTLE = 0.05
TAIL = 2000
READS_PER_POLL = 32
PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER = 36, 37
FDS_PER_ATTEMPT = 4
"""What an attempt holds open in the coordinator while it runs: its result pipe, its stderr and stack
memfds, and its pidfd; one more at a start barrier, its go pipe."""
FD_RESERVE = 64
"""Fds kept free for everything else the coordinator's process opens while a run lasts."""


@dataclass(eq=False, kw_only=True)
class ForkHandle(Handle):
    """A fork backend's :class:`Handle`: the fds and state of one forked attempt (-1: a closed fd)."""

    fd: int
    """The read end of the result pipe (non-blocking), registered in the selector; -1 once closed."""
    go: int
    """The write end of the go pipe (the barrier's release); -1 without a barrier or once released."""
    stderr: int
    """The memfd the child's stderr goes to; -1 once discarded."""
    stack: int
    """The memfd of the child's faulthandler stack dump; -1 once discarded."""
    served: int
    """The fork server's id for the attempt; 0: forked by us, our own child (watched by ``pidfd``)."""
    buffer: bytes = b""
    """What was read from the pipe after its last newline: the start of a message still coming."""
    pidfd: int = -1
    """A pidfd of our own child, registered in the selector (its exit); -1 when served or once discarded."""
    dumping: bool = False
    """A stack dump asked for by a kill has begun to be written: its SIGKILL waits ``STACK_SETTLE`` at most."""
    skipping: bool = False
    """A message ran past ``MAX_MESSAGE_BYTES``: what comes until its newline is dropped unread."""
    group: str = ""
    """Its cgroups' name in the run's group dirs: the fork server's standby's, or ``<task>-a<attempt>``."""


class ForkBackend:
    """os.fork per attempt; one selector over the result pipes and a pidfd per child.

    A child's death is seen through its pidfd, not through its pipe's EOF: a grandchild that keeps
    the pipe open cannot keep a dead attempt "running". While a run lasts, the coordinator is a
    child subreaper, so a descendant that escaped its group with ``setsid`` is reparented to us and
    killed when the run closes.
    """

    name = "fork"
    isolated = True

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.fd_limit = processes.raise_fd_limit()
        self.fds_before = processes.open_fd_count()  # ours come on top: counted, not listed, per start
        self.go_open = 0  # go pipes still held (start barrier)
        self.live: dict[int, ForkHandle] = {}  # pid -> handle, until reaped
        self.pending_kills: dict[int, float] = {}  # pid -> when its SIGKILL is due (after a stack dump)
        self.children_before = processes.children_of(os.getpid())
        self.attempt_groups: set[int] = set()
        self.address_space = region.address_space()  # once a run: reading /proc costs ~0.3 ms a fork
        self.started_ticks = _ticks_since_boot()
        self.server: forkserver.ForkServer | None = None  # set when an attempt was forked by it
        self.served: dict[int, ForkHandle] = {}  # the fork server's id -> live attempt it forked
        with _sigint_deferred():  # a Ctrl-C here must not leave the selector open or us a subreaper
            self.selector = selectors.DefaultSelector()
            self.was_subreaper = _subreaper(True)
            self.groups = containment.RunGroups()  # every attempt in cgroups of its own, where we may
            containment.hide(True)  # an attempt may not read our memory, fds or environment
            guardian.watch(run_dir)  # if pytest dies: the groups are killed and the run dir removed

    def start(self, job: Job, skill: Skill, *, barrier: bool) -> ForkHandle:
        return self.start_many([job], skill, barrier=barrier)[0]

    def budget(self, count: int, *, barrier: bool) -> tuple[int, str]:
        """How many of ``count`` attempts may start now within the open-file limit, and, when fewer,
        the sentence that says what to raise and to what."""
        per = FDS_PER_ATTEMPT + (1 if barrier else 0)
        soft, hard = self.fd_limit
        held = FDS_PER_ATTEMPT * len(self.live) + self.go_open
        room = max(0, (soft - FD_RESERVE - self.fds_before - held) // per)
        if room >= count:
            return count, ""
        needed = self.fds_before + held + FD_RESERVE + count * per
        hard_text = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
        return room, (f"{count} attempt(s) would need {count * per} more file descriptors ({per} each in the "
                      f"coordinator) but only {room} fit under the open-file limit of {soft} (hard limit "
                      f"{hard_text}, the soft one raised to it already) with {self.fds_before + held} open: "
                      f"raise it to at least {needed}, e.g. `ulimit -n {needed}` in the shell that starts "
                      f"pytest, or `--ulimit nofile={needed}` for a Docker container")

    def start_many(self, jobs: list[Job], skill: Skill, *, barrier: bool) -> list[ForkHandle]:
        """Fork every job in a tight loop, then register them: a page the parent writes between two
        forks costs a copy-on-write fault, so nothing but the forks happens between them. The forks
        come from the fork server when the skill can be imported there (see :mod:`.forkserver`)."""
        # From the first fd to the registration nothing may be lost to a Ctrl-C: it is delivered after.
        with _sigint_deferred():
            children = self._served(jobs, skill, barrier)
            if children is not None:
                return [self._register(child) for child in children]
            children = []
            try:
                with processes.gc_frozen():
                    for job in jobs:
                        children.append(spawn(job, skill, self._workdir(job), barrier=barrier,
                                              address_space=self.address_space, cgroups=self._cgroups(job)))
            finally:  # those forked before a failure are ours to kill and reap at close: never leaked
                handles = [self._register(child) for child in children]
            return handles

    def _workdir(self, job: Mapping[str, Any]) -> str:
        return os.path.join(self.run_dir, f"{job['task']}-a{job['attempt']}")

    def _cgroups(self, job: Mapping[str, Any]) -> list[str]:
        return self.groups.paths(f"{job['task']}-a{job['attempt']}")

    def _kill_attempt(self, handle: ForkHandle) -> None:
        """SIGKILL the attempt, its process group and its cgroups: a skill that left its group
        (``setpgid`` into ours, ``setsid``) is still in its cgroup."""
        assert handle.pid is not None
        killpg(handle.pid)
        try:
            os.kill(handle.pid, signal.SIGKILL)  # while unreaped, the pid is still the attempt's
        except OSError:
            pass
        self.groups.kill(handle.group)

    def _served(self, jobs: list[Job], skill: Skill, barrier: bool) -> list[Spawned] | None:
        """Fork ``jobs`` in the fork server; None when they must be forked here (see :func:`forkserver.portable`)."""
        reference = forkserver.portable(str(jobs[0].get("skill", "")), skill, jobs) if jobs else None
        server = forkserver.shared() if reference else None
        if server is None or reference is None:
            return None
        try:
            server.prepare(reference)
        except (OSError, ValueError, forkserver.ForkServerError):
            return None  # e.g. the skill imports only in the coordinator's state: fork it here
        opened: list[tuple[_Pipes, ChildJob]] = []
        idents: list[int] = []
        try:
            for job in jobs:
                pipes = _Pipes.open(job["task"], barrier, int(job.get("memory_limit_mb") or 0))
                opened.append((pipes, child_job(job, workdir=self._workdir(job), cgroups=self._cgroups(job))))
                idents.append(server.spawn(opened[-1][1], barrier, pipes.child_ends))
                pipes.close_child_ends()  # in flight now, held by the kernel: one attempt's ends open at a time
            pids = server.pids_of(idents)
        except (OSError, ValueError, forkserver.ForkServerError):
            server.close()  # its children die with it (their parent-death signal); ours are fresh
            for index, (pipes, _) in enumerate(opened):
                pipes.close(child_ends=index >= len(idents))
            return None
        spawned = list(zip(idents, pids, strict=True))
        if self.server is None:
            self.server = server
            self.selector.register(server.fileno(), selectors.EVENT_READ, (None, "server"))
        return [pipes.spawned(job, pid, ident, server.groups.pop(ident, ""))
                for (pipes, job), (ident, pid) in zip(opened, spawned, strict=True)]

    def _register(self, child: Spawned) -> ForkHandle:
        os.set_blocking(child.read_fd, False)
        handle = ForkHandle(child.job, child.pid, child.workdir, fd=child.read_fd, go=child.go_write,
                            stderr=child.stderr_fd, stack=child.stack_fd, served=child.served,
                            group=child.group or os.path.basename(child.workdir))
        self.selector.register(child.read_fd, selectors.EVENT_READ, (handle, "pipe"))
        if child.served:
            self.served[child.served] = handle
        try:
            # Served children too: we see their death when the kernel reports it, not one hop later when
            # the server has woken and told us (their status is read from the zombie the server keeps).
            handle.pidfd = os.pidfd_open(child.pid)
            self.selector.register(handle.pidfd, selectors.EVENT_READ, (handle, "exit"))
        except OSError:
            if not child.served:
                raise  # our own child: its pidfd is how we learn of its death
            handle.pidfd = -1  # the server's exit message tells us instead
        self.live[child.pid] = handle
        self.go_open += handle.go >= 0
        self.attempt_groups.add(child.pid)
        return handle

    def now(self) -> float:
        return time.monotonic()

    def release(self, handle: Handle) -> None:
        if not isinstance(handle, ForkHandle):
            return  # not one of ours: it has no go pipe
        go = handle.go
        if go >= 0:
            try:
                os.write(go, b"g")
            except OSError:
                pass  # the child is already gone; its exit tells why
            os.close(go)
            handle.go = -1
            self.go_open -= 1

    def poll(self, timeout: float) -> list[tuple[Handle, dict[str, Any]]]:
        self._kill_due()
        if self.pending_kills:
            timeout = min(timeout, max(0.0, min(self.pending_kills.values()) - time.monotonic()))
        if self._served_exits():
            timeout = 0  # the server's exits read while it answered a spawn: no event will come for them
        if not self.selector.get_map():
            time.sleep(max(timeout, 0))
            return []
        events = self.selector.select(max(timeout, 0))
        out: list[tuple[Handle, dict[str, Any]]] = []
        # Pipes first, so a result sent just before death is read before the death is reported.
        for key, _ in sorted(events, key=lambda event: event[0].data[1] != "pipe"):
            handle, kind = key.data
            if kind == "pipe":
                out.extend((handle, m) for m in self._read(handle))
            elif kind == "exit" and handle.pid in self.live:
                out.extend((handle, m) for m in self._read(handle))  # whatever is left in the pipe
                out.append((handle, self._finish(handle)))
            elif kind == "server" and self.server is not None:
                self.server.receive()
        for handle in self._served_exits():
            out.extend((handle, m) for m in self._read(handle))
            out.append((handle, self._finish(handle)))
        return out

    def _served_exits(self) -> list[ForkHandle]:
        """Live attempts of the fork server that it reported dead (all of them, when the server died)."""
        server = self.server
        if server is None:
            return []
        if server.dead:
            return list(self.served.values())
        for ident in [i for i in server.exits if i not in self.served]:
            del server.exits[ident]  # seen through its pidfd and finished already
        return [self.served[ident] for ident in server.exits]  # not a scan of every attempt

    def _read(self, handle: ForkHandle) -> list[dict[str, Any]]:
        fd = handle.fd
        if fd < 0:
            return []
        chunks = []
        eof = False
        for _ in range(READS_PER_POLL):  # a child that writes without end cannot hold the loop here
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
        buffer = handle.buffer + b"".join(chunks)
        if handle.skipping:  # the rest of an overlong message, up to its newline
            end = buffer.find(b"\n")
            buffer, handle.skipping = (b"", True) if end < 0 else (buffer[end + 1:], False)
        *lines, rest = buffer.split(b"\n")
        messages = [decode(line) for line in lines if line.strip()]
        if len(rest) > MAX_MESSAGE_BYTES:
            messages.append(dict(garbage(rest, f"a message over {MAX_MESSAGE_BYTES} bytes")))
            rest, handle.skipping = b"", True
        handle.buffer = rest
        if eof:
            if rest.strip():
                messages.append(decode(rest))
            self._close_pipe(handle)
        return messages

    def _close_pipe(self, handle: ForkHandle) -> None:
        fd = handle.fd
        if fd >= 0:
            self.selector.unregister(fd)
            os.close(fd)
            handle.fd = -1


    def _finish(self, handle: ForkHandle) -> dict[str, Any]:
        assert handle.pid is not None
        self._kill_attempt(handle)  # before reaping it: until then its pid cannot be reused
        self.live.pop(handle.pid, None)
        self.pending_kills.pop(handle.pid, None)
        self.release(handle)
        self._close_pipe(handle)  # a grandchild may still hold its write end: we stop listening
        served = handle.served
        self.served.pop(served, None)
        if served and self.server is not None:
            ended = self.server.exits.get(served) or _zombie_status(handle.pid)
            self.server.reap(served)
            signum = ended["signal"]
            message = describe_exit(ended["returncode"], signal.Signals(signum).name if signum else None,
                                    handle.stack, handle.stderr)
            if self.server.dead and not signum and ended["returncode"] is None:
                message["stderr"] = (message["stderr"] + "\n(the fork server died: the attempt was ended)").strip()
        else:
            _, status = os.waitpid(handle.pid, 0)  # the pidfd said it exited: this does not block
            message = exit_message(status, handle.stack, handle.stderr)
        self.groups.finish(handle.group)
        self._discard(handle)
        return message

    def _discard(self, handle: ForkHandle) -> None:
        if handle.pidfd >= 0:
            self.selector.unregister(handle.pidfd)
            os.close(handle.pidfd)
            handle.pidfd = -1
        if handle.stack >= 0:
            os.close(handle.stack)
            handle.stack = -1
        if handle.stderr >= 0:
            os.close(handle.stderr)
            handle.stderr = -1
        shutil.rmtree(handle.workdir, ignore_errors=True)

    def kill(self, handle: Handle, *, dump_stack: bool) -> None:
        """Kill the attempt's process group; with ``dump_stack``, ask for a stack dump first and kill it
        when the dump is written or ``STACK_WAIT`` passed, without blocking the loop."""
        if handle.pid is None or handle.pid not in self.live or handle.pid in self.pending_kills:
            return
        if dump_stack:
            try:
                os.kill(handle.pid, signal.SIGUSR1)
                self.pending_kills[handle.pid] = time.monotonic() + STACK_WAIT
                return
            except ProcessLookupError:
                pass
        self._kill_attempt(self.live[handle.pid])

    def _kill_due(self) -> None:
        now = time.monotonic()
        for pid, due in list(self.pending_kills.items()):
            handle = self.live.get(pid)
            if handle is None or now >= due:
                if handle is not None:
                    self._kill_attempt(handle)
                else:
                    killpg(pid)
                del self.pending_kills[pid]
            elif os.fstat(handle.stack).st_size and not handle.dumping:
                # faulthandler has begun writing: give it a moment to finish the whole dump
                handle.dumping = True
                self.pending_kills[pid] = min(due, now + STACK_SETTLE)


    def close(self) -> None:
        """Kill and reap everything still running, escaped descendants included, then remove every temp dir."""
        for pid, handle in list(self.live.items()):
            self._kill_attempt(handle)
            self.release(handle)
            if handle.served and self.server is not None:
                self.server.reap(handle.served)
                self.served.pop(handle.served, None)
            else:
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
            self._close_pipe(handle)
            self._discard(handle)
        self.live.clear()
        self.pending_kills.clear()
        if self.server is not None:
            self.server.sweep()  # answered after every reap above: nothing of ours runs there any more
            if not self.server.dead:
                self.selector.unregister(self.server.fileno())
        our_session = os.getsid(0)
        for orphan in (processes.children_of(os.getpid()) - self.children_before - forkserver.server_pids()
                       - guardian.pids()):
            try:
                # Reparented to us while we were their subreaper. Killed only when born during this run
                # and from an attempt's group or escaped into a session of its own (setsid): a daemon of
                # a fixture, older than the run, or a child a hook started in our session is spared.
                if _started_ticks(orphan) < self.started_ticks - 2:  # two ticks of slack between the clocks
                    continue
                if os.getpgid(orphan) not in self.attempt_groups and os.getsid(orphan) == our_session:
                    continue
                processes.kill_and_reap(orphan)
            except OSError:
                pass
        self.groups.close()
        guardian.release(self.run_dir)
        containment.hide(False)
        if not self.was_subreaper:
            _subreaper(False)
        self.selector.close()


@dataclass(frozen=True)
class Spawned:
    """A forked attempt as its parent sees it: the pipes and memfds to read, the pid to watch."""

    job: ChildJob
    pid: int
    workdir: str
    read_fd: int
    go_write: int
    stderr_fd: int
    stack_fd: int
    served: int = 0  # the fork server's id for it; 0: forked by us, our child
    group: str = ""  # its cgroups' name when not ``<task>-a<attempt>`` (a standby took it up)


@dataclass(frozen=True)
class _Pipes:
    """The fds of one attempt: the result pipe, the go pipe (with a barrier), stderr and stack memfds."""

    read_fd: int
    write_fd: int
    go_read: int
    go_write: int
    stderr_fd: int
    stack_fd: int

    @classmethod
    def open(cls, task: str, barrier: bool, memory_limit_mb: int = 0) -> _Pipes:
        """All of them or none: a failure (say EMFILE) closes those already open."""
        opened: list[int] = []
        try:
            opened.append(bounded.memfd(f"{task}-stderr", bounded.limit_for(memory_limit_mb)))
            opened += [os.memfd_create(f"{task}-stack"), *os.pipe()]
            opened += os.pipe() if barrier else [-1, -1]
        except BaseException:
            for fd in opened:
                if fd >= 0:
                    os.close(fd)
            raise
        stderr_fd, stack_fd, read_fd, write_fd, go_read, go_write = opened
        return cls(read_fd, write_fd, go_read, go_write, stderr_fd, stack_fd)

    @property
    def child_ends(self) -> list[int]:
        """What the child needs, in the order the fork server expects them."""
        return [self.write_fd, self.stderr_fd, self.stack_fd] + ([self.go_read] if self.go_read >= 0 else [])

    def close_child_ends(self) -> None:
        os.close(self.write_fd)
        if self.go_read >= 0:
            os.close(self.go_read)

    def close(self, *, child_ends: bool = True) -> None:
        if child_ends:
            self.close_child_ends()
        for fd in (self.read_fd, self.go_write, self.stderr_fd, self.stack_fd):
            if fd >= 0:
                os.close(fd)

    def spawned(self, job: ChildJob, pid: int, served: int = 0, group: str = "") -> Spawned:
        return Spawned(job, pid, job["workdir"], self.read_fd, self.go_write, self.stderr_fd, self.stack_fd, served,
                       group)


def spawn(
    job: Job, skill: Skill, workdir: str, *, barrier: bool, address_space: int | None = None,
    cgroups: list[str] | None = None,
) -> Spawned:
    """Fork one attempt's child (it runs :func:`pytest_distproc.attempt.execute.run` and never returns);
    shared with the Ray launcher.

    The child makes ``workdir`` itself (in parallel); its stderr and stack dump go to memfds the
    parent keeps, so nothing is created on disk here (a mkdir on a disk-backed /tmp costs ~1 ms).
    """
    pipes = _Pipes.open(job["task"], barrier, int(job.get("memory_limit_mb") or 0))
    job = child_job(job, workdir=workdir, stderr_fd=pipes.stderr_fd, stack_fd=pipes.stack_fd,
                    address_space=address_space or region.address_space(), cgroups=cgroups or [])
    try:
        if sys.version_info >= (3, 12) and threading.active_count() > 1:
            with warnings.catch_warnings():
                # Python 3.12+ warns when a threaded process forks. The child only computes, writes to a
                # raw fd and leaves via os._exit; skills are imported before the fork. See docs/architecture.md.
                warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*fork.*")
                pid = os.fork()
        else:
            pid = os.fork()
    except OSError:
        pipes.close()  # e.g. EAGAIN: out of processes; nothing of this attempt stays open
        raise
    if pid == 0:  # child
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # a deferred Ctrl-C is the parent's
            os.close(pipes.read_fd)
            if pipes.go_write >= 0:
                os.close(pipes.go_write)
        finally:
            region.run(job, skill, pipes.write_fd, pipes.go_read)
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass  # the child already did it, or already exited
    pipes.close_child_ends()
    return pipes.spawned(job, pid)


def _zombie_status(pid: int) -> dict[str, Any]:
    """How a served child ended, read from the zombie its fork server keeps until we say "reap"
    (``exit_code``, field 52 of /proc/PID/stat, a wait status); unknown when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        if fields[0] not in ("Z", "X") or len(fields) < 50:
            raise ValueError("not a zombie")
        status = int(fields[49])
    except (OSError, ValueError, IndexError):
        return {"signal": None, "returncode": None}
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status), "returncode": None}
    return {"signal": None, "returncode": os.WEXITSTATUS(status)}


def exit_message(status: int, stack_fd: int, stderr_fd: int) -> dict[str, Any]:
    """The ``exit`` message for a reaped child, from its wait status."""
    if os.WIFSIGNALED(status):
        return describe_exit(None, signal.Signals(os.WTERMSIG(status)).name, stack_fd, stderr_fd)
    return describe_exit(os.WEXITSTATUS(status), None, stack_fd, stderr_fd)


def describe_exit(returncode: int | None, signame: str | None, stack_fd: int, stderr_fd: int) -> dict[str, Any]:
    """The ``exit`` message: how the child ended, its innermost frames, its stderr's tail."""
    return {"type": "exit", "returncode": returncode, "signal": signame,
            "stack": _head(stack_fd), "stderr": _tail(stderr_fd)}


def decode(line: bytes) -> dict[str, Any]:
    """One JSON line from a child; anything else becomes a ``garbage`` message, never an exception.
    The bounds of :mod:`~pytest_distproc.attempt.messages` hold here already: the size of a line, and
    its depth (the decoder recurses; the coordinator checks the depth of what it decoded)."""
    if len(line) > MAX_MESSAGE_BYTES:
        return dict(garbage(line, f"a message over {MAX_MESSAGE_BYTES} bytes ({len(line)} bytes)"))
    try:
        message = json.loads(line)
    except RecursionError:
        return dict(garbage(line, f"nested deeper than {MAX_DEPTH} levels"))
    except ValueError:
        return dict(garbage(line))
    return message if isinstance(message, dict) else {"type": "garbage", "text": repr(message)[:200]}


def killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _subreaper(on: bool) -> bool:
    """Set whether orphaned descendants are reparented to this process; return the previous setting."""
    prctl = region._PRCTL
    if prctl is None:
        return False
    import ctypes

    previous = ctypes.c_int(0)
    prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(previous))
    prctl(PR_SET_CHILD_SUBREAPER, int(on))
    return bool(previous.value)


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) until the block is done; it then raises KeyboardInterrupt as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _ticks_since_boot() -> int:
    with open("/proc/uptime") as handle:
        return int(float(handle.read().split()[0]) * os.sysconf("SC_CLK_TCK"))


def _started_ticks(pid: int) -> int:
    """When ``pid`` started, in clock ticks since boot (field 22 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[19])


def _head(fd: int, lines: int = 25) -> str:
    """The innermost frames of a faulthandler dump (it prints the most recent call first)."""
    text = os.pread(fd, 16384, 0).decode(errors="replace")
    return "\n".join(text.splitlines()[:lines]).rstrip()


def _tail(fd: int) -> str:
    return bounded.tail(fd, TAIL)
