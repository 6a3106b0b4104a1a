"""What a scenario item gives the tools run around pytest: junitxml, pytest-html and allure.

* ``--junitxml``: valid against pytest's junit-10.xsd by default, so the ``distproc.*`` facts of a run
  (outcome, seed, attempts, faults, retries, ...) are *not* written as per-testcase ``<properties>`` unless
  the ini option ``distproc_junit_properties = true`` asks for them (Jenkins and other xunit1 readers show
  them). They always travel on the call report's ``user_properties``, where ``--distproc-report`` and the
  terminal line read them, under xdist too. With ``junit_logging = system-out`` (or ``out-err``, ``all``)
  the transcript goes to the test case's ``<system-out>``.
* pytest-html (``--html``): the transcript as a text extra and, with ``--distproc-report DIR``, a link to
  the scenario's ``timeline.html``.
* allure-pytest (``--alluredir``): the same two, as attachments.

Neither pytest-html nor allure is a dependency: each is looked up only when its option is on.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_distproc.plugin.items import PLAN_SECTION, SECTION, ScenarioItem

JUNIT_PROPERTIES = "distproc_junit_properties"
REPORT_PROPERTY = "distproc.report"
"""The name of a scenario's folder under ``--distproc-report DIR`` (set by the report plugin)."""
STDOUT_SECTION = "Captured stdout distproc transcript"
"""A teardown report section junitxml reads as captured stdout (``junit_logging``); the terminal shows only
the sections of the report that failed, and the transcript is already in the call report's."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        JUNIT_PROPERTIES,
        "write each scenario's distproc.* facts (outcome, seed, attempts, faults, ...) as per-testcase "
        "<properties> in --junitxml; junit-10.xsd does not allow them there, so they are off by default",
        type="bool",
        default=False,
    )


def publish(item: pytest.Item, report: pytest.TestReport, properties: Sequence[tuple[str, object]]) -> None:
    """Facts of a run: on the call ``report`` (what our report plugin reads, also on the xdist controller),
    and on the item (what junitxml writes, from the teardown report) only when the ini option asks."""
    report.user_properties = [*report.user_properties, *properties]
    if item.config.getini(JUNIT_PROPERTIES):
        item.user_properties.extend(properties)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    # tryfirst: the outermost wrapper, so that the report plugin has written the scenario's folder by now
    outcome = yield
    if not isinstance(item, ScenarioItem):
        return
    report: pytest.TestReport = outcome.get_result()
    if report.when == "call":
        publish(item, report, item.run_properties)
        transcript = transcript_of(item, report)
        timeline = _timeline(item, report)
        _html_extras(item, report, transcript, timeline)
        _allure_attachments(item, transcript, timeline)
    elif report.when == "teardown" and _junit_system_out(item.config):
        transcript = transcript_of(item, report)
        if transcript:
            report.sections.append((STDOUT_SECTION, transcript))


def transcript_of(item: ScenarioItem, report: pytest.TestReport) -> str:
    """The fault plan and transcript the item reported (its sections), else its run's transcript."""
    texts = [text for name, text in report.sections
             if (SECTION in name or PLAN_SECTION in name) and name != STDOUT_SECTION]
    if texts:
        return "".join(sorted(texts, key=lambda text: not text.startswith("#")))
    run = item.run_result
    return run.transcript if run is not None else ""


def _timeline(item: pytest.Item, report: pytest.TestReport) -> Path | None:
    directory = item.config.getoption("distproc_report", None)
    slug = dict(report.user_properties).get(REPORT_PROPERTY)
    if not directory or not slug:
        return None
    path = Path(directory).resolve() / str(slug) / "timeline.html"
    return path if path.is_file() else None


def _junit_system_out(config: pytest.Config) -> bool:
    return bool(config.getoption("xmlpath", None)) and config.getini("junit_logging") in ("system-out", "out-err",
                                                                                          "all")


def _html_extras(item: pytest.Item, report: pytest.TestReport, transcript: str, timeline: Path | None) -> None:
    html_path = item.config.getoption("htmlpath", None)
    pytest_html: Any = item.config.pluginmanager.getplugin("html")
    if not html_path or pytest_html is None:
        return
    extras = list(getattr(report, "extras", []))
    if timeline is not None:
        # relative to the HTML report, as pytest-html resolves it, so the pair can be moved together
        report_dir = (Path.cwd() / Path(os.path.expandvars(html_path)).expanduser()).resolve().parent
        extras.append(pytest_html.extras.url(os.path.relpath(timeline, report_dir), name="distproc timeline"))
    if transcript:
        extras.append(pytest_html.extras.text(transcript, name="distproc transcript"))
    report.extras = extras  # type: ignore[attr-defined]


def _allure_attachments(item: pytest.Item, transcript: str, timeline: Path | None) -> None:
    if not item.config.pluginmanager.has_plugin("allure_listener"):  # allure-pytest registers it for --alluredir
        return
    allure: Any = importlib.import_module("allure")
    if transcript:
        allure.attach(transcript, name="distproc transcript", attachment_type=allure.attachment_type.TEXT)
    if timeline is not None:
        allure.attach.file(str(timeline), name="distproc timeline", attachment_type=allure.attachment_type.HTML)
