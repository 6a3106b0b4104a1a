"""The temporary project the CLI runs in: the skills, the regions' jobs, and the processor command per region.

The skills are the distributed-processor and region-processor SKILL.md we ship, unless the scenario's
``skill:`` names a directory: its skills then replace ours (a directory holding ``SKILL.md`` is one skill;
one holding skill directories is several).
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from pytest_distproc.attempt import data
from pytest_distproc.attempt.skilldir import SkillDir
from pytest_distproc.claude_code.script import COORDINATOR_SKILL, REGION_SKILL, task_of
from pytest_distproc.errors import SkillError
from pytest_distproc.run.model import planned_faults
from pytest_distproc.scenario.model import MODEL_FAULT_KINDS, Scenario

SHIPPED = (COORDINATOR_SKILL, REGION_SKILL)


def install_skills(project: Path, scenario: Scenario) -> None:
    target = project / ".claude" / "skills"
    target.mkdir(parents=True)
    shipped = resources.files("pytest_distproc.claude_code").joinpath("skills")
    for name in SHIPPED:
        (target / name).mkdir()
        (target / name / "SKILL.md").write_text(shipped.joinpath(name).joinpath("SKILL.md").read_text())
    own = Path(scenario.skill.partition("#")[0]) if _is_dir(scenario.skill) else None
    if own is not None:
        own = own if own.is_absolute() else scenario.path.parent / own
        own = own.parent if own.name == "SKILL.md" else own
        if (own / "SKILL.md").is_file():
            shutil.copytree(own, target / own.name, dirs_exist_ok=True)
        elif own.is_dir():
            for child in own.iterdir():
                if (child / "SKILL.md").is_file():
                    shutil.copytree(child, target / child.name, dirs_exist_ok=True)


def _is_dir(skill: str) -> bool:
    return "/" in skill or skill.endswith(".md")


def processor_skill(scenario: Scenario) -> str:
    """What our processor command computes a region with: the scenario's Python skill, or the ``processor:``
    script its skill directory names (``DIR#script.py`` too), else region-stats."""
    own = scenario.skill
    if not _is_dir(own):
        return own
    try:
        SkillDir.load(own)
    except SkillError:
        return "region-stats"
    return own


def write_jobs(run_dir: Path, project: Path, scenario: Scenario, seed: int) -> dict[str, str]:
    """One job file per region and ``regions.json`` for the skills; returns region id -> processor command."""
    jobs = run_dir / "jobs"
    jobs.mkdir()
    faults = [f for f in planned_faults(scenario, seed) if f["kind"] not in MODEL_FAULT_KINDS]
    commands: dict[str, str] = {}
    for spec in scenario.regions:
        job: dict[str, Any] = {
            "region": spec.id, "source": data.source_of(spec, seed), "seed": seed, "run_dir": str(run_dir),
            "skill": processor_skill(scenario), "faults": [f for f in faults if f["region"] == spec.id],
        }
        path = jobs / f"{spec.id}.json"
        path.write_text(json.dumps(job))
        commands[spec.id] = shlex.join([sys.executable, "-m", "pytest_distproc.claude_code.processor", str(path)])
    (project / "regions.json").write_text(json.dumps({
        "regions": {r.id: {"task": task_of(r.id), "command": commands[r.id]} for r in scenario.regions},
        "policy": {"retries": scenario.policy.retries, "timeout_ms": int(scenario.policy.timeout * 1000)},
    }, indent=2))
    return commands
