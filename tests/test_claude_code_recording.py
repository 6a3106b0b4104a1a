"""Recorded Claude Code runs (issue 15): ``source: {claude_code: PATH}`` from the hook log and from the session
transcripts alone, the recorder's settings snippet, and cassettes replayed on loopback.

The recordings are made here, by the real CLI with the scripted model on loopback (the claude-code backend),
once per module; the tests that need no CLI write their broken recordings by hand.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_distproc.checks import expectations
from pytest_distproc.claude_code import cassette, cli
from pytest_distproc.claude_code.__main__ import settings
from pytest_distproc.claude_code.launch import HOOK_EVENTS, HermeticRun
from pytest_distproc.claude_code.recording import RecordingError, import_recording, read_hook_log
from pytest_distproc.claude_code.runner import Options, run_claude_code
from pytest_distproc.claude_code.server import Reply
from pytest_distproc.run.model import Run
from pytest_distproc.scenario.loader import load_one, load_text
from pytest_distproc.scenario.model import Scenario
from tests.helpers import Sandbox

OK = """\
name: recorded-ok
backend: claude-code
seed: 7
regions: {A: {records: 200}, B: {records: 300}}
"""
FAILING = """\
name: recorded-failing
backend: claude-code
seed: 7
policy: {retries: 0}
regions: {A: {records: 200}, B: {records: 300}}
faults: [{region: B, kind: crash, exit_code: 3, attempts: [1]}]
"""
CHECKS = """\
expect:
  outcome: COMPLETE
  transitions:
    process-region-a: [PENDING, IN_PROGRESS, COMPLETE]
    process-region-b: [PENDING, IN_PROGRESS, COMPLETE]
    aggregate-results: [BLOCKED, IN_PROGRESS, COMPLETE]
  order: ["process-region-*:COMPLETE < aggregate-results:IN_PROGRESS"]
  attempts: {process-region-b: 1}
  aggregate: {total: {records: 500}, regions: {A: {records: 200}}}
"""


def claude_or_skip() -> str:
    from pytest_distproc.plugin.claude import namespace_problem

    try:
        claude = cli.find_claude(None)
        cli.version(claude)
    except cli.ClaudeNotFound as exc:
        pytest.skip(f"backend claude-code: {exc}")
    problem = namespace_problem()
    if problem:
        pytest.skip(f"backend claude-code: {problem}")
    return claude


def scenario(text: str, folder: Path) -> Scenario:
    return load_one(text, folder / "scenario.yaml")


def source(path: Path) -> Scenario:
    """A scenario checking the recording at ``path`` with nothing but the invariants."""
    return load_one(f"source: {{claude_code: {path.name}}}\n", path.parent / "scenario.yaml")


def save(run: Run, folder: Path) -> Path:
    """The run's raw artefacts as ``--distproc-report`` keeps them."""
    for name, text in run.artefacts.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def users_settings(self: HermeticRun) -> Path:
    """The run's hooks as a user installs them: the printed settings snippet, pointed at the run's log."""
    path = self.dir / "settings.json"
    path.write_text(json.dumps(settings(self.hook_log)))
    return path


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Run, Path]]]:
    """Two real CLI runs (every region answers; region B's processor crashes), and their artefacts. The
    first is recorded through the settings snippet a user installs, the second through the backend's own."""
    claude = claude_or_skip()
    found = {}
    for text in (OK, FAILING):
        folder = tmp_path_factory.mktemp("recorded")
        loaded = scenario(text, folder)
        with pytest.MonkeyPatch.context() as patch:
            if text is OK:
                patch.setattr(HermeticRun, "settings", users_settings)
            run = run_claude_code(loaded, 7, Options(claude=claude))
        found[loaded.name] = (run, save(run, folder / "artefacts"))
    yield found


def shape(run: Run) -> dict[str, Any]:
    """What a verdict rests on: outcome, each task's states, attempts, results, violations, the checks' words."""
    return {"outcome": run.outcome, "tasks": {t: [s.value for s in run.tasks.sequence(t)] for t in run.tasks.ids()},
            "attempts": [(a.task, a.attempt, a.ok) for a in run.attempts], "regions": run.regions,
            "total": run.total, "violations": run.violations, "mismatches": expectations.check(run)}


def transcript_of(folder: Path) -> Path:
    (session,) = [p for p in (folder / "claude-home" / "projects").glob("*/*.jsonl")]
    return session


