"""The child side of one attempt: isolate, say hello, wait for the go, run the skill, send plain data back.

Runs in a freshly forked process and never returns: it leaves through ``os._exit``. Never imports
pytest; results travel through a pipe as JSON lines, never through stdout (pytest captures fds).
"""

from __future__ import annotations

import faulthandler
import json
import os
import resource
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Mapping
from typing import Any, NoReturn

from pytest_distproc.attempt import confine, data
from pytest_distproc.attempt.faults import installed
from pytest_distproc.attempt.skills import Skill

ENV_ALLOWLIST = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "PYTHONHASHSEED", "DISTPROC_TAG")
"""What passes from the coordinator's environment. ``DISTPROC_TAG`` is a label to find a run's processes by
(``/proc/PID/environ``), as the tests' leak checks do: never a secret."""
ATTEMPT_ENV = ("TMPDIR", "HOME", "DISTPROC_REGION", "DISTPROC_TASK", "DISTPROC_ATTEMPT")
"""What an attempt's environment says of it (its temp dir, twice, its region, task and attempt)."""
ISOLATION: dict[str, Any] = {}
"""What this child managed to set up, reported in its hello."""
STACK_FILE = "stack.txt"
STDERR_FILE = "stderr.txt"
EXIT_ERROR = 1
EXIT_NO_GO = 70


def send(fd: int, message: Mapping[str, Any]) -> None:
    payload = (json.dumps(message) + "\n").encode()
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def isolate(job: Mapping[str, Any], keep: tuple[int, ...] = ()) -> None:
    """Own cgroup and process group, own temp dir, scrubbed environment (the inherited block too), quiet
    stdio, bounded memory, no fd but its own (the pipes and memfds of sibling attempts, inherited through
    fork, are closed), and no privileges: see :mod:`.confine`."""
    stand_by(job.get("cgroups") or [], os.path.dirname(job["workdir"]), int(job.get("memory_limit_mb") or 0),
             keep=(*keep, job.get("stderr_fd", -1), job.get("stack_fd", -1), job.get("stack_slot", -1)))
    take_up(job)


def stand_by(cgroups: list[str], run_dir: str, memory_limit_mb: int, keep: tuple[int, ...], *,
             ahead: bool = False) -> None:
    """The part of :func:`isolate` that does not depend on the attempt: a fork server's standby child does
    it ahead of time (:mod:`pytest_distproc.backends.forkserver`), so a retry starts without waiting for it
    (joining a cgroup alone is ~10 ms of kernel wait). Ends without privileges: what follows needs none.

    ``ahead``: also write, with placeholders, what :func:`take_up` will write (the environment and its
    inherited block): the first write to a page shared with the parent copies it, ~0.4 ms each here."""
    if cgroups:
        ISOLATION["cgroup"] = confine.join(cgroups)  # first: before it can start anything
    _close_other_fds({0, 1, 2, *keep})
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    _die_with_parent(None)
    # Over the run dir, in our own mount namespace: siblings' dirs vanish from our view, and ours is made
    # in memory. Either way the dir is made by the attempt, in parallel, not in the coordinator's loop.
    ISOLATION["private_workdir"] = private_workdir(run_dir, memory_limit_mb or 256)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    ISOLATION.update(confine.drop_privileges())  # last: the tmpfs mount needed them
    if ahead:
        os.environ.update({key: "" for key in ATTEMPT_ENV})
        confine.rewrite_environ_block(dict(os.environ))


