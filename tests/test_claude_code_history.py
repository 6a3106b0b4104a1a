"""The hook-log mapping of backend claude-code, on hand-written hook lines (no CLI): states, forbidden moves
kept and reported, observed concurrency, the report checked against our own summary. Plus the pieces that
need no CLI either: the SSE model server and the loopback-only namespace."""

from __future__ import annotations

import errno
import json
import os
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pytest_distproc.attempt import stats as summary
from pytest_distproc.checks import expectations
from pytest_distproc.claude_code import history
from pytest_distproc.claude_code.netns import in_loopback_namespace, interfaces
from pytest_distproc.claude_code.script import Plan, ScriptedModel, Stage, report
from pytest_distproc.claude_code.server import ModelServer, Reply
from pytest_distproc.scenario.loader import load_one, load_text
from pytest_distproc.tasklist import State

SCENARIO = """\
backend: claude-code
seed: 1
regions: {A: {inline: [{value: 1}, {value: 3}]}, B: {inline: [{value: 10}]}}
"""
RESULTS = {"A": summary.summarize([1.0, 3.0]), "B": summary.summarize([10.0])}


def hook(t: float, event: str, **body: Any) -> dict[str, Any]:
    return {"t": t, "hook": {"hook_event_name": event, **body}}


def created(t: float, number: str, subject: str) -> dict[str, Any]:
    return hook(t, "PostToolUse", tool_name="TaskCreate", tool_input={"subject": subject},
                tool_response={"task": {"id": number, "subject": subject}})


def update(t: float, number: str, **given: Any) -> dict[str, Any]:
    return hook(t, "PostToolUse", tool_name="TaskUpdate", tool_input={"taskId": number, **given},
                tool_response={"success": True, "taskId": number})


def fork(start: float, end: float, agent: str, region: str, answer: str) -> list[dict[str, Any]]:
    return [hook(start, "SubagentStart", agent_id=agent), hook(end, "SubagentStop", agent_id=agent),
            hook(end + 0.01, "PostToolUse", tool_name="Skill", tool_input={"skill": "region-processor",
                                                                          "args": f"region={region}"},
                 tool_response={"success": True, "agentId": agent, "result": answer})]


def ideal(early: bool = False, overlap: bool = False) -> list[dict[str, Any]]:
    lines = [created(1, "1", "process-region-a"), created(2, "2", "process-region-b"),
             created(3, "3", "aggregate-results"), update(4, "3", addBlockedBy=["1", "2"]),
             update(5, "1", status="in_progress"), update(6, "2", status="in_progress")]
    if early:
        lines.append(update(6.5, "3", status="in_progress"))
    b_start = 7.5 if overlap else 9
    lines += fork(7, 8, "fa", "A", "RESULT " + json.dumps(RESULTS["A"]))
    lines += fork(b_start, 10, "fb", "B", "RESULT " + json.dumps(RESULTS["B"]))
    lines += [update(11, "1", status="completed"), update(12, "2", status="completed")]
    if not early:
        lines.append(update(13, "3", status="in_progress"))
    lines.append(update(14, "3", status="completed"))
    return lines


def the_report() -> str:
    plan = Plan(("A", "B"), (Stage("aggregate-results", ("process-region-a", "process-region-b")),), 0, 1000, {})
    return report(plan, RESULTS, ["A", "B"], True)


def test_an_ideal_log_maps_onto_the_tasklist_history_and_passes_every_invariant() -> None:
    scenario = load_one(SCENARIO, "s.yaml")
    run = history.import_run(scenario, ideal(), history.Imported(report=the_report(), seed=1, started=0, ended=15))
    assert run.outcome == "COMPLETE"
    assert run.tasks.sequence("aggregate-results") == [State.BLOCKED, State.IN_PROGRESS, State.COMPLETE]
    assert run.tasks.sequence("process-region-a") == [State.PENDING, State.IN_PROGRESS, State.COMPLETE]
    assert [(a.region, a.started, a.ended, a.ok) for a in run.attempts] == [("A", 7, 8, True), ("B", 9, 10, True)]
    assert run.total is not None and run.total["count"] == 3
    assert expectations.check(run) == []
    assert "Total: 3 records" in run.transcript


def test_early_aggregation_is_kept_in_the_history_reported_as_a_violation_and_caught_by_the_order_check() -> None:
    scenario = load_one(SCENARIO + 'expect: {order: ["process-region-*:COMPLETE < aggregate-results:IN_PROGRESS"]}',
                        "s.yaml")
    run = history.import_run(scenario, ideal(early=True), history.Imported(report=the_report(), seed=1))
    assert run.tasks.sequence("aggregate-results") == [State.BLOCKED, State.IN_PROGRESS, State.COMPLETE]
    found = expectations.check(run)
    assert any("aggregate-results: Claude Code moved it BLOCKED -> IN_PROGRESS" in p and "forbids" in p
               for p in found), found
    assert any(p.startswith("aggregation started") for p in found), found
    assert any(p.startswith("order 'process-region-*:COMPLETE < aggregate-results:IN_PROGRESS': process-region-a "
                            "entered COMPLETE at #") for p in found), found


