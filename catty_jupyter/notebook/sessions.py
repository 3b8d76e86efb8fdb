"""The session list widget: every session with its state and the actions on it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from traitlets import Bool, Int

from ..client import CattyClient
from . import render
from .actions import in_background
from .follower import ChangeWatcher

_CELL = widgets.Layout(padding="0 8px 0 0")


def age(created: float, now: float | None = None) -> str:
    """How long ago CREATED was, the way a person says it (`45 s`, `12 min`, `3 h`, `2 d`)."""
    seconds = max(0.0, (now or time.time()) - created)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def diffstat_text(session: dict[str, Any]) -> str:
    """`+added -removed` of a session, or "" before anything was measured."""
    stat = session.get("diffstat") or {}
    if not stat:
        return ""
    return f"+{stat.get('added', 0)} -{stat.get('removed', 0)} ({stat.get('files', 0)} files)"


class SessionList(widgets.VBox):
    """The sessions of the server, refreshed as they change while shown.

    Each row has the label, state, environment, age and diffstat, and *Show* (its live
    transcript opens below the list), *Stop*, *Resume* and *Archive*.
    """

    count = Int(0).tag(sync=True)
    """Sessions listed."""
    include_archived = Bool(False).tag(sync=True)

    def __init__(self, client: CattyClient, include_archived: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.add_class("catty-session-list")
        self.client = client
        self.include_archived = include_archived
        self._shown_rows: list[tuple[Any, ...]] = []
        self._watcher: ChangeWatcher | None = None
        self.table = widgets.GridBox(layout=widgets.Layout(
            grid_template_columns="repeat(5, max-content) auto", grid_gap="2px 10px"))  # fmt: skip
        self.archived_box = widgets.Checkbox(value=include_archived, indent=False,
                                             description="show archived")  # fmt: skip
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.detail = widgets.VBox()
        self.notice = widgets.HTML()
        self.refresh_button.on_click(lambda _: in_background(self.refresh, self.notice))
        self.archived_box.observe(self._toggle_archived, names="value")
        self.children = (
            widgets.HTML(f"<style>{render.STYLE}</style>"),
            widgets.HBox([self.refresh_button, self.archived_box]),
            self.table,
            self.notice,
            self.detail,
        )

    def refresh(self) -> None:
        """Ask the server for the sessions and redraw the rows that changed."""
        sessions = self.client.list_sessions(include_archived=self.include_archived)
        now = time.time()
        rows = [(s["label"], render.session_state(s), s.get("environment") or "", age(s["created"], now),
                 diffstat_text(s), bool(s.get("archived"))) for s in sessions]  # fmt: skip
        self.count = len(rows)
        if rows == self._shown_rows:
            return
        self._shown_rows = rows
        cells: list[widgets.Widget] = [
            widgets.HTML(f"<b>{h}</b>")
            for h in ("label", "state", "environment", "age", "diff", "")
        ]
        for label, state, env, when, diff, archived in rows:
            cells += [
                widgets.HTML(f"<code>{render.esc(label)}</code>", layout=_CELL),
                widgets.HTML(render.badge_html(state)),
                widgets.HTML(render.esc(env)),
                widgets.HTML(render.esc(when)),
                widgets.HTML(render.esc(diff)),
                self._actions(label, state, archived),
            ]
        if not rows:
            cells.append(widgets.HTML('<i>no sessions yet: %catty new "a task" starts one</i>'))
        self.table.children = tuple(cells)

    def _actions(self, label: str, state: str, archived: bool) -> widgets.Widget:
        live = state not in ("stopped", "failed", "expired")

        def button(text: str, icon: str, action: Callable[[], object], enabled: bool = True):  # type: ignore[no-untyped-def]
            b = widgets.Button(description=text, icon=icon, disabled=not enabled,
                               layout=widgets.Layout(width="auto"), tooltip=f"{text} {label}")  # fmt: skip
            b.on_click(lambda _: in_background(action, self.notice))
            return b

        return widgets.HBox([
            button("Show", "eye", lambda: self.show(label)),
            button("Stop", "stop", lambda: self._then_refresh(self.client.stop, label), live),
            button("Resume", "play", lambda: self._then_refresh(self.client.resume, label), not live),
            button("Unarchive" if archived else "Archive", "archive",
                   lambda: self._then_refresh(lambda x: self.client.archive(x, not archived), label)),
        ])  # fmt: skip

    def _then_refresh(self, action: Callable[[str], object], label: str) -> None:
        action(label)
        self._shown_rows = []
        self.refresh()

    def show(self, label: str) -> None:
        """Open LABEL's live transcript below the list."""
        from .transcript import TranscriptView

        for old in self.detail.children:
            old.close()
        self.detail.children = (TranscriptView(self.client, label).open_session(),)

    def _toggle_archived(self, change: dict[str, Any]) -> None:
        self.include_archived = bool(change["new"])
        in_background(self.refresh, self.notice)

    def watch(self) -> SessionList:
        """Refresh now, then whenever the server says sessions changed (on a background thread)
        until closed; every few seconds instead while it cannot say."""
        self.refresh()
        self._watcher = ChangeWatcher(self.client, self._refresh_quietly).start()
        return self

    def _refresh_quietly(self) -> None:
        with contextlib.suppress(Exception):  # the server may be restarting: the next look
            self.refresh()

    def close(self) -> None:
        """Stop refreshing, then close the widget."""
        if self._watcher is not None:
            self._watcher.stop()
        for child in self.detail.children:
            child.close()
        super().close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            lines = [f"{r[0]}  {r[1]}  {r[2]}  {r[3]}  {r[4]}".rstrip() for r in self._shown_rows]
            bundle["text/plain"] = "\n".join(lines) or "no sessions"
        return bundle
