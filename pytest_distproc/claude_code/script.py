"""The scripted model: the ideal coordinator the distributed-processor skill describes, derived from the scenario.

Each agent of the run (the main session, the forked coordinator, one fork per region attempt) gets a
generator that yields one :class:`Reply` per turn and receives the next request (with the tool results
of its previous turn). Agents are told apart by the ``x-claude-code-agent-id`` header and, for a fork, by
its first message (the skill's body: ``Base directory for this skill: <dir>``, then ``region=<ID>``). A
request that repeats a turn already answered (the CLI retrying after an API error) gets the same reply
again. Model-side faults (``api-error``, ``api-stall``) act here, before the agent's script is asked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_distproc.attempt import stats as summary
from pytest_distproc.claude_code.server import Reply

COORDINATOR_SKILL = "distributed-processor"
REGION_SKILL = "region-processor"
TASK_TOOLS = "select:TaskCreate,TaskUpdate,TaskList,TaskGet"
SKILL_DIR = re.compile(r"Base directory for this skill: (\S+)")
REGION_ARG = re.compile(r"region=([A-Za-z0-9_.-]*[A-Za-z0-9_-])")
RESULT = re.compile(r"RESULT (\{.*?\})(?:\s|$)", re.S)
CREATED = re.compile(r"Task #(\S+) created successfully: (\S+)")

Agent = Generator[Reply, dict[str, Any], None]


@dataclass(frozen=True)
class Stage:
    """A task after the regions, as the script sees it."""

    id: str
    blocked_by: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """What the ideal coordinator knows of the scenario, in plain data."""

    regions: tuple[str, ...]
    stages: tuple[Stage, ...]
    retries: int
    timeout_ms: int
    commands: Mapping[str, str]
    """Region id -> the processor command its fork runs through Bash."""
    early_aggregate: bool = False
    skip_complete: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelFault:
    """``api-error`` (``status`` for ``count`` requests) or ``api-stall`` (``seconds``) on the agent named by
    ``agent`` (``main``, ``coordinator``) or on the fork of ``region``."""

    kind: str
    agent: str = ""
    region: str = ""
    status: int = 529
    count: int = 1
    seconds: float = 0.0

    def matches(self, role: str) -> bool:
        return role == (f"region:{self.region}" if self.region else self.agent or "coordinator")


def task_of(region: str) -> str:
    return f"process-region-{region.lower()}"


def tool(name: str, payload: Mapping[str, Any], number: int) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_distproc_{number:04d}", "name": name, "input": dict(payload)}


def text(body: str) -> Reply:
    return Reply(content=({"type": "text", "text": body},))


def tool_results(request: Mapping[str, Any]) -> dict[str, tuple[str, bool]]:
    """``tool_use_id -> (text, is_error)`` of the request's last user message."""
    found: dict[str, tuple[str, bool]] = {}
    for message in reversed(request.get("messages", [])):
        if message.get("role") != "user" or isinstance(message.get("content"), str):
            continue
        for block in message["content"]:
            if block.get("type") == "tool_result":
                content = block.get("content")
                body = content if isinstance(content, str) else "\n".join(
                    part.get("text", "") for part in content or [] if isinstance(part, dict))
                found[block["tool_use_id"]] = (body, bool(block.get("is_error")))
        if found:
            return found
    return found


def first_user_text(request: Mapping[str, Any]) -> str:
    """All text of the request's user messages (a fork's first one holds the skill's body)."""
    parts: list[str] = []
    for message in request.get("messages", []):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(block.get("text", "") for block in content or [] if block.get("type") == "text")
    return "\n".join(parts)


