"""What each region's own data gives under the scenario's skill, without faults: the reference every
reported region summary is checked against, whatever the skill.

Derived, not redone: an attempt that ran with no fault planned or fired *is* the skill run on the
region's records in a clean, isolated process, so its delivered result is the reference. Only a region
whose every delivered result came from a faulted attempt (or from a journal of an earlier coordinator)
is computed again, here in the coordinator, without faults. Regenerating every region's records in the
coordinator after the run, as before, cost 1.78x a bare fork's CPU and +108 MiB at 3 x 1M records.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from typing import Any

from pytest_distproc.attempt import data, skills
from pytest_distproc.attempt import stats as summary
from pytest_distproc.run.model import Run


def derive(run: Run, skill: skills.Skill) -> None:
    """Fill ``run.oracle`` for every region ``run.regions`` reports: each clean attempt's valid result, else
    the skill computed on the region's records in this process without faults (``attempt`` 0 in its context).
    A skill that cannot give one leaves its reason in ``run.oracle_errors``."""
    planned = {(f["region"], f["attempt"]) for f in run.planned_faults}
    for record in run.attempts:
        if record.result is None or record.faults or (record.region, record.attempt) in planned:
            continue
        if summary.validate(record.result, run.expected_counts.get(record.region)) is None:
            run.oracle.setdefault(record.region, []).append(record.result)
    sources = {spec.id: spec for spec in run.scenario.regions}
    for region_id in run.regions:
        if region_id in run.oracle or region_id not in sources:
            continue
        source = data.source_of(sources[region_id], run.seed)
        try:
            run.oracle[region_id] = [recompute(run.scenario.skill, skill, source, run.seed)]
        except Exception as exc:  # a user's skill: its failure is a finding, not a crash of the checks
            run.oracle_errors[region_id] = f"{type(exc).__name__}: {exc}"


def recompute(name: str, skill: skills.Skill, source: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The skill's summary of one region's records, computed here without faults."""
    if name == "region-stats":  # our own code: the values alone, without the records' dicts
        return summary.summarize(data.source_values(source))
    with tempfile.TemporaryDirectory(prefix="distproc-oracle-") as workdir:
        context = {"region": source["region"], "attempt": 0, "seed": seed, "workdir": workdir}
        return dict(skill(data.load(source), context))
