"""``tasks:``: task graphs beyond one level of regions, checked at load time and run in partial order."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_distproc.attempt import stats as summary
from pytest_distproc.checks import expectations
from pytest_distproc.run.coordinator import Coordinator
from pytest_distproc.scenario.loader import load_one, load_text
from pytest_distproc.tasklist import State

ROOT = Path(__file__).resolve().parents[1]
BASE = "regions: {A: {records: 20}, B: {records: 10}, C: {records: 5}, D: {records: 5}}\n"


def problems(text: str, tmp_path: Path) -> list[str]:
    (doc,) = load_text(text, tmp_path / "g.yaml")
    assert doc.error is not None
    return [f"{p.line}: {p.path}: {p.message}" for p in doc.error.problems]


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        ("tasks:\n  a: {blocked_by: [b]}\n  b: {blocked_by: [a]}\n",
         "3: $.tasks.a.blocked_by: blocked_by forms a cycle: a -> b -> a"),
        ("tasks:\n  eu: {blocked_by: [process-region-z]}\n",
         "3: $.tasks.eu.blocked_by: unknown task(s) 'process-region-z'; tasks of this scenario: "),
        ("tasks:\n  process-region-a: {blocked_by: [process-region-b]}\n",
         "3: $.tasks.process-region-a: 'process-region-a' is a region's task; it is created from regions:"),
        ("tasks:\n  eu: {blocked_by: [aggregate-results]}\n",
         "3: $.tasks.eu.blocked_by: aggregate-results is the final task; nothing can wait for it"),
        ("tasks:\n  eu: {kind: sum, blocked_by: [process-region-a]}\n",
         "3: $.tasks.eu.kind: expected one of aggregate, validate, got 'sum'"),
        ("tasks:\n  eu: {blocked_by: []}\n", "3: $.tasks.eu.blocked_by: expected a non-empty list of task ids"),
        ("tasks:\n  Europe: {blocked_by: [process-region-a]}\n", "3: $.tasks.Europe: task id 'Europe' must be"),
    ],
)
def test_graph_mistakes_are_located(tasks: str, expected: str, tmp_path: Path) -> None:
    found = problems(BASE + tasks, tmp_path)
    assert any(p.startswith(expected) for p in found), found


def test_expectations_may_name_graph_tasks_and_only_those(tmp_path: Path) -> None:
    text = BASE + "tasks:\n  eu: {blocked_by: [process-region-a]}\nexpect: {status: {asia: COMPLETE}}\n"
    assert any("unknown task 'asia'" in p and "eu" in p for p in problems(text, tmp_path))


def test_aggregate_results_defaults_to_every_sink(tmp_path: Path) -> None:
    text = BASE + "tasks:\n  eu: {blocked_by: [process-region-a, process-region-b]}\n"
    scenario = load_one(text, tmp_path / "g.yaml")
    assert [(t.id, t.blocked_by) for t in scenario.graph] == [
        ("eu", ("process-region-a", "process-region-b")),
        ("aggregate-results", ("process-region-c", "process-region-d", "eu")),
    ]


def test_three_levels_run_in_partial_order() -> None:
    (doc, _) = load_text((ROOT / "scenarios" / "task-graph.yaml").read_text(), ROOT / "scenarios" / "task-graph.yaml")
    assert doc.scenario is not None
    run = Coordinator(doc.scenario).run()
    assert run.outcome == "COMPLETE"
    seq = {(t.task, t.to_state): t.seq for t in run.tasks.transitions}
    assert seq[("europe", State.COMPLETE)] < seq[("process-region-c", State.COMPLETE)]
    assert seq[("americas", State.IN_PROGRESS)] > seq[("process-region-c", State.COMPLETE)]
    assert seq[("aggregate-results", State.IN_PROGRESS)] > seq[("americas", State.COMPLETE)]
    assert run.stages["europe"]["count"] == 700 and run.total is not None and run.total["count"] == 1000
    assert expectations.check(run) == []


def test_a_graph_that_counts_a_region_twice_or_never_is_a_load_error(tmp_path: Path) -> None:
    text = BASE + ("tasks:\n  eu: {blocked_by: [process-region-a, process-region-b]}\n"
                   "  all: {blocked_by: [process-region-a, process-region-b, process-region-c]}\n"
                   "  aggregate-results: {blocked_by: [eu, all]}\n")
    found = problems(text, tmp_path)
    assert "4: $.tasks.all.blocked_by: process-region-a reaches aggregate-results by 2 paths: it would be " \
           "counted 2 times; let each region feed the total through exactly one task" in found, found
    assert "2: $.tasks: process-region-d never reaches aggregate-results; its records would be lost" in found


def test_a_double_counting_coordinator_is_caught_at_run_time(tmp_path: Path) -> None:
    class Doubling(Coordinator):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, aggregate=lambda parts: summary.merge([*parts, parts[0]]))  # type: ignore[arg-type]

    run = Doubling(load_one(BASE, tmp_path / "g.yaml")).run()
    assert any("conservation: total counts 60 records but regions sum to 40" in m for m in expectations.check(run))


def test_failed_region_cancels_its_continent_and_the_total(tmp_path: Path) -> None:
    text = BASE + ("tasks:\n  eu: {blocked_by: [process-region-a, process-region-b]}\n"
                   "  am: {blocked_by: [process-region-c, process-region-d]}\n"
                   "faults: [{region: C, kind: crash}]\n")
    run = Coordinator(load_one(text, tmp_path / "g.yaml")).run()
    assert run.tasks["eu"].state is State.COMPLETE
    assert run.tasks["am"].state is State.CANCELLED
    assert run.tasks["aggregate-results"].state is State.CANCELLED
    assert run.outcome == "FAILED"


def test_the_html_timeline_draws_each_stage_after_its_own_blockers() -> None:
    import re

    from pytest_distproc.report import data as report_data
    from pytest_distproc.report import html as htmltimeline

    (doc, _) = load_text((ROOT / "scenarios" / "task-graph.yaml").read_text(), ROOT / "scenarios" / "task-graph.yaml")
    assert doc.scenario is not None
    run = Coordinator(doc.scenario).run()
    svg = htmltimeline.timeline_svg(report_data.summarize_run(run, nodeid="x::y", verdict="passed"))
    stages = re.findall(r'<g class="stage"><title>[^<]*</title><rect x="([\d.]+)"', svg)
    assert len(stages) == 2, svg
    aggregate = re.search(r'<g class="aggregate"><title>[^<]*</title><rect x="([\d.]+)"', svg)
    europe_x, americas_x = (float(x) for x in stages)
    assert aggregate is not None and europe_x < americas_x <= float(aggregate.group(1)) + 0.5
