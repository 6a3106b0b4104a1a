"""Run a user's own coordinator under our fault injection and our checkers.

The protocol: a coordinator is any object with ``run(harness)``, or a factory returning one, named
``package.module:factory`` or ``path/to/file.py:factory`` (relative to the scenario). In ``run`` it:

1. creates nothing: the tasks already exist (``harness.tasks``: ``process-region-<id>`` per region,
   then the scenario's ``tasks:`` graph ending in ``aggregate-results``; ``harness.graph`` lists the
   tasks after the regions, blockers first, as plain dicts with ``id``, ``kind`` and ``blocked_by``);
2. runs each region attempt however it likes (its own fork, pool, queue), calling
   ``harness.process(region, attempt)`` *inside the child*: that applies the scenario's faults for
   that attempt (a crash, a kill, a hang hits the user's child) and returns the region's summary;
3. reports every state change from its own (coordinator) process with
   ``harness.record(task, "IN_PROGRESS" | "COMPLETE" | "FAILED" | "CANCELLED", pid=...)``;
4. finishes with ``harness.result(regions={id: summary}, total=summary_or_None)`` (and ``stages={task: summary}``
   for the graph's tasks before ``aggregate-results``, when it has any).

The harness numbers what it is told, in the order it is told (one source of order), checks every
transition against the TaskList's rules, requires proof that each attempt it was told of really ran in a
child (that child said hello from ``harness.process``, so its faults were injected there) and that each
attempt reported COMPLETE returned from ``harness.process``, proves concurrency with the same hello/go barrier as our
own fork backend (through pipes the user's children inherit), and kills the attempts (the processes
that called ``harness.process``) still running after ``run`` returns or past a deadline. It cannot
interrupt a ``run`` that hangs without children, nor reach processes that never called ``process``.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import resource
import select
import shutil
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pytest_distproc.attempt import data, faults, skills
from pytest_distproc.attempt import execute as region
from pytest_distproc.attempt import stats as summary
from pytest_distproc.attempt.faults import installed
from pytest_distproc.errors import DistprocError, IllegalTransition
from pytest_distproc.run.coordinator import Observer
from pytest_distproc.run.model import AttemptRecord, Run, create_tasks, fault_dict, planned_faults
from pytest_distproc.run.rundir import RUN_DIR_PREFIX, run_root
from pytest_distproc.scenario.extensions import Extensions
from pytest_distproc.scenario.model import AGGREGATE_TASK, Scenario
from pytest_distproc.tasklist import State, TaskList, Transition

BARRIER_GRACE = 2.0
"""Seconds the first wave waits for its siblings' hello before it is released without proof."""


class AdapterError(DistprocError):
    """The user's coordinator cannot be loaded, or broke the protocol."""


