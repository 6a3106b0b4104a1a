"""Live runs (``--distproc-claude-live``): the real model answers, through our model server, so the run's
replies are recorded into a cassette like any other run's and can be replayed in CI.

:class:`LiveModel` is a responder that forwards each request the CLI makes to the Messages API at the
user's base URL with the user's key (the CLI itself keeps the dummy key: the real one never enters the
run's environment), asks for the whole message (``stream: false``; our server streams it back to the
CLI), and turns the answer into a :class:`Reply`. It needs the network, so a live run cannot happen in
the loopback-only namespace the scripted runs use: the CLI then runs on the host's network.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_distproc.claude_code.server import Reply
from pytest_distproc.errors import DistprocError

DEFAULT_URL = "https://api.anthropic.com"
KEY_ENV = "ANTHROPIC_API_KEY"
DROPPED_HEADERS = ("host", "content-length", "connection", "accept-encoding", "x-api-key", "authorization")
"""Every other header of the CLI's request goes on as it came (``anthropic-*``, ``x-claude-code-*``, ...)."""
KEPT_BLOCKS = ("text", "tool_use")
"""What our server can stream back; thinking is switched off in the forwarded request, so nothing else comes."""
TIMEOUT = 600.0


class LiveUnavailable(DistprocError):
    """A live run cannot start: no key (the reason a live item is skipped)."""


def live_url(given: str | None) -> str:
    """``--distproc-claude-live-url``, else ``$ANTHROPIC_BASE_URL``, else the public API."""
    return (given or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_URL).rstrip("/")


def live_key() -> str:
    key = os.environ.get(KEY_ENV, "")
    if not key:
        raise LiveUnavailable(f"--distproc-claude-live needs your API key in ${KEY_ENV} (and network to the API)")
    return key


@dataclass
class LiveModel:
    """The real model behind our server: one Messages API call per request the CLI makes."""

    url: str
    key: str
    timeout: float = TIMEOUT

    def respond(self, request: Mapping[str, Any], headers: Mapping[str, str]) -> Reply:
        body = {key: value for key, value in request.items() if key not in ("stream", "thinking")}
        sent = {**{h: v for h, v in headers.items() if h.lower() not in DROPPED_HEADERS},
                "content-type": "application/json", "x-api-key": self.key}
        sent.setdefault("anthropic-version", "2023-06-01")
        call = urllib.request.Request(f"{self.url}/v1/messages", data=json.dumps(body).encode(), headers=sent,
                                      method="POST")
        try:
            with urllib.request.urlopen(call, timeout=self.timeout) as answer:
                message = json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return Reply(status=exc.code, error=f"the model API at {self.url} answered {exc.code}: "
                         f"{exc.read()[:300].decode(errors='replace')}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return Reply(status=529, error=f"the model API at {self.url} could not be reached: {exc}")
        content = tuple(block for block in message.get("content", []) if isinstance(block, dict)
                        and block.get("type") in KEPT_BLOCKS)
        return Reply(content=content)
