"""Transcript events as safe HTML for notebook outputs and widgets.

Everything an agent or a user wrote is untrusted: Markdown is rendered with raw HTML turned
off (so `<img onerror=…>` arrives as text) and every other string is escaped. The widgets
put this HTML into ipywidgets `HTML` models, which front ends insert without sanitizing, so
nothing may reach them except through these functions.
"""

from __future__ import annotations

import html
import json
from functools import cache
from typing import Any

OUTPUT_LIMIT = 4000
"""Characters of a tool's output shown before it is cut (the rest is a click away)."""

STYLE = """
.catty-transcript, .catty-diff, .catty-env-editor, .catty-session-list {
  border: 1px solid var(--jp-border-color2, #e0e0e0); border-radius: 4px; padding: 4px 8px; }
.catty-event { margin: 2px 0; line-height: 1.45; }
.catty-event p { margin: .2em 0; }
.catty-event > :first-child { margin-top: 0; } .catty-event > :last-child { margin-bottom: 0; }
.catty-user { border-left: 3px solid var(--jp-brand-color1, #1976d2); padding-left: 6px; }
.catty-user .catty-who, .catty-meta { color: var(--jp-ui-font-color2, #666); font-size: 85%; }
.catty-event pre { white-space: pre-wrap; word-break: break-word; margin: 2px 0;
  background: var(--jp-layout-color2, #f5f5f5); padding: 4px 6px; max-height: 24em;
  overflow: auto; font-size: 85%; }
.catty-event details > summary { cursor: pointer; color: var(--jp-ui-font-color1, #333); }
.catty-tool { font-family: var(--jp-code-font-family, monospace); font-size: 90%; }
.catty-error { color: var(--jp-error-color1, #c62828); }
.catty-system { color: var(--jp-ui-font-color2, #666); font-size: 85%; }
.catty-permission { border: 1px solid var(--jp-warn-color1, #f57c00); padding: 4px 6px;
  border-radius: 3px; }
.catty-comment { border-left: 3px solid var(--jp-warn-color1, #f57c00); padding-left: 6px; }
.catty-badge { display: inline-block; padding: 0 8px; border-radius: 8px; font-size: 85%;
  line-height: 1.5; vertical-align: middle; color: white; background: #757575; }
.catty-badge-idle { background: #2e7d32; } .catty-badge-busy { background: #1565c0; }
.catty-badge-waiting { background: #ef6c00; } .catty-badge-failed { background: #c62828; }
.catty-badge-starting { background: #6a1b9a; }
.catty-diff select { font-family: var(--jp-code-font-family, monospace); font-size: 85%; }
.catty-field-error { color: var(--jp-error-color1, #c62828); font-size: 85%; }
.catty-added { color: #2e7d32; } .catty-removed { color: #c62828; }
"""
"""CSS for the classes below; a widget shows it once in a `<style>` of its own."""


@cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    # html=False: raw HTML in agent output is escaped, never passed through.
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown_html(text: str) -> str:
    """TEXT (Markdown written by an agent or a user) as HTML in which no HTML of its own runs."""
    return str(_markdown().render(text))


def esc(value: Any) -> str:
    """Any value as escaped HTML text."""
    return html.escape(str(value), quote=True)


def pre(text: str, limit: int | None = OUTPUT_LIMIT) -> str:
    """TEXT in a <pre>, escaped, cut after LIMIT characters with a note saying how much."""
    if limit is not None and len(text) > limit:
        rest = len(text) - limit
        return (
            f"<pre>{esc(text[:limit])}</pre><div class='catty-meta'>… {rest} more characters</div>"
        )
    return f"<pre>{esc(text)}</pre>"


def tool_summary(payload: dict[str, Any]) -> str:
    """A one-line description of a tool call: its name and the gist of its input."""
    inp = payload.get("input")
    if isinstance(inp, dict):
        gist = inp.get("command") or inp.get("file_path") or inp.get("pattern") or inp.get("url")
        shown = str(gist) if gist else json.dumps(inp)
    else:
        shown = str(inp or "")
    shown = shown.splitlines()[0] if shown.strip() else ""
    if len(shown) > 120:
        shown = shown[:117] + "…"
    return f"{payload.get('name') or 'tool'}: {shown}".rstrip(": ")