def test_concurrency_is_what_the_fork_intervals_show_and_says_it_was_observed() -> None:
    scenario = load_one(SCENARIO + 'expect: {concurrent: ["process-region-*"]}', "s.yaml")
    apart = history.import_run(scenario, ideal(), history.Imported(report=the_report(), seed=1))
    assert any(p.startswith("concurrent:") for p in expectations.check(apart))
    overlapping = history.import_run(scenario, ideal(overlap=True), history.Imported(report=the_report(), seed=1))
    assert expectations.check(overlapping) == []
    together = [e for e in overlapping.tasks.events if e.kind == "together"]
    assert together and together[0].data["observed"] is True
    assert "not proven by a start barrier" in overlapping.transcript


def test_a_report_whose_numbers_differ_from_the_forks_results_is_a_violation() -> None:
    scenario = load_one(SCENARIO, "s.yaml")
    wrong = the_report().replace("Total: 3 records", "Total: 4 records")
    run = history.import_run(scenario, ideal(), history.Imported(report=wrong, seed=1))
    assert any("the report prints 'Total: 4 records" in v for v in run.violations), run.violations


def test_a_failed_fork_that_claude_code_calls_a_success_leaves_its_task_in_progress_and_is_told() -> None:
    scenario = load_one(SCENARIO, "s.yaml")
    lines = ideal()[:6] + fork(7, 8, "fa", "A", "RESULT " + json.dumps(RESULTS["A"])) + fork(
        9, 10, "fb", "B", "FAILED Exit code 3") + [update(11, "1", status="completed")]
    plan = Plan(("A", "B"), (Stage("aggregate-results", ()),), 0, 1000, {})
    run = history.import_run(scenario, lines, history.Imported(report=report(plan, RESULTS, ["A"], False), seed=1))
    assert run.outcome == "FAILED"
    assert run.tasks["process-region-b"].state is State.IN_PROGRESS
    assert run.missing == ["B"]
    assert any("reported success: true although its fork failed" in n for n in run.notes)


def test_model_faults_are_refused_off_the_claude_code_backend_with_the_line_and_path() -> None:
    [doc] = load_text("regions: {A: {records: 1}}\nfaults:\n  - {kind: api-error, region: A}\n", "s.yaml")
    assert doc.error is not None
    assert "s.yaml:3: $.faults[0].kind: a api-error fault acts only on the claude-code backend" in str(doc.error)
    [doc] = load_text("backend: claude-code\nregions: {A: {records: 1}}\nfaults:\n  - {kind: api-stall}\n", "s.yaml")
    assert doc.error is not None and "an api-stall fault needs 'seconds'" in str(doc.error)


class Echo:
    def respond(self, request: Any, headers: Any) -> Reply:
        return Reply(content=({"type": "text", "text": "hi"}, {"type": "tool_use", "id": "t1", "name": "Bash",
                                                              "input": {"command": "true"}}))


def test_the_model_server_streams_the_messages_api_events_in_order() -> None:
    server = ModelServer(Echo()).start()
    try:
        body = json.dumps({"stream": True, "messages": [{"role": "user", "content": "x"}]}).encode()
        request = urllib.request.Request(server.url + "/v1/messages?beta=true", body,
                                         {"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
    finally:
        server.close()
    names = [line[len("event: "):] for line in text.splitlines() if line.startswith("event: ")]
    assert names == ["message_start", *["content_block_start", "content_block_delta", "content_block_stop"] * 2,
                     "message_delta", "message_stop"]
    assert '"stop_reason": "tool_use"' in text and '"partial_json": "{\\"command\\": \\"true\\"}"' in text


def test_the_scripted_model_repeats_a_turn_the_cli_sends_again_after_an_api_error() -> None:
    model = ScriptedModel(Plan(("A",), (), 0, 1000, {"A": "true"}))
    first = model.respond({"messages": [{"role": "user", "content": "go"}], "tools": [{}]}, {})
    again = model.respond({"messages": [{"role": "user", "content": "go"}], "tools": [{}]}, {})
    assert first == again and first.content[0]["input"]["skill"] == "distributed-processor"


@pytest.mark.skipif(os.geteuid() != 0, reason="a network namespace needs CAP_SYS_ADMIN (CI runs as root)")
def test_the_loopback_namespace_has_only_lo_and_no_route_out() -> None:
    def probe() -> tuple[list[str], int]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            return interfaces(), sock.connect_ex(("192.0.2.1", 80))

    names, code = in_loopback_namespace(probe)
    assert names == ["lo"]
    assert code == errno.ENETUNREACH
    assert interfaces() != ["lo"] or Path("/sys/class/net").exists()  # the caller's thread stayed where it was


def test_a_planned_misbehaviour_or_model_fault_that_never_acted_is_reported() -> None:
    from pytest_distproc.claude_code.launch import Artefacts
    from pytest_distproc.claude_code.runner import import_artefacts

    scenario = load_one(SCENARIO + "faults: [{kind: early-aggregate}, {kind: api-error, agent: main, status: 500}]\n",
                        "s.yaml")
    run = import_artefacts(scenario, 1, Artefacts(), fired=[], version="test")
    assert "planned fault never fired: early-aggregate on the coordinator (the scripted coordinator never reached " \
           "it)" in run.violations
    assert "planned fault never fired: api-error 500 x1 on main (that agent made no request)" in run.violations
