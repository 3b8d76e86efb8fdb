"""A local HTTP server that speaks the Anthropic Messages API and answers with the demo script."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import uuid
from dataclasses import dataclass
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.iostream import StreamClosedError
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from .scenarios import SIDE_QUERY_TEXT, Reply, next_reply, text_block

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
_CHUNKS_PER_SECOND = 10


@dataclass
class LoggedRequest:
    """One request the server answered: where it went, its JSON body and the reply sent."""

    method: str
    path: str
    body: dict[str, Any]
    reply: Reply | None = None


class DemoModelServer:
    """The scripted demo model, served on 127.0.0.1 inside the running asyncio event loop."""

    def __init__(self) -> None:
        self.requests: list[LoggedRequest] = []
        """Every request received, oldest first (tests read it)."""
        self._server: HTTPServer | None = None
        self._port = 0

    @property
    def port(self) -> int:
        """The port the server listens on (0 before start)."""
        return self._port

    @property
    def url(self) -> str:
        """The base URL to give Claude Code as ANTHROPIC_BASE_URL."""
        return f"http://{HOST}:{self._port}"

    @property
    def message_requests(self) -> list[LoggedRequest]:
        """The requests to POST /v1/messages, oldest first."""
        return [r for r in self.requests if r.path == "/v1/messages"]

    async def start(self, port: int = 0) -> None:
        """Listen on 127.0.0.1 at the port (0: any free one)."""
        if self._server is not None:
            raise RuntimeError("The demo model server is already running; stop() it first.")
        sockets = bind_sockets(port, HOST)
        self._port = sockets[0].getsockname()[1]
        app = Application(
            [
                (r"/v1/messages", MessagesHandler, {"owner": self}),
                (r"/v1/messages/count_tokens", CountTokensHandler, {"owner": self}),
                (r".*", NotFoundHandler, {"owner": self}),
            ],
            log_function=_log_request,
        )
        self._server = HTTPServer(app)
        self._server.add_sockets(sockets)

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            await server.close_all_connections()


class _BaseHandler(RequestHandler):
    """Shared parts: the owner's request log and Anthropic-shaped JSON errors."""

    owner: DemoModelServer

    def initialize(self, owner: DemoModelServer) -> None:
        """Keep the server whose log this handler appends to."""
        self.owner = owner

    def record(self) -> LoggedRequest:
        """Parse the body (anything that is not a JSON object counts as empty) and log it."""
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        entry = LoggedRequest(self.request.method or "", self.request.path, body)
        self.owner.requests.append(entry)
        return entry

    def send_json(self, data: dict[str, Any], status: int = 200) -> None:
        """Finish the request with a JSON body."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("request-id", f"req_demo_{uuid.uuid4().hex[:24]}")
        self.finish(json.dumps(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Answer failures as the Messages API does, never with HTML."""
        self.send_json(
            {"type": "error", "error": {"type": "api_error", "message": self._reason}},
            status_code,
        )


class NotFoundHandler(_BaseHandler):
    """Any path the demo model does not serve."""

    def prepare(self) -> None:
        """Answer every method with a JSON 404."""
        self.record()
        path = self.request.path
        message = f"The demo model serves only POST /v1/messages[/count_tokens], not {path}."
        error = {"type": "not_found_error", "message": message}
        self.send_json({"type": "error", "error": error}, 404)


class CountTokensHandler(_BaseHandler):
    """POST /v1/messages/count_tokens."""

    def post(self) -> None:
        """Return a plausible token count for the request."""
        entry = self.record()
        self.send_json({"input_tokens": estimate_tokens(entry.body)})


class MessagesHandler(_BaseHandler):
    """POST /v1/messages, streaming (SSE) or not."""

    async def post(self) -> None:
        """Answer with the demo script's next assistant message."""
        entry = self.record()
        try:
            reply = next_reply(entry.body)
        except Exception:
            # A request shape the script did not foresee must not break the agent's turn.
            log.exception("The demo script failed on a request; answering with plain text")
            reply = Reply([text_block(SIDE_QUERY_TEXT)], "end_turn")
        entry.reply = reply
        model = str(entry.body.get("model") or "demo")
        message = _message(reply, model, estimate_tokens(entry.body))
        if not entry.body.get("stream"):
            self.send_json(message)
            return
        try:
            await self._stream(message, reply.slow)
        except StreamClosedError:
            log.debug("The client went away during a streamed reply")

    async def _stream(self, message: dict[str, Any], slow: float) -> None:
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("request-id", f"req_demo_{uuid.uuid4().hex[:24]}")
        start = {**message, "content": [], "stop_reason": None}
        start["usage"] = {**message["usage"], "output_tokens": 1}
        await self._event("message_start", {"type": "message_start", "message": start})
        texts = [b["text"] for b in message["content"] if b["type"] == "text"]
        chunk, delay = _pace(texts, slow)
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                await self._block_start(index, {"type": "text", "text": ""})
                for piece in _split(block["text"], chunk):
                    await self._delta(index, {"type": "text_delta", "text": piece})
                    if delay:
                        await asyncio.sleep(delay)
            else:
                await self._block_start(index, {**block, "input": {}})
                for piece in _split(json.dumps(block["input"]), 64):
                    await self._delta(index, {"type": "input_json_delta", "partial_json": piece})
            await self._event("content_block_stop", {"type": "content_block_stop", "index": index})
        delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
        usage = {"output_tokens": message["usage"]["output_tokens"]}
        await self._event(
            "message_delta", {"type": "message_delta", "delta": delta, "usage": usage}
        )
        await self._event("message_stop", {"type": "message_stop"})
        self.finish()

    async def _block_start(self, index: int, block: dict[str, Any]) -> None:
        data = {"type": "content_block_start", "index": index, "content_block": block}
        await self._event("content_block_start", data)

    async def _delta(self, index: int, delta: dict[str, Any]) -> None:
        data = {"type": "content_block_delta", "index": index, "delta": delta}
        await self._event("content_block_delta", data)

    async def _event(self, name: str, data: dict[str, Any]) -> None:
        self.write(f"event: {name}\ndata: {json.dumps(data)}\n\n")
        await self.flush()


def estimate_tokens(body: Any) -> int:
    """A plausible input token count: about four characters of JSON per token."""
    parts = [body.get(k) for k in ("system", "messages", "tools")] if isinstance(body, dict) else []
    return max(1, len(json.dumps(parts, default=str)) // 4)


def _message(reply: Reply, model: str, input_tokens: int) -> dict[str, Any]:
    output_tokens = max(1, len(json.dumps(reply.content)) // 4)
    return {
        "id": f"msg_demo_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": reply.content,
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def _pace(texts: list[str], slow: float) -> tuple[int, float]:
    """The chunk size, and the pause after each chunk, that spread the texts over `slow` s."""
    chars = sum(len(t) for t in texts)
    if slow <= 0 or chars == 0:
        return max(chars, 1), 0.0
    size = math.ceil(chars / max(1, min(chars, math.ceil(slow * _CHUNKS_PER_SECOND))))
    pieces = sum(math.ceil(len(t) / size) for t in texts)
    return size, slow / pieces


def _split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _log_request(handler: RequestHandler) -> None:
    request = handler.request
    log.debug("%s %s %s", handler.get_status(), request.method, request.uri)