def tool_html(payload: dict[str, Any], outputs: list[dict[str, Any]]) -> str:
    """A tool call, collapsed: its input, and the output it produced so far."""
    inp = payload.get("input")
    shown_input = inp if isinstance(inp, str) else json.dumps(inp, indent=2, ensure_ascii=False)
    output = "".join(str(o.get("output") or "") for o in outputs)
    failed = any(o.get("is_error") for o in outputs)
    state = " (failed)" if failed else ("" if outputs else " …")
    body = f"<div class='catty-meta'>input</div>{pre(shown_input)}"
    if outputs:
        body += f"<div class='catty-meta'>output</div>{pre(output)}"
    return (f"<div class='catty-event catty-tool'><details><summary>⚙ {esc(tool_summary(payload))}"
            f"{esc(state)}</summary>{body}</details></div>")  # fmt: skip


def event_html(event: dict[str, Any]) -> str | None:
    """One event (other than tool calls, which `tool_html` draws) as HTML; None to show nothing."""
    kind, p = event.get("kind"), event.get("payload") or {}
    who = event.get("client")
    if kind == "user":
        by = f"<div class='catty-who'>{esc(who)}</div>" if who else ""
        return (
            f"<div class='catty-event catty-user'>{by}{markdown_html(str(p.get('text', '')))}</div>"
        )
    if kind == "assistant":
        if p.get("text"):
            return f"<div class='catty-event catty-assistant'>{markdown_html(str(p['text']))}</div>"
        if p.get("thinking"):
            return (f"<div class='catty-event catty-system'><details><summary>thinking</summary>"
                    f"{pre(str(p['thinking']))}</details></div>")  # fmt: skip
        return None
    if kind == "permission_request":
        return (f"<div class='catty-event catty-permission'>⚠ permission to use "
                f"<b>{esc(p.get('tool_name'))}</b>{pre(json.dumps(p.get('input'), indent=2))}</div>")  # fmt: skip
    if kind == "permission_decision":
        verb = "allowed" if p.get("behavior") == "allow" else "denied"
        note = f": {esc(p['message'])}" if p.get("message") else ""
        return (
            f"<div class='catty-event catty-system'>{verb} by {esc(who or 'someone')}{note}</div>"
        )
    if kind == "comment":
        side = "" if p.get("side", "new") == "new" else " (old side)"
        line = f"{pre(str(p['line_text']), 400)}" if p.get("line_text") else ""
        return (f"<div class='catty-event catty-comment'>✎ <b>{esc(p.get('path'))}:"
                f"{esc(p.get('line'))}</b>{esc(side)}{line}{markdown_html(str(p.get('text', '')))}</div>")  # fmt: skip
    if kind == "result":
        secs = (p.get("duration_ms") or 0) / 1000
        cost = p.get("total_cost_usd")
        extra = f", ${cost:.4f}" if isinstance(cost, int | float) and cost else ""
        code = f", exit {esc(p['exit_code'])}" if "exit_code" in p else ""
        return f"<div class='catty-event catty-meta'>✓ turn done ({secs:.1f} s{extra}{code})</div>"
    if kind == "setup_log":
        return f"<div class='catty-event catty-system'>setup{pre(str(p.get('text') or ''))}</div>"
    if kind == "error":
        return f"<div class='catty-event catty-error'>⚠ {esc(p.get('message') or 'error')}</div>"
    if kind == "system" and p.get("message"):
        return f"<div class='catty-event catty-system'>· {esc(p['message'])}</div>"
    if kind == "status" and "focus" in p and p.get("message"):
        return f"<div class='catty-event catty-system'>· {esc(p['message'])}</div>"
    return None


def badge_html(state: str) -> str:
    """A coloured badge naming a session's state or activity."""
    return f"<span class='catty-badge catty-badge-{esc(state)}'>{esc(state)}</span>"


def session_state(session: dict[str, Any]) -> str:
    """What a session (as the API shows it) is doing: its activity while it runs, else its state."""
    if session.get("state") == "running" and session.get("activity"):
        return str(session["activity"])
    return str(session.get("state") or "")
