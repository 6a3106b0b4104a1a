"""Failures in pytest's own shape (issue 17), end to end with the real plugins around pytest: an
``AssertionError`` located at the YAML line of the first failing ``expect`` key, ``--tb`` honoured, the
transcript printed once; one-line reasons for malformed and timed-out items in the ``-r`` line, the report
index and the step summary, under ``-n 2`` too; totals with reruns (pytest-rerunfailures) and every item;
``::error`` workflow commands under ``GITHUB_ACTIONS=true``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_distproc.plugin.annotations import workflow_command
from pytest_distproc.scenario.loader import load_one
from tests.helpers import RETRY, Sandbox

# The keys in file order differ from the order the checks report them: attempts (line 5) fails first in the
# file, outcome (line 6) is reported first.
WRONG = """\
name: wrong-keys
seed: 1
regions: {A: {records: 10}, B: {records: 10}}
expect:
  attempts: {process-region-a: 2}
  outcome: FAILED
  status: {process-region-b: COMPLETE}
  aggregate: {total: {records: 21}}
"""
MISMATCHES = {
    5: "attempts of process-region-a: expected 2, got 1",
    6: "outcome: expected FAILED, got COMPLETE",
    8: "aggregate total: expected records=21, got 20 (counts compare exactly)",
}

BROKEN = """\
name: broken
regions: {A: {records: 5}}
faults:
  - {region: Z, kind: raise}
  - {region: A, kind: explode}
"""

HUNG = """\
name: hung
seed: 1
regions: {A: {records: 5}}
policy: {timeout: 60s}
faults: [{region: A, kind: hang}]
"""

RECORDER = """
import json, os

def pytest_runtest_makereport(item, call):
    if call.when == "call" and call.excinfo is not None:
        with open(os.environ["FAILURE_RECORD"], "a") as out:
            out.write(json.dumps({"nodeid": item.nodeid,
                                  "assertion": isinstance(call.excinfo.value, AssertionError)}) + "\\n")

def pytest_runtest_logreport(report):
    crash = getattr(report.longrepr, "reprcrash", None)
    if report.when == "call" and report.failed and crash is not None:
        with open(os.environ["FAILURE_RECORD"], "a") as out:
            out.write(json.dumps({"nodeid": report.nodeid, "path": crash.path, "lineno": crash.lineno,
                                  "message": crash.message}) + "\\n")
