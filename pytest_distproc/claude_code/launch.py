"""One hermetic run of the real ``claude`` CLI: private dirs, a dummy key, loopback only, nothing left behind.

The run dir holds everything the CLI may write (``HOME``, ``CLAUDE_CODE_TMPDIR``, ``XDG_RUNTIME_DIR``,
``TMPDIR``) and the project it runs in. The model server and the CLI share a network namespace that
has only ``lo`` (``netns.py``). Every process of the run carries a marker in its environment, so after
the CLI ends, times out or the user presses Ctrl-C, whatever it left running (a backgrounded Bash
command, a hook) is found through ``/proc`` and killed, and the run dir is removed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pytest_distproc.backends import containment, guardian
from pytest_distproc.claude_code.netns import in_loopback_namespace
from pytest_distproc.claude_code.server import Exchange, ModelServer, Responder
from pytest_distproc.run.rundir import RUN_DIR_PREFIX, run_root

MARKER = "DISTPROC_CC_RUN"
HOOK_EVENTS = {"PostToolUse": "TaskCreate|TaskUpdate|Skill", "PostToolUseFailure": "", "SubagentStart": "",
               "SubagentStop": "", "TaskCreated": "", "TaskCompleted": "", "StopFailure": ""}
"""The hook events the recorder logs, each with its tool matcher: the task tools' and Skill's results, the forks'
lives, failures. Each hook costs a shell (~25 ms on a loaded machine), so no others."""
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass
class Artefacts:
    """What one CLI run left, as plain data: the raw material of the history and of the report dir."""

    hooks: list[dict[str, Any]] = field(default_factory=list)
    stream: list[dict[str, Any]] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    """Session transcripts, subagent transcripts and the tasks folder, by path relative to the private HOME."""
    faults: list[dict[str, Any]] = field(default_factory=list)
    """What the processor commands announced before acting (``faults.jsonl``)."""
    returncode: int | None = None
    stderr: str = ""
    timed_out: bool = False
    interrupted: bool = False
    started: float = 0.0
    ended: float = 0.0
    model_failures: list[str] = field(default_factory=list)
    """Exceptions the responder raised (each answered as HTTP 500)."""
    killed: list[int] = field(default_factory=list)
    """Processes of the run still alive after the CLI ended, killed by the sweep."""

    @property
    def result(self) -> str:
        """The CLI's final answer (stream-json's ``result``), empty when it gave none."""
        return next((str(e.get("result", "")) for e in reversed(self.stream) if e.get("type") == "result"), "")


class HermeticRun:
    """A run dir with a project in it; :meth:`execute` runs the CLI there once and always cleans up."""

    def __init__(self, claude: str, responder: Responder, *, timeout: float, max_retries: int = 2,
                 loopback_only: bool = True) -> None:
        self.claude = claude
        self.loopback_only = loopback_only
        """False only for live runs (``live.py``): the model server must reach the real API."""
        self.responder = responder
        self.timeout = timeout
        self.max_retries = max_retries
        self.dir = Path(tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-cc-", dir=run_root()))
        self.project = self.dir / "project"
        for name in ("home", "tmp", "xdg", "project"):
            (self.dir / name).mkdir(mode=0o700)
        self.hook_log = self.dir / "hooks.jsonl"
        self.token = str(self.dir)

    def discard(self) -> None:
        """Remove the run dir of a run that never started."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def env(self, base_url: str) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
            "HOME": str(self.dir / "home"), "TMPDIR": str(self.dir / "tmp"),
            "CLAUDE_CODE_TMPDIR": str(self.dir / "tmp"), "XDG_RUNTIME_DIR": str(self.dir / "xdg"),
            "ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_API_KEY": "sk-distproc-dummy-key",
            "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "CLAUDE_CODE_ENABLE_TODO_TOOLS": "1",
            "CLAUDE_CODE_TASK_LIST_ID": "distproc", "CLAUDE_CODE_MAX_RETRIES": str(self.max_retries),
            "PYTHONPATH": PACKAGE_ROOT, "PYTHONDONTWRITEBYTECODE": "1", MARKER: self.token,
        }
        if os.geteuid() == 0:
            env["IS_SANDBOX"] = "1"  # the CLI refuses bypassPermissions as root otherwise
        return env

    def settings(self) -> Path:
        recorder = self.dir / "recorder.sh"
        recorder.write_bytes(resources.files("pytest_distproc.claude_code").joinpath("recorder.sh").read_bytes())
        command = f"/bin/sh {recorder} {self.hook_log}"
        hooks = {event: [{"matcher": matcher, "hooks": [{"type": "command", "command": command}]}]
                 for event, matcher in HOOK_EVENTS.items()}
        path = self.dir / "settings.json"
        path.write_text(json.dumps({"hooks": hooks}))
        return path

    def execute(self, prompt: str) -> Artefacts:
        found = Artefacts(started=time.time())
        settings = self.settings()
        stream_path, stderr_path = self.dir / "stream.jsonl", self.dir / "stderr.txt"
        server: ModelServer | None = None
        process: subprocess.Popen[bytes] | None = None
        # Should pytest die (SIGTERM, SIGKILL, pytest-timeout's os._exit), the guardian removes the run dir
        # and kills the CLI's cgroup: the CLI lives in a session of its own, which no signal of ours reaches.
        groups = containment.RunGroups()
        guardian.watch(str(self.dir))
        try:
            with open(stream_path, "wb") as out, open(stderr_path, "wb") as err:
                def start() -> tuple[ModelServer, subprocess.Popen[bytes]]:
                    server = ModelServer(self.responder).start()
                    try:
                        process = subprocess.Popen(
                            _joining(groups.paths("cli"), [
                                self.claude, "-p", prompt, "--output-format", "stream-json", "--verbose",
                                "--permission-mode", "bypassPermissions", "--settings", str(settings)]),
                            cwd=self.project, env=self.env(server.url), stdin=subprocess.DEVNULL, stdout=out,
                            stderr=err, start_new_session=True)
                    except BaseException:
                        server.close()
                        raise
                    return server, process

                server, process = in_loopback_namespace(start) if self.loopback_only else start()
                try:
                    process.wait(timeout=self.timeout)
                except subprocess.TimeoutExpired:
                    found.timed_out = True
                found.returncode = process.poll()
        except KeyboardInterrupt:
            found.interrupted = True
            raise
        finally:
            if process is not None:
                _kill_group(process)
            found.killed = sweep(self.token)
            if server is not None:
                server.close()
                found.exchanges = list(server.exchanges)
                found.model_failures = list(server.failures)
            groups.close()
            found.ended = time.time()
            self._collect(found, stream_path, stderr_path)
            shutil.rmtree(self.dir, ignore_errors=True)
            guardian.release(str(self.dir))
        return found

    def _collect(self, found: Artefacts, stream_path: Path, stderr_path: Path) -> None:
        found.stream = _json_lines(stream_path)
        found.hooks = _json_lines(self.hook_log)
        found.faults = _json_lines(self.dir / "faults.jsonl")
        found.stderr = stderr_path.read_text(errors="replace")[-4000:] if stderr_path.exists() else ""
        home = self.dir / "home" / ".claude"
        for pattern in ("projects/**/*.jsonl", "projects/**/*.meta.json", "tasks/**/*.json"):
            for path in sorted(home.glob(pattern)):
                found.files[str(path.relative_to(home))] = path.read_text(errors="replace")


