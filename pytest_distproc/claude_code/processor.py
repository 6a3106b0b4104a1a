"""The processor command a region fork runs through Bash: ``python -m pytest_distproc.claude_code.processor JOB``.

It is our code in the CLI's process tree, so the scenario's faults act inside the real run: the same
fault kinds as an attempt's process (``attempt/execute.py``), announced in ``faults.jsonl`` before they
act. It numbers its own attempts (one file per attempt, made exclusively), since the CLI says nothing
about retries. It prints ``RESULT {summary}`` on success; a fault shows as the command's failure (its
exit status, its signal, its stderr), as the CLI reports it to the fork.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from pytest_distproc.attempt import execute, skills
from pytest_distproc.attempt.skilldir import SkillDir

MEMORY_LIMIT = 512 * 1024 * 1024
"""Bytes of address space an ``oom`` fault may take beyond the interpreter's own, so it ends as MemoryError."""


def next_attempt(run_dir: Path, region: str) -> int:
    """This command's attempt number for ``region``: the first whose marker file it could create."""
    folder = run_dir / "attempts"
    folder.mkdir(exist_ok=True)
    attempt = 1
    while True:
        try:
            os.close(os.open(folder / f"{region}.{attempt}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return attempt
        except FileExistsError:
            attempt += 1


def main(argv: list[str]) -> int:
    job_file = Path(argv[0])
    job: dict[str, Any] = json.loads(job_file.read_text())
    run_dir = Path(job["run_dir"])
    attempt = next_attempt(run_dir, job["region"])
    faults = [f for f in job["faults"] if f["attempt"] == attempt]
    workdir = run_dir / "work" / f"{job['region']}.{attempt}"
    workdir.mkdir(parents=True, exist_ok=True)
    if any(f["kind"] == "oom" for f in faults):
        limit = execute.address_space() + MEMORY_LIMIT
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def announce(message: dict[str, Any]) -> None:
        line = json.dumps({**message["fault"], "at": time.time(), "pid": os.getpid()})
        with open(run_dir / "faults.jsonl", "a") as handle:
            handle.write(line + "\n")

    attempt_job = {**job, "attempt": attempt, "faults": faults, "workdir": str(workdir)}
    try:
        skill = SkillDir.load(job["skill"]).as_skill() if "/" in job["skill"] else skills.resolve(job["skill"])
        result = execute.execute(attempt_job, skill, announce)
    except BaseException as exc:
        print(f"region {job['region']} attempt {attempt} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        traceback.print_exc(limit=3, file=sys.stderr)
        return 1
    print("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
