"""Coverage of a skill that runs in forked attempts, measured by pytest-cov with the one setting the cookbook
documents (docs/examples/coverage/.coveragerc), on both ways an attempt is forked; and nothing left behind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import Sandbox

ROOT = Path(__file__).resolve().parents[1]
SETTING = ROOT / "docs" / "examples" / "coverage" / ".coveragerc"

SKILL = '''\
"""A skill that only ever runs inside an attempt's forked process."""


def stats(records, context):
    values = [r["value"] for r in records]
    total = 0.0
    for value in values:
        total += value
    count = len(values)
    mean = total / count
    variance = sum((v - mean) ** 2 for v in values) / count
    return {"count": count, "sum": total, "min": min(values), "max": max(values), "mean": mean, "variance": variance}
'''

SCENARIO = """\
name: covered
seed: 1
regions: {A: {records: 20}, B: {records: 20}, C: {records: 20}}
skill: covered_skill:stats
expect: {aggregate: {total: {records: 60}}}
"""


def measure(sandbox: Sandbox, *config: str) -> tuple[dict[str, object], pytest.RunResult]:
    pytest.importorskip("pytest_cov")  # in the test extra; pytest-cov imports coverage
    path = sandbox.pytester.path
    (path / "covered_skill.py").write_text(SKILL)
    sandbox.scenario("covered", SCENARIO)
    result = sandbox.run("--distproc-scenarios", "--cov=covered_skill", "--cov-report=json:cov.json", *config)
    result.assert_outcomes(passed=1)
    report = json.loads((path / "cov.json").read_text())
    return report["files"]["covered_skill.py"]["summary"], result


def assert_nothing_left(sandbox: Sandbox) -> None:
    path = sandbox.pytester.path
    stray = sorted(p.name for p in path.iterdir() if p.name.startswith(".coverage."))
    assert not stray, f"coverage data files not combined: {stray}"
    sandbox.assert_clean()


@pytest.mark.parametrize("fork_server", ["on", "off"])
def test_the_documented_setting_measures_the_skill_in_its_forked_attempts(
        sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, fork_server: str) -> None:
    monkeypatch.setenv("DISTPROC_FORK_SERVER", fork_server)
    shutil.copy(SETTING, sandbox.pytester.path / ".coveragerc")
    summary, _ = measure(sandbox)
    assert summary["percent_covered"] == 100.0, summary
    assert_nothing_left(sandbox)


def test_without_it_the_skill_looks_unrun(sandbox: Sandbox) -> None:
    """Why the setting is needed: by default only the import of the skill, in pytest itself, is seen."""
    (sandbox.pytester.path / ".coveragerc").write_text("[run]\n")
    summary, _ = measure(sandbox)
    assert summary["percent_covered"] < 50, summary
    assert_nothing_left(sandbox)
