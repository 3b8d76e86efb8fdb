"""Claude Code's own session files: find a session's conversation, and install it elsewhere.

Claude Code keeps each conversation at
`$CLAUDE_CONFIG_DIR/projects/<working directory, every non-alphanumeric turned into '-'>/
<session id>.jsonl` (plus, for some sessions, a directory `<session id>/` beside it). `claude
--resume <id>` looks only in the project directory of the directory it runs in, and the
conversation names its working directory in many places; so moving a conversation to another
checkout means rewriting those paths and choosing the new project directory.

This module does not import the SDK: the server and the command line use it cheaply.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

SESSION_FILE = "claude-session.json"
"""Where, in a catty session's state dir, the Claude Code session id is kept for resume."""
CONFIG_DIR = "claude"
"""The session's CLAUDE_CONFIG_DIR, inside its state dir."""
MAX_CONVERSATION_BYTES = 256 << 20
"""The largest conversation handed over (its files together)."""

_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


class ConversationError(Exception):
    """A conversation cannot be found, read or installed; the message says why."""


@dataclass(frozen=True)
class ConversationFile:
    """One file of a conversation: its path relative to the project directory, and its bytes."""

    path: str
    data: bytes


def project_dir_name(cwd: str) -> str:
    """The name of Claude Code's project directory for working directory CWD."""
    return re.sub(r"[^A-Za-z0-9]", "-", cwd)


def user_config_dir() -> Path:
    """Where the user's own Claude Code keeps its files: $CLAUDE_CONFIG_DIR, else ~/.claude."""
    configured = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".claude"


def saved_session_id(state_dir: Path) -> str | None:
    """The Claude Code session id a catty session saved, or None (never ran a turn)."""
    try:
        data = json.loads((state_dir / SESSION_FILE).read_text())
    except (OSError, ValueError):
        return None
    found = str(data.get("session_id") or "") if isinstance(data, dict) else ""
    return found if _SESSION_ID.fullmatch(found) else None


def find_conversation(config_dir: Path, session_id: str, cwd: str) -> list[ConversationFile]:
    """The files of conversation SESSION_ID that Claude Code, run in CWD with CONFIG_DIR, kept.

    Regular files only, read without following symlinks (the agent wrote them).
    """
    if not _SESSION_ID.fullmatch(session_id):
        raise ConversationError(f"{session_id!r} is not a Claude Code session id")
    project = config_dir / "projects" / project_dir_name(cwd)
    files: list[ConversationFile] = []
    total = 0
    candidates = [project / f"{session_id}.jsonl"]
    extra = project / session_id
    if extra.is_dir() and not extra.is_symlink():
        candidates += sorted(p for p in extra.rglob("*") if not _through_symlink(p, project))
    for path in candidates:
        data = _read_regular(path)
        if data is None:
            continue
        total += len(data)
        if total > MAX_CONVERSATION_BYTES:
            raise ConversationError(
                f"the conversation is over {MAX_CONVERSATION_BYTES >> 20} MiB; it cannot be "
                "handed over"
            )
        files.append(ConversationFile(path.relative_to(project).as_posix(), data))
    if not files or files[0].path != f"{session_id}.jsonl":
        raise ConversationError(f"Claude Code's file for conversation {session_id} is missing")
    return files


def install_conversation(
    files: list[ConversationFile], config_dir: Path, from_cwd: str, to_cwd: str
) -> Path:
    """Write FILES as a conversation of working directory TO_CWD under CONFIG_DIR, with every
    mention of FROM_CWD rewritten to TO_CWD; return the conversation's main file."""
    project = config_dir / "projects" / project_dir_name(to_cwd)
    written: Path | None = None
    for item in files:
        parts = Path(item.path).parts
        if not parts or Path(item.path).is_absolute() or ".." in parts:
            raise ConversationError(f"{item.path!r} is not a path inside a conversation")
        target = project / Path(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.name}.catty-tmp")
        temp.write_bytes(rewrite_paths(item.data, from_cwd, to_cwd))
        os.replace(temp, target)
        if written is None:
            written = target
    if written is None:
        raise ConversationError("the conversation has no files")
    return written


def rewrite_paths(data: bytes, from_cwd: str, to_cwd: str) -> bytes:
    """DATA with the working directory FROM_CWD replaced by TO_CWD, as plain text and as it
    appears inside JSON strings."""
    if from_cwd == to_cwd:
        return data
    old, new = from_cwd.rstrip("/"), to_cwd.rstrip("/")
    pairs = {(old, new), (json.dumps(old)[1:-1], json.dumps(new)[1:-1])}
    # Longest first, so that an escaped form is not half-replaced by its plain form.
    for before, after in sorted(pairs, key=lambda pair: -len(pair[0])):
        data = _replace_path(data, before.encode(), after.encode())
    return data


def _replace_path(data: bytes, old: bytes, new: bytes) -> bytes:
    # Only whole path prefixes: /a/work must not turn /a/workshop into /b/repshop.
    pattern = re.compile(re.escape(old) + rb"(?=[/\\\"'\s:,)\]}]|$)")
    return pattern.sub(lambda _m: new, data)


def _read_regular(path: Path) -> bytes | None:
    """PATH's bytes when it is a regular file (not through a symlink at its end), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read(MAX_CONVERSATION_BYTES + 1)


def _through_symlink(path: Path, root: Path) -> bool:
    current = path
    while current != root and current != current.parent:
        if current.is_symlink():
            return True
        current = current.parent
    return False
