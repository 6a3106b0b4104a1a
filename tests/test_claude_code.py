"""Backend claude-code end to end: the real ``claude`` CLI (``$DISTPROC_CLAUDE`` or PATH; CI installs the pinned
version) in a loopback-only namespace, driven by our scripted model. Each fault is shown to act in the real run,
each misbehaviour to be caught, and nothing to be left behind after a pass, a fault, a timeout or Ctrl-C."""

from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from textwrap import dedent

import pytest

from pytest_distproc.claude_code import cli
from tests.helpers import Sandbox

try:
    CLAUDE: str | None = cli.find_claude()
except cli.ClaudeNotFound:
    CLAUDE = None

needs_cli = pytest.mark.skipif(CLAUDE is None or os.geteuid() != 0,
                               reason=f"needs the claude CLI ({cli.INSTALL}) and root for a network namespace")
pytestmark = [needs_cli, pytest.mark.timeout(600)]

TWO = """\
backend: claude-code
seed: 7
regions: {A: {records: 100}, B: {records: 100}}
"""


def outside_leftovers() -> list[str]:
    """What the CLI writes outside a private HOME/TMPDIR when it is not hermetic."""
    return sorted(glob.glob("/tmp/claude-*") + glob.glob("/tmp/cc-socks"))


def cli_processes(sandbox: Sandbox) -> list[int]:
    """Live processes of claude-code runs whose run dir is in this sandbox's TMPDIR."""
    needle = f"DISTPROC_CC_RUN={sandbox.tmp}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def assert_clean(sandbox: Sandbox, before: list[str]) -> None:
    sandbox.assert_clean()
    assert cli_processes(sandbox) == []
    assert outside_leftovers() == before


def test_the_seed_workflow_runs_in_the_real_cli_passes_and_keeps_its_raw_artefacts(sandbox: Sandbox) -> None:
    before = outside_leftovers()
    sandbox.scenario("seed", TWO + dedent("""\
        expect:
          outcome: COMPLETE
          transitions:
            process-region-a: [PENDING, IN_PROGRESS, COMPLETE]
            aggregate-results: [BLOCKED, IN_PROGRESS, COMPLETE]
          order: ["process-region-*:COMPLETE < aggregate-results:IN_PROGRESS"]
          aggregate: {total: {records: 200}}
        """))
    report = sandbox.pytester.path / "report"
    result = sandbox.run("--distproc-scenarios", "-v", "-rA", f"--distproc-report={report}")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert re.search(r"distproc: claude-code backend: Claude Code \S+ at ", out)
    assert "[t3] aggregate-results: BLOCKED -> IN_PROGRESS -> COMPLETE" in out
    assert "note: run by Claude Code" in out
    assert_clean(sandbox, before)
    [folder] = [p for p in report.iterdir() if p.is_dir()]
    raw = folder / "raw"
    assert (folder / "transcript.txt").read_text().startswith("Distributed Processing: COORDINATING")
    hooks = (raw / "hooks.jsonl").read_text()
    assert '"hook_event_name": "SubagentStart"' in hooks and '"tool_name": "TaskUpdate"' in hooks
    assert '"type": "result"' in (raw / "stream.jsonl").read_text()
    tasks = raw / "claude-home" / "tasks" / "distproc"
    assert sorted(p.name for p in tasks.iterdir()) == ["1.json", "2.json", "3.json"]
    assert list((raw / "claude-home" / "projects").rglob("agent-*.jsonl"))