def _json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        if isinstance(value, dict):
            lines.append(value)
    return lines


def _joining(cgroups: list[str], argv: list[str]) -> list[str]:
    """``argv`` started by a shell that first makes and joins ``cgroups`` (one per hierarchy), so that
    everything the CLI starts is in them from its first instruction; ``argv`` alone without cgroups."""
    if not cgroups:
        return argv
    join = " ".join(f"mkdir -p {shlex.quote(g)} 2>/dev/null; echo $$ > {shlex.quote(g)}/cgroup.procs 2>/dev/null;"
                    for g in cgroups)
    return ["/bin/sh", "-c", f'{join} exec "$@"', "sh", *argv]


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        print(f"distproc: claude pid {process.pid} did not die after SIGKILL", file=sys.stderr)


def marked(token: str) -> list[int]:
    """Live processes whose environment carries this run's marker (every process the run started)."""
    needle = f"{MARKER}={token}".encode() + b"\0"
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as handle:
                if needle in handle.read():
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def sweep(token: str, rounds: int = 5) -> list[int]:
    """SIGKILL every process of the run that outlived the CLI, until none is left; returns their pids."""
    killed: list[int] = []
    for _ in range(rounds):
        alive = marked(token)
        if not alive:
            break
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
        time.sleep(0.05)
    for pid in set(killed):  # ours when this process is a child subreaper (the fork backend makes it one)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    return sorted(set(killed))
