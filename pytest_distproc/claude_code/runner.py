"""``backend: claude-code``: one scenario run by the real Claude Code CLI against our scripted model.

It installs the skills and the regions' jobs in a temporary project (``project.py``), runs the CLI once,
hermetically (``launch.py``), with the scripted coordinator (``script.py``) or the user's model script
answering as the model, and imports the recorder's hook log as the run's history (``history.py``).
Faults that name no region are checked here to have fired: a planned model fault or misbehaviour the
run never reached is a violation, like a processor fault that never announced itself.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_distproc.claude_code import cassette, cli, history, live
from pytest_distproc.claude_code.launch import Artefacts, HermeticRun
from pytest_distproc.claude_code.project import install_skills, write_jobs
from pytest_distproc.claude_code.script import COORDINATOR_SKILL, ModelFault, Plan, ScriptedModel, Stage
from pytest_distproc.claude_code.server import Reply, Responder
from pytest_distproc.errors import DistprocError
from pytest_distproc.run.model import Run
from pytest_distproc.scenario.model import Scenario

PROMPT = "Run the distributed-processor skill on the regions of this project, then print its report as it is."
MAX_BASH_TIMEOUT_MS = 600_000
STARTUP_SECONDS = 60.0
"""What the CLI needs beyond the regions' own time on a loaded machine: start-up and ~20 model turns."""
LIVE_SECONDS = 900.0
"""At least this for a live run: a real model's ~20 turns take minutes, not the scripted model's milliseconds."""


@dataclass(frozen=True)
class Options:
    claude: str | None = None
    """``--distproc-claude`` / ini ``distproc_claude`` (None: ``$DISTPROC_CLAUDE``, then PATH)."""
    live_url: str | None = None
    """``--distproc-claude-live``: the real model's API (None: the scripted model); replays stay replays."""


class ModelScriptError(DistprocError):
    """The scenario's ``claude_code.script`` cannot be loaded."""


def plan_of(scenario: Scenario, commands: Mapping[str, str]) -> Plan:
    misbehaviour = [f for f in scenario.faults if f.kind in ("early-aggregate", "skip-complete")]
    regions = tuple(r.id for r in scenario.regions)
    skipped = tuple(f.region or regions[-1] for f in misbehaviour if f.kind == "skip-complete")
    return Plan(regions=regions, stages=tuple(Stage(s.id, s.blocked_by) for s in scenario.graph),
                retries=scenario.policy.retries,
                timeout_ms=min(MAX_BASH_TIMEOUT_MS, max(1000, int(scenario.policy.timeout * 1000))),
                commands=dict(commands), early_aggregate=any(f.kind == "early-aggregate" for f in misbehaviour),
                skip_complete=skipped)


def model_faults(scenario: Scenario) -> list[ModelFault]:
    return [ModelFault(f.kind, agent=f.agent, region=f.region, status=f.status, count=f.count, seconds=f.seconds)
            for f in scenario.faults if f.kind in ("api-error", "api-stall")]


