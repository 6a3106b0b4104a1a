"""--distproc-report DIR, the terminal summary line, junitxml properties and the failure report, end to end."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_distproc.report import html as htmltimeline
from tests.helpers import RETRY, WRONG, Sandbox


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_report_dir_under_xdist_has_every_scenario_once(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.scenario("retry", RETRY)
    sandbox.scenario("wrong", WRONG)
    report = sandbox.pytester.path / "report"
    stale = report / "old__gone-00000000"
    stale.mkdir(parents=True)
    (stale / "summary.json").write_text("{}")
    step_summary = sandbox.pytester.path / "step-summary.md"
    step_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))

    result = sandbox.run("--distproc-scenarios", "-n", "2", "--distproc-report", str(report))

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["distproc: 2 scenarios run (1 passed, 1 failed), 1 fault injected, 1 retry, "
                                 "1 region recovered", f"distproc report: {report / 'index.html'}"])
    index = json.loads((report / "index.json").read_text())
    assert [row["nodeid"] for row in index["scenarios"]] == [
        "scenarios/retry.yaml::retry-once", "scenarios/wrong.yaml::wrong-total"]
    assert index["totals"]["scenarios"] == 2
    folders = {row["slug"] for row in index["scenarios"]}
    for slug in folders:
        assert _files(report / slug) == {"history.jsonl", "events.jsonl", "summary.json", "transcript.txt",
                                         "timeline.html"}
    retry = next(row for row in index["scenarios"] if row["name"] == "retry-once")
    history = [json.loads(line) for line in (report / retry["slug"] / "history.jsonl").read_text().splitlines()]
    assert all(set(line) >= {"seq", "task", "from", "to", "attempt", "pid", "time", "event"} for line in history)
    assert [line["seq"] for line in history] == sorted(line["seq"] for line in history)
    b = [(line["from"], line["to"]) for line in history if line["task"] == "process-region-b"]
    assert b == [(None, "PENDING"), ("PENDING", "IN_PROGRESS"), ("IN_PROGRESS", "FAILED"),
                 ("FAILED", "IN_PROGRESS"), ("IN_PROGRESS", "COMPLETE")]
    assert "raised InjectedFault: disk full" in next(
        line["event"] for line in history if line["to"] == "FAILED")

    summary = json.loads((report / retry["slug"] / "summary.json").read_text())
    assert summary["verdict"] == "passed" and summary["outcome"] == "COMPLETE"
    assert summary["retries"] == 1 and summary["recovered"] == ["B"]
    assert summary["faults"]["fired"] == [{"region": "B", "kind": "raise", "attempt": 1}]
    assert {r["id"]: r["result"]["count"] for r in summary["regions"]} == {"A": 50, "B": 50, "C": 2}
    assert summary["duration"] > 0 and all(a["end"] >= a["start"] for a in summary["attempts"])

    wrong = json.loads((report / next(r["slug"] for r in index["scenarios"] if r["name"] == "wrong-total")
                        / "summary.json").read_text())
    assert wrong["verdict"] == "failed" and "21" in wrong["mismatches"][0]

    markdown = (report / "summary.md").read_text()
    assert markdown.startswith("### distproc: 2 scenarios run (1 passed, 1 failed)")
    assert "| `scenarios/retry.yaml::retry-once` | ✅ passed | COMPLETE | 4 | 1 | 1 | B |" in markdown
    assert "old__gone" not in (report / "index.html").read_text()
    assert step_summary.read_text() == "earlier step\n" + markdown + "\n"
    sandbox.assert_clean()


def test_terminal_line_without_report_dir_and_without_xdist(sandbox: Sandbox) -> None:
    sandbox.scenario("retry", RETRY)
    result = sandbox.run("--distproc-scenarios")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["distproc: 1 scenario run (1 passed), 1 fault injected, 1 retry, "
                                 "1 region recovered"])
    assert "distproc report:" not in result.stdout.str()


def test_junitxml_carries_outcome_attempts_and_faults(sandbox: Sandbox) -> None:
    sandbox.pytester.makeini("[pytest]\ndistproc_scenarios = scenarios\ndistproc_junit_properties = true\n")
    sandbox.scenario("retry", RETRY)
    xml = sandbox.pytester.path / "junit.xml"
    result = sandbox.run("--distproc-scenarios", "-n", "2", f"--junitxml={xml}")
    result.assert_outcomes(passed=1)
    case = ET.parse(xml).getroot().find(".//testcase")
    assert case is not None
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["distproc.outcome"] == "COMPLETE"
    assert props["distproc.attempts"] == "4"
    assert props["distproc.faults"] == "1"
    assert props["distproc.retries"] == "1"
    assert props["distproc.recovered"] == "1"


def test_failure_report_says_what_went_wrong_first_then_timeline_then_transcript(sandbox: Sandbox) -> None:
    sandbox.scenario("wrong", WRONG)
    result = sandbox.run("--distproc-scenarios")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    headline = re.search(r"^scenario 'wrong-total' failed: (.*)$", out, re.M)
    assert headline is not None and "21" in headline.group(1)
    positions = [out.index(marker) for marker in (headline.group(0), "timeline:", "transcript:")]
    assert positions == sorted(positions)


def _summary_of_retry(sandbox: Sandbox) -> dict[str, object]:
    sandbox.scenario("retry", RETRY)
    report = sandbox.pytester.path / "report"
    sandbox.run("--distproc-scenarios", "--distproc-report", str(report)).assert_outcomes(passed=1)
    index = json.loads((report / "index.json").read_text())
    return json.loads((report / index["scenarios"][0]["slug"] / "summary.json").read_text())  # type: ignore[no-any-return]


def test_html_timeline_marks_the_failed_attempt_the_retry_and_the_aggregation_after_it(sandbox: Sandbox) -> None:
    summary = _summary_of_retry(sandbox)
    svg = htmltimeline.timeline_svg(summary)
    failed = re.findall(r'<g class="attempt failed"><title>([^<]*)</title><rect x="([\d.]+)" y="[\d.]+" '
                        r'width="([\d.]+)"', svg)
    assert len(failed) == 1 and "raised InjectedFault: disk full" in failed[0][0]
    assert "retry: attempt 2 of process-region-b" in svg
    assert '<g class="fault"><title>process-region-b attempt 1: injected raise</title>' in svg
    ends = [float(x) + float(w) for _, x, w in re.findall(
        r'<g class="attempt \w+"><title>([^<]*)</title><rect x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg)]
    aggregate = re.search(r'<g class="aggregate"><title>aggregated</title><rect x="([\d.]+)"', svg)
    assert aggregate is not None and float(aggregate.group(1)) >= max(ends) - 0.5

    page = htmltimeline.scenario_page(summary)  # type: ignore[arg-type]
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page


def test_index_html_is_self_contained_and_links_each_scenario(sandbox: Sandbox) -> None:
    sandbox.scenario("retry", RETRY)
    sandbox.scenario("wrong", WRONG)
    report = sandbox.pytester.path / "report"
    sandbox.run("--distproc-scenarios", "--distproc-report", str(report))
    page = (report / "index.html").read_text()
    for folder in (p for p in report.iterdir() if p.is_dir()):
        assert f'href="{folder.name}/timeline.html"' in page
    assert "<script" not in page and "https://" not in page
    assert page.count('id="hatch-') == 2  # one pattern per thumbnail, each with its own id
