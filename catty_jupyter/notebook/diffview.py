"""The diff widget: what a session changed, with comments on lines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from traitlets import Int, Unicode

from ..client import CattyClient, ClientError
from ..core.comments import PatchLine, patch_lines
from . import render
from .actions import in_background

MAX_FILES = 100
"""Files drawn in full; the rest are listed by name."""

MAX_LINES = 3000
"""Lines of one file's patch offered for comments; longer ones are cut."""


class DiffView(widgets.VBox):
    """A session's changes against its base: `+added -removed` per file and in total, a unified
    diff per file (notebooks as nbdime notebook diffs), and comments on lines.

    Selecting a line of a file's diff opens a comment box; comments queue on the server and go
    to the agent with the next message (the *Send* box here, or any other).
    """

    label = Unicode("").tag(sync=True)
    files_changed = Int(0).tag(sync=True)
    added = Int(0).tag(sync=True)
    removed = Int(0).tag(sync=True)
    queued = Int(0).tag(sync=True)
    """Comments waiting for the next message."""

    def __init__(self, client: CattyClient, label: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_class("catty-diff")
        self.client = client
        self.label = label
        self.summary = widgets.HTML()
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.files_box = widgets.VBox()
        self.comments_box = widgets.VBox()
        self.message = widgets.Textarea(
            placeholder="A message to send with the comments (optional)",
            layout=widgets.Layout(width="100%", height="3em"),
        )
        self.send_button = widgets.Button(description="Send comments", icon="paper-plane",
                                          button_style="primary", layout=widgets.Layout(width="auto"))  # fmt: skip
        self.notice = widgets.HTML()
        self.refresh_button.on_click(lambda _: self._act(self.refresh))
        self.send_button.on_click(lambda _: self._act(self._send_comments))
        self.children = (
            widgets.HTML(f"<style>{render.STYLE}</style>"),
            widgets.HBox([self.summary, self.refresh_button]),
            self.files_box,
            self.comments_box,
            widgets.HBox([self.message, self.send_button]),
            self.notice,
        )

    def refresh(self) -> DiffView:
        """Fetch the diff and the queued comments again and redraw."""
        diff = self.client.diff(self.label)
        self.files_changed = len(diff["files"])
        self.added, self.removed = int(diff["added"]), int(diff["removed"])
        cut = " (cut: the diff is too large to show whole)" if diff.get("truncated") else ""
        self.summary.value = (
            f"<b>{render.esc(self.label)}</b>: {_files(self.files_changed)} changed, "
            f"<span class='catty-added'>+{self.added}</span> "
            f"<span class='catty-removed'>-{self.removed}</span>{render.esc(cut)}"
        )
        self.files_box.children = tuple(self._file(f) for f in diff["files"][:MAX_FILES])
        if len(diff["files"]) > MAX_FILES:
            rest = [render.esc(f["path"]) for f in diff["files"][MAX_FILES:]]
            more = widgets.HTML(
                f"<div class='catty-meta'>and {len(rest)} more: {', '.join(rest)}</div>"
            )
            self.files_box.children = (*self.files_box.children, more)
        self._show_comments()
        return self

    def _file(self, f: dict[str, Any]) -> widgets.Widget:
        """One file: its stat line, then its diff in a collapsible section."""
        path = str(f["path"])
        moved = f" (from {f['old_path']})" if f.get("old_path") else ""
        stat = "binary" if f.get("binary") else f"+{f.get('added', 0)} -{f.get('removed', 0)}"
        head = f"{stat}  {path}{moved}  [{f.get('status', '')}]"
        if f.get("binary"):
            body: widgets.Widget = widgets.HTML(
                "<div class='catty-meta'>binary file: not shown</div>"
            )
        elif f.get("notebook_diff"):
            body = widgets.HTML(f"<div class='catty-meta'>notebook diff (nbdime)</div>"
                                f"{render.pre(str(f['notebook_diff']), None)}")  # fmt: skip
        else:
            body = self._patch(path, str(f.get("patch") or ""), f.get("old_path"))
        section = widgets.Accordion(children=[body])
        section.set_title(0, head)
        return section

    def _patch(self, path: str, patch: str, old_path: str | None = None) -> widgets.Widget:
        """The unified diff of PATH (renamed from OLD_PATH) as a list of lines; selecting one
        opens a comment box."""
        lines = patch_lines(patch)
        # git's header lines (diff --git, index, ---/+++) say nothing the title does not.
        first_hunk = next((i for i, line in enumerate(lines) if line.text.startswith("@@")), 0)
        lines = lines[first_hunk:][:MAX_LINES]
        picker = widgets.Select(
            options=[(line.text or " ", i) for i, line in enumerate(lines)], value=None,
            rows=min(max(len(lines), 2), 25), layout=widgets.Layout(width="100%"),
        )  # fmt: skip
        picker.add_class("catty-diff")
        box = widgets.VBox([picker])

        def chosen(change: dict[str, Any]) -> None:
            if change["new"] is None:
                return
            line = lines[int(change["new"])]
            if line.side is None:
                return
            # A removed line of a renamed file is a line of the old file.
            at = (old_path or path) if line.side == "old" else path
            box.children = (picker, self._comment_form(at, line, picker, box))

        picker.observe(chosen, names="value")
        return box

    def _comment_form(
        self, path: str, line: PatchLine, picker: widgets.Select, box: widgets.VBox
    ) -> widgets.Widget:
        """The comment box for LINE of PATH."""
        where = widgets.HTML(f"Comment on <b>{render.esc(path)}</b> line {line.line} "
                             f"({line.side}): <code>{render.esc(line.content[:200])}</code>")  # fmt: skip
        text = widgets.Textarea(placeholder="Your comment", layout=widgets.Layout(width="100%"))
        add = widgets.Button(description="Add comment", button_style="primary", icon="comment")
        cancel = widgets.Button(description="Cancel")

        def close() -> None:
            box.children = (picker,)
            picker.value = None

        def submit() -> None:
            if not text.value.strip():
                raise ClientError("write a comment first")
            assert line.line is not None and line.side is not None
            self.client.add_comment(self.label, path, line.line, text.value, side=line.side)
            close()
            self._show_comments()

        add.on_click(lambda _: self._act(submit))
        cancel.on_click(lambda _: close())
        return widgets.VBox([where, text, widgets.HBox([add, cancel])])

    def _show_comments(self) -> None:
        """List the queued comments, each with a *Withdraw* button."""
        comments = self.client.comments(self.label)
        self.queued = len(comments)
        rows: list[widgets.Widget] = []
        if comments:
            rows.append(widgets.HTML(f"<b>{len(comments)} comment(s)</b> will go to the agent "
                                     "with the next message"))  # fmt: skip
        for c in comments:
            withdraw = widgets.Button(description="Withdraw", icon="trash",
                                      layout=widgets.Layout(width="auto"))  # fmt: skip
            withdraw.on_click(lambda _, cid=c["id"]: self._act(lambda: self._withdraw(cid)))
            text = widgets.HTML(
                f"✎ <b>{render.esc(c['path'])}:{render.esc(c['line'])}</b> {render.esc(c['text'])}"
            )
            rows.append(widgets.HBox([text, withdraw]))
        self.comments_box.children = tuple(rows)
        self.send_button.disabled = not comments

    def _withdraw(self, comment_id: Any) -> None:
        self.client.withdraw_comment(self.label, str(comment_id))
        self._show_comments()

    def _send_comments(self) -> None:
        self.client.send(self.label, self.message.value)
        self.message.value = ""
        self._show_comments()

    def _act(self, action: Callable[[], object]) -> None:
        in_background(action, self.notice)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict):
            bundle["text/plain"] = (f"catty diff {self.label}: {self.files_changed} files, "
                                    f"+{self.added} -{self.removed}")  # fmt: skip
        return bundle


def _files(n: int) -> str:
    return "1 file" if n == 1 else f"{n} files"
