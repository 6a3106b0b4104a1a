"""The guardian: a tiny process that outlives pytest to kill what its attempts left and remove their dirs.

Why: an attempt's own parent-death signal is a request the skill can refuse (it may clear
``PR_SET_PDEATHSIG``, ignore SIGTERM, or start helpers in sessions of their own), and a SIGKILLed
pytest runs no cleanup at all. The guardian is started once per pytest process, in a session of its own,
and reads a pipe from it: the run dirs to watch (``+PATH``) and those removed (``-PATH``). The pipe
reads end-of-file whenever pytest is gone, however it went (a normal exit, SIGTERM, SIGKILL,
pytest-timeout's ``os._exit``); the guardian then kills every cgroup of that pytest process
(:mod:`.containment`), removes the run dirs still watched and exits.

It waits as ``/bin/sh`` (:data:`WAITING`), which notes each line in a memfd (its stdout), and becomes Python
(:func:`main`) only when there is something to clean: a pytest that ended well says ``=done`` last.
Why: starting a Python interpreter and this module cost each pytest session ~80 ms of CPU.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys

from pytest_distproc.backends import containment

DONE = "=done"
WAITING = r"""
python=$1; shift
trap '' INT HUP TERM
last=
while IFS= read -r line; do printf '%s\n' "$line"; last=$line; done
if [ "$last" = "=done" ]; then exit 0; fi
exec "$python" -m pytest_distproc.backends.guardian --log-fd 1 "$@"
"""
"""The guardian while pytest lives: ``sh -c WAITING sh PYTHON BASE...``, its stdout a memfd (no file in any
dir: a test's private TMPDIR stays empty)."""


class Guardian:
    """pytest's end of the pipe; one per process, started on first use (:func:`watch`)."""

    def __init__(self, bases: tuple[str, ...]) -> None:
        import subprocess  # here, as in close(): the guardian process itself never needs it

        self.owner = os.getpid()
        self.watched: set[str] = set()  # run dirs not released yet: no "=done" while there is one
        self.bases = bases
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        python_path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
        log = os.memfd_create("distproc-guardian-log")
        try:
            self.process = subprocess.Popen(
                ["/bin/sh", "-c", WAITING, "sh", sys.executable, *bases],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.DEVNULL,
                # not measured by a coverage run (pytest-cov's or coverage's subprocess patch): it outlives pytest,
                # so its data file would appear after pytest-cov combined the others
                env={**{k: v for k, v in os.environ.items() if not k.startswith(("COV_CORE_", "COVERAGE_"))},
                     "PYTHONPATH": python_path},
                start_new_session=True,  # a Ctrl-C or a kill of pytest's process group must not reach it
            )
        finally:
            os.close(log)
        assert self.process.stdin is not None
        self.pipe = self.process.stdin.fileno()

    def tell(self, line: str) -> bool:
        try:
            os.write(self.pipe, (line + "\n").encode())
            return True
        except OSError:
            return False

    def close(self) -> None:
        """Remove our cgroups' base dirs, say ``=done`` and close the pipe: the guardian leaves; wait for
        it. (Without the ``=done``, as when pytest dies or something is left, it kills and removes it.)"""
        import subprocess

        if not self.watched and containment.clear(list(self.bases), wait=0.5):
            self.tell(DONE)
        assert self.process.stdin is not None
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_GUARDIAN: list[Guardian] = []


def watch(run_dir: str) -> None:
    """Have the guardian remove ``run_dir`` (and kill every group of ours) should pytest die."""
    if _GUARDIAN and (_GUARDIAN[0].owner != os.getpid() or _GUARDIAN[0].process.poll() is not None):
        _GUARDIAN.clear()  # a forked copy's, or one that died: start our own
    if not _GUARDIAN:
        try:
            _GUARDIAN.append(Guardian(containment.tier().bases))
        except OSError:
            return
    _GUARDIAN[0].watched.add(run_dir)
    _GUARDIAN[0].tell(f"+{run_dir}")


def release(run_dir: str) -> None:
    """The run removed ``run_dir`` itself: the guardian forgets it."""
    if _GUARDIAN and _GUARDIAN[0].owner == os.getpid():
        _GUARDIAN[0].watched.discard(run_dir)
        _GUARDIAN[0].tell(f"-{run_dir}")


def pids() -> set[int]:
    """Our guardian's pid: a child of ours that no run's orphan sweep may kill."""
    return {g.process.pid for g in _GUARDIAN if g.owner == os.getpid()}


@atexit.register
def close() -> None:
    while _GUARDIAN:
        guardian = _GUARDIAN.pop()
        if guardian.owner == os.getpid():
            guardian.close()


# -- the guardian process ----------------------------------------------------------------------------


def main(argv: list[str]) -> None:
    """``[--log-fd FD] BASE...``: with a log, the lines the waiting shell noted (pytest is gone already);
    without one, the lines read from the pipe until pytest is gone."""
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)  # only the pipe's end-of-file ends us
    log = int(argv[1]) if argv[:1] == ["--log-fd"] else None
    bases = argv[2:] if log is not None else argv
    watched: set[str] = set()
    for text in _lines(log):
        if text.startswith("+"):
            watched.add(text[1:])
        elif text.startswith("-"):
            watched.discard(text[1:])
    # pytest is gone: everything of its attempts dies, then their dirs go
    containment.clear(bases)
    import shutil  # here: a lean start

    for run_dir in watched:
        shutil.rmtree(run_dir, ignore_errors=True)


def _lines(log: int | None) -> list[str]:
    """Every line of the log memfd (from its start: the shell's writes left its offset at the end), or of
    the pipe until pytest is gone."""
    fd = 0 if log is None else log
    if log is not None:
        os.lseek(log, 0, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    return [os.fsdecode(line) for line in data.split(b"\n")]


if __name__ == "__main__":
    main(sys.argv[1:])