class ScriptedModel:
    """The responder of the model server for a scripted run."""

    def __init__(self, plan: Plan, faults: Sequence[ModelFault] = ()) -> None:
        self.plan = plan
        self.faults = list(faults)
        self.fired: list[dict[str, Any]] = []
        self.roles: dict[str, str] = {}
        self._agents: dict[str, Agent] = {}
        self._answers: dict[str, list[Reply]] = {}
        self._requests: dict[str, int] = {}
        self._tools = 0

    def respond(self, request: Mapping[str, Any], headers: Mapping[str, str]) -> Reply:
        if not request.get("tools") and not request.get("messages"):
            return text("ok")
        agent = headers.get("x-claude-code-agent-id", "") or "main"
        role = self.roles.get(agent) or self._role(agent, request)
        self.roles[agent] = role
        seen = self._requests[agent] = self._requests.get(agent, 0) + 1
        for fault in self.faults:
            if fault.matches(role) and seen <= (fault.count if fault.kind == "api-error" else 1):
                self.fired.append({"kind": fault.kind, "role": role, "agent": agent, "request": seen,
                                   "status": fault.status if fault.kind == "api-error" else None,
                                   "seconds": fault.seconds if fault.kind == "api-stall" else None})
                if fault.kind == "api-error":
                    return Reply(status=fault.status, error=f"scripted {fault.status} for {role}")
                stalled = self._turn(agent, role, request)
                return Reply(content=stalled.content, stall=fault.seconds)
        return self._turn(agent, role, request)

    def _turn(self, agent: str, role: str, request: Mapping[str, Any]) -> Reply:
        turn = sum(1 for m in request.get("messages", []) if m.get("role") == "assistant")
        answers = self._answers.setdefault(agent, [])
        if turn < len(answers):  # the CLI repeats a request it already sent (a retry after an API error)
            return answers[turn]
        generator = self._agents.get(agent)
        try:
            if generator is None:
                generator = self._agents[agent] = self._script(role)
                reply = next(generator)
            else:
                reply = generator.send(dict(request))
        except StopIteration:
            reply = text("done")
        answers.append(reply)
        return reply

    def _role(self, agent: str, request: Mapping[str, Any]) -> str:
        if agent == "main":
            return "main"
        body = first_user_text(request)
        found = SKILL_DIR.search(body)
        skill = found.group(1).rstrip("/").rsplit("/", 1)[-1] if found else ""
        if skill == COORDINATOR_SKILL:
            return "coordinator"
        region = REGION_ARG.search(body)
        if skill == REGION_SKILL and region:
            return f"region:{region.group(1)}"
        return f"other:{skill}"

    def _number(self) -> int:
        self._tools += 1
        return self._tools

    def _message(self, *calls: tuple[str, Mapping[str, Any]]) -> Reply:
        return Reply(content=tuple(tool(name, payload, self._number()) for name, payload in calls))

    def _script(self, role: str) -> Agent:
        if role == "main":
            return self._main()
        if role == "coordinator":
            return self._coordinator()
        if role.startswith("region:"):
            return self._region(role.split(":", 1)[1])
        return self._other()

    def _other(self) -> Agent:
        yield text("Nothing to do here.")

    def _main(self) -> Agent:
        request = yield self._message(("Skill", {"skill": COORDINATOR_SKILL, "args": ""}))
        body = next(iter(tool_results(request).values()), ("", False))[0]
        start = body.find("Distributed Processing:")
        yield text(body[start:] if start >= 0 else body)

    def _region(self, region: str) -> Agent:
        request = yield self._message(("Bash", {
            "command": self.plan.commands[region], "timeout": self.plan.timeout_ms,
            "description": f"Process region {region}"}))
        body, failed = next(iter(tool_results(request).values()), ("no result", True))
        found = RESULT.search(body)
        if found and not failed:
            yield text(f"RESULT {found.group(1)}")
        else:
            yield text("FAILED " + " ".join(body.split())[:400])

    def _coordinator(self) -> Agent:
        plan = self.plan
        yield self._message(("ToolSearch", {"query": TASK_TOOLS, "max_results": 4}))
        subjects = [task_of(r) for r in plan.regions] + [s.id for s in plan.stages]
        request = yield self._message(*(("TaskCreate", {"subject": s, "description": f"Task {s}",
                                                        "activeForm": f"Running {s}"}) for s in subjects))
        ids = {subject: number for body, _ in tool_results(request).values()
               for number, subject in CREATED.findall(body)}
        ids = {s: ids.get(s, str(index)) for index, s in enumerate(subjects, start=1)}
        # one turn for the graph and the regions' starts: different tasks, so their order within it is free
        blocks = [("TaskUpdate", {"taskId": ids[s.id], "addBlockedBy": [ids[b] for b in s.blocked_by]})
                  for s in plan.stages if s.blocked_by]
        starts = blocks + [("TaskUpdate", {"taskId": ids[task_of(r)], "status": "in_progress"}) for r in plan.regions]
        if plan.early_aggregate:
            starts += [("TaskUpdate", {"taskId": ids[s.id], "status": "in_progress"}) for s in plan.stages]
            self.fired.append({"kind": "early-aggregate", "role": "coordinator", "agent": "", "request": 0,
                               "tasks": [s.id for s in plan.stages]})
        yield self._message(*starts)
        results: dict[str, dict[str, Any]] = {}
        failures: dict[str, str] = {}
        attempts = dict.fromkeys(plan.regions, 0)
        pending = list(plan.regions)
        while pending:
            calls = [("Skill", {"skill": REGION_SKILL, "args": f"region={r}"}) for r in pending]
            reply = self._message(*calls)
            ids_by_call = {block["id"]: r for block, r in zip(reply.content, pending, strict=True)}
            request = yield reply
            for call, (body, _) in tool_results(request).items():
                region = ids_by_call.get(call)
                if region is None:
                    continue
                attempts[region] += 1
                found = RESULT.search(body)
                try:
                    parsed = json.loads(found.group(1)) if found else None
                except ValueError:
                    parsed = None
                if isinstance(parsed, dict) and _valid(parsed):
                    results[region] = parsed
                    failures.pop(region, None)
                else:
                    failures[region] = " ".join(body.split())[:200]
            pending = [r for r in plan.regions if r in failures and attempts[r] <= plan.retries]
        done = [r for r in plan.regions if r in results and r not in plan.skip_complete]
        self.fired += [{"kind": "skip-complete", "role": "coordinator", "agent": "", "request": 0, "region": r}
                       for r in plan.skip_complete if r in results]
        if done:
            yield self._message(*(("TaskUpdate", {"taskId": ids[task_of(r)], "status": "completed"}) for r in done))
        complete = len(done) == len(plan.regions)
        if complete or plan.early_aggregate:
            for stage in plan.stages:
                if not plan.early_aggregate:
                    yield self._message(("TaskUpdate", {"taskId": ids[stage.id], "status": "in_progress"}))
                yield self._message(("TaskUpdate", {"taskId": ids[stage.id], "status": "completed"}))
        yield text(report(plan, results, done, complete or plan.early_aggregate))