def test_processor_faults_act_inside_the_real_run(sandbox: Sandbox) -> None:
    before = outside_leftovers()
    sandbox.scenario("faults", """\
        name: raise-retried
        backend: claude-code
        seed: 7
        regions: {A: {records: 50}, B: {records: 50}}
        policy: {retries: 1}
        faults: [{region: B, kind: raise, message: disk full}]
        expect:
          outcome: COMPLETE
          attempts: {process-region-a: 1, process-region-b: 2}
        ---
        name: hang-killed
        backend: claude-code
        seed: 7
        regions: {A: {records: 50}}
        policy: {timeout: 2s}
        faults: [{region: A, kind: hang}]
        expect:
          outcome: FAILED
          status: {process-region-a: IN_PROGRESS}
        ---
        name: drop-caught
        backend: claude-code
        seed: 7
        regions: {A: {records: 50}, B: {records: 50}}
        faults: [{region: A, kind: drop, fraction: 0.2}]
        """)
    result = sandbox.run("--distproc-scenarios", "-v", "-rA", timeout=500)
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert "disk full" in out  # the raise acted in the processor command and the fork said so
    assert "FAILED scenarios/faults.yaml::drop-caught" in out
    assert "conservation: 100 records in, 90 aggregated + 0 in failed regions: 10 lost" in out
    assert "the report aggregates region A's result, which its fork answered as a short result: 40 of 50" in out
    assert_clean(sandbox, before)


def test_model_faults_and_coordinator_misbehaviour_are_caught(sandbox: Sandbox) -> None:
    before = outside_leftovers()
    sandbox.scenario("model", TWO + dedent("""\
        name: early
        faults: [{kind: early-aggregate}]
        ---
        name: skipped
        backend: claude-code
        seed: 7
        regions: {A: {records: 100}, B: {records: 100}}
        faults: [{kind: skip-complete, region: A}]
        expect: {outcome: COMPLETE}
        ---
        name: overloaded
        backend: claude-code
        seed: 7
        regions: {A: {records: 100}, B: {records: 100}}
        faults: [{kind: api-error, region: B, status: 529, count: 5}]
        expect: {outcome: COMPLETE}
        ---
        name: stalled
        backend: claude-code
        seed: 7
        regions: {A: {records: 100}}
        faults: [{kind: api-stall, agent: coordinator, seconds: 1}]
        expect: {outcome: COMPLETE}
        """))
    result = sandbox.run("--distproc-scenarios", "-v", "-rA", timeout=500)
    result.assert_outcomes(passed=1, failed=3)
    out = result.stdout.str()
    assert re.search(r"aggregate-results: Claude Code moved it BLOCKED -> IN_PROGRESS \(history #\d+\), which the "
                     r"TaskList forbids", out)
    assert re.search(r"aggregation started \(#\d+\) before process-region-a finished", out)
    assert "FAILED scenarios/model.yaml::skipped" in out and "process-region-a: IN_PROGRESS" in out
    assert "note: misbehaviour: the coordinator never marked region A completed (skip-complete)" in out
    assert "note: misbehaviour: the coordinator started aggregate-results with its regions" in out
    assert "planned fault never fired" not in out
    assert "FAILED scenarios/model.yaml::overloaded" in out
    assert "model fault: api-error 529 on request 1 of region:B" in out
    assert "PASSED scenarios/model.yaml::stalled" in out and "model fault: api-stall 1.0s" in out
    assert_clean(sandbox, before)


def test_a_run_past_its_time_is_killed_with_everything_it_started(sandbox: Sandbox) -> None:
    before = outside_leftovers()
    sandbox.scenario("slow", TWO + dedent("""\
        claude_code: {timeout: 8s}
        faults: [{kind: api-stall, agent: coordinator, seconds: 300}]
        """))
    started = time.monotonic()
    result = sandbox.run("--distproc-scenarios", "-rA", timeout=200)
    assert time.monotonic() - started < 150
    result.assert_outcomes(failed=1)
    assert "the claude CLI did not finish within its budget and was killed" in result.stdout.str()
    assert_clean(sandbox, before)


def _ctrl_c_heard() -> None:
    """A pytest started from a shell's background job inherits SIGINT ignored (and Python keeps it so): undo that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_ctrl_c_leaves_no_cli_process_and_no_run_dir(sandbox: Sandbox, how: str) -> None:
    """Ctrl-C is handled by pytest; a SIGTERM or SIGKILL ends it at once, and its guardian kills the CLI's
    cgroup and removes the run dir (the CLI lives in a session of its own: no signal of pytest's reaches it)."""
    before = outside_leftovers()
    sandbox.scenario("stall", TWO + "faults: [{kind: api-stall, agent: coordinator, seconds: 300}]\n")
    process = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--distproc-scenarios"],
                               cwd=sandbox.pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True, preexec_fn=_ctrl_c_heard)
    try:
        deadline = time.monotonic() + 120
        while not cli_processes(sandbox) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert cli_processes(sandbox), "the CLI never started"
        time.sleep(2)
        process.send_signal(getattr(signal, how))
        out, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if how == "SIGINT":
        assert b"KeyboardInterrupt" in out
    deadline = time.monotonic() + 30
    while (cli_processes(sandbox) or any(sandbox.leftovers())) and time.monotonic() < deadline:
        time.sleep(0.2)  # the guardian acts once pytest is gone
    assert_clean(sandbox, before)