def take_up(job: Mapping[str, Any]) -> None:
    """The part of :func:`isolate` that belongs to this attempt: its temp dir, environment, output and
    memory limit. Cheap (well under a millisecond): it is all a standby child does once handed a job."""
    workdir = job["workdir"]
    try:
        os.mkdir(workdir, 0o700)  # its parent is the run dir (or the private tmpfs over it): one syscall
    except FileExistsError:
        pass
    _ORPHAN["workdir"] = workdir
    _scrub_env(job, workdir)
    os.chdir(workdir)
    tempfile.tempdir = workdir  # the coordinator's cached choice must not leak into the child
    err = job.get("stderr_fd")
    if err is None:
        err = os.open(os.path.join(workdir, STDERR_FILE), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(err, 1)
    os.dup2(err, 2)
    stack = job.get("stack_fd")  # a memfd the coordinator reads after our death
    if stack is None:
        stack = os.open(os.path.join(workdir, STACK_FILE), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    if job.get("stack_slot") is not None:
        os.dup2(stack, job["stack_slot"])  # the fork server's faulthandler writes to that fd: now our memfd
    else:
        faulthandler.register(signal.SIGUSR1, file=stack, all_threads=True, chain=True)  # a bare fd: no file object
        faulthandler.enable(file=stack)
    limit_mb = int(job.get("memory_limit_mb", 0))
    if limit_mb:
        size = job.get("address_space") or address_space()  # measured by the parent at the fork, if it could
        ceiling = size + limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
    ISOLATION["environ_block"] = confine.rewrite_environ_block(dict(os.environ))


def _scrub_env(job: Mapping[str, Any], workdir: str) -> None:
    """Only the allow-listed variables of the coordinator's environment, and ours."""
    ours = dict(zip(ATTEMPT_ENV, (workdir, workdir, job["region"], job["task"], str(job["attempt"])), strict=True))
    if job.get("env_scrubbed"):  # the fork server holds only the allow-listed variables already
        os.environ.update(ours)
        return
    keep_only_env({**{k: os.environ[k] for k in ENV_ALLOWLIST if k in os.environ}, **ours})


def keep_only_env(allowed: Mapping[str, str]) -> None:
    """Make this process's environment exactly ``allowed`` (a child, or the fork server before it forks)."""
    for key in [k for k in os.environ if k not in allowed]:
        del os.environ[key]  # (os.environ.clear() pops one item at a time, restarting its iteration)
    os.environ.update(allowed)


def _die_with_parent(workdir: str | None) -> None:
    """If the coordinator dies without cleaning up (pytest-timeout's thread method calls os._exit,
    or a kill -9), Linux sends us SIGTERM: :func:`on_sigterm` removes our temp dir and takes our
    process group down. A fork server's attempts inherit its handler, which hands over to
    :func:`on_sigterm` (``signal.signal`` cost an attempt a tenth of its set-up); what they inherited
    is checked here, as a skill's own at-fork hook may have replaced it."""
    _ORPHAN.update(parent=os.getppid(), workdir=workdir, pid=os.getpid())
    handler = signal.getsignal(signal.SIGTERM)
    if handler is not on_sigterm and (SERVER_SIGTERM is None or handler is not SERVER_SIGTERM):
        signal.signal(signal.SIGTERM, on_sigterm)
        handler = on_sigterm
    _ORPHAN["handler"] = handler
    os.register_at_fork(before=_hold_sigterm, after_in_parent=_release_sigterm, after_in_child=_default_sigterm)
    if _PRCTL is None:
        return
    _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != _ORPHAN["parent"]:  # the coordinator died before prctl took effect
        on_sigterm(signal.SIGTERM, None)


_ORPHAN: dict[str, Any] = {}  # an attempt's parent pid, temp dir, pid and SIGTERM handler, for on_sigterm
SERVER_SIGTERM: Any = None  # set in the fork server: its SIGTERM handler, inherited by its attempts


_HELD: dict[int, bool] = {}  # forking thread -> whether SIGTERM was blocked before our at-fork hook blocked it


def _hold_sigterm() -> None:
    """Before a fork (a skill's process pool): block SIGTERM in the forking thread, so the child is born
    with it blocked. A SIGTERM that reached the child before CPython's at-fork clean-up was otherwise
    lost: the C handler only marks a Python handler to run, and the child clears those marks, so a pool
    worker ``Pool.terminate`` signalled at birth lived on and the pool waited for it forever."""
    _HELD[threading.get_ident()] = signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})


def _release_sigterm() -> None:
    """After a fork, in the parent, or in the child once its SIGTERM has its meaning: a SIGTERM that came
    meanwhile was kept pending by the kernel and is delivered now."""
    if not _HELD.pop(threading.get_ident(), True):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _default_sigterm() -> None:
    """In a process an attempt forks (a skill's process pool): SIGTERM kills it at once, as
    ``Pool.terminate`` expects, unless something in between set a handler of its own. Our
    Python-level handler only runs between bytecodes, and a pool worker waited on by its parent hung."""
    try:
        if signal.getsignal(signal.SIGTERM) is _ORPHAN.get("handler"):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    finally:
        _release_sigterm()


def on_sigterm(signum: int, frame: Any) -> None:
    """An attempt's SIGTERM: from its parent's death (clean up, then kill our group) or from anyone
    else, who keeps the default meaning. A process the attempt forked (a skill's process pool) inherits
    this handler: for it, SIGTERM (``Pool.terminate``) has its default meaning too."""
    parent, workdir = _ORPHAN.get("parent"), _ORPHAN.get("workdir")
    if parent is None or workdir is None:
        os._exit(128 + signal.SIGTERM)  # before our set-up: nothing of ours to remove yet
    if os.getppid() == parent or os.getpid() != _ORPHAN.get("pid"):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
        return
    import shutil

    if _UMOUNT2 is not None:
        _UMOUNT2(os.path.dirname(workdir).encode(), MNT_DETACH)  # back to the on-disk run dir
    shutil.rmtree(workdir, ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(workdir))
    except OSError:
        pass  # a sibling still holds its own dir; the last one out removes the run dir
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGKILL)


