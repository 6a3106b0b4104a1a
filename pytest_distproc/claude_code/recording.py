"""A Claude Code run recorded anywhere (``source: {claude_code: PATH}``) read back as the stamped hook lines
:mod:`history` maps, so a recorded run gets the one TaskList mapping a run of ours gets.

PATH is the recorder's hook log, a session transcript (``<session>.jsonl``, its ``<session>/subagents/``
beside it), or a folder holding them (a copy of ``~/.claude``, a report dir's raw artefacts). The hook log
wins when there is one: hooks carry the tools' structured results and are appended in the run's one total
order. From transcripts alone the same events are rebuilt from what 2.1.328 keeps: each tool call's input,
its result's ``toolUseResult`` where the file has one (the main session) or its result text (forks keep
only ``Updated task #1 status``), the lines' ISO timestamps (the order), and each subagent file's first and
last line (the fork's life). Every rebuilt event says which evidence it came from, and the history shows it.
Whatever cannot be read is a :class:`RecordingError` naming the file and the line, never a traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from pytest_distproc.claude_code import history
from pytest_distproc.errors import DistprocError
from pytest_distproc.run.model import Run
from pytest_distproc.scenario.model import RegionSpec, Scenario, region_task

TASK_TOOLS = ("TaskCreate", "TaskUpdate")
COORDINATOR_SKILL = "distributed-processor"
REGION_TASK = re.compile(r"process-region-(\S+)$")
CREATED = re.compile(r"Task #(\S+) created successfully: (.+)")
UPDATED = re.compile(r"Updated task #(\S+)")
SNIFF_LINES = 30
RECORDED_SKILL = "recorded"
"""The skill of a scenario whose regions come from a recording: whatever the recorded forks ran."""


class RecordingError(DistprocError):
    """A recorded Claude Code run that cannot be mapped onto a TaskList history (said with file and line)."""

    def __init__(self, file: Path | str, line: int | None, message: str) -> None:
        where = f"{file}:{line}" if line else str(file)
        super().__init__(f"recording {where}: {message}")


@dataclass
class Recording:
    """A recorded run as the stamped hook lines :func:`history.import_run` reads, plus where they came from."""

    hooks: list[dict[str, Any]]
    origin: str
    files: dict[str, str] = field(default_factory=dict)
    """The files read, by name (the run's artefacts in reports)."""

    @property
    def report(self) -> str:
        """The coordinator fork's final answer: the last result of a ``distributed-processor`` Skill call."""
        for line in reversed(self.hooks):
            hook = line["hook"]
            given, response = hook.get("tool_input") or {}, hook.get("tool_response")
            if (hook.get("tool_name") == "Skill" and isinstance(given, dict) and given.get("skill") == COORDINATOR_SKILL
                    and isinstance(response, dict)):
                return str(response.get("result", ""))
        return ""


def import_recording(scenario: Scenario, path: Path, seed: int) -> Run:
    """The :class:`Run` of the recorded run at ``path``, checked like a run of ours."""
    recording = read(path)
    derived = not scenario.regions
    if derived:  # the data is not in the recording: no oracle over it, the forks' own counts are the input
        scenario = replace(scenario, regions=regions_of(recording), skill=RECORDED_SKILL)
    stamps = [float(line["t"]) for line in recording.hooks]
    run = history.import_run(scenario, recording.hooks, history.Imported(
        report=recording.report, seed=seed, started=min(stamps), ended=max(stamps)))
    run.notes.insert(0, f"imported from {recording.origin}; each entry says in [brackets] which evidence it "
                        f"came from")
    if derived:
        run.expected_counts = {r.id: int(run.regions.get(r.id, {}).get("count", 0)) for r in scenario.regions}
        run.notes.insert(1, "the regions are the recording's process-region-* tasks; their data is not in the "
                            "recording, so the total is checked against the forks' own results, not the data")
    run.artefacts = dict(recording.files)
    return run


def regions_of(recording: Recording) -> tuple[RegionSpec, ...]:
    """The regions of a recording: its ``process-region-*`` tasks, spelled as its Skill calls spell them."""
    spelled = {}
    for line in recording.hooks:
        hook = line["hook"]
        given = hook.get("tool_input")
        if hook.get("tool_name") == "Skill" and isinstance(given, dict):
            found = history.REGION_ARG.search(str(given.get("args", "")))
            if found:
                spelled[region_task(found.group(1))] = found.group(1)
    regions: dict[str, RegionSpec] = {}
    for line in recording.hooks:
        hook = line["hook"]
        task = (hook.get("tool_response") or {}).get("task") if hook.get("tool_name") == "TaskCreate" else None
        found = REGION_TASK.match(str(task.get("subject", ""))) if isinstance(task, dict) else None
        if found:
            subject = found.group(0)
            regions.setdefault(subject, RegionSpec(spelled.get(subject, found.group(1).upper())))
    if not regions:
        raise RecordingError(recording.origin, None, "it creates no process-region-* task, so it names no region; "
                             "write the scenario's regions: yourself, or record a run of the skill")
    return tuple(regions.values())


def read(path: Path) -> Recording:
    """The hook log or transcript at ``path`` (a folder: the hook log in it, else its one session)."""
    if not path.exists():
        raise RecordingError(path, None, "no such file or folder; record a run first (docs: "
                             "regression-test-your-skill.md) or fix source.claude_code")
    if path.is_dir():
        path = _pick(path)
    kind = _sniff(path)
    if kind == "hooks":
        recording = read_hook_log(path)
    elif kind == "transcript":
        recording = read_transcript(path)
    else:
        raise RecordingError(path, 1, "neither a hook log of our recorder (lines {\"t\": ..., \"hook\": {...}}) "
                             "nor a Claude Code session transcript (lines with type and sessionId)")
    if not any(line["hook"].get("tool_name") in TASK_TOOLS for line in recording.hooks):
        raise RecordingError(path, None, f"no TaskCreate or TaskUpdate in its {len(recording.hooks)} events: the "
                             "task tools were off (set CLAUDE_CODE_ENABLE_TODO_TOOLS=1 when you record) or it "
                             "is not a run of a skill that keeps a TaskList")
    return recording


def _pick(folder: Path) -> Path:
    logs: list[Path] = []
    sessions: list[Path] = []
    for path in sorted(folder.rglob("*.jsonl")):
        if "subagents" in path.parts[len(folder.parts):]:
            continue
        kind = _sniff(path)
        (logs if kind == "hooks" else sessions if kind == "transcript" else []).append(path)
    for found, what in ((logs, "hook logs"), (sessions, "session transcripts")):
        if len(found) == 1:
            return found[0]
        if found:
            names = ", ".join(str(p.relative_to(folder)) for p in found[:6])
            raise RecordingError(folder, None, f"holds {len(found)} {what} ({names}{', ...' if len(found) > 6 else ''}"
                                 f"); name the one to import")
    raise RecordingError(folder, None, "holds no hook log and no session transcript (projects/<cwd>/<session>.jsonl)")


def _sniff(path: Path) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for _, raw in zip(range(SNIFF_LINES), handle, strict=False):
                try:
                    value = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(value, dict) and isinstance(value.get("hook"), dict) and "t" in value:
                    return "hooks"
                if isinstance(value, dict) and "sessionId" in value and "type" in value:
                    return "transcript"
    except OSError as exc:
        raise RecordingError(path, None, f"cannot read it: {exc.strerror}") from None
    return ""


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of a JSON Lines file; a broken or truncated line is an error naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(path, None, f"cannot read it as UTF-8 text: {exc}") from None
    lines = text.split("\n")
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            last = number == len(lines) or (number == len(lines) - 1 and not lines[-1])
            why = ("the file ends in the middle of a line (truncated: the run was still writing, or the copy is "
                   "partial); record again or cut the broken line" if last and not text.endswith("\n")
                   else f"not JSON ({exc.msg} at column {exc.colno}); the file is damaged")
            raise RecordingError(path, number, why) from None
        if not isinstance(value, dict):
            raise RecordingError(path, number, f"expected a JSON object per line, got {type(value).__name__}")
        yield number, value


def read_hook_log(path: Path) -> Recording:
    """The recorder's log: one ``{"t": seconds, "hook": {...}}`` line per hook event, in append order."""
    hooks = []
    for number, value in _json_lines(path):
        hook, stamp = value.get("hook"), value.get("t")
        if not isinstance(hook, dict) or isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
            raise RecordingError(path, number, "expected {\"t\": seconds, \"hook\": {...}} as our recorder writes "
                                 f"it, got keys {sorted(value)[:6]}")
        if hook.get("tool_name") in (*TASK_TOOLS, "Skill") and hook.get("hook_event_name") == "PostToolUse":
            _check_shape(path, number, hook.get("tool_name"), hook.get("tool_input"), hook.get("tool_response"))
        hooks.append({"t": float(stamp), "hook": {**hook, "evidence": f"hook {hook.get('hook_event_name')}, "
                                                                      f"{path.name}:{number}"}})
    return Recording(hooks, f"hook log {path}", {f"recording/{path.name}": path.read_text(errors="replace")})


def _check_shape(path: Path, number: int, tool: Any, given: Any, response: Any) -> None:
    if not isinstance(given, dict):
        raise RecordingError(path, number, f"{tool} with input {json.dumps(given)[:80]}: expected an object")
    if tool == "TaskCreate":
        task = response.get("task") if isinstance(response, dict) else None
        if not isinstance(task, dict) or "id" not in task or "subject" not in task:
            raise RecordingError(path, number, f"a TaskCreate result of unknown shape {json.dumps(response)[:120]} "
                                 "(expected {\"task\": {\"id\", \"subject\"}}, as Claude Code 2.1.328 answers)")


def _stamp(path: Path, number: int, value: Any) -> float:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise RecordingError(path, number, f"timestamp {value!r} is not an ISO time") from None


def read_transcript(path: Path) -> Recording:
    """A session transcript and its subagents' files, rebuilt into hook-shaped events ordered by timestamp."""
    files = [path, *sorted((path.parent / path.stem / "subagents").glob("agent-*.jsonl"))]
    events: list[tuple[float, int, dict[str, Any]]] = []
    calls: dict[str, tuple[str, Any]] = {}
    texts: dict[str, str] = {}
    for file in files:
        agent = file.stem.removeprefix("agent-") if file != path else ""
        name = file.name if file == path else f"subagents/{file.name}"
        texts[f"recording/{path.stem}/{name}" if agent else f"recording/{name}"] = file.read_text(errors="replace")
        stamps = []
        for number, line in _json_lines(file):
            if "timestamp" not in line or line.get("type") not in ("user", "assistant"):
                continue
            stamp = _stamp(file, number, line["timestamp"])
            stamps.append(stamp)
            content = (line.get("message") or {}).get("content")
            for block in content if isinstance(content, list) else ():
                if not isinstance(block, dict):
                    continue
                if block.get("type") == "tool_use":
                    calls[str(block.get("id"))] = (str(block.get("name")), block.get("input"))
                elif block.get("type") == "tool_result" and str(block.get("tool_use_id")) in calls:
                    tool, given = calls[str(block["tool_use_id"])]
                    hook = _result_event(file, number, name, tool, given, block, line.get("toolUseResult"))
                    if hook is not None:
                        events.append((stamp, len(events), {**hook, "agent_id": agent}))
        if agent and stamps:
            for stamp, event in ((min(stamps), "SubagentStart"), (max(stamps), "SubagentStop")):
                events.append((stamp, len(events), {"hook_event_name": event, "agent_id": agent,
                                                    "evidence": f"first/last line of {name}"}))
    events.sort(key=lambda entry: (entry[0], entry[1]))
    return Recording([{"t": stamp, "hook": hook} for stamp, _, hook in events], f"session transcript {path}", texts)


def _result_event(file: Path, number: int, name: str, tool: str, given: Any, block: Mapping[str, Any],
                  structured: Any) -> dict[str, Any] | None:
    """The PostToolUse (or PostToolUseFailure) a hook would have seen for this tool result, or None if unneeded."""
    if tool not in (*TASK_TOOLS, "Skill"):
        return None
    content = block.get("content")
    body = content if isinstance(content, str) else "\n".join(
        str(part.get("text", "")) for part in content or [] if isinstance(part, dict))
    where = f"{name}:{number}"
    if block.get("is_error"):
        return {"hook_event_name": "PostToolUseFailure", "tool_name": tool, "tool_input": given,
                "error": body, "evidence": f"error result, {where}"}
    if isinstance(structured, dict) and structured:
        response: Any = structured
        evidence = f"toolUseResult, {where}"
    elif tool == "TaskCreate":
        found = CREATED.search(body)
        if not found:
            raise RecordingError(file, number, f"a TaskCreate result of unknown shape {body[:120]!r} (expected "
                                 "'Task #N created successfully: SUBJECT', as Claude Code 2.1.328 writes it)")
        response = {"task": {"id": found.group(1), "subject": found.group(2).strip()}}
        evidence = f"result text, {where}"
    elif tool == "TaskUpdate":
        if not UPDATED.search(body):
            raise RecordingError(file, number, f"a TaskUpdate result of unknown shape {body[:120]!r} (expected "
                                 "'Updated task #N ...', as Claude Code 2.1.328 writes it)")
        response, evidence = None, f"input status and result text, {where}"
    else:
        response, evidence = {"result": body}, f"result text, {where}"
    _check_shape(file, number, tool, given, response)
    return {"hook_event_name": "PostToolUse", "tool_name": tool, "tool_input": given, "tool_response": response,
            "evidence": evidence}