def load_coordinator(reference: str, base: Path) -> Callable[[], Any]:
    """``module:factory`` or ``file.py:factory`` -> a zero-argument factory of coordinator objects."""
    target, _, attr = reference.rpartition(":")
    if not target or not attr:
        raise AdapterError(f"coordinator {reference!r}: expected 'package.module:factory' or 'file.py:factory'")
    try:
        if target.endswith(".py"):
            path = (base / target).resolve()
            spec = importlib.util.spec_from_file_location(f"distproc_adapter_{path.stem}", path)
            if spec is None or spec.loader is None or not path.is_file():
                raise AdapterError(f"coordinator {reference!r}: no Python file at {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except AdapterError:
        raise
    except Exception as exc:
        raise AdapterError(f"coordinator {reference!r} cannot be imported: {type(exc).__name__}: {exc}") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise AdapterError(f"coordinator {reference!r}: {target} has no callable {attr!r}")
    return factory  # type: ignore[no-any-return]


class Harness:
    """What a user's coordinator gets. Thread-safe; ``record`` and ``result`` only from its own process."""

    def __init__(self, scenario: Scenario, seed: int, *, extensions: Extensions | None = None,
                 observers: tuple[Observer, ...] = ()) -> None:
        self.scenario, self.seed, self.policy = scenario, seed, scenario.policy
        self.regions = [r.id for r in scenario.regions]
        self.task_of = {r.id: r.task for r in scenario.regions}
        self.pid = os.getpid()
        self.tasks = TaskList()
        self.lock = threading.Lock()
        self.violations: list[str] = []
        self.sources = {r.id: data.source_of(r, seed) for r in scenario.regions}
        self.skill = skills.resolve(scenario.skill, (extensions or Extensions()).skills)
        self.observers = observers
        self.graph = [{"id": t.id, "kind": t.kind, "blocked_by": list(t.blocked_by)} for t in scenario.graph]
        self.run = Run(scenario, seed, "adapter", self.tasks)
        self.run.expected_counts = {rid: data.count(src) for rid, src in self.sources.items()}
        self.run.planned_faults = planned_faults(scenario, seed)
        self.reported = False
        self.run_dir = tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-", dir=run_root())
        self._hello_read, self._hello_write = os.pipe()
        self._go_read, self._go_write = os.pipe()
        self._children: dict[int, AttemptRecord] = {}
        self._ran: set[tuple[str, int]] = set()
        """(region, attempt) whose child said hello from ``process``: proof the attempt ran, isolated."""
        self._returned: set[tuple[str, int]] = set()
        """(region, attempt) whose child got its summary back from ``process`` (no lethal fault ended it)."""
        self._buffer = b""
        self._arrived: set[str] = set()
        self._wave_open = True
        try:
            create_tasks(self.tasks, scenario)
            for entry in self.tasks.transitions:
                self._notify(entry)
        except BaseException:  # a transition hook raised: leave no pipe or run dir behind
            self.close()
            raise

    # -- called in the user's child ----------------------------------------------------
    def process(self, region_id: str, attempt: int) -> dict[str, Any]:
        """Run region ``region_id``'s processor for ``attempt`` (1-based), faults included. Call it in a child."""
        if region_id not in self.task_of:
            raise AdapterError(f"unknown region {region_id!r}; regions: {', '.join(self.regions)}")
        in_coordinator = os.getpid() == self.pid
        faults = [fault_dict(f, attempt, self.seed) for f in self.scenario.faults
                  if f.region == region_id and f.fires_on(attempt)]
        if in_coordinator:
            self._violation(f"region {region_id} attempt {attempt} ran inside the coordinator's own process "
                            "(no isolation); its lethal faults were not injected")
            faults = [f for f in faults if not installed()[f["kind"]].lethal]
        else:
            ceiling = region.address_space() + self.policy.memory_limit_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))
            self._send({"type": "hello", "region": region_id, "attempt": attempt, "pid": os.getpid()})
            if not os.read(self._go_read, 1):
                os._exit(region.EXIT_NO_GO)
        job = {"task": self.task_of[region_id], "region": region_id, "attempt": attempt, "seed": self.seed,
               "source": self.sources[region_id], "faults": faults,
               # the skill's own folder (a SKILL.md processor writes its records there), as on our backends;
               # the user's child keeps its working directory
               "workdir": tempfile.mkdtemp(prefix=f"{self.task_of[region_id]}-{attempt}-", dir=self.run_dir)}
        emit = self._send if not in_coordinator else (lambda m: self._on_message(dict(m, pid=os.getpid(),
                                                                                   region=region_id, attempt=attempt)))
        result = dict(region.execute(job, self.skill, lambda m: emit({**m, "region": region_id, "attempt": attempt,
                                                                        "pid": os.getpid()})))
        if not in_coordinator:
            self._send({"type": "returned", "region": region_id, "attempt": attempt, "pid": os.getpid()})
        return result

    def _send(self, message: Mapping[str, Any]) -> None:
        region.send(self._hello_write, message)

    # -- called by the user's coordinator ---------------------------------------------
    def expected_records(self, region_id: str) -> int:
        """How many records region ``region_id`` holds, so a coordinator can reject a short result."""
        return self.run.expected_counts[region_id]

    def record(self, task: str, state: str, *, pid: int | None = None, event: str = "") -> None:
        """Report that ``task`` moved to ``state``. Illegal moves are recorded as violations, not raised."""
        if os.getpid() != self.pid:
            self._violation(f"record({task!r}, {state!r}) was called from process {os.getpid()}, not the "
                            "coordinator's: only one process may number the history")
            return
        with self.lock:
            try:
                entry = self.tasks.move(task, State(state), pid=pid, event=event)
            except (IllegalTransition, ValueError, KeyError) as exc:
                self.violations.append(f"the coordinator reported an illegal transition: {exc}")
                return
            self._notify(entry)
            attempts = [a for a in self.run.attempts if a.task == task]
            if attempts and state in ("COMPLETE", "FAILED"):
                latest = attempts[-1]
                latest.ended, latest.ok, latest.event = time.monotonic(), state == "COMPLETE", event

    def result(self, *, regions: Mapping[str, Mapping[str, Any]], total: Mapping[str, Any] | None,
               stages: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Report the final per-region summaries, the total (None when the run gave up), and the summaries
        of the graph's tasks before ``aggregate-results`` (``stages``), if the scenario has any."""
        self.reported = True
        inner = {t["id"] for t in self.graph} - {AGGREGATE_TASK}
        for task, value in dict(stages or {}).items():
            problem = summary.validate(value, None) if task in inner else f"unknown task {task!r}"
            if problem:
                self._violation(f"harness.result(): stage {task}: {problem}")
            else:
                self.run.stages[str(task)] = dict(value)
        checked: dict[str, dict[str, Any]] = {}
        for region_id, value in dict(regions).items():
            if str(region_id) not in self.task_of:
                self._violation(f"harness.result(): unknown region {region_id!r}; regions: {', '.join(self.regions)}")
                continue
            problem = summary.validate(value, self.run.expected_counts.get(str(region_id)))
            if problem:
                self._violation(f"harness.result(): region {region_id}'s summary is a {problem}")
            else:
                checked[str(region_id)] = dict(value)
        self.run.regions = checked
        problem = summary.validate(total, None) if total is not None else None
        if problem:
            self._violation(f"harness.result(): the total is a {problem}")
        self.run.total = dict(total) if total is not None and not problem else None

    # -- the harness's own side --------------------------------------------------------
    def _notify(self, entry: Transition) -> None:
        for observer in self.observers:
            observer(entry)

    def _violation(self, text: str) -> None:
        with self.lock:
            self.violations.append(text)

    def _on_message(self, message: Mapping[str, Any]) -> None:
        kind, region_id, attempt, pid = message.get("type"), message["region"], message["attempt"], message["pid"]
        task = self.task_of[region_id]
        with self.lock:
            record = next((a for a in self.run.attempts if a.region == region_id and a.attempt == attempt), None)
            if record is None:
                record = AttemptRecord(task, region_id, attempt, pid, time.monotonic())
                self.run.attempts.append(record)
            if kind == "returned":
                self._returned.add((region_id, attempt))
            elif kind == "hello":
                self._children[pid] = record
                self._ran.add((region_id, attempt))
                self.tasks.note("started", f"{task} attempt {attempt} (pid {pid}) is running", task=task,
                                attempt=attempt, pid=pid)
                if attempt == 1 and self._wave_open:
                    self._arrived.add(task)
                    if len(self._arrived) == len(self.regions):
                        self._release(proven=True)
                else:
                    os.write(self._go_write, b"g")
            elif kind == "fault":
                record.faults.append(dict(message.get("fault", {})))
                self.tasks.note("fault", f"{task} attempt {attempt}: injected {message['fault'].get('kind')}",
                                task=task, attempt=attempt, pid=pid, data=message.get("fault", {}))

    def _release(self, *, proven: bool) -> None:
        if proven and len(self._arrived) > 1:
            together = sorted(self._arrived)
            self.tasks.note("together", "running together: " + ", ".join(together), data={"tasks": together})
        os.write(self._go_write, b"g" * len(self._arrived))
        self._wave_open = False

    def _read(self, timeout: float) -> bool:
        """Handle what the children wrote, waiting up to ``timeout``; whether anything came."""
        ready, _, _ = select.select([self._hello_read], [], [], timeout)
        if not ready:
            return False
        self._buffer += os.read(self._hello_read, 65536)
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self._on_message(json.loads(line))
        return True

    def unproven(self) -> list[str]:
        """Every attempt the coordinator reported without proof that it ran where its faults were planned: an
        ``IN_PROGRESS`` no child said hello for, a ``COMPLETE`` whose child never got its summary back."""
        while self._read(0):  # what children wrote before the coordinator returned: all of it, not a race
            pass
        problems = []
        region_of = {task: region_id for region_id, task in self.task_of.items()}
        for entry in self.tasks.transitions:
            region_id = region_of.get(entry.task)
            if region_id is None or entry.to_state not in (State.IN_PROGRESS, State.COMPLETE):
                continue
            key, call = (region_id, entry.attempt), f"harness.process({region_id!r}, {entry.attempt})"
            if entry.to_state is State.IN_PROGRESS and key not in self._ran:
                planned = [f.kind for f in self.scenario.faults if f.region == region_id and f.fires_on(entry.attempt)]
                missed = f"; the planned fault {', '.join(planned)} was never injected" if planned else ""
                problems.append(f"{entry.task} attempt {entry.attempt} was reported IN_PROGRESS, but no child ran it: "
                                f"{call} was never called in a child process{missed}; run each attempt in a "
                                f"process of its own that calls {call}")
            elif entry.to_state is State.COMPLETE and key in self._ran and key not in self._returned:
                problems.append(f"{entry.task} attempt {entry.attempt} was reported COMPLETE, but its child never got "
                                f"a summary back from {call} (a fault or a crash ended it first): report it FAILED")
        return problems

    def _watch(self, stop: threading.Event, deadline: float) -> None:
        first_hello: float | None = None
        while not stop.is_set():
            if self._read(0.05):
                first_hello = first_hello or time.monotonic()
            now = time.monotonic()
            with self.lock:
                if self._wave_open and first_hello is not None and now - first_hello > BARRIER_GRACE:
                    self._release(proven=False)
            if now > deadline:
                self._violation(f"the coordinator did not finish within {deadline - self.run.started:.1f} s; "
                                "its children were killed")
                self._kill_children()
                deadline = float("inf")

    def _kill_children(self) -> list[int]:
        killed = []
        for pid in list(self._children):
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        return killed

    def close(self) -> None:
        shutil.rmtree(self.run_dir, ignore_errors=True)
        for fd in (self._hello_read, self._hello_write, self._go_read, self._go_write):
            try:
                os.close(fd)
            except OSError:
                pass


def run_adapter(scenario: Scenario, reference: str, *, seed: int, base: Path | None = None,
                extensions: Extensions | None = None, observers: tuple[Observer, ...] = ()) -> Run:
    """Run the user's coordinator named by ``reference`` on ``scenario``; return the run our checkers read.

    A ``file.py`` reference resolves against ``base`` (default: the scenario's folder).
    """
    factory = load_coordinator(reference, base or scenario.path.parent)
    extensions = extensions or Extensions()
    with faults.installing(extensions.fault_kinds):  # the user's children act on this config's fault kinds
        return _run(factory, Harness(scenario, scenario.run_seed(seed), extensions=extensions, observers=observers))


def _run(factory: Callable[[], Any], harness: Harness) -> Run:
    scenario = harness.scenario
    run = harness.run
    run.started = time.monotonic()
    attempts = scenario.policy.retries + 1
    deadline = run.started + attempts * (scenario.policy.timeout + scenario.policy.backoff) + BARRIER_GRACE + 10
    stop = threading.Event()
    watcher = threading.Thread(target=harness._watch, args=(stop, deadline), daemon=True)
    watcher.start()
    try:
        coordinator = factory()
        coordinator.run(harness)
    except Exception as exc:
        harness.violations.append(f"the coordinator raised {type(exc).__name__}: {exc}\n{_user_frames(exc)}")
    finally:
        time.sleep(0.05)  # let the watcher drain the last messages
        stop.set()
        watcher.join()
        leftovers = [p for p in harness._kill_children() if _alive_child(p)]
        if leftovers:
            harness.violations.append(f"the coordinator left processes running after it returned: {leftovers}")
        harness.violations.extend(harness.unproven())
        harness.close()
    run.ended = time.monotonic()
    run.outcome = "COMPLETE" if harness.tasks[AGGREGATE_TASK].state is State.COMPLETE else "FAILED"
    run.missing = [r for r in harness.regions if harness.tasks[harness.task_of[r]].state is not State.COMPLETE]
    if not harness.reported:
        harness.violations.append("the coordinator never called harness.result(regions=..., total=...)")
    run.violations = harness.violations
    return run


def _user_frames(exc: BaseException) -> str:
    """The traceback of the user's coordinator, without our own frames."""
    ours = str(Path(__file__).parent)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(ours)]
    return "".join(traceback.format_list(frames)).rstrip()


def _alive_child(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False  # not our child (the user's coordinator reaps its own) or already reaped
    return done == 0