def user_responder(scenario: Scenario, plan: Plan, faults: list[ModelFault]) -> Responder:
    """The user's script: a Python file defining ``responder(plan)`` that returns an object with
    ``respond(request, headers) -> Reply`` (``pytest_distproc.claude_code.server.Reply``)."""
    path = scenario.claude_script
    assert path is not None
    spec = importlib.util.spec_from_file_location(f"distproc_model_script_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ModelScriptError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        inner: Responder = module.responder(plan)
    except Exception as exc:
        raise ModelScriptError(f"model script {path} cannot be loaded: {type(exc).__name__}: {exc} (it must "
                               f"define responder(plan) returning an object with respond(request, headers))") from None
    return _Faulted(inner, faults) if faults else inner


class _Faulted:
    """The model faults around a user's responder: the same agents and counts as for the ideal coordinator."""

    def __init__(self, inner: Responder, faults: list[ModelFault]) -> None:
        self.inner, self.shared = inner, ScriptedModel(Plan((), (), 0, 0, {}), faults)

    def respond(self, request: Mapping[str, Any], headers: Mapping[str, str]) -> Reply:
        reply = self.shared.respond(request, headers)
        if reply.status >= 400:
            return reply
        inner = self.inner.respond(request, headers)
        return Reply(content=inner.content, status=inner.status, error=inner.error, stall=reply.stall or inner.stall)


def run_claude_code(scenario: Scenario, seed: int, options: Options | None = None) -> Run:
    """Run ``scenario`` once in the real CLI and return its imported history."""
    options = options or Options()
    claude = cli.find_claude(options.claude)
    version = cli.version(claude)
    faults = model_faults(scenario)
    policy = scenario.policy
    budget = scenario.claude_timeout or STARTUP_SECONDS + (policy.retries + 1) * len(scenario.regions) * (
        policy.timeout + 5)
    placeholder = ScriptedModel(Plan((), (), 0, 0, {}), faults)
    live_url = options.live_url if scenario.claude_replay is None and scenario.claude_script is None else None
    key = live.live_key() if live_url else ""
    if live_url:
        budget = max(budget, LIVE_SECONDS)
    hermetic = HermeticRun(claude, placeholder, timeout=budget, loopback_only=not live_url)
    try:
        install_skills(hermetic.project, scenario)
        plan = plan_of(scenario, write_jobs(hermetic.dir, hermetic.project, scenario, seed))
        if scenario.claude_script is not None:
            hermetic.responder = user_responder(scenario, plan, faults)
        else:
            placeholder.plan = plan
        places = cassette.Placeholders(str(hermetic.dir))
        if scenario.claude_replay is not None:
            hermetic.responder = cassette.Replay.load(scenario.claude_replay, places)
        elif live_url:
            hermetic.responder = live.LiveModel(live_url, key)
    except BaseException:
        hermetic.discard()
        raise
    model = hermetic.responder
    recorder = hermetic.responder = cassette.CassetteRecorder(model, places)
    found = hermetic.execute(PROMPT)
    fired = model.fired if isinstance(model, ScriptedModel) else getattr(model, "shared", placeholder).fired
    run = import_artefacts(scenario, seed, found, fired, version)
    run.artefacts["cassette.jsonl"] = recorder.dump(claude_code=version, scenario=scenario.name, seed=seed)
    if live_url:
        run.notes[0] = f"run by Claude Code {version} against the live model at {live_url}, on the host's network"
    if isinstance(model, cassette.Replay):
        run.violations.extend(model.mismatches)
        run.notes.insert(1, f"the model's replies replayed from {model.origin}")
    return run


def import_artefacts(scenario: Scenario, seed: int, found: Artefacts, fired: list[dict[str, Any]],
                     version: str) -> Run:
    notes: list[tuple[float, str, str]] = []
    violations: list[str] = []
    by_time = {e.agent: e.at for e in found.exchanges}
    for fault in fired:
        if fault["kind"] in ("early-aggregate", "skip-complete"):
            notes.append((found.started, "misbehaviour", f"{fault['kind']} announced by the scripted coordinator"))
            continue
        what = (f"api-error {fault['status']}" if fault["kind"] == "api-error" else f"api-stall {fault['seconds']}s")
        notes.append((by_time.get(fault["agent"], found.started), "model-fault",
                      f"{what} on request {fault['request']} of {fault['role']} (agent {fault['agent'] or 'main'})"))
    for spec in scenario.faults:
        if spec.kind in ("api-error", "api-stall"):
            target = f"region:{spec.region}" if spec.region else spec.agent or "coordinator"
            if not any(f["kind"] == spec.kind and f["role"] == target for f in fired):
                violations.append(f"planned fault never fired: {spec.describe()} (that agent made no request)")
    violations += misbehaviour_checks(scenario, found, fired)
    violations += [f"the model's script raised {failure}; the server answered that request with HTTP 500"
                   for failure in found.model_failures]
    if found.timed_out:
        violations.append(f"the claude CLI did not finish within its budget and was killed (stderr: "
                          f"{found.stderr.strip()[-300:] or 'empty'})")
    elif found.returncode not in (0, None):
        notes.append((found.ended, "claude-exit", f"the claude CLI exited {found.returncode}: "
                      f"{found.stderr.strip()[-300:]}"))
    if found.killed:
        notes.append((found.ended, "sweep", f"killed {len(found.killed)} process(es) of the run left after the CLI "
                      f"ended: {', '.join(map(str, found.killed))}"))
    run = history.import_run(scenario, found.hooks, history.Imported(
        report=coordinator_report(found), announced=found.faults, notes=notes, violations=violations, seed=seed,
        started=found.started, ended=found.ended))
    run.notes[:0] = [f"run by Claude Code {version} against the scripted model on loopback",
                     *retried_model_faults(found, fired)]
    run.artefacts = artefact_files(found)
    return run


def retried_model_faults(found: Artefacts, fired: list[dict[str, Any]]) -> list[str]:
    """One line per model fault: what the agent got and whether the CLI sent the request again."""
    lines = []
    for fault in fired:
        if fault["kind"] == "early-aggregate":
            lines.append("misbehaviour: the coordinator started aggregate-results with its regions (early-aggregate)")
            continue
        if fault["kind"] == "skip-complete":
            lines.append(f"misbehaviour: the coordinator never marked region {fault['region']} completed "
                         f"(skip-complete)")
            continue
        asked = [e for e in found.exchanges if e.agent == fault["agent"]]
        what = f"api-error {fault['status']}" if fault["kind"] == "api-error" else f"api-stall {fault['seconds']}s"
        then = (f"the CLI sent it again ({len(asked)} requests of that agent in all)"
                if fault["kind"] == "api-error" and len(asked) > fault["request"] else "no request followed")
        if fault["kind"] == "api-stall":
            then = "answered after the stall"
        lines.append(f"model fault: {what} on request {fault['request']} of {fault['role']}; {then}")
    return lines


def coordinator_report(found: Artefacts) -> str:
    """The coordinator fork's final answer (its Skill result), else the CLI's own final answer."""
    for line in reversed(found.hooks):
        hook = line.get("hook") or {}
        given, response = hook.get("tool_input") or {}, hook.get("tool_response")
        if hook.get("tool_name") == "Skill" and given.get("skill") == COORDINATOR_SKILL and isinstance(response, dict):
            return str(response.get("result", ""))
    return found.result


def misbehaviour_checks(scenario: Scenario, found: Artefacts, fired: list[dict[str, Any]]) -> list[str]:
    """``early-aggregate`` and ``skip-complete`` fired when the script announced acting on them and Claude Code
    took the TaskUpdate that carries them (the early start; the regions' completions without the skipped one)."""
    problems = []
    updates = [(line.get("hook") or {}).get("tool_input") or {} for line in found.hooks
               if (line.get("hook") or {}).get("tool_name") == "TaskUpdate"]
    statuses = [u.get("status") for u in updates if u.get("status")]
    for spec in scenario.faults:
        if spec.kind not in ("early-aggregate", "skip-complete"):
            continue
        announced = any(f["kind"] == spec.kind for f in fired)
        took = "in_progress" in statuses if spec.kind == "early-aggregate" else "completed" in statuses
        if not (announced and took):
            why = ("the scripted coordinator never reached it" if not announced
                   else "Claude Code took no TaskUpdate that carries it")
            problems.append(f"planned fault never fired: {spec.describe()} ({why})")
    return problems


def artefact_files(found: Artefacts) -> dict[str, str]:
    files = {f"claude-home/{name}": text for name, text in found.files.items()}
    files["hooks.jsonl"] = "".join(json.dumps(line) + "\n" for line in found.hooks)
    files["stream.jsonl"] = "".join(json.dumps(line) + "\n" for line in found.stream)
    files["model-exchanges.jsonl"] = "".join(json.dumps({
        "at": e.at, "path": e.path, "agent": e.agent, "request_messages": len(e.request.get("messages", [])),
        "reply": e.reply}) + "\n" for e in found.exchanges)
    files["processor-faults.jsonl"] = "".join(json.dumps(line) + "\n" for line in found.faults)
    files["claude-stderr.txt"] = found.stderr
    return files

