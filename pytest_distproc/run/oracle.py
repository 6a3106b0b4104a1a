"""What each region's own data gives under the scenario's skill, without faults: the reference every
reported region summary is checked against, whatever the skill.

Derived, not redone: an attempt that ran with no fault planned or fired *is* the skill run on the
region's records in a clean, isolated process, so its delivered result is the reference. Only a region
whose every delivered result came from a faulted attempt (or from a journal of an earlier coordinator)
is computed again without faults: ``region-stats`` in the coordinator, any other skill in an isolated
attempt of its own (a user's skill may hang, fork or exit: never in the pytest process). Regenerating
every region's records in the coordinator after the run, as before, cost 1.78x a bare fork's CPU and
+108 MiB at 3 x 1M records.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from pytest_distproc.attempt import data, skills
from pytest_distproc.attempt import stats as summary
from pytest_distproc.attempt.messages import Job
from pytest_distproc.backends import make_backend
from pytest_distproc.backends.protocol import Backend, Handle, start_all
from pytest_distproc.run.model import Run
from pytest_distproc.run.rundir import RUN_DIR_PREFIX, run_root
from pytest_distproc.scenario.model import RegionSpec


def derive(run: Run, skill: skills.Skill, backend: Backend | None = None) -> None:
    """Fill ``run.oracle`` for every region ``run.regions`` reports: each clean attempt's valid result, else
    the skill computed again without faults: ``region-stats`` here, from the values alone; any other skill
    in an attempt of its own on ``backend`` (a fork backend of its own when None), isolated and under the
    policy's timeout, as the user's code must never run in this process. A region whose reference cannot
    be had gets its reason in ``run.oracle_errors``."""
    planned = {(f["region"], f["attempt"]) for f in run.planned_faults}
    for record in run.attempts:
        if record.result is None or record.faults or (record.region, record.attempt) in planned:
            continue
        if summary.validate(record.result, run.expected_counts.get(record.region)) is None:
            run.oracle.setdefault(record.region, []).append(record.result)
    specs = {spec.id: spec for spec in run.scenario.regions}
    again = [specs[r] for r in run.regions if r not in run.oracle and r in specs]
    if not again:
        return
    if run.scenario.skill == "region-stats":  # our own code: the values alone, without the records' dicts
        for spec in again:
            run.oracle[spec.id] = [summary.summarize(data.source_values(data.source_of(spec, run.seed)))]
        return
    if backend is not None:
        _in_attempts(run, skill, again, backend)
        return
    run_dir = tempfile.mkdtemp(prefix=f"{RUN_DIR_PREFIX}{os.getpid()}-", dir=run_root())
    own = make_backend("fork", run_dir)
    try:
        _in_attempts(run, skill, again, own)
    finally:
        own.close()
        shutil.rmtree(run_dir, ignore_errors=True)


def _in_attempts(run: Run, skill: skills.Skill, specs: list[RegionSpec], backend: Backend) -> None:
    """One fault-free attempt per region (attempt 0, outside the history), each result its reference."""
    policy = run.scenario.policy
    jobs = [Job(task=spec.task, region=spec.id, attempt=0, skill=run.scenario.skill, seed=run.seed,
                source=data.source_of(spec, run.seed), faults=[], memory_limit_mb=policy.memory_limit_mb,
                timeout=policy.timeout) for spec in specs]
    pending = {handle: handle.job["region"] for handle in start_all(backend, jobs, skill, barrier=False)}
    deadline, killed = backend.now() + policy.timeout, set[Handle]()
    while pending:
        for handle, message in backend.poll(max(0.0, min(0.05, deadline - backend.now()))):
            region_id, kind = pending.get(handle), message.get("type")
            if region_id is None:
                continue
            if kind == "hello":
                backend.release(handle)
            elif kind == "result" and isinstance(message.get("result"), dict):
                run.oracle[region_id] = [message["result"]]
            elif kind == "error":
                run.oracle_errors[region_id] = f"{message.get('error')}: {message.get('message')}"
            elif kind == "exit":
                del pending[handle]
                if region_id not in run.oracle and region_id not in run.oracle_errors:
                    ended = message.get("signal") or f"exit code {message.get('returncode')}"
                    how = "timed out" if handle in killed else f"ended ({ended})"
                    run.oracle_errors[region_id] = f"a fault-free attempt {how} without a valid result"
        if backend.now() >= deadline:
            for handle in set(pending) - killed:
                killed.add(handle)
                backend.kill(handle, dump_stack=False)