def _valid(result: Mapping[str, Any]) -> bool:
    return all(isinstance(result.get(k), (int, float)) for k in ("count", "sum", "min", "max", "mean"))


def report(plan: Plan, results: Mapping[str, Mapping[str, Any]], done: Sequence[str], aggregated: bool) -> str:
    """The skill's report, as the ideal coordinator prints it from what its forks answered."""
    lines = ["Distributed Processing: COORDINATING"]
    number = 0
    for region in plan.regions:
        number += 1
        lines.append(f"[t{number}] {task_of(region)}: IN_PROGRESS" + (" -> COMPLETE" if region in done else ""))
    for stage in plan.stages:
        number += 1
        lines.append(f"[t{number}] {stage.id}: BLOCKED" + (" -> IN_PROGRESS -> COMPLETE" if aggregated else ""))
    lines.append("")
    if not aggregated:
        lines += ["=== NO AGGREGATED RESULTS ===", "Distributed Processing: FAILED"]
        return "\n".join(lines) + "\n"
    lines.append("=== AGGREGATED RESULTS ===")
    for region in plan.regions:
        if region in results:
            lines.append(summary.line(f"Region {region}", results[region]))
    lines += ["", summary.line("Total", summary.merge(results[r] for r in plan.regions if r in results))]
    return "\n".join(lines) + "\n"