"""


@pytest.fixture
def quiet_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever CI this suite itself runs on, the runs below see only what each test sets."""
    for name in ("GITHUB_ACTIONS", "GITHUB_WORKSPACE", "GITHUB_STEP_SUMMARY", "CI", "BUILD_NUMBER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "250")  # -r lines untrimmed


def _failures(out: str) -> list[str]:
    """The lines of pytest's FAILURES section."""
    section = out.split("= FAILURES =", 1)[1]
    section = re.split(r"^distproc: |^=+ short test summary", section, maxsplit=1, flags=re.MULTILINE)[0]
    return [line for line in section.splitlines()[1:] if line.strip() and not line.startswith("____")]


def test_a_failure_is_an_assertion_error_located_at_the_first_failing_expect_key(
        sandbox: Sandbox, quiet_ci: None, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.pytester.makeconftest(RECORDER)
    record = sandbox.pytester.path / "failures.jsonl"
    monkeypatch.setenv("FAILURE_RECORD", str(record))
    sandbox.scenario("wrong", WRONG)
    result = sandbox.run("--distproc-scenarios", "-rf")
    result.assert_outcomes(failed=1)
    raised, crash = (json.loads(line) for line in record.read_text().splitlines())
    assert raised["assertion"] is True  # allure: failed, not broken; pytest-json-report: a crash
    assert (crash["path"], crash["lineno"]) == ("scenarios/wrong.yaml", 5)
    assert crash["message"] == f"{MISMATCHES[5]} (and 2 more)"
    result.stdout.fnmatch_lines([f"FAILED scenarios/wrong.yaml::wrong-keys - {MISMATCHES[5]} (and 2 more)"])
    out = result.stdout.str()
    for line, message in MISMATCHES.items():  # every mismatch at its own key's line
        assert f"scenarios/wrong.yaml:{line}: {message}" in out
    sandbox.assert_clean()


@pytest.mark.parametrize("style", ["line", "short", "auto", "long", "no"])
def test_tb_styles_and_the_transcript_printed_once(sandbox: Sandbox, quiet_ci: None, style: str) -> None:
    sandbox.scenario("wrong", WRONG)
    result = sandbox.run("--distproc-scenarios", f"--tb={style}", "-vv")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    if style == "no":
        assert "= FAILURES =" not in out and "timeline:" not in out
        assert "Distributed Processing: COORDINATING" not in out  # not in a -v summary either
        return
    lines = _failures(out)
    if style == "line":  # one line per mismatch, nothing else
        assert sorted(lines) == sorted(f"scenarios/wrong.yaml:{n}: {m}" + (" (and 2 more)" if n == 5 else "")
                                       for n, m in MISMATCHES.items()), lines
        return
    text = "\n".join(lines)
    assert lines[0].endswith(f"scenario 'wrong-keys' failed: {MISMATCHES[5]}"), lines[:3]
    assert all(f"- scenarios/wrong.yaml:{n}: {m}" in text for n, m in MISMATCHES.items())
    assert "timeline:" in text and re.search(r"process-region-a +\|.*\| COMPLETE \(1 attempt\)", text)
    if style == "short":
        assert "transcript:" not in text and "Distributed Processing" not in out
    else:
        assert "transitions:" in text and "seed: 1  backend: fork" in text
        assert out.count("Distributed Processing: COORDINATING") == 1, "the transcript, once, even with -vv"
    assert "Traceback" not in out and "pytest_distproc/" not in out
    sandbox.assert_clean()


def test_malformed_and_timed_out_items_say_why_everywhere_under_two_workers(
        sandbox: Sandbox, quiet_ci: None, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.scenario("broken", BROKEN)
    sandbox.scenario("hung", HUNG)
    sandbox.scenario("wrong", WRONG)
    sandbox.scenario("retry", RETRY)
    report = sandbox.pytester.path / "report"
    step_summary = sandbox.pytester.path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(sandbox.pytester.path))

    result = sandbox.run("--distproc-scenarios", "-n", "2", "-rf", "--timeout=3",
                         "--distproc-report", str(report), timeout=180)

    result.assert_outcomes(passed=1, failed=3)
    out = result.stdout.str()
    region = "$.faults[0].region: unknown region 'Z'; regions of this scenario: A"
    timeout = "Timeout (>3.0s) from pytest-timeout."
    result.stdout.fnmatch_lines_random([
        f"FAILED scenarios/broken.yaml::broken - {region} (and 1 more)",
        f"FAILED scenarios/hung.yaml::hung - {timeout}",
        f"FAILED scenarios/wrong.yaml::wrong-keys - {MISMATCHES[5]} (and 2 more)",
    ])
    assert "CallInfo" not in out and "_pytest/" not in out  # (pytest-timeout's own stack dump stays its own)
    assert f"scenarios/hung.yaml:1: scenario 'hung' stopped: {timeout}" in out
    # every item counted, the timed-out one too
    result.stdout.fnmatch_lines(["distproc: 4 scenarios run (1 passed, 3 failed), *"])

    rows = {row["name"]: row for row in json.loads((report / "index.json").read_text())["scenarios"]}
    assert rows["broken"]["mismatches"] == [f"{region} (and 1 more)"]
    assert rows["hung"]["mismatches"] == [timeout]
    assert rows["wrong-keys"]["mismatches"][0] == MISMATCHES[6]  # the summary keeps every mismatch, as found
    markdown = (report / "summary.md").read_text()
    assert f"**scenarios/broken.yaml::broken**: {region} (and 1 more)" in markdown
    assert f"**scenarios/hung.yaml::hung**: {timeout}" in markdown
    assert "[gw" not in markdown and "invalid scenario (" not in markdown
    assert step_summary.read_text() == markdown + "\n"

    # GitHub annotations: once per failing scenario (at its first failing key) and per problem, controller only
    commands = [line for line in out.splitlines() if line.startswith("::")]
    assert sorted(commands) == sorted([
        f"::error file=scenarios/broken.yaml,line=4::{region}",
        "::error file=scenarios/broken.yaml,line=5::$.faults[1].kind: expected one of raise, crash, signal, "
        "hang, delay, corrupt, drop, oom, node-loss, node-stall, worker-restart, got 'explode' (string): unknown "
        "fault kind",
        f"::error file=scenarios/hung.yaml,line=1::scenario 'hung': {timeout}",
        f"::error file=scenarios/wrong.yaml,line=5::scenario 'wrong-keys' failed: {MISMATCHES[5]}"
        f"%0A- {MISMATCHES[6]}%0A- {MISMATCHES[8]}",
    ]), commands
    sandbox.assert_clean()


def test_no_annotations_outside_github_actions(sandbox: Sandbox, quiet_ci: None) -> None:
    sandbox.scenario("broken", BROKEN)
    result = sandbox.run("--distproc-scenarios")
    result.assert_outcomes(failed=1)
    assert "::error" not in result.stdout.str()


def test_totals_count_reruns_as_reruns_and_every_item(sandbox: Sandbox, quiet_ci: None) -> None:
    sandbox.scenario("wrong", WRONG)
    sandbox.scenario("retry", RETRY)
    sandbox.scenario("explore", """\
        name: explore-ok
        seed: 1
        regions: {A: {records: 5}, B: {records: 5}}
        policy: {timeout: 1s, retries: 1}
        explore: {examples: 3, faults: [raise], max_faults: 1}
        """)
    result = sandbox.run("--distproc-scenarios", "--reruns", "2")
    assert result.parseoutcomes() == {"passed": 2, "failed": 1, "rerun": 2}
    result.stdout.fnmatch_lines(["distproc: 3 scenarios run (2 passed, 1 failed, 2 reruns), *"])
    sandbox.assert_clean()


def test_the_loader_keeps_the_line_of_every_expect_key(tmp_path: Path) -> None:
    scenario = load_one(WRONG, tmp_path / "wrong.yaml")
    expect = scenario.expect
    assert expect.line_of("$.expect.attempts.process-region-a") == 5
    assert expect.line_of("$.expect.outcome") == 6
    assert expect.line_of("$.expect.status.process-region-b") == 7
    assert expect.line_of("$.expect.aggregate.total") == 8
    assert expect.line_of("$.expect.order[0]") == 4  # not written: its nearest written ancestor, expect:
    assert load_one("regions: {A: {records: 1}}\n", tmp_path / "bare.yaml").expect.line_of("$.expect") is None


def test_workflow_commands_escape_what_github_would_misread(tmp_path: Path) -> None:
    line = workflow_command(str(tmp_path / "a,b:c.yaml"), 3, "50% lost\nsecond line", tmp_path)
    assert line == "::error file=a%2Cb%3Ac.yaml,line=3::50%25 lost%0Asecond line"
    outside = workflow_command("/elsewhere/x.yaml", 1, "m", tmp_path)
    assert outside == "::error file=/elsewhere/x.yaml,line=1::m"
