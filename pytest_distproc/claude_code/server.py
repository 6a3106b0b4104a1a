"""A model server of ours on 127.0.0.1 that speaks the Anthropic Messages API, streamed as server-sent events.

The CLI under test talks to whatever ``ANTHROPIC_BASE_URL`` names; this server plays the model. What the
model says is not its business: a :class:`Responder` turns each request (its JSON body and headers) into a
:class:`Reply`, so a scripted coordinator, a cassette replay or a live proxy plug in the same way. The
server only encodes replies (SSE for ``stream: true``, one JSON body otherwise), logs every request it
answered, and can hold a reply back (``stall``) until it is closed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol


@dataclass(frozen=True)
class Reply:
    """One model turn: content blocks (``{"type": "text", "text": ...}`` or ``{"type": "tool_use", "name": ...,
    "input": {...}}``), or an API error (``status`` >= 400) the CLI sees instead."""

    content: tuple[dict[str, Any], ...] = ()
    status: int = 200
    error: str = ""
    stall: float = 0.0
    """Seconds to hold the reply back before answering (``api-stall``); the server's close ends the wait."""

    @property
    def stop_reason(self) -> str:
        return "tool_use" if any(block.get("type") == "tool_use" for block in self.content) else "end_turn"


class Responder(Protocol):
    """Decides what the model answers. Called from the server's request threads, one request at a time."""

    def respond(self, request: Mapping[str, Any], headers: Mapping[str, str]) -> Reply: ...


@dataclass
class Exchange:
    """One request the server answered, as plain data (for reports and for recording)."""

    at: float
    path: str
    agent: str
    headers: dict[str, str]
    request: dict[str, Any]
    reply: dict[str, Any]


ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


def sse_events(reply: Reply, message_id: str, model: str) -> list[tuple[str, dict[str, Any]]]:
    """The event stream of one successful reply, in the order the Messages API sends it."""
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": {
        "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}})]
    for index, block in enumerate(reply.content):
        if block["type"] == "tool_use":
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block.get("input", {}))}
        else:
            start = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block.get("text", "")}
        events += [("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}),
                   ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}),
                   ("content_block_stop", {"type": "content_block_stop", "index": index})]
    events += [("message_delta", {"type": "message_delta", "delta": {"stop_reason": reply.stop_reason,
                                                                      "stop_sequence": None},
                                  "usage": {"output_tokens": 1}}),
               ("message_stop", {"type": "message_stop"})]
    return events


class ModelServer:
    """The HTTP server, bound to 127.0.0.1 on a free port of the calling thread's network namespace."""

    def __init__(self, responder: Responder, *, model: str = "claude-scripted") -> None:
        self.responder = responder
        self.model = model
        self.exchanges: list[Exchange] = []
        self.failures: list[str] = []
        """Exceptions the responder raised (each answered as a 500)."""
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._count = 0
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._http.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def start(self) -> ModelServer:
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="distproc-model-server", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.closed.set()
        self._http.shutdown()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def answer(self, path: str, request: dict[str, Any], headers: dict[str, str]) -> tuple[Reply, str]:
        """Ask the responder (one request at a time, so a script sees a total order) and log the exchange."""
        with self._lock:
            self._count += 1
            message_id = f"msg_distproc_{self._count:04d}"
            if path.split("?")[0].endswith("/count_tokens"):
                reply = Reply(content=({"type": "text", "text": "1"},))
            else:
                try:
                    reply = self.responder.respond(request, headers)
                except Exception as exc:  # a broken script answers 500 and is reported, never kills the server
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    reply = Reply(status=500, error=f"the scripted model failed: {type(exc).__name__}: {exc}")
            self.exchanges.append(Exchange(
                at=time.time(), path=path, agent=headers.get("x-claude-code-agent-id", ""), headers=headers,
                request=request, reply={"status": reply.status, "error": reply.error, "stall": reply.stall,
                                        "content": list(reply.content)}))
        return reply, message_id

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: pytest captures nothing from a thread's stderr writes worth having."""

            def do_GET(self) -> None:
                self._send_json(200, {"data": [], "has_more": False})

            def do_HEAD(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    request = json.loads(raw or b"{}")
                except ValueError:
                    request = {"unparsed": raw.decode("utf-8", "replace")}
                headers = {key.lower(): value for key, value in self.headers.items()}
                reply, message_id = server.answer(self.path, request, headers)
                if reply.stall:
                    server.closed.wait(reply.stall)
                if reply.status >= 400:
                    kind = ERROR_TYPES.get(reply.status, "api_error")
                    self._send_json(reply.status, {"type": "error", "error": {
                        "type": kind, "message": reply.error or f"scripted {reply.status}"}})
                elif request.get("stream"):
                    self._send_stream(sse_events(reply, message_id, server.model))
                else:
                    self._send_json(200, {
                        "id": message_id, "type": "message", "role": "assistant", "model": server.model,
                        "content": [dict(block) for block in reply.content], "stop_reason": reply.stop_reason,
                        "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}})

            def _send_json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("request-id", "req_distproc")
                self.end_headers()
                self._write(data)

            def _send_stream(self, events: list[tuple[str, dict[str, Any]]]) -> None:
                data = b"".join(f"event: {name}\ndata: {json.dumps(body)}\n\n".encode() for name, body in events)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("request-id", "req_distproc")
                self.end_headers()
                self._write(data)

            def _write(self, data: bytes) -> None:
                try:
                    self.wfile.write(data)
                    self.wfile.flush()
                except (TimeoutError, BrokenPipeError, ConnectionResetError):
                    pass

        return Handler
