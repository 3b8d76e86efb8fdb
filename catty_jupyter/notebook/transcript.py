"""The live transcript widget: a session's events as they happen, with its controls."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from traitlets import Int, Unicode

from ..client import CattyClient
from . import render
from .actions import in_background, say
from .follower import SessionFollower

FIRST_PAGE = 200
"""Events shown when the widget opens, and added by each *Load older*."""

TERMINAL = ("stopped", "failed", "expired")


class TranscriptView(widgets.VBox):
    """A session's transcript, updating live on a background thread.

    Assistant text is Markdown, tool calls are collapsed with their input and output, permission
    requests carry *Approve*/*Deny* (enabled while this notebook holds input focus), and a send
    box talks to the agent. The synced `label`, `first_seq`, `last_seq` and `activity` traits
    say what the widget holds, so a saved notebook's widget state records it.
    """

    label = Unicode("").tag(sync=True)
    first_seq = Int(0).tag(sync=True)
    """The oldest event shown (0 before any)."""
    last_seq = Int(0).tag(sync=True)
    """The newest event shown: after a reconnect, following resumes from here."""
    activity = Unicode("").tag(sync=True)
    """starting, idle, busy, waiting, stopped, failed or expired."""
    focus_holder = Unicode("").tag(sync=True)
    """The client holding input focus ("" when nobody does)."""

    def __init__(
        self, client: CattyClient, label: str, page: int = FIRST_PAGE, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.add_class("catty-transcript")
        self.page = page
        """Events shown at open, and added by each *Load older*."""
        self.client = client
        self.label = label
        self.me = client.client_id or ""
        self.environment = ""
        self._lock = threading.RLock()
        self._tools: dict[str, tuple[dict[str, Any], list[dict[str, Any]], widgets.HTML]] = {}
        self._pending: dict[str, widgets.HBox] = {}
        self._follower: SessionFollower | None = None

        self.title = widgets.HTML()
        self.take_button = widgets.Button(description="Take control", icon="hand-paper-o",
                                          tooltip="Steer this session from this notebook")  # fmt: skip
        self.interrupt_button = widgets.Button(description="Interrupt", icon="stop",
                                               tooltip="Interrupt the agent's current turn")  # fmt: skip
        self.older_button = widgets.Button(description="Load older events", icon="arrow-up",
                                           layout=widgets.Layout(display="none"))  # fmt: skip
        self.events_box = widgets.VBox(layout=widgets.Layout(max_height="40em", overflow="auto"))
        self.permissions_box = widgets.VBox()
        self.message = widgets.Textarea(placeholder="Message the agent, then press Send",
                                        layout=widgets.Layout(width="100%", height="4em"))  # fmt: skip
        self.send_button = widgets.Button(description="Send", icon="paper-plane",
                                          button_style="primary")  # fmt: skip
        self.notice = widgets.HTML()
        self.take_button.on_click(lambda _: self._act(self._take_control))
        self.interrupt_button.on_click(lambda _: self._act(self._interrupt))
        self.older_button.on_click(lambda _: self._act(self.load_older))
        self.send_button.on_click(lambda _: self._act(self._send_message))
        self.children = (
            widgets.HTML(f"<style>{render.STYLE}</style>"),
            widgets.HBox([self.title, self.take_button, self.interrupt_button]),
            self.older_button,
            self.events_box,
            self.permissions_box,
            widgets.HBox(
                [self.message, self.send_button], layout=widgets.Layout(align_items="flex-end")
            ),
            self.notice,
        )

    # -- loading and following ------------------------------------------------------------------

    def open_session(self) -> TranscriptView:
        """Load the newest events and the session's state, then follow it live."""
        session = self.client.get(self.label)
        focus = session.get("focus") or {}
        with self._lock:
            self.environment = str(session.get("environment") or "")
            self.activity = render.session_state(session)
            self.focus_holder = str(focus.get("holder") or "")
        events = self.client.transcript(self.label, limit=self.page, newest=True)
        self.add_events(events)
        with self._lock:
            self.older_button.layout.display = "" if self.first_seq > 1 else "none"
            self._refresh_controls()
        self.follow()
        return self

    def follow(self) -> None:
        """Follow new events from `last_seq` on (again, if following had stopped)."""
        if self._follower is not None and self._follower.alive:
            return
        self._follower = SessionFollower(self.client, self.label, self.last_seq, self.add_events,
                                         on_gone=self._gone).start()  # fmt: skip

    def close(self) -> None:
        """Stop following, then close the widget."""
        if self._follower is not None:
            self._follower.stop()
        super().close()

    def load_older(self) -> None:
        """Show up to `page` more events from before the oldest one shown."""
        with self._lock:
            first = self.first_seq
        if first <= 1:
            return
        after = max(0, first - 1 - self.page)
        older = [e for e in self.client.transcript(self.label, after=after, limit=self.page)
                 if e["seq"] < first]  # fmt: skip
        with self._lock:
            rendered = self._render(older)
            self.events_box.children = (*rendered, *self.events_box.children)
            if older:
                self.first_seq = int(older[0]["seq"])
            self.older_button.layout.display = "" if after > 0 else "none"

    def add_events(self, events: list[dict[str, Any]]) -> None:
        """Draw new EVENTS (called on the follower's thread, and once at open)."""
        with self._lock:
            fresh = [e for e in events if e["seq"] > self.last_seq]
            if not fresh:
                return
            rendered = self._render(fresh)
            if rendered:
                self.events_box.children = (*self.events_box.children, *rendered)
            if not self.first_seq:
                self.first_seq = int(fresh[0]["seq"])
            self.last_seq = int(fresh[-1]["seq"])
            self._refresh_controls()

    def _render(self, events: list[dict[str, Any]]) -> list[widgets.Widget]:
        """Widgets for EVENTS, and the state changes they carry."""
        out: list[widgets.Widget] = []
        for event in events:
            kind, p = event["kind"], event.get("payload") or {}
            self._track(event)
            if kind == "tool_use":
                view = widgets.HTML(render.tool_html(p, []))
                self._tools[str(p.get("id"))] = (p, [], view)
                out.append(view)
                continue
            if kind == "tool_result" and str(p.get("tool_use_id")) in self._tools:
                payload, outputs, view = self._tools[str(p.get("tool_use_id"))]
                outputs.append(p)
                view.value = render.tool_html(payload, outputs)
                continue
            if kind == "tool_result":
                html = render.tool_html({"name": "output of an earlier tool call"}, [p])
            else:
                html = render.event_html(event) or ""
            if html:
                out.append(widgets.HTML(html))
        return out

    def _track(self, event: dict[str, Any]) -> None:
        """Follow the state an event changes: activity, focus, pending permission requests."""
        kind, p = event["kind"], event.get("payload") or {}
        if kind == "status" and p.get("activity"):
            self.activity = str(p["activity"])
        if kind == "status" and "focus" in p:
            self.focus_holder = str(p.get("focus") or "")
        if kind == "result" and self.activity not in TERMINAL:
            self.activity = "idle"
        if kind == "permission_request":
            self._add_permission(p)
        if kind == "permission_decision":
            row = self._pending.pop(str(p.get("request_id")), None)
            if row is not None:
                self.permissions_box.children = tuple(
                    c for c in self.permissions_box.children if c is not row
                )
        if kind == "error" and p.get("fatal"):
            self.activity = "failed"
        if kind == "system" and str(p.get("message", "")).startswith("session stopped"):
            self.activity = "stopped"
        if p.get("expired") or p.get("ended_idle"):  # the idle TTL ended the runtime
            self.activity = "expired"

    def _add_permission(self, p: dict[str, Any]) -> None:
        rid = str(p.get("request_id"))
        approve = widgets.Button(description="Approve", button_style="success", icon="check")
        deny = widgets.Button(description="Deny", button_style="danger", icon="times")
        approve.on_click(lambda _: self._act(lambda: self._answer(rid, "allow")))
        deny.on_click(lambda _: self._act(lambda: self._answer(rid, "deny")))
        text = widgets.HTML(f"⚠ <b>{render.esc(p.get('tool_name'))}</b> asks for permission")
        row = widgets.HBox([text, approve, deny])
        self._pending[rid] = row
        self.permissions_box.children = (*self.permissions_box.children, row)

    def _refresh_controls(self) -> None:
        """Enable what this notebook may do, and say who has control."""
        mine = self.focus_holder == self.me
        free = not self.focus_holder
        live = self.activity not in TERMINAL
        for row in self._pending.values():
            for button in row.children[1:]:
                assert isinstance(button, widgets.Button)
                button.disabled = not mine or not live
        self.send_button.disabled = not (mine or free) or not live
        self.message.disabled = self.send_button.disabled
        self.interrupt_button.disabled = not mine or self.activity not in ("busy", "waiting")
        self.take_button.layout.display = "none" if mine or not live else ""
        if mine:
            control = "you have control"
        elif free:
            control = "nobody has control: sending takes it"
        else:
            control = f"{render.esc(self.focus_holder)} has control: read-only here"
        env = f" · {render.esc(self.environment)}" if self.environment else ""
        self.title.value = (f"<b>{render.esc(self.label)}</b> {render.badge_html(self.activity)}"
                            f"<span class='catty-meta'>{env} · {control}</span>")  # fmt: skip

    # -- actions --------------------------------------------------------------------------------

    def _act(self, action: Callable[[], object]) -> None:
        in_background(action, self.notice)

    def _send_message(self) -> None:
        text = self.message.value
        if not text.strip():
            return
        self.client.send(self.label, text)
        self.message.value = ""

    def _take_control(self) -> None:
        focus = self.client.take_focus(self.label)
        with self._lock:
            self.focus_holder = str(focus.get("holder") or "")
            self._refresh_controls()

    def _interrupt(self) -> None:
        self.client.interrupt(self.label)

    def _answer(self, request_id: str, behavior: str) -> None:
        self.client.answer(self.label, request_id, behavior)

    def _gone(self, reason: str) -> None:
        with self._lock:
            self.activity = "deleted"
            self._refresh_controls()
        say(self.notice, f"this session no longer exists ({reason})", error=True)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            # Saved with the notebook and shown for ever where widgets cannot be: no state in it.
            bundle["text/plain"] = f"catty session {self.label}"
        return bundle