@pytest.mark.parametrize("name", ["recorded-ok", "recorded-failing"])
def test_the_hook_log_and_the_transcripts_alone_give_the_run_the_same_history_and_verdict(
        recorded: dict[str, tuple[Run, Path]], name: str) -> None:
    original, folder = recorded[name]
    from_hooks = import_recording(source(folder / "hooks.jsonl"), folder / "hooks.jsonl", 7)
    from_transcript = import_recording(source(transcript_of(folder)), transcript_of(folder), 7)
    assert shape(from_hooks) == shape(from_transcript)
    assert shape(from_hooks)["tasks"] == shape(original)["tasks"]
    assert (from_hooks.outcome == "COMPLETE") is (name == "recorded-ok")
    texts = [getattr(e, "event", "") or getattr(e, "text", "") for e in from_transcript.tasks.history()]
    assert any("[input status and result text, subagents/agent-" in t for t in texts), texts
    assert any("[toolUseResult, subagents/agent-" in t for t in texts), texts
    assert any("[hook PostToolUse, hooks.jsonl:" in (getattr(e, "event", "") or getattr(e, "text", ""))
               for e in from_hooks.tasks.history())


def test_source_scenarios_check_a_recording_from_a_folder_a_hook_log_and_a_transcript(
        recorded: dict[str, tuple[Run, Path]], pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = Sandbox(pytester, monkeypatch)
    for name, (_, folder) in recorded.items():
        shutil.copytree(folder, pytester.path / "scenarios" / "recordings" / name)
    session = transcript_of(pytester.path / "scenarios" / "recordings" / "recorded-ok")
    sources = {"folder": "recordings/recorded-ok", "hooks": "recordings/recorded-ok/hooks.jsonl",
               "transcript": str(session.relative_to(pytester.path / "scenarios")),
               "home": "recordings/recorded-ok/claude-home"}
    docs = [f"name: from-{kind}\nsource: {{claude_code: {path}}}\n{CHECKS}" for kind, path in sources.items()]
    docs.append(f"name: failing-run\nsource: {{claude_code: recordings/recorded-failing}}\n{CHECKS}")
    sandbox.scenario("recorded", "---\n".join(docs))
    result = sandbox.run("--distproc-scenarios", "scenarios", "-rA")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(
        ["*recorded.yaml:*: transitions of process-region-b: expected*got [[]PENDING, IN_PROGRESS[]]"])
    assert "Traceback" not in result.stdout.str()
    sandbox.assert_clean()


def test_the_distproc_fixture_imports_a_recording(recorded: dict[str, tuple[Run, Path]],
                                                   pytester: pytest.Pytester) -> None:
    shutil.copytree(recorded["recorded-ok"][1], pytester.path / "recording")
    pytester.makepyfile(test_mine="""
        def test_recorded(distproc):
            run = distproc.run({"source": {"claude_code": "recording/hooks.jsonl"}})
            assert [s.value for s in run.tasks.sequence("process-region-b")] == ["PENDING", "IN_PROGRESS", "COMPLETE"]
            assert run.total["count"] == 500
            assert distproc.check(run) == []
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_the_settings_snippet_installs_a_recorder_the_real_cli_feeds(
        recorded: dict[str, tuple[Run, Path]], tmp_path: Path) -> None:
    printed = subprocess.run([sys.executable, "-m", "pytest_distproc.claude_code", "settings", "--log",
                              str(tmp_path / "mine.jsonl")], capture_output=True, text=True, check=True).stdout
    snippet = json.loads(printed)
    assert set(snippet["hooks"]) == set(HOOK_EVENTS)
    assert snippet["env"] == {"CLAUDE_CODE_ENABLE_TODO_TOOLS": "1"}
    assert str(tmp_path / "mine.jsonl") in snippet["hooks"]["PostToolUse"][0]["hooks"][0]["command"]
    run, folder = recorded["recorded-ok"]  # recorded through that snippet (see the fixture)
    assert run.outcome == "COMPLETE", run.violations
    events = {line["hook"]["hook_event_name"] for line in read_hook_log(folder / "hooks.jsonl").hooks}
    assert {"PostToolUse", "SubagentStart", "SubagentStop"} <= events


def test_the_recorder_appends_one_whole_stamped_line_per_event(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    command = settings(log)["hooks"]["PostToolUse"][0]["hooks"][0]["command"]
    for number in range(3):
        payload = json.dumps({"hook_event_name": "PostToolUse", "tool_name": "TaskUpdate", "tool_input": {},
                              "n": number})
        subprocess.run(command, shell=True, input=payload.encode(), check=True)
    lines = read_hook_log(log).hooks
    assert [line["hook"]["n"] for line in lines] == [0, 1, 2]
    assert all(isinstance(line["t"], float) and line["t"] > 1e9 for line in lines)


def test_a_cassette_of_a_scripted_run_replays_to_the_same_history(
        recorded: dict[str, tuple[Run, Path]], tmp_path: Path) -> None:
    original, folder = recorded["recorded-ok"]
    shutil.copy(folder / "cassette.jsonl", tmp_path / "cassette.jsonl")
    replayed = run_claude_code(scenario(OK + "claude_code: {replay: cassette.jsonl}\n", tmp_path), 7,
                               Options(claude=cli.find_claude(None)))
    assert shape(replayed) == shape(original)
    assert any("replayed from cassette" in note for note in replayed.notes)


def test_a_replay_that_goes_another_way_is_a_mismatch_naming_the_request_not_a_hang(
        recorded: dict[str, tuple[Run, Path]], tmp_path: Path) -> None:
    shutil.copy(recorded["recorded-ok"][1] / "cassette.jsonl", tmp_path / "cassette.jsonl")
    diverging = OK + "policy: {retries: 1}\nfaults: [{region: A, kind: crash, attempts: [1]}]\n"
    replayed = run_claude_code(scenario(diverging + "claude_code: {replay: cassette.jsonl}\n", tmp_path), 7,
                               Options(claude=cli.find_claude(None)))
    mismatches = [v for v in replayed.violations if v.startswith("replay mismatch")]
    assert mismatches, replayed.violations
    assert "the fork of skill region-processor" in mismatches[0] and "(error)" in mismatches[0]
    assert not any("did not finish within its budget" in v for v in replayed.violations)


def test_replay_answers_each_recorded_reply_once_and_a_retry_again() -> None:
    places = cassette.Placeholders("/run/x")
    first = cassette.CassetteRecorder(_Answers(), places)
    def opening(run_dir: str) -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": f"Base directory for this skill: {run_dir}/skills/s\n\nbody"}]}

    first.respond(opening("/run/x"), {})
    entries = [json.loads(line) for line in first.dump().splitlines()[1:]]
    replay = cassette.Replay(entries, cassette.Placeholders("/run/y"))  # another run, in another run dir
    request = opening("/run/y")
    assert replay.respond(request, {}).content[0]["input"] == {"command": "cat /run/y/jobs/A.json"}
    assert replay.respond(request, {}).status == 200  # the CLI asking again gets the same reply
    other = {"messages": [*request["messages"], {"role": "assistant", "content": "hi"}]}
    refused = replay.respond(other, {})
    assert refused.status == cassette.MISMATCH_STATUS and "turn 1" in refused.error
    assert replay.mismatches == [refused.error]


class _Answers:
    def respond(self, request: Any, headers: Any) -> Reply:
        return Reply(content=({"type": "tool_use", "id": "toolu_1", "name": "Bash",
                               "input": {"command": "cat /run/x/jobs/A.json"}},))


BROKEN = {
    "truncated.jsonl": ('{"t": 1.0, "hook": {"hook_event_name": "PostToolUse", "tool_name": "TaskCreate", '
                        '"tool_input": {}, "tool_response": {"task": {"id": "1", "subject": "process-region-a"}}}}\n'
                        '{"t": 2.0, "hook": {"hook_event_name": "PostTo', "truncated.jsonl:2: the file ends in the "
                        "middle of a line"),
    "tools-off.jsonl": ('{"t": 1.0, "hook": {"hook_event_name": "PostToolUse", "tool_name": "Bash", '
                        '"tool_input": {}, "tool_response": {}}}\n', "no TaskCreate or TaskUpdate"),
    "shape.jsonl": ('{"t": 1.0, "hook": {"hook_event_name": "PostToolUse", "tool_name": "TaskCreate", '
                    '"tool_input": {}, "tool_response": "Task #1 created"}}\n', "shape.jsonl:1: a TaskCreate "
                    "result of unknown shape"),
    "session.jsonl": ('{"type": "assistant", "sessionId": "s", "timestamp": "2026-12-01T00:00:00.000Z", "message": '
                      '{"content": [{"type": "tool_use", "id": "u1", "name": "TaskUpdate", "input": {"taskId": "1", '
                      '"status": "completed"}}]}}\n{"type": "user", "sessionId": "s", "timestamp": '
                      '"2026-12-01T00:00:01.000Z", "message": {"content": [{"type": "tool_result", "tool_use_id": '
                      '"u1", "content": "Something else"}]}}\n', "session.jsonl:2: a TaskUpdate result of unknown "
                      "shape"),
}


def test_a_recording_that_cannot_be_mapped_fails_its_own_item_naming_file_and_line(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox = Sandbox(pytester, monkeypatch)
    folder = pytester.path / "scenarios" / "rec"
    folder.mkdir(parents=True)
    (folder / "empty").mkdir()
    docs = []
    for name, (text, _) in BROKEN.items():
        (folder / name).write_text(text)
        docs.append(f"name: {name.split('.')[0]}\nsource: {{claude_code: rec/{name}}}\n")
    docs.append("name: nothing\nsource: {claude_code: rec/empty}\n")
    sandbox.scenario("broken", "---\n".join(docs))
    sandbox.scenario("missing", "name: missing\nsource: {claude_code: rec/nope.jsonl}\n")
    sandbox.scenario("good", "regions: {A: {records: 5}}\n")
    result = sandbox.run("--distproc-scenarios", "scenarios")
    result.assert_outcomes(passed=1, failed=6)
    out = result.stdout.str()
    for _, expected in BROKEN.values():
        assert expected in out
    assert "holds no hook log and no session transcript" in out
    assert "missing.yaml:2: $.source.claude_code: recording 'rec/nope.jsonl' does not exist" in out
    assert "Traceback" not in out


def test_a_source_scenario_names_any_region_task_until_the_recording_says_which_exist(tmp_path: Path) -> None:
    (tmp_path / "rec.jsonl").write_text("")
    loaded = load_one(textwrap.dedent("""\
        source: {claude_code: rec.jsonl}
        expect:
          status: {process-region-z: COMPLETE}
          concurrent: ["process-region-*"]
          aggregate: {regions: {Z: {records: 1}}}
    """), tmp_path / "s.yaml")
    assert loaded.regions == () and loaded.source == tmp_path / "rec.jsonl"
    wrong = load_text("source: {claude_code: rec.jsonl}\nexpect: {status: {nope: COMPLETE}}\n", tmp_path / "w.yaml")
    assert "unknown task 'nope'" in str(wrong[0].error)


def test_a_file_that_is_no_recording_is_a_recording_error_at_its_first_line(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text("not json\n")
    with pytest.raises(RecordingError, match=r"x.jsonl:1: neither a hook log"):
        import_recording(source(tmp_path / "x.jsonl"), tmp_path / "x.jsonl", 0)



LIVE_CONFTEST = """
from pytest_distproc.claude_code import runner
from pytest_distproc.claude_code.script import Plan, ScriptedModel
from pytest_distproc.claude_code.server import ModelServer

MODEL = ScriptedModel(Plan((), (), 0, 0, {}))
UPSTREAM = ModelServer(MODEL).start()  # the scripted model's server plays the API: only the URL differs
write_jobs = runner.write_jobs


def scripted_plan(run_dir, project, scenario, seed):
    commands = write_jobs(run_dir, project, scenario, seed)
    MODEL.plan = runner.plan_of(scenario, commands)
    return commands


runner.write_jobs = scripted_plan


def pytest_configure(config):
    config.option.distproc_claude_live_url = UPSTREAM.url


def pytest_unconfigure(config):
    UPSTREAM.close()
"""


def test_live_mode_runs_the_cli_against_the_api_url_and_saves_a_cassette_that_replays(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    claude_or_skip()
    sandbox = Sandbox(pytester, monkeypatch)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
    pytester.makeconftest(LIVE_CONFTEST)
    sandbox.scenario("live", OK + "claude_code: {live: true}\n" + CHECKS)
    skipped = sandbox.run("--distproc-scenarios", "scenarios", "-rs")
    skipped.assert_outcomes(skipped=1)
    skipped.stdout.fnmatch_lines(["*claude_code.live: runs the real model*pass --distproc-claude-live*"])
    report = pytester.path / "report"
    result = sandbox.run("--distproc-scenarios", "scenarios", "--distproc-claude-live", "--distproc-report",
                         str(report), "-rA", timeout=600)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*against the live model at http://127.0.0.1:*on the host's network*"])
    saved = report / "cassettes" / "recorded-ok.jsonl"  # the scenario's name
    assert json.loads(saved.read_text().splitlines()[0])["format"] == cassette.FORMAT
    shutil.copy(saved, pytester.path / "scenarios" / "live.jsonl")
    pytester.makeconftest("")
    sandbox.scenario("live", OK + "claude_code: {replay: live.jsonl}\n" + CHECKS)
    sandbox.run("--distproc-scenarios", "scenarios").assert_outcomes(passed=1)
    sandbox.assert_clean()
