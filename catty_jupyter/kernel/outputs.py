"""Transcript events as notebook outputs, and when a turn's events say the turn is over.

Pure logic, no kernel: `TranscriptOutputs` turns each event into the IOPub messages that show
it, and `TurnWatch` decides from the events alone when a cell may end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..cli import render
from ..notebook.render import event_html, markdown_html, tool_html


@dataclass(frozen=True)
class Output:
    """One IOPub message: its type (`display_data`, `update_display_data`, `stream`), content."""

    msg_type: str
    content: dict[str, Any]


def stream(text: str, name: str = "stdout") -> Output:
    """TEXT (a newline added) on stdout or stderr."""
    return Output("stream", {"name": name, "text": text.rstrip("\n") + "\n"})


def display(data: dict[str, Any], display_id: str | None = None, update: bool = False) -> Output:
    """A rich output; with DISPLAY_ID it can be updated in place later."""
    transient = {"display_id": display_id} if display_id else {}
    kind = "update_display_data" if update else "display_data"
    return Output(kind, {"data": data, "metadata": {}, "transient": transient})


def plain(event: dict[str, Any], label: str) -> str | None:
    """EVENT as the terminal shows it (None for events a reader does not need)."""
    try:
        return render(event, label=label)
    except (AttributeError, KeyError, TypeError):
        # An agent whose payloads have another shape still gets a line, never a crash.
        return f"[{event.get('kind')}] {json.dumps(event.get('payload'))[:200]}"


@dataclass
class _Tool:
    event: dict[str, Any]
    outputs: list[dict[str, Any]] = field(default_factory=list)


class TranscriptOutputs:
    """Turns one session's events into outputs; a tool call is one output, filled in as its
    results arrive."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._tools: dict[str, _Tool] = {}

    def outputs(self, event: dict[str, Any]) -> list[Output]:
        """The outputs that show EVENT (none for events a reader does not need)."""
        kind, payload = event.get("kind"), event.get("payload") or {}
        if kind == "assistant" and payload.get("text"):
            text = str(payload["text"])
            # No text/markdown: a front end preferring it would render the agent's raw HTML.
            return [display({"text/html": markdown_html(text), "text/plain": text})]
        if kind == "tool_use":
            return [self._tool_use(event)]
        if kind == "tool_result":
            return self._tool_result(event)
        if kind == "permission_request":
            return [self._permission(event)]
        if kind == "assistant":  # thinking
            html = event_html(event)
            return [display({"text/html": html, "text/plain": "(thinking)"})] if html else []
        line = plain(event, self.label)
        return [stream(line, "stderr" if kind == "error" else "stdout")] if line else []

    def _tool_use(self, event: dict[str, Any]) -> Output:
        tool_id = str((event.get("payload") or {}).get("id") or f"seq-{event.get('seq')}")
        tool = self._tools[tool_id] = _Tool(event)
        return self._tool_output(tool_id, tool, update=False)

    def _tool_result(self, event: dict[str, Any]) -> list[Output]:
        payload = event.get("payload") or {}
        tool_id = str(payload.get("tool_use_id") or "")
        tool = self._tools.get(tool_id)
        if tool is None:  # its call came before what this cell shows
            line = plain(event, self.label)
            return [stream(line)] if line else []
        tool.outputs.append(payload)
        return [self._tool_output(tool_id, tool, update=True)]

    def _tool_output(self, tool_id: str, tool: _Tool, update: bool) -> Output:
        payload = tool.event.get("payload") or {}
        text = plain(tool.event, self.label) or str(payload.get("name") or "tool")
        output = "".join(str(o.get("output") or "") for o in tool.outputs)
        shown = plain({"kind": "tool_result", "payload": {"output": output}}, self.label)
        if shown:
            text += "\n" + shown
        data = {"text/html": tool_html(payload, tool.outputs), "text/plain": text}
        return display(data, display_id=f"catty-tool-{tool_id}", update=update)

    def _permission(self, event: dict[str, Any]) -> Output:
        payload = event.get("payload") or {}
        rid = payload.get("request_id")
        how = f"answer in a new cell: %allow {rid}   or   %deny {rid} [MESSAGE]"
        text = (f"? permission to use {payload.get('tool_name')}: "
                f"{json.dumps(payload.get('input'))[:200]}\n  {how}")  # fmt: skip
        html = (event_html(event) or "") + f"<div class='catty-meta'><code>{how}</code></div>"
        return display({"text/html": html, "text/plain": text})


class TurnWatch:
    """Tells from a session's events when the turn a cell waits for is over.

    The turn starts with the user event of the cell's message (events before it may be the
    tail of an earlier turn); it ends with an `idle` status or a fatal error. After its
    `result` it is `finishing`: only the idle status is still to come.
    """

    def __init__(self, client: str | None, started: bool = False, until_ready: bool = False):
        self.client = client
        self.started = started
        self.until_ready = until_ready
        """For a session starting without a message (a resume): over once the agent is ready."""
        self.own_message_seq: int | None = None
        self.finishing = False

    def over(self, event: dict[str, Any]) -> bool:
        """Whether EVENT ends the turn."""
        kind, payload = event.get("kind"), event.get("payload") or {}
        if kind == "error" and payload.get("fatal"):
            return True
        if self.until_ready:
            return kind == "status" and bool(payload.get("ready"))
        if not self.started:
            if kind == "user" and event.get("client") in (self.client, None):
                self.started = True
                self.own_message_seq = event.get("seq")
            return False
        if kind == "result":
            self.finishing = True
        return kind == "status" and payload.get("activity") == "idle"

    def is_own_message(self, event: dict[str, Any]) -> bool:
        """Whether EVENT is the cell's own message (the cell shows it already)."""
        return event.get("kind") == "user" and event.get("seq") == self.own_message_seq
