"""Cassettes: the model's replies of one Claude Code run, saved so the run replays with no model and no network.

:class:`CassetteRecorder` wraps any responder of our model server (the scripted coordinator, a user's
script, the live proxy) and keeps each reply under the request's key; :class:`Replay` is a responder
that answers from a cassette. A key is what stays the same when the same run is made again: which
conversation asks (its first user message, run dirs replaced by placeholders), its turn (the number of
assistant messages so far), and which of our tool calls it answers, with their error flags. Agent ids,
times and paths differ between runs and are left out. A request the cassette does not hold is answered
at once with an API error that names the request, and listed in :attr:`Replay.mismatches`: never a hang.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_distproc.claude_code.server import Reply, Responder
from pytest_distproc.errors import DistprocError

FORMAT = "distproc-cassette/1"
RUN_DIR, PYTHON = "${DISTPROC_RUN_DIR}", "${DISTPROC_PYTHON}"
SKILL_DIR = re.compile(r"Base directory for this skill: (\S+)")
MISMATCH_STATUS = 400
"""Not retried by the CLI: the agent that asked ends at once with the mismatch as its error."""


class CassetteError(DistprocError):
    """A cassette that cannot be read (said with its file and line)."""


@dataclass(frozen=True)
class Placeholders:
    """The paths of one run that a cassette stores as placeholders, so another run's paths fit in."""

    run_dir: str
    python: str = sys.executable

    def hide(self, text: str) -> str:
        return text.replace(self.run_dir, RUN_DIR).replace(self.python, PYTHON)

    def show(self, text: str) -> str:
        return text.replace(RUN_DIR, self.run_dir).replace(PYTHON, self.python)


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [str(block.get("text", "")) for block in content or () if isinstance(block, dict)
            and block.get("type") == "text"]


def request_key(request: Mapping[str, Any], places: Placeholders) -> dict[str, Any]:
    """What identifies a request across runs of the same scenario (see the module docstring)."""
    messages = [m for m in request.get("messages", []) if isinstance(m, dict)]
    first = next((m for m in messages if m.get("role") == "user"), {})
    opening = "\n".join(t for t in _texts(first.get("content")) if not t.lstrip().startswith("<system-reminder>"))
    opening = places.hide(opening).strip()
    answered: list[list[Any]] = []
    for message in reversed(messages):  # the results since the last turn (reminders may follow them)
        if message.get("role") == "assistant":
            break
        content = message.get("content")
        answered += [[str(b.get("tool_use_id")), bool(b.get("is_error"))] for b in content or ()
                     if isinstance(content, list) and isinstance(b, dict) and b.get("type") == "tool_result"]
    answered.sort()  # parallel calls end in any order
    return {"conversation": hashlib.sha256(opening.encode()).hexdigest()[:16], "opening": opening[:160],
            "turn": sum(1 for m in messages if m.get("role") == "assistant"), "answers": answered}


def _same(key: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    return all(key[k] == other[k] for k in ("conversation", "turn", "answers"))


def describe(key: Mapping[str, Any]) -> str:
    skill = SKILL_DIR.search(key["opening"])
    who = f"the fork of skill {skill.group(1).rsplit('/', 1)[-1]}" if skill else "the main session"
    answers = ", ".join(f"{i}{' (error)' if e else ''}" for i, e in key["answers"]) or "no tool results"
    return f"{who} (opening {key['opening'][:100]!r}), turn {key['turn']}, answering {answers}"


def reply_to_json(reply: Reply, places: Placeholders) -> dict[str, Any]:
    content = json.loads(places.hide(json.dumps(list(reply.content))))
    return {"content": content, "status": reply.status, "error": reply.error, "stall": reply.stall}


def reply_from_json(body: Mapping[str, Any], places: Placeholders) -> Reply:
    content = json.loads(places.show(json.dumps(body.get("content", []))))
    return Reply(content=tuple(content), status=int(body.get("status", 200)), error=str(body.get("error", "")),
                 stall=float(body.get("stall", 0.0)))


@dataclass
class CassetteRecorder:
    """A responder that asks ``inner`` and keeps every reply, in order, under its request's key."""

    inner: Responder
    places: Placeholders
    entries: list[dict[str, Any]] = field(default_factory=list)

    def respond(self, request: Mapping[str, Any], headers: Mapping[str, str]) -> Reply:
        reply = self.inner.respond(request, headers)
        self.entries.append({"key": request_key(request, self.places), "reply": reply_to_json(reply, self.places)})
        return reply

    def dump(self, **meta: Any) -> str:
        """The cassette as JSON Lines: a header line, then one line per reply."""
        lines = [{"format": FORMAT, **meta}, *self.entries]
        return "".join(json.dumps(line) + "\n" for line in lines)


class Replay:
    """A responder answering from a cassette, each reply once in its recorded order (a CLI retry of a request
    whose replies are used up gets the last one again)."""

    def __init__(self, entries: list[dict[str, Any]], places: Placeholders, origin: str = "the cassette") -> None:
        self.entries = entries
        self.places = places
        self.origin = origin
        self.used: set[int] = set()
        self.mismatches: list[str] = []

    @classmethod
    def load(cls, path: Path, places: Placeholders) -> Replay:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CassetteError(f"cassette {path}: cannot read it: {exc}") from None
        entries = []
        for number, raw in enumerate(lines, 1):
            try:
                value = json.loads(raw)
            except ValueError:
                raise CassetteError(f"cassette {path}:{number}: not JSON (a truncated or edited cassette); record "
                                    f"it again") from None
            if number == 1:
                if not isinstance(value, dict) or value.get("format") != FORMAT:
                    raise CassetteError(f"cassette {path}:1: expected a header {{\"format\": \"{FORMAT}\"}}, got "
                                        f"{raw[:80]!r}; is this a cassette saved by pytest-distproc?")
                continue
            if not isinstance(value, dict) or not isinstance(value.get("key"), dict) or "reply" not in value:
                raise CassetteError(f"cassette {path}:{number}: expected {{\"key\": ..., \"reply\": ...}}")
            entries.append(value)
        return cls(entries, places, f"cassette {path}")

    def respond(self, request: Mapping[str, Any], headers: Mapping[str, str]) -> Reply:
        key = request_key(request, self.places)
        matching = [i for i, entry in enumerate(self.entries) if _same(entry["key"], key)]
        fresh = [i for i in matching if i not in self.used]
        if fresh:
            self.used.add(fresh[0])
            return reply_from_json(self.entries[fresh[0]]["reply"], self.places)
        if matching:
            return reply_from_json(self.entries[matching[-1]]["reply"], self.places)
        message = (f"replay mismatch: {self.origin} holds no reply for the request of {describe(key)}; the run "
                   f"went another way than the recorded one (a changed skill, scenario or CLI version): record "
                   f"the cassette again")
        if message not in self.mismatches:  # the CLI may ask again before it gives up
            self.mismatches.append(message)
        return Reply(status=MISMATCH_STATUS, error=message)
