"""The `%catty teleport` widget: how a teleport went, then the session's whole transcript."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from traitlets import Unicode

from ..client import CattyClient
from ..teleport import (
    TeleportError,
    TeleportResult,
    UncommittedChanges,
    listed_changes,
    teleport,
)
from . import render
from .actions import in_background, say

TRANSCRIPT_PAGE = 5000
"""Events the transcript shows at once (the API's largest page; *Load older* shows more)."""


class TeleportPanel(widgets.VBox):
    """Teleport of one session into a checkout: its steps as they happen, what to run next and
    the transcript; or why it stopped, with *Stash and teleport* when uncommitted changes
    stopped it. The synced `outcome` says which: `done`, `uncommitted`, `refused` or ``."""

    label = Unicode("").tag(sync=True)
    outcome = Unicode("").tag(sync=True)

    def __init__(self, client: CattyClient, label: str, checkout: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("catty-transcript")
        self.client = client
        self.label = label
        self.checkout = checkout
        self.result: TeleportResult | None = None
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self.steps = widgets.HTML()
        self.reason = widgets.HTML()
        self.stash_button = widgets.Button(
            description="Stash and teleport", icon="archive", button_style="warning",
            tooltip="git stash push --include-untracked, then teleport",
            layout=widgets.Layout(display="none"),
        )  # fmt: skip
        self.summary = widgets.HTML()
        self.transcript_box = widgets.VBox()
        self.notice = widgets.HTML()
        self.stash_button.on_click(lambda _: self._stash_and_run())
        self.children = (
            widgets.HTML(f"<style>{render.STYLE}</style>"),
            self.steps, self.reason, self.stash_button, self.summary, self.transcript_box,
            self.notice,
        )  # fmt: skip

    def run(self, stash: bool = False) -> TeleportPanel:
        """Teleport (on the calling thread) and show how it went."""
        try:
            result = teleport(self.client, self.label, self.checkout, stash=stash,
                              progress=self._step)  # fmt: skip
        except UncommittedChanges as exc:
            self.reason.value = _pre(
                f"{exc.checkout} has uncommitted changes, and teleport checks out another "
                f"branch:\n{listed_changes(exc.changes)}\nCommit them, or stash them (untracked "
                "files too; `git stash pop` brings them back) and teleport:", error=True,
            )  # fmt: skip
            self.stash_button.layout.display = ""
            self.stash_button.disabled = False
            self.outcome = "uncommitted"
            return self
        except TeleportError as exc:
            self.reason.value = _pre(str(exc), error=True)
            self.outcome = "refused"
            return self
        self.result = result
        self.reason.value = ""
        self.stash_button.layout.display = "none"
        self.summary.value = summary_html(result)
        self._show_transcript(result.label)
        self.outcome = "done"
        return self

    def _stash_and_run(self) -> None:
        self.stash_button.disabled = True

        def run() -> None:
            try:
                self.run(stash=True)
            finally:
                self.stash_button.disabled = self.outcome == "done"

        in_background(run, self.notice)

    def _step(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)
            self.steps.value = "".join(
                f"<div class='catty-meta'>· {render.esc(x)}</div>" for x in self._lines
            )

    def _show_transcript(self, label: str) -> None:
        from .transcript import TranscriptView

        try:
            view = TranscriptView(self.client, label, page=TRANSCRIPT_PAGE).open_session()
        except Exception as exc:  # the branch is home; a failing view must not hide that
            say(self.notice, f"the transcript could not be shown: {exc}", error=True)
            return
        self.transcript_box.children = (view,)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            bundle["text/plain"] = f"catty teleport of {self.label}: {self.outcome or 'started'}"
        return bundle


def summary_html(result: TeleportResult) -> str:
    """What teleport did and what to run next, as HTML."""
    e = render.esc
    lines = [f"<b>{e(result.checkout)}</b> is on <b>{e(result.branch)}</b> at "
             f"<code>{e(result.commit[:12])}</code>"]  # fmt: skip
    if result.uncommitted:
        lines.append("the agent's uncommitted work arrived as a commit that says so")
    if result.stash:
        lines.append(f"your changes are in <code>{e(result.stash)}</code>; "
                     "<code>git stash pop</code> brings them back")  # fmt: skip
    lines += [e(note) for note in result.notes]
    if result.resume_command:
        lines.append(f"continue the conversation in a terminal: <code>cd {e(result.checkout)} "
                     f"&amp;&amp; {e(result.resume_command)}</code>")  # fmt: skip
    return "".join(f"<div class='catty-event'>{line}</div>" for line in lines)


def _pre(text: str, error: bool = False) -> str:
    cls = "catty-error" if error else "catty-meta"
    return f"<div class='catty-event {cls}'>{render.pre(text, None)}</div>"