def address_space() -> int:
    """This process's virtual size in bytes: the base an attempt's memory limit is added to."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _close_other_fds(keep: set[int]) -> None:
    """Close every fd but ``keep``: ``os.closerange`` uses close_range(2), one call per gap, so a child
    of a 256-region run does not pay for each of the ~1000 fds it inherited."""
    low = 0
    for fd in sorted(f for f in keep if f >= 0):
        if fd > low:  # never an empty range: closerange(n, n) reaches close_range(n, n - 1), i.e. "all"
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def _libc_function(name: str) -> Any:
    """Resolved once in the coordinator: loading ctypes in every child cost ~6 ms per attempt."""
    try:
        import ctypes

        return getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_function("prctl")
_UNSHARE = _libc_function("unshare")
_MOUNT = _libc_function("mount")
_UMOUNT2 = _libc_function("umount2")
CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000
MNT_DETACH = 0x2


def private_workdir(run_dir: str, size_mb: int) -> bool:
    """Mount a private tmpfs over the run dir, in a mount namespace of our own.

    Nobody else sees what we write in our temp dir, and we see no sibling's. Needs CAP_SYS_ADMIN
    (root, as in CI); elsewhere the temp dir stays a plain 0700 dir on disk.
    """
    if _UNSHARE is None or _MOUNT is None or _UNSHARE(CLONE_NEWNS) != 0:
        return False
    if _MOUNT(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return False
    options = f"mode=0700,size={max(size_mb, 16)}m".encode()
    return bool(_MOUNT(b"tmpfs", run_dir.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options) == 0)


def wait_for_go(go_fd: int) -> None:
    if go_fd < 0:
        return
    if not os.read(go_fd, 1):
        os._exit(EXIT_NO_GO)  # the coordinator went away before releasing us
    os.close(go_fd)


def run(job: Mapping[str, Any], skill: Skill, channel: int, go_fd: int, *, standing_by: bool = False) -> NoReturn:
    """Entry point of the forked child (``standing_by``: a standby child that did :func:`stand_by` already)."""
    code = EXIT_ERROR
    try:
        if standing_by:
            take_up(job)
        else:
            isolate(job, keep=(channel, go_fd))
        send(channel, {"type": "hello", "pid": os.getpid(), "isolation": ISOLATION})
        wait_for_go(go_fd)
        result = execute(job, skill, lambda message: send(channel, message))
        send(channel, {"type": "result", "result": result})
        code = 0
    except MemoryError:
        _report(channel, {"type": "error", "kind": "memory", "error": "MemoryError",
                          "message": f"allocation past the {job.get('memory_limit_mb')} MB limit"})
    except BaseException as exc:  # everything becomes a worded event on the coordinator side
        _report(channel, {"type": "error", "kind": "exception", "error": type(exc).__name__, "message": str(exc),
                          "traceback": "".join(traceback.format_exception(exc)[-6:])})
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _report(channel: int, message: Mapping[str, Any]) -> None:
    try:
        send(channel, message)
    except OSError:
        pass


def execute(job: Mapping[str, Any], skill: Skill, emit: Any, actions: Mapping[str, Any] | None = None) -> Any:
    """Load the region's records, apply this attempt's faults around the skill, return its result.

    Shared by the fork child and the in-process backend (which passes simulated ``actions`` for the
    faults that would end or stall a real process), so faults are planned and announced the same way.
    """
    state: dict[str, Any] = {"records": data.load(job["source"])}
    faults = list(job.get("faults", ()))
    kinds = installed()
    for fault in faults:
        if kinds[fault["kind"]].phase == "before":
            emit({"type": "fault", "fault": fault})
            (actions or {}).get(fault["kind"], kinds[fault["kind"]].action)(fault, state)
    context = {"region": job["region"], "attempt": job["attempt"], "seed": job["seed"], "workdir": job["workdir"]}
    state["result"] = skill(state["records"], context)
    for fault in faults:
        if kinds[fault["kind"]].phase == "after":
            emit({"type": "fault", "fault": fault})
            (actions or {}).get(fault["kind"], kinds[fault["kind"]].action)(fault, state)
    return state["result"]