def test_a_missing_cli_skips_the_item_with_the_install_command(sandbox: Sandbox) -> None:
    sandbox.scenario("seed", TWO)
    result = sandbox.run("--distproc-scenarios", "-rs", "--distproc-claude", "/nonexistent/claude")
    result.assert_outcomes(skipped=1)
    assert f"is not an executable file; install it with `{cli.INSTALL}`" in result.stdout.str()



def test_a_user_script_drives_the_model_and_2_1_328_accepts_taskcreate_before_toolsearch(sandbox: Sandbox) -> None:
    """../shared/CLAUDE_CODE.md says TaskCreate before ToolSearch fails validation; in the main agent under -p
    2.1.328 accepts it. A version that refuses it fails this test."""
    sandbox.pyfile("model", """\
        from pytest_distproc.claude_code.server import Reply

        class Hasty:
            def respond(self, request, headers):
                turns = sum(1 for m in request.get("messages", []) if m.get("role") == "assistant")
                if turns == 0:
                    return Reply(content=({"type": "tool_use", "id": "toolu_hasty_1", "name": "TaskCreate",
                                           "input": {"subject": "process-region-a", "description": "too soon"}},))
                return Reply(content=({"type": "text", "text": "gave up"},))

        def responder(plan):
            assert plan.regions == ("A", "B")
            return Hasty()
        """)
    sandbox.scenario("scripted", TWO + "claude_code: {script: model.py}\n")
    report = sandbox.pytester.path / "report"
    result = sandbox.run("--distproc-scenarios", f"--distproc-report={report}")
    result.assert_outcomes(failed=1)
    [events] = list(report.rglob("events.jsonl"))
    assert "TaskCreate #1 process-region-a" in events.read_text()
    assert "PostToolUseFailure" not in events.read_text()
    assert "process-region-a: [PENDING]" in result.stdout.str()


def test_a_broken_model_script_fails_its_own_item_with_one_clear_line(sandbox: Sandbox) -> None:
    sandbox.pyfile("broken", "def responder(plan):\n    raise ValueError('no turns for ' + ','.join(plan.regions))\n")
    sandbox.scenario("broken", TWO + "claude_code: {script: broken.py}\n")
    sandbox.scenario("fine", "backend: inline\nregions: {A: {records: 3}}\n")
    result = sandbox.run("--distproc-scenarios")
    result.assert_outcomes(failed=1, passed=1)
    out = result.stdout.str()
    assert "cannot be loaded: ValueError: no turns for A,B (it must define responder(plan)" in out
    assert "Traceback" not in out and "pytest_distproc/claude_code" not in out
    sandbox.assert_clean()


def test_the_scenarios_skill_directory_replaces_the_shipped_region_skill(sandbox: Sandbox) -> None:
    """Its SKILL.md has no $ARGUMENTS: 2.1.328 appends the arguments, and the fork is still told apart."""
    skill = sandbox.pytester.path / "scenarios" / "skills" / "region-processor" / "SKILL.md"
    skill.parent.mkdir(parents=True)
    skill.write_text("---\nname: region-processor\ndescription: ours\ncontext: fork\n---\n"
                     "Custom region body: run the region's command from regions.json and answer RESULT.\n")
    sandbox.scenario("own", TWO + "skill: skills/region-processor\nexpect: {outcome: COMPLETE}\n")
    report = sandbox.pytester.path / "report"
    result = sandbox.run("--distproc-scenarios", f"--distproc-report={report}")
    result.assert_outcomes(passed=1)
    forks = [p.read_text() for p in report.rglob("agent-*.jsonl")]
    assert sum("Custom region body" in text for text in forks) == 2
