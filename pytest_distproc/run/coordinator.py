"""The coordinator: one loop that owns the TaskList, starts attempts, watches them, and aggregates.

Everything it learns arrives as a message from the backend and is numbered in the TaskList's
history as it is recorded: one loop, one source of order. A dead process becomes a worded event.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pytest_distproc.attempt import data, faults, skills
from pytest_distproc.attempt import stats as summary
from pytest_distproc.attempt.messages import MESSAGE_KINDS, Error, Exit, FaultAnnounced, Garbage, Hello, Job, Result
from pytest_distproc.backends import make_backend
from pytest_distproc.backends.protocol import Backend, Handle, start_all
from pytest_distproc.errors import DistprocError
from pytest_distproc.run.journal import LEFT, Journal, Journaled, JournalError, replayable
from pytest_distproc.run.model import AttemptRecord, Run, create_tasks, fault_dict, planned_faults
from pytest_distproc.run.rundir import RUN_DIR_PREFIX, run_root, sweep_stale_run_dirs
from pytest_distproc.scenario.extensions import Extensions
from pytest_distproc.scenario.model import AGGREGATE_TASK, RegionSpec, Scenario, TaskSpec, region_task
from pytest_distproc.tasklist import Event, State, TaskList, Transition

Observer = Callable[[Transition], None]
BackendFactory = Callable[[str, str], Backend]
"""``factory(name, run_dir)``: the backend a run uses (the ``pytest_distproc_make_backend`` hook's job)."""
Aggregator = Callable[[Sequence[Mapping[str, Any]]], Mapping[str, Any]]


BARRIER_LIMIT = 30.0
"""Seconds the first wave may take to say hello before it is released without a proof of concurrency."""
LOST = "was lost with the coordinator that ran it"


def plan_digest(scenario: Scenario) -> str:
    """What a journal must have been written for: same regions, data, graph, policy, faults and skill."""
    import hashlib

    plan = (
        [(r.id, r.records, str(r.file), r.inline) for r in scenario.regions],
        [(t.id, t.kind, t.blocked_by) for t in scenario.graph],
        scenario.policy,
        [replace(f, line=None) for f in scenario.faults],
        scenario.skill,
        scenario.context,
    )
    return hashlib.sha256(repr(plan).encode()).hexdigest()[:16]


def inherited_attempts(scenario: Scenario, tasks: TaskList) -> list[AttemptRecord]:
    """The attempts of the regions as a resumed history tells them: each ``IN_PROGRESS`` starts one, the next
    ``COMPLETE`` or ``FAILED`` of its task ends it (its event is the record's), and the journaled ``fault`` notes
    say what fired in it. So a resumed run's transcript and fault checks see what the run it resumes saw."""
    regions = {spec.task: spec.id for spec in scenario.regions}
    open_: dict[str, AttemptRecord] = {}
    records: list[AttemptRecord] = []
    for entry in tasks.transitions:
        if entry.task not in regions:
            continue
        if entry.to_state is State.IN_PROGRESS:
            open_[entry.task] = AttemptRecord(entry.task, regions[entry.task], entry.attempt, entry.pid, entry.time,
                                              inherited=True)
            records.append(open_[entry.task])
        elif entry.to_state in (State.COMPLETE, State.FAILED) and entry.task in open_:
            record = open_.pop(entry.task)
            record.ended, record.ok, record.event = entry.time, entry.to_state is State.COMPLETE, entry.event
            record.reason = "" if record.ok else entry.event
    for note in tasks.events:
        if note.kind == "fault":
            found = [r for r in records if r.task == note.task and r.attempt == note.attempt]
            for record in found[:1]:
                record.faults.append(dict(note.data))
    return records


class Coordinator:
    """Runs one scenario to completion over a backend; always cleans up, whatever happens."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int | None = None,
        backend: str | None = None,
        observers: tuple[Observer, ...] = (),
        backend_factory: BackendFactory | None = None,
        aggregate: Aggregator | None = None,
        journal: str | Path | None = None,
        resume: bool = False,
        extensions: Extensions | None = None,
    ) -> None:
        self.scenario = scenario
        self.seed = scenario.run_seed(seed)
        self.extensions = extensions or Extensions()
        name = "inline" if scenario.context == "inline" else (backend or scenario.backend)
        self.backend_name = name
        self.observers = observers
        self.policy = scenario.policy
        self.backend_factory = backend_factory or make_backend
        self.aggregate = aggregate or summary.merge
        self.journal_path, self.resume = journal, resume

    def run(self) -> Run:
        skill = skills.resolve(self.scenario.skill, self.extensions.skills)
        sweep_stale_run_dirs()
        run_dir = tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-", dir=run_root())
        try:
            backend = self.backend_factory(self.backend_name, run_dir)
        except BaseException:  # e.g. the ray backend without Ray installed: leave no run dir behind
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        try:
            with faults.installing(self.extensions.fault_kinds):
                return self._loop(backend, skill).run()
        finally:
            backend.close()
            shutil.rmtree(run_dir, ignore_errors=True)

    def _loop(self, backend: Backend, skill: skills.Skill) -> _Loop:
        """The loop of one run. A seam: tests plant a coordinator bug in a subclass of ``_Loop``."""
        return _Loop(self, backend, skill)


@dataclass(eq=False)
class _Attempt:
    """One attempt in flight: the backend's handle, the record the Run keeps, and what its messages said."""

    handle: Handle
    record: AttemptRecord
    result: Any = None
    has_result: bool = False
    error: Mapping[str, Any] | None = None
    killed: bool = False
    """Killed for its timeout; its ``exit`` is still to come."""
    in_wave: bool = False
    """Held at the start barrier with the other first attempts; no deadline of its own while it waits."""
    arrived: bool = False
    """Said hello while held at the barrier."""
    released_at: float | None = None


class _Loop:
    """The loop of one run. Its handling of what an attempt says is one ``attempt_<kind>`` method per message
    kind (:data:`~pytest_distproc.attempt.messages.MESSAGE_KINDS`), as pytest-xdist's ``worker_<event>``."""

    def __init__(self, owner: Coordinator, backend: Backend, skill: skills.Skill) -> None:
        self.owner, self.backend, self.skill = owner, backend, skill
        self.scenario, self.policy = owner.scenario, owner.policy
        self.tasks = TaskList(clock=backend.now)
        self.run_state = Run(self.scenario, owner.seed, backend.name, self.tasks)
        self.sources = {r.id: data.source_of(r, owner.seed) for r in self.scenario.regions}
        self.running: dict[Handle, _Attempt] = {}
        self.retry_at: dict[str, float] = {}
        self.wave: list[_Attempt] = []  # the first attempts, held at the start barrier until all said hello
        self.journal = Journal(owner.journal_path) if owner.journal_path else None
        self.values: dict[str, dict[str, Any]] = {}  # task id -> its summary (regions' and the graph's)
        self.lost: dict[str, int] = {}

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> Run:
        try:
            return self._run()
        finally:
            if self.journal is not None:
                self.journal.close()

    def _run(self) -> Run:
        run, scenario = self.run_state, self.scenario
        run.started = self.backend.now()
        create_tasks(self.tasks, scenario)
        resumed = self._open_journal()
        self._notify_all(journal=resumed is None)  # a resumed journal holds these creations already
        if resumed is not None:
            try:
                self._replay(resumed)
            except (DistprocError, ValueError) as exc:  # a history no coordinator could have written
                if isinstance(exc, JournalError):
                    raise
                where = self.journal.path if self.journal else ""
                raise JournalError(f"journal {where} cannot be resumed: {exc}; {LEFT}") from None
        run.expected_counts = {rid: data.count(src) for rid, src in self.sources.items()}
        run.planned_faults = planned_faults(scenario, self.owner.seed)
        # The start barrier proves concurrency; it holds every child until the last is forked, so it
        # is only paid for when the scenario asks for that proof.
        barrier = self.backend.isolated and len(scenario.regions) > 1 and bool(scenario.expect.concurrent)
        self._refuse_node_faults_without_nodes()
        first = [spec for spec in scenario.regions if self._may_start(spec)]
        launched = self._launch(first, barrier=barrier)
        if barrier:
            self.wave = launched
            for attempt in launched:
                attempt.in_wave = True
        while self.running or self.retry_at:
            for handle, message in self.backend.poll(self._wait_time()):
                target = self.running.get(handle)
                if target is not None:
                    self._on_message(target, message)
            self._enforce_deadlines()
            self._start_due_retries()
            self._advance_graph()
        self._advance_graph()
        self._finish_run()
        run.ended = self.backend.now()
        return run

    def _refuse_node_faults_without_nodes(self) -> None:
        """A node fault (node-loss, node-stall, worker-restart) needs a backend with nodes that can take it."""
        kinds = {f.kind for f in self.scenario.faults if f.kind in faults.NODE_FAULTS}
        if not kinds:
            return
        check = getattr(self.backend, "check_faults", None)
        if check is None:
            raise DistprocError(f"fault {', '.join(sorted(kinds))} acts on a Ray node: it needs backend: ray "
                                f"(this run's backend is {self.backend.name}; set 'backend: ray' or "
                                "--distproc-backend ray, see docs/ray.md)")
        check(kinds)

    def _open_journal(self) -> Journaled | None:
        if self.journal is None:
            return None
        scenario = self.scenario
        identity = f"{scenario.path}::{scenario.name} seed={self.owner.seed} plan={plan_digest(scenario)}"
        return self.journal.start(identity, resume=self.owner.resume)

    def _replay(self, resumed: Journaled) -> None:
        """Rebuild the history a killed coordinator journaled, its notes and its attempts; in-flight attempts
        are recorded as lost."""
        notes = {entry["seq"]: entry for entry in resumed.events}
        for seq in sorted({*notes, *(e["seq"] for e in resumed.transitions)}):
            if seq in notes:
                self.tasks.restore_note(Event(**notes[seq]))
                continue
            entry = next(e for e in resumed.transitions if e["seq"] == seq)
            if entry["from"] is None:
                continue  # creations are made afresh above, in the same order and with the same numbers
            task, state, pid, event = replayable(entry)
            self.tasks.restore(task, state, seq=entry["seq"], attempt=entry["attempt"], pid=pid,
                               time=entry["time"], event=event)
            if state is State.FAILED and LOST in event:
                self.lost[task] = self.lost.get(task, 0) + 1  # lost by an earlier resumed coordinator
        self.run_state.regions.update(resumed.results)
        self.values.update({region_task(rid): value for rid, value in resumed.results.items()})
        self.run_state.inherited = {t.id: t.attempts for t in self.tasks if t.attempts}
        for spec in self.scenario.regions:
            in_flight = self.tasks[spec.task]
            if in_flight.state is State.IN_PROGRESS and spec.id in resumed.results:
                self._move(spec.task, State.COMPLETE, event=f"{spec.task} attempt {in_flight.attempts} completed; "
                           "its result was journaled just before the coordinator died")
            elif in_flight.state is State.IN_PROGRESS:
                self.lost[spec.task] = self.lost.get(spec.task, 0) + 1
                self._move(spec.task, State.FAILED, event=f"{spec.task} attempt {in_flight.attempts} {LOST} "
                           "(resumed from the journal)")
        self.run_state.lost = dict(self.lost)
        self.run_state.attempts.extend(inherited_attempts(self.scenario, self.tasks))
        self._note("resumed", f"resumed from journal {self.journal.path if self.journal else ''}: "
                   f"{len(resumed.results)} region(s) already complete")

    def _wait_time(self) -> float:
        now = self.backend.now()
        moments = [self._clock_start(a) + self.policy.timeout for a in self.running.values()
                   if not a.killed and not a.in_wave]
        if self.wave:
            moments.append(self.run_state.started + max(BARRIER_LIMIT, self.policy.timeout))
        moments += list(self.retry_at.values())
        return max(0.0, min(moments) - now) if moments else 0.05

    # -- attempts -----------------------------------------------------------------------
    def _may_start(self, spec: RegionSpec) -> bool:
        known = self.tasks[spec.task]
        if known.state is State.COMPLETE:
            return False  # journaled by the coordinator we resume: never run it twice
        # a FAILED task had already used up its retries
        return not (known.state is State.FAILED and known.attempts - self.lost.get(spec.task, 0) > self.policy.retries)

    def _launch(self, specs: list[RegionSpec], *, barrier: bool) -> list[_Attempt]:
        """Start one attempt of each region, all forks first and the bookkeeping after: every page the
        coordinator writes between two forks is copied once more while the children share it."""
        jobs = [self._job(spec) for spec in specs]
        started = self.backend.now()
        handles = start_all(self.backend, jobs, self.skill, barrier=barrier)
        launched = []
        for spec, job, handle in zip(specs, jobs, handles, strict=True):
            self._move(spec.task, State.IN_PROGRESS, pid=handle.pid, event=f"attempt {job['attempt']} started")
            record = AttemptRecord(spec.task, spec.id, job["attempt"], handle.pid, started,
                                   node=dict(handle.node) if handle.node else None)
            attempt = _Attempt(handle, record)
            self.running[handle] = attempt
            self.run_state.attempts.append(attempt.record)
            launched.append(attempt)
        return launched

    def _job(self, spec: RegionSpec) -> Job:
        attempt = self.tasks[spec.task].attempts + 1
        return Job(
            task=spec.task,
            region=spec.id,
            attempt=attempt,
            skill=self.scenario.skill,
            seed=self.owner.seed,
            source=self.sources[spec.id],
            faults=[fault_dict(f, attempt, self.owner.seed) for f in self.scenario.faults
                    if f.region == spec.id and f.fires_on(attempt)],
            memory_limit_mb=self.policy.memory_limit_mb,
            timeout=self.policy.timeout,
        )

    # -- what an attempt says: one method per message kind ------------------------------
    def _on_message(self, attempt: _Attempt, message: Mapping[str, Any]) -> None:
        kind = message.get("type")
        if kind in MESSAGE_KINDS:
            getattr(self, f"attempt_{kind}")(attempt, message)

    def attempt_hello(self, attempt: _Attempt, message: Hello) -> None:
        record = attempt.record
        if record.pid is None and isinstance(message.get("pid"), int):
            record.pid = message["pid"]  # a remote backend (ray) learns the pid only from the hello
        where = f" on node {record.node['name']}" if record.node else ""
        self._note("started", f"{record.task} attempt {record.attempt} (pid {record.pid}) is running{where}",
                   task=record.task, attempt=record.attempt, pid=record.pid,
                   data={"isolation": dict(message.get("isolation") or {}),
                         **({"node": dict(record.node)} if record.node else {})})
        if attempt.in_wave:
            attempt.arrived = True
            self._maybe_release_wave()
        else:
            self.backend.release(attempt.handle)

    def attempt_fault(self, attempt: _Attempt, message: FaultAnnounced) -> None:
        record, fault = attempt.record, dict(message.get("fault", {}))
        record.faults.append(fault)
        node = fault.get("node")
        where = f" on node {node.get('name')}" if isinstance(node, dict) else ""
        self._note("fault", f"{record.task} attempt {record.attempt}: injected {fault.get('kind')}{where}",
                   task=record.task, attempt=record.attempt, pid=record.pid, data=fault)

    def attempt_result(self, attempt: _Attempt, message: Result) -> None:
        attempt.result, attempt.has_result = message.get("result"), True

    def attempt_error(self, attempt: _Attempt, message: Error) -> None:
        attempt.error = message

    def attempt_garbage(self, attempt: _Attempt, message: Garbage) -> None:
        if attempt.error is None:
            attempt.error = {"kind": "garbage", "message": f"sent unreadable data: {message.get('text')!r}"}

    def attempt_exit(self, attempt: _Attempt, message: Exit) -> None:
        self._finish(attempt, message)

    # -- the start barrier, deadlines, retries ------------------------------------------
    def _maybe_release_wave(self, *, give_up: bool = False) -> None:
        """Release the first wave once every member said hello (or died); with ``give_up``, release
        whoever arrived, without a proof of concurrency."""
        if not self.wave:
            return
        live = [a for a in self.wave if a.handle in self.running]
        if not give_up and not all(a.arrived for a in live):
            return
        together = sorted(a.record.task for a in live if a.arrived)
        if len(together) > 1 and not give_up:
            # Every one of them has said hello and is blocked reading its go pipe right now:
            # they are alive at the same moment. This is the proof behind `expect.concurrent`.
            self._note("together", "running together: " + ", ".join(together), data={"tasks": together})
        now = self.backend.now()
        for attempt in self.wave:
            self.backend.release(attempt.handle)
            attempt.in_wave, attempt.released_at = False, now  # its timeout starts now, not at its fork
        self.wave = []

    def _finish(self, attempt: _Attempt, exit_message: Mapping[str, Any]) -> None:
        record = attempt.record
        del self.running[attempt.handle]
        record.ended = self.backend.now()
        record.stack = str(exit_message.get("stack") or "")
        record.stderr = str(exit_message.get("stderr") or "")
        if exit_message.get("timed_out"):
            record.timed_out = True
        if attempt.in_wave:
            self._maybe_release_wave()
        reason = self._failure_reason(attempt, exit_message)
        elapsed = f"after {record.duration:.2f} s"
        who = f"{record.task} attempt {record.attempt} (pid {record.pid})"
        if reason is None:
            record.ok = True
            record.event = f"{who} completed {elapsed}"
            self.run_state.regions[record.region] = dict(attempt.result)
            self.values[record.task] = self.run_state.regions[record.region]
            if self.journal is not None:  # the result first: a COMPLETE in the journal always has its result
                self.journal.result(record.region, self.run_state.regions[record.region], len(self.tasks.transitions))
            self._move(record.task, State.COMPLETE, pid=record.pid, event=record.event)
            return
        record.reason = reason
        record.event = f"{who} {reason} {elapsed}"
        self._move(record.task, State.FAILED, pid=record.pid, event=record.event)
        if record.attempt - self.lost.get(record.task, 0) <= self.policy.retries:
            self.retry_at[record.task] = self.backend.now() + self.policy.backoff

    def _failure_reason(self, attempt: _Attempt, exit_message: Mapping[str, Any]) -> str | None:
        record, error = attempt.record, attempt.error
        sig, code = exit_message.get("signal"), exit_message.get("returncode")
        if record.timed_out:
            return f"timed out (limit {self.policy.timeout:g} s) and was killed with SIGKILL"
        if sig:
            return f"was killed by {sig}"
        if error is not None:
            if error.get("kind") == "memory":
                return f"ran out of memory ({error.get('message')})"
            if error.get("kind") == "garbage":
                return str(error.get("message"))
            return f"raised {error.get('error')}: {error.get('message')}"
        if code:
            return f"crashed with exit code {code}"
        if not attempt.has_result:
            return "exited without sending a result"
        expected = self.run_state.expected_counts.get(record.region)
        problem = summary.validate(attempt.result, expected)
        return f"returned {'an' if problem and problem[0] in 'aeiou' else 'a'} {problem}" if problem else None

    def _clock_start(self, attempt: _Attempt) -> float:
        """An attempt's timeout runs from its start, or from its release when it waited at the barrier
        (while it waits, it has no deadline of its own: the wave has one, ``BARRIER_LIMIT``)."""
        if attempt.in_wave:
            return math.inf
        return attempt.released_at if attempt.released_at is not None else attempt.record.started

    def _enforce_deadlines(self) -> None:
        now = self.backend.now()
        if self.wave and now - self.run_state.started >= max(BARRIER_LIMIT, self.policy.timeout):
            self._maybe_release_wave(give_up=True)  # a member never said hello: no proof, but no hang
        for attempt in list(self.running.values()):
            if not attempt.killed and now - self._clock_start(attempt) >= self.policy.timeout:
                attempt.record.timed_out = attempt.killed = True
                self.backend.kill(attempt.handle, dump_stack=True)

    def _start_due_retries(self) -> None:
        now = self.backend.now()
        for task, due in sorted(self.retry_at.items(), key=lambda item: item[1]):
            if due <= now:
                del self.retry_at[task]
                self._launch([next(r for r in self.scenario.regions if r.task == task)], barrier=False)

    # -- aggregation --------------------------------------------------------------------
    def _advance_graph(self) -> None:
        """Run every task after the regions whose blockers are final, blockers first (the real partial order:
        a continent aggregates as soon as its own regions are done, while others still run)."""
        for spec in self.scenario.graph:
            state = self.tasks[spec.id].state
            if state in (State.CANCELLED, State.FAILED) or (state is State.COMPLETE and spec.id in self.values):
                continue
            if not all(self._final(b) for b in spec.blocked_by):
                continue
            if state is State.COMPLETE:  # completed before the coordinator we resume died: recompute, silently
                self.values[spec.id] = self._evaluate(spec)[0] or {}
                continue
            failed = [b for b in spec.blocked_by if self.tasks[b].state is not State.COMPLETE]
            if failed and self.policy.on_region_failure == "fail":
                self._move(spec.id, State.CANCELLED, event=f"cancelled: {', '.join(failed)} did not complete")
                continue
            if state is not State.IN_PROGRESS:  # IN_PROGRESS: the coordinator we resume died while it ran
                self._move(spec.id, State.IN_PROGRESS, pid=os.getpid(), event=f"{spec.kind[:-1]}ing")
            value, problem = self._evaluate(spec)
            if value is None:
                self._move(spec.id, State.FAILED, event=problem)
                continue
            self.values[spec.id] = value
            self._move(spec.id, State.COMPLETE, pid=os.getpid(), event=f"{spec.kind}d")

    def _final(self, task: str) -> bool:
        """Finished for good: complete, cancelled, or failed with no retry still to come."""
        state = self.tasks[task].state
        if state is State.FAILED:
            return task not in self.retry_at and all(a.record.task != task for a in self.running.values())
        return state in (State.COMPLETE, State.CANCELLED)

    def _evaluate(self, spec: TaskSpec) -> tuple[dict[str, Any] | None, str]:
        inputs = [self.values[b] for b in spec.blocked_by if b in self.values]
        if not inputs:
            return None, f"nothing to {spec.kind}: every input failed"
        if spec.kind == "validate":
            problems = [p for p in (summary.validate(i, None) for i in inputs) if p]
            problems += ["an input is empty"] if any(int(i["count"]) == 0 for i in inputs) else []
            if problems:
                return None, "validation failed: " + "; ".join(problems)
        return dict(self.owner.aggregate(inputs)), ""

    def _finish_run(self) -> None:
        run = self.run_state
        run.missing = [r.id for r in self.scenario.regions if self.tasks[r.task].state is not State.COMPLETE]
        run.stages = {t.id: self.values[t.id] for t in self.scenario.graph[:-1] if t.id in self.values}
        if self.tasks[AGGREGATE_TASK].state is State.COMPLETE:
            run.total = self.values[AGGREGATE_TASK]
            run.outcome = "COMPLETE"
        else:
            run.outcome = "FAILED"

    def _move(self, task: str, state: State, *, pid: int | None = None, event: str = "") -> None:
        entry = self.tasks.move(task, state, pid=pid, event=event)
        if self.journal is not None:
            self.journal.transition(entry)
        for observer in self.owner.observers:
            observer(entry)

    def _note(self, kind: str, text: str, *, task: str | None = None, attempt: int = 0, pid: int | None = None,
              data: Mapping[str, Any] | None = None) -> None:
        entry = self.tasks.note(kind, text, task=task, attempt=attempt, pid=pid, data=data)
        if self.journal is not None:
            self.journal.event(entry)

    def _notify_all(self, *, journal: bool = True) -> None:
        for entry in self.tasks.transitions:
            if self.journal is not None and journal:
                self.journal.transition(entry)
            for observer in self.owner.observers:
                observer(entry)

