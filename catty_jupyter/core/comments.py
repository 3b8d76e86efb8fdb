"""Review comments on lines of a session's diff: checked, queued, and handed to the agent."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from .errors import CattyError

MAX_COMMENT_BYTES = 10 * 1024
MAX_QUEUED = 200
"""The most comments one session may have waiting for its next message."""
SIDES = ("new", "old")
DEFAULT_TEXT = "Please address these review comments."
"""What the agent is told when a message carries only comments."""

_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


class BadComment(CattyError):
    """A comment the API refuses; `field` names what is wrong with it."""

    reason = "bad_comment"

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field

    def details(self) -> dict[str, Any]:
        """What an editor can point at."""
        return {"field": self.field}


@dataclass(frozen=True)
class Comment:
    """One comment on one line of one file, queued until a message takes it to the agent."""

    path: str
    line: int
    text: str
    side: str = "new"
    line_text: str | None = None
    client: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        """The comment as the API shows it."""
        return {"id": self.id, "path": self.path, "line": self.line, "side": self.side,
                "text": self.text, "line_text": self.line_text, "client": self.client,
                "created": self.created}  # fmt: skip

    def event_payload(self) -> dict[str, Any]:
        """The payload of the `comment` event that records it in the transcript."""
        return {"id": self.id, "path": self.path, "line": self.line, "side": self.side,
                "line_text": self.line_text, "text": self.text}  # fmt: skip


def parse_comment(body: dict[str, Any]) -> tuple[str, int, str, str]:
    """(path, line, side, text) from a request body, or BadComment naming the field."""
    path, line, side, text = (
        body.get("path"),
        body.get("line"),
        body.get("side", "new"),
        body.get("text"),
    )
    if not isinstance(path, str) or not path.strip():
        raise BadComment("path must name a file in the workspace, e.g. src/app.py", "path")
    rel = PurePosixPath(path)
    if rel.is_absolute() or ".." in rel.parts or "\x00" in path or str(rel) == ".":
        raise BadComment(f"path {path[:200]!r} must be relative to the workspace and stay inside it",
                         "path")  # fmt: skip
    if len(path) > 4096 or any(ord(c) < 0x20 for c in path):
        raise BadComment("path is too long or holds control characters", "path")
    if isinstance(line, bool) or not isinstance(line, int) or not 1 <= line <= 1 << 31:
        raise BadComment("line must be a line number, a whole number from 1", "line")
    if side not in SIDES:
        raise BadComment('side must be "new" (the changed file) or "old" (the base)', "side")
    if not isinstance(text, str) or not text.strip():
        raise BadComment("text must say something", "text")
    _utf8(path, "path")
    size = len(_utf8(text, "text"))
    if size >= MAX_COMMENT_BYTES:
        raise BadComment(f"text is {size} bytes; keep a comment under {MAX_COMMENT_BYTES}", "text")
    return str(rel), line, side, text


def _utf8(value: str, name: str) -> bytes:
    try:
        return value.encode()
    except UnicodeEncodeError:
        raise BadComment(f"{name} is not valid Unicode text", name) from None


@dataclass(frozen=True)
class PatchLine:
    """One line of a unified diff, with the file lines it stands for."""

    text: str
    old: int | None = None
    """Its line number in the old file (removed and context lines)."""
    new: int | None = None
    """Its line number in the new file (added and context lines)."""

    @property
    def side(self) -> str | None:
        """Where a comment on it points: "new" for added and context lines, "old" for removed
        ones, None for headers."""
        return "new" if self.new is not None else "old" if self.old is not None else None

    @property
    def line(self) -> int | None:
        """The line number on `side`."""
        return self.new if self.new is not None else self.old

    @property
    def content(self) -> str:
        """The line of the file itself, without the diff's +/-/space prefix."""
        return self.text[1:] if self.side else self.text


def patch_lines(patch: str) -> list[PatchLine]:
    """The lines of a unified diff, each with the file lines it stands for."""
    lines: list[PatchLine] = []
    old = new = 0
    in_hunk = False
    for text in patch.splitlines():
        match = _HUNK.match(text)
        if match:
            old, new, in_hunk = int(match[1]), int(match[2]), True
            lines.append(PatchLine(text))
        elif in_hunk and text.startswith("+"):
            lines.append(PatchLine(text, new=new))
            new += 1
        elif in_hunk and text.startswith("-"):
            lines.append(PatchLine(text, old=old))
            old += 1
        elif in_hunk and text.startswith(" "):
            lines.append(PatchLine(text, old=old, new=new))
            old, new = old + 1, new + 1
        else:
            lines.append(PatchLine(text))
    return lines


def line_in_patch(patch: str, line: int, side: str = "new") -> str | None:
    """The text of LINE on SIDE of a file's unified diff, when a hunk shows it."""
    for row in patch_lines(patch):
        if (row.old if side == "old" else row.new) == line:
            return row.content.rstrip("\r")
    return None


def compose_message(text: str, comments: list[Comment], shell: bool = False) -> str:
    """The message the agent receives: TEXT, then the comments as a block it acts on.

    For SHELL (an agent that runs its message as bash), the block is a bash comment, so
    nothing quoted from a file or a reviewer can run.
    """
    if not comments:
        return text
    lines = ["Review comments on your changes:"]
    for c in comments:
        quoted = f": `{c.line_text}`" if c.line_text is not None else ""
        lines.append(f"- {c.path} line {c.line} ({c.side}){quoted}")
        first, *rest = c.text.strip().splitlines() or [""]
        lines += [f"  Comment: {first}", *(f"  {more}" for more in rest)]
    body = text if text.strip() else DEFAULT_TEXT
    if shell:
        if not text.strip():
            body = "# " + DEFAULT_TEXT
        # splitlines breaks at every character bash ends a line at (and more).
        lines = ["# " + row for line in lines for row in line.splitlines() or [""]]
    return body + "\n\n" + "\n".join(lines) + "\n"
