"""The default backend: every attempt in a freshly forked process of its own group and temp dir."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import time
import warnings
from typing import Any

from pytest_distproc import region
from pytest_distproc.backends import Handle
from pytest_distproc.skills import Skill

STACK_WAIT = 0.3
TAIL = 2000


class ForkBackend:
    """os.fork per attempt; a selector over the result pipes; waitpid turns death into an ``exit`` message."""

    name = "fork"
    isolated = True

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.selector = selectors.DefaultSelector()
        self.live: dict[int, Handle] = {}  # pid -> handle, until reaped
        self.closing: list[Handle] = []  # pipe closed, process not yet reaped

    def start(self, job: dict[str, Any], skill: Skill, *, barrier: bool) -> Handle:
        # The child makes its own dir (in parallel); stderr and the stack dump go to memfds we keep,
        # so no file is created on disk in this loop (a mkdir on a disk-backed /tmp costs ~1 ms).
        workdir = os.path.join(self.run_dir, f"{job['task']}-a{job['attempt']}")
        stderr_fd = os.memfd_create(f"{job['task']}-stderr")
        stack_fd = os.memfd_create(f"{job['task']}-stack")
        job = {**job, "workdir": workdir, "stderr_fd": stderr_fd, "stack_fd": stack_fd}
        read_fd, write_fd = os.pipe()
        go_read, go_write = os.pipe() if barrier else (-1, -1)
        with warnings.catch_warnings():
            # Python 3.12+ warns when a threaded process forks. The child only computes, writes to a
            # raw fd and leaves via os._exit; skills are imported before the fork. See docs/architecture.md.
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*fork.*")
            pid = os.fork()
        if pid == 0:  # child
            try:
                os.close(read_fd)
                if go_write >= 0:
                    os.close(go_write)
            finally:
                region.run(job, skill, write_fd, go_read)
        try:
            os.setpgid(pid, pid)
        except OSError:
            pass  # the child already did it, or already exited
        os.close(write_fd)
        if go_read >= 0:
            os.close(go_read)
        os.set_blocking(read_fd, False)
        handle = Handle(job, pid, workdir, {"fd": read_fd, "go": go_write, "buffer": b"",
                                            "stderr": stderr_fd, "stack": stack_fd})
        self.selector.register(read_fd, selectors.EVENT_READ, handle)
        self.live[pid] = handle
        return handle

    def now(self) -> float:
        return time.monotonic()

    def release(self, handle: Handle) -> None:
        go = handle.private.get("go", -1)
        if go >= 0:
            try:
                os.write(go, b"g")
            except OSError:
                pass  # the child is already gone; its exit tells why
            os.close(go)
            handle.private["go"] = -1

    def poll(self, timeout: float) -> list[tuple[Handle, dict[str, Any]]]:
        out: list[tuple[Handle, dict[str, Any]]] = []
        out.extend(self._reap())
        if out:
            timeout = 0
        if self.closing:
            timeout = min(timeout, 0.01)
        if not self.selector.get_map():
            if timeout > 0:
                time.sleep(timeout)
            return out + self._reap()
        for key, _ in self.selector.select(max(timeout, 0)):
            handle: Handle = key.data
            out.extend((handle, m) for m in self._read(handle))
        out.extend(self._reap())
        return out

    def _read(self, handle: Handle) -> list[dict[str, Any]]:
        fd = handle.private["fd"]
        chunks = []
        eof = False
        while True:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
        buffer = handle.private["buffer"] + b"".join(chunks)
        *lines, rest = buffer.split(b"\n")
        handle.private["buffer"] = rest
        messages = [self._decode(line) for line in lines if line.strip()]
        if eof:
            if rest.strip():
                messages.append(self._decode(rest))
            self.selector.unregister(fd)
            os.close(fd)
            handle.private["fd"] = -1
            self.closing.append(handle)
        return messages

    @staticmethod
    def _decode(line: bytes) -> dict[str, Any]:
        try:
            message = json.loads(line)
        except ValueError:
            return {"type": "garbage", "text": line[:200].decode(errors="replace")}
        return message if isinstance(message, dict) else {"type": "garbage", "text": repr(message)[:200]}

    def _reap(self) -> list[tuple[Handle, dict[str, Any]]]:
        out = []
        for handle in list(self.closing):
            assert handle.pid is not None
            pid, status = os.waitpid(handle.pid, os.WNOHANG)
            if pid == 0:
                continue
            self.closing.remove(handle)
            out.append((handle, self._finish(handle, status)))
        return out

    def _finish(self, handle: Handle, status: int) -> dict[str, Any]:
        assert handle.pid is not None
        self._killpg(handle.pid)  # anything the processor spawned into its group goes with it
        self.live.pop(handle.pid, None)
        self.release(handle)
        message: dict[str, Any] = {"type": "exit", "returncode": None, "signal": None}
        if os.WIFSIGNALED(status):
            message["signal"] = signal.Signals(os.WTERMSIG(status)).name
        else:
            message["returncode"] = os.WEXITSTATUS(status)
        message["stack"] = _head(handle.private["stack"])
        message["stderr"] = _tail(handle.private["stderr"])
        self._discard(handle)
        return message

    @staticmethod
    def _discard(handle: Handle) -> None:
        for key in ("stack", "stderr"):
            fd = handle.private.pop(key, -1)
            if fd >= 0:
                os.close(fd)
        shutil.rmtree(handle.workdir, ignore_errors=True)

    def kill(self, handle: Handle, *, dump_stack: bool) -> None:
        if handle.pid is None or handle.pid not in self.live:
            return
        if dump_stack:
            try:
                os.kill(handle.pid, signal.SIGUSR1)
                deadline = time.monotonic() + STACK_WAIT
                while time.monotonic() < deadline and not os.fstat(handle.private["stack"]).st_size:
                    time.sleep(0.01)
            except ProcessLookupError:
                pass
        self._killpg(handle.pid)

    @staticmethod
    def _killpg(pgid: int) -> None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        """Kill and reap everything still running, then remove every temp dir. Safe to call twice."""
        for pid, handle in list(self.live.items()):
            self._killpg(pid)
            fd = handle.private.get("fd", -1)
            if fd >= 0:
                self.selector.unregister(fd)
                os.close(fd)
                handle.private["fd"] = -1
            self.release(handle)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            self._discard(handle)
        self.live.clear()
        self.closing.clear()
        self.selector.close()


def _head(fd: int, lines: int = 25) -> str:
    """The innermost frames of a faulthandler dump (it prints the most recent call first)."""
    text = os.pread(fd, 16384, 0).decode(errors="replace")
    return "\n".join(text.splitlines()[:lines]).rstrip()


def _tail(fd: int) -> str:
    size = os.fstat(fd).st_size
    return os.pread(fd, TAIL, max(0, size - TAIL)).decode(errors="replace").strip()
