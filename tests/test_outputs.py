"""The tools run around pytest, for real: junitxml validated against pytest's own junit-10.xsd, pytest-html's
extras, allure-pytest's attachments, and a run with neither plugin importable."""

from __future__ import annotations

import html
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import xmlschema  # the real validator (in the 'test' extra)

from tests.helpers import RETRY, WRONG, Sandbox

XSD = Path(__file__).parent / "vendor" / "junit-10.xsd"
MALFORMED = "name: broken\nregions: {A: {records: 3}}\nfaults: [{region: Z, kind: raise}]\n"
SKIPPED = "name: later\nregions: {A: {records: 1}}\nmarks: [{skip: not today}]\n"
RETRIED = "[t2] process-region-b: IN_PROGRESS -> FAILED -> IN_PROGRESS -> COMPLETE"


def _junit(sandbox: Sandbox, *args: str) -> ET.ElementTree[ET.Element]:
    xml = sandbox.pytester.path / "junit.xml"
    sandbox.run("--distproc-scenarios", f"--junitxml={xml}", *args)
    xmlschema.XMLSchema(XSD).validate(xml)  # raises, naming the element and the rule, when invalid
    return ET.parse(xml)


def test_junitxml_is_valid_against_junit_10_xsd_with_the_transcript_in_system_out(sandbox: Sandbox) -> None:
    for name, text in (("retry", RETRY), ("wrong", WRONG), ("broken", MALFORMED), ("later", SKIPPED)):
        sandbox.scenario(name, text)
    tree = _junit(sandbox, "-o", "junit_logging=system-out")
    assert tree.getroot().find(".//properties") is None  # per-testcase properties are opt-in
    cases = {case.get("name"): case for case in tree.getroot().iter("testcase")}
    assert set(cases) == {"retry-once", "wrong-total", "broken", "later"}
    retried = cases["retry-once"].findtext("system-out") or ""
    assert "# fault plan: raise in region B on attempt 1" in retried and RETRIED in retried
    assert "Total: 20 records" in (cases["wrong-total"].findtext("system-out") or "")
    assert cases["wrong-total"].find("failure") is not None

    # under xdist the transcript is added where the item ran; junit_logging=all writes it too
    sandbox.pytester.path.joinpath("scenarios", "wrong.yaml").unlink()
    tree = _junit(sandbox, "-n", "2", "-o", "junit_logging=all")
    cases = {case.get("name"): case for case in tree.getroot().iter("testcase")}
    assert RETRIED in (cases["retry-once"].findtext("system-out") or "")

    # and without junit_logging, no system-out at all (pytest's default)
    tree = _junit(sandbox)
    assert tree.getroot().find(".//system-out") is None
    sandbox.assert_clean()


def test_junit_properties_are_opt_in(sandbox: Sandbox) -> None:
    sandbox.pytester.makeini("[pytest]\ndistproc_scenarios = scenarios\ndistproc_junit_properties = true\n")
    sandbox.scenario("retry", RETRY)
    xml = sandbox.pytester.path / "junit.xml"
    result = sandbox.run("--distproc-scenarios", f"--junitxml={xml}")
    result.assert_outcomes(passed=1)
    case = ET.parse(xml).getroot().find(".//testcase")
    assert case is not None
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props == {"distproc.outcome": "COMPLETE", "distproc.seed": "3", "distproc.attempts": "4",
                     "distproc.faults": "1", "distproc.retries": "1", "distproc.recovered": "1"}
    assert not xmlschema.XMLSchema(XSD).is_valid(xml)  # which is why it is opt-in


def _html_extras(page: Path) -> dict[str, list[dict[str, Any]]]:
    """pytest-html 4 keeps its results as JSON in the page's data container."""
    blob = re.search(r'data-jsonblob="([^"]*)"', page.read_text(encoding="utf-8"))
    assert blob is not None
    tests = json.loads(html.unescape(blob.group(1)))["tests"]
    return {nodeid: [extra for row in rows for extra in row["extras"]] for nodeid, rows in tests.items()}


def test_pytest_html_links_the_timeline_and_keeps_the_transcript(sandbox: Sandbox) -> None:
    sandbox.scenario("retry", RETRY)
    page = sandbox.pytester.path / "out" / "html" / "report.html"
    report = sandbox.pytester.path / "report"
    result = sandbox.run("--distproc-scenarios", "--html=out/html/report.html", f"--distproc-report={report}")
    result.assert_outcomes(passed=1)
    extras = {e["name"]: e for e in _html_extras(page)["scenarios/retry.yaml::retry-once"]}
    assert set(extras) == {"distproc timeline", "distproc transcript"}
    timeline = extras["distproc timeline"]
    assert timeline["format_type"] == "url" and not Path(timeline["content"]).is_absolute()
    slug = json.loads((report / "index.json").read_text())["scenarios"][0]["slug"]
    assert (page.parent / timeline["content"]).resolve() == report / slug / "timeline.html"
    assert (report / slug / "timeline.html").is_file()
    transcript = page.parent / extras["distproc transcript"]["content"]
    assert RETRIED in transcript.read_text()

    # without --distproc-report there is no timeline page to link, and the transcript is still there
    alone = sandbox.pytester.path / "alone.html"
    sandbox.run("--distproc-scenarios", f"--html={alone}", "--self-contained-html").assert_outcomes(passed=1)
    extras = {e["name"]: e for e in _html_extras(alone)["scenarios/retry.yaml::retry-once"]}
    assert set(extras) == {"distproc transcript"}
    sandbox.assert_clean()


def test_allure_gets_the_transcript_and_the_timeline_as_attachments(sandbox: Sandbox) -> None:
    sandbox.scenario("retry", RETRY)
    results = sandbox.pytester.path / "allure"
    result = sandbox.run("--distproc-scenarios", f"--alluredir={results}", "--distproc-report=report")
    result.assert_outcomes(passed=1)
    (found,) = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    attachments = {a["name"]: a for a in found["attachments"]}
    assert set(attachments) == {"distproc transcript", "distproc timeline"}
    assert attachments["distproc transcript"]["type"] == "text/plain"
    assert RETRIED in (results / attachments["distproc transcript"]["source"]).read_text()
    assert attachments["distproc timeline"]["type"] == "text/html"
    timeline = (results / attachments["distproc timeline"]["source"]).read_text()
    assert "retry-once" in timeline and "<svg" in timeline
    sandbox.assert_clean()


BLOCKING = """\
import sys

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("pytest_html", "allure", "allure_pytest", "allure_commons"):
            raise ImportError(f"{name} is not installed here")

sys.meta_path.insert(0, Blocked())
import pytest

sys.exit(pytest.main(["-p", "no:html", "-p", "no:allure_pytest", "-p", "no:cacheprovider", "--distproc-scenarios",
                      "--junitxml=junit.xml", "-o", "junit_logging=all", "--distproc-report=r"]))
"""


def test_neither_pytest_html_nor_allure_is_needed(sandbox: Sandbox) -> None:
    sandbox.scenario("retry", RETRY)
    result = sandbox.pytester.run(sys.executable, "-c", BLOCKING, timeout=120)
    result.assert_outcomes(passed=1)  # an import of either would have been an ImportError
    assert (sandbox.pytester.path / "junit.xml").is_file() and (sandbox.pytester.path / "r" / "index.html").is_file()
    sandbox.assert_clean()
