"""Review of sessions: their diff (computed in a read-only sandbox), diffstat and line comments."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from ..core.comments import MAX_QUEUED, Comment, compose_message, line_in_patch, parse_comment
from ..core.errors import CattyError, Conflict, NotFound, TooLarge, Unavailable
from ..core.models import Session
from ..core.store import Store
from ..sandbox.bwrap import SandboxUnavailable, python_paths, review_command
from .runtime import inherited_env

DIFF_TIMEOUT = 60.0
"""Seconds one diff may take before it is abandoned."""
MAX_OUTPUT_BYTES = 64 << 20
"""The most JSON a diff run may print (its patches are capped well below)."""


class SessionReview:
    """Diffs of session workspaces, the diffstat kept in each session, and queued comments."""

    def __init__(
        self, store: Store, workspace_of: Callable[[Session], Path],
        hidden: Callable[[], list[Path]], log: logging.Logger, timeout: float = DIFF_TIMEOUT,
        on_diffstat: Callable[[str], None] | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.workspace_of = workspace_of
        self.hidden = hidden
        self.log = log
        self.timeout = timeout
        self.on_diffstat = on_diffstat
        """Called with a session's id once its new diffstat is saved."""
        self._slots = asyncio.Semaphore(2)
        self._refreshing: set[str] = set()
        self._again: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- the diff -----------------------------------------------------------------------------

    async def diff(
        self, session: Session, stat_only: bool = False, paths: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """The session's workspace against its base commit, running or stopped.

        The work happens in `python -m catty_jupyter.core.review`, inside a read-only sandbox
        for sandboxed sessions: the agent wrote every byte it reads.
        """
        args = [session.base_commit or "-", *(["--stat"] if stat_only else []),
                *(f"--path={p}" for p in paths)]  # fmt: skip
        result = await self.run_tool(session, "review", args, what="diff")
        if not isinstance(result.get("files"), list):
            raise CattyError(f"the diff of {session.label} came back unreadable",
                             reason="diff_failed", status=500)  # fmt: skip
        return result

    async def run_tool(
        self, session: Session, module: str, args: list[str], *, what: str,
        writable: tuple[Path, ...] = (),
    ) -> dict[str, Any]:  # fmt: skip
        """Run `python -m catty_jupyter.core.MODULE WORKSPACE ARGS…` on the session's workspace
        (in a sandbox for sandboxed sessions, where only WRITABLE can be written) and return
        the JSON object it prints. WHAT names the work in errors (`diff`, `bundle`)."""
        workspace = self.workspace_of(session)
        if not (workspace / ".git").exists():
            raise Conflict(f"session {session.label} has no workspace repository ({what})",
                           reason="no_workspace")  # fmt: skip
        argv = [sys.executable, "-I", "-m", f"catty_jupyter.core.{module}", str(workspace), *args]
        env = {**inherited_env(), "PYTHONDONTWRITEBYTECODE": "1"}
        if session.sandboxed:
            try:
                argv = review_command(workspace, self.hidden(), python_paths(), argv,
                                      writable=writable)  # fmt: skip
            except SandboxUnavailable as exc:
                # Never run git on what a confined agent wrote without the sandbox.
                raise Unavailable(f"the {what} of a sandboxed session needs bubblewrap: {exc}",
                                  reason="no_sandbox") from None  # fmt: skip
            env["TMPDIR"] = "/tmp"
        async with self._slots:
            out, err, code = await self._run(argv, env, workspace, what)
        if code != 0:
            detail = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {code}"]
            raise CattyError(f"could not make the {what} of {session.label}: {detail[0]}",
                             reason=f"{what}_failed", status=500)  # fmt: skip
        try:
            result = json.loads(out)
        except ValueError:
            result = None
        if not isinstance(result, dict):
            raise CattyError(f"the {what} of {session.label} came back unreadable",
                             reason=f"{what}_failed", status=500)  # fmt: skip
        return result

    async def _run(
        self, argv: list[str], env: dict[str, str], cwd: Path, what: str
    ) -> tuple[bytes, bytes, int]:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True, limit=1 << 20,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(_communicate(proc, what), self.timeout)
        except BaseException as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            if isinstance(exc, TimeoutError):
                raise CattyError(f"the {what} took over {self.timeout:.0f} s and was abandoned; "
                                 "the workspace may be very large", reason=f"{what}_timeout",
                                 status=500) from None  # fmt: skip
            raise
        return out, err, proc.returncode or 0

    # -- the diffstat -------------------------------------------------------------------------

    def refresh_diffstat(self, session_id: str) -> None:
        """Measure the session's diffstat again, in the background (one run at a time)."""
        if session_id in self._refreshing:
            self._again.add(session_id)
            return
        self._refreshing.add(session_id)
        self._spawn(self._refresh(session_id))

    async def _refresh(self, session_id: str) -> None:
        try:
            again = True
            while again:
                self._again.discard(session_id)
                session = self.store.get_session(session_id)
                if session is None:
                    return
                try:
                    result = await self.diff(session, stat_only=True)
                except Exception as exc:
                    self.log.warning("catty: no diffstat for %s: %s", session.label, exc)
                    return
                current = self.store.get_session(session_id)
                if current is None:
                    return
                current.runtime["diffstat"] = diffstat(result)
                self.store.save_session(current)
                if self.on_diffstat is not None:
                    self.on_diffstat(session_id)
                again = session_id in self._again
        finally:
            self._refreshing.discard(session_id)

    # -- comments -----------------------------------------------------------------------------

    async def add_comment(
        self, session: Session, body: dict[str, Any], client: str | None
    ) -> Comment:
        """Queue a comment on a line (BadComment names a bad field); finds the line's text."""
        path, line, side, text = parse_comment(body)
        if len(self.store.queued_comments(session.id)) >= MAX_QUEUED:
            raise Conflict(f"{session.label} already has {MAX_QUEUED} comments waiting; send them "
                           "with a message, or withdraw some", reason="too_many_comments")  # fmt: skip
        comment = Comment(path=path, line=line, side=side, text=text,
                          line_text=await self._line_text(session, path, line, side), client=client)  # fmt: skip
        self.store.add_comment(session.id, comment)
        return comment

    async def _line_text(self, session: Session, path: str, line: int, side: str) -> str | None:
        try:
            result = await self.diff(session, paths=(path,))
        except CattyError as exc:
            self.log.info("catty: no line text for a comment on %s: %s", session.label, exc)
            return None
        for f in result["files"]:
            name = (f.get("old_path") or f.get("path")) if side == "old" else f.get("path")
            if name == path and isinstance(f.get("patch"), str):
                return line_in_patch(f["patch"], line, side)
        return None

    def queued(self, session: Session) -> list[Comment]:
        """The comments waiting for the session's next message."""
        return self.store.queued_comments(session.id)

    def withdraw(self, session: Session, comment_id: str) -> None:
        """Remove a queued comment."""
        if not self.store.withdraw_comment(session.id, comment_id):
            raise NotFound(f"{session.label} has no queued comment {comment_id!r} (sent already?)")

    def message(self, session: Session, text: str, comments: list[Comment], max_bytes: int) -> str:
        """What the agent receives for TEXT with the queued COMMENTS."""
        message = compose_message(text, comments, shell=session.agent == "shell")
        if not message.strip():
            raise CattyError("the message is empty", reason="empty_message")
        size = len(message.encode())
        if comments and size > max_bytes:
            raise TooLarge(f"the message with its {len(comments)} review comments is {size} bytes, "
                           f"over the {max_bytes}-byte limit; withdraw some comments or send a "
                           "shorter message")  # fmt: skip
        return message

    def mark_sent(self, session: Session, comments: list[Comment]) -> None:
        """The comments went to the agent: they are no longer queued."""
        self.store.mark_comments_sent(session.id, [c.id for c in comments])

    # -- life -----------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Let diffstat runs under way finish (seconds at most), then abandon the rest.

        A sandbox killed while bwrap is still setting it up can leave its inner process behind,
        so the server going away waits a little rather than kill mid-start.
        """
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=CLOSE_GRACE)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


CLOSE_GRACE = 5.0
"""Seconds a stopping server waits for diffstat runs under way."""


def diffstat(result: dict[str, Any]) -> dict[str, int]:
    """The summary a session keeps of a diff: files changed, lines added and removed."""
    return {"files": int(result.get("files_changed") or 0), "added": int(result.get("added") or 0),
            "removed": int(result.get("removed") or 0)}  # fmt: skip


async def _tail(stream: asyncio.StreamReader, keep: int) -> bytes:
    """Everything STREAM says until it ends, of which the last KEEP bytes are kept."""
    kept = b""
    while chunk := await stream.read(1 << 16):
        kept = (kept + chunk)[-keep:]
    return kept


async def _communicate(proc: asyncio.subprocess.Process, what: str) -> tuple[bytes, bytes]:
    """PROC's stdout and stderr, refusing more than MAX_OUTPUT_BYTES."""
    assert proc.stdout is not None and proc.stderr is not None
    err_task = asyncio.ensure_future(_tail(proc.stderr, 1 << 16))
    chunks, size = [], 0
    while chunk := await proc.stdout.read(1 << 20):
        size += len(chunk)
        if size > MAX_OUTPUT_BYTES:
            err_task.cancel()
            raise CattyError(f"the {what} is too large to show", reason=f"{what}_too_large",
                             status=500)  # fmt: skip
        chunks.append(chunk)
    err = await err_task
    await proc.wait()
    return b"".join(chunks), err
