"""Handing a session's work over: its branch as a bundle, its conversation, a push to a remote.

Teleport and sync-back fetch the bundle and the conversation through the API (so they work for
sandboxed and remote runtimes alike); push happens here, on the server, from the session's
branch to a remote of its source repository.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..agents import claude_files
from ..core.errors import CattyError, Conflict, NotFound, TooLarge
from ..core.gitcmd import GitError, git, run_git
from ..core.models import Session
from ..core.workspace import without_credentials
from .review import SessionReview

MAX_HAVE = 256
"""The most commits a receiver may name as already had."""
PUSH_TIMEOUT = 300.0
"""Seconds a push may take."""

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_REMOTE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}")
_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
"""A user name (and password) in a URL, as git may print it in an error."""


class Bundle:
    """A bundle file made for one request, and what it holds; `discard()` removes it."""

    def __init__(self, directory: Path, info: dict[str, Any]) -> None:
        self.directory = directory
        self.path = directory / "session.bundle"
        self.info = info

    def discard(self) -> None:
        """Remove the bundle file."""
        shutil.rmtree(self.directory, ignore_errors=True)


class SessionHandoff:
    """Bundles of session branches, session conversations, and pushes."""

    def __init__(
        self, review: SessionReview, session_dir: Callable[[Session], Path],
        note: Callable[[Session, str, dict[str, Any]], None],
    ) -> None:  # fmt: skip
        self.review = review
        self.session_dir = session_dir
        self.note = note
        """Records a `system` event in a session's transcript."""
        self._locks: dict[str, asyncio.Lock] = {}

    async def bundle(
        self, session: Session, have: list[str] | None = None, record: bool = True,
        all_refs: bool = False,
    ) -> Bundle:  # fmt: skip
        """A bundle of the session's branch as its workspace is now (RECORD: the agent's
        uncommitted work is committed onto the branch first, in a commit that says so); HAVE
        names commits the receiver has, ALL_REFS adds every branch and tag."""
        have = _checked_have(have or [])
        directory = Path(tempfile.mkdtemp(prefix="catty-bundle-"))
        out = directory / "session.bundle"
        args = [session.label, str(out), *(f"--have={sha}" for sha in have),
                *(["--record"] if record else []), *(["--all"] if all_refs else [])]  # fmt: skip
        writable = (directory, self.session_dir(session) / "workspace") if record else (directory,)
        try:
            async with self._locks.setdefault(session.id, asyncio.Lock()):
                info = await self.review.run_tool(
                    session, "handoff", args, what="bundle", writable=writable
                )
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        if info.get("recorded"):
            self.note(session, (
                f"the agent's uncommitted work was committed onto {info.get('branch')} as "
                f"{str(info.get('commit'))[:12]}, so the branch holds what the diff shows"
            ), {"commit": info.get("commit"), "branch": info.get("branch")})  # fmt: skip
        return Bundle(directory, info)

    def teleport_info(self, session: Session) -> dict[str, Any]:
        """What a local checkout needs to know before it takes the session's branch."""
        conversation = None
        if session.agent == "claude":
            sid = claude_files.saved_session_id(self.session_dir(session) / "state")
            if sid is not None:
                conversation = {"agent": "claude", "session_id": sid, "cwd": self._cwd(session)}
        return {
            "label": session.label, "agent": session.agent, "branch": session.branch,
            "base_commit": session.base_commit, "source": session.source,
            "origin": session.origin or {"kind": "unknown", "remotes": {}, "roots": []},
            "state": session.state.value, "conversation": conversation,
        }  # fmt: skip

    def conversation(
        self, session: Session
    ) -> tuple[str, str, list[claude_files.ConversationFile]]:
        """The agent's own files of the session's conversation: (session id, the working
        directory the agent saw, the files)."""
        if session.agent != "claude":
            raise NotFound(f"{session.label} runs the {session.agent} agent, which keeps no "
                           "conversation of its own; its transcript is all there is",
                           reason="no_conversation")  # fmt: skip
        state = self.session_dir(session) / "state"
        sid = claude_files.saved_session_id(state)
        if sid is None:
            raise NotFound(f"{session.label} has no Claude Code conversation yet",
                           reason="no_conversation")  # fmt: skip
        cwd = self._cwd(session)
        try:
            files = claude_files.find_conversation(state / claude_files.CONFIG_DIR, sid, cwd)
        except claude_files.ConversationError as exc:
            if "over" in str(exc):
                raise TooLarge(str(exc)) from None
            raise NotFound(str(exc), reason="no_conversation") from None
        return sid, cwd, files

    def _cwd(self, session: Session) -> str:
        # The sandbox shows the workspace at its host path, so that is the agent's cwd.
        return str(self.session_dir(session) / "workspace")

    # -- push -------------------------------------------------------------------------------

    async def push(self, session: Session, remote: str) -> dict[str, Any]:
        """Push the session's branch (uncommitted work committed first) to REMOTE of the
        session's source repository."""
        if not _REMOTE.fullmatch(remote):
            raise CattyError(f"{remote!r} is not a remote name", reason="bad_remote")
        source = _source_repo(session)
        url = _remote_url(session, source, remote)
        bundle = await self.bundle(session, have=[session.base_commit] if source and
                                   session.base_commit else [])  # fmt: skip
        try:
            commit = str(bundle.info["commit"])
            await asyncio.wait_for(
                asyncio.to_thread(_push, bundle.path, session.branch, url, source),
                PUSH_TIMEOUT,
            )
        finally:
            bundle.discard()
        shown = without_credentials(url)
        self.note(session, f"{session.branch} pushed to {remote} ({shown}) at {commit[:12]}",
                  {"pushed": commit, "remote": remote})  # fmt: skip
        return {"remote": remote, "url": shown, "branch": session.branch, "commit": commit}


def _checked_have(have: list[str]) -> list[str]:
    if not isinstance(have, list) or len(have) > MAX_HAVE:
        raise CattyError(f"have must be a list of at most {MAX_HAVE} commit ids",
                         reason="bad_have")  # fmt: skip
    for sha in have:
        if not isinstance(sha, str) or not _SHA.fullmatch(sha):
            raise CattyError(f"have: {sha!r} is not a full commit id", reason="bad_have")
    return have


def _source_repo(session: Session) -> Path | None:
    """The session's source repository, when it is still there."""
    if not session.source or (session.origin or {}).get("kind") not in (None, "repo"):
        return None
    path = Path(session.source)
    proc = run_git("rev-parse", "--git-dir", cwd=path, check=False) if path.is_dir() else None
    return path if proc is not None and proc.returncode == 0 else None


def _remote_url(session: Session, source: Path | None, remote: str) -> str:
    """The push URL of REMOTE: from the source repository, else as recorded at creation."""
    if source is not None:
        proc = run_git("remote", "get-url", "--push", remote, cwd=source, check=False)
        if proc.returncode == 0:
            return proc.stdout.decode().strip()
        names = git("remote", cwd=source).split()
    else:
        recorded = (session.origin or {}).get("remotes") or {}
        if remote in recorded:
            return str(recorded[remote])
        names = sorted(recorded)
    if not names:
        raise Conflict(f"{session.label}'s source repository has no remote to push to; add one "
                       "(git remote add NAME URL) or teleport the branch instead",
                       reason="no_remote")  # fmt: skip
    raise CattyError(f"the source repository has no remote {remote!r}; it has: "
                     f"{', '.join(names)}", reason="unknown_remote")  # fmt: skip


def _push(bundle: Path, branch: str, url: str, source: Path | None) -> None:
    """Fetch BRANCH from BUNDLE into a scratch repository (borrowing the source's objects) and
    push it from there, so the user's checkout is not touched."""
    ref = f"refs/heads/{branch}"
    with tempfile.TemporaryDirectory(prefix="catty-push-") as tmp:
        scratch = Path(tmp) / "push.git"
        git("init", "--quiet", "--bare", str(scratch))
        if source is not None:
            objects = git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=source)
            (scratch / "objects" / "info" / "alternates").write_text(f"{objects}/objects\n")
        try:
            git("fetch", "--quiet", str(bundle), f"+{ref}:{ref}", cwd=scratch)
            git("push", "--quiet", "--porcelain", url, f"{ref}:{ref}", cwd=scratch)
        except GitError as exc:
            said = _CREDENTIALS.sub(lambda m: m.group(1), exc.stderr.strip())[-800:]
            rejected = "rejected" in exc.stderr or "non-fast-forward" in exc.stderr
            raise CattyError(
                f"git push to {without_credentials(url)} failed: {said}",
                reason="push_rejected" if rejected else "push_failed",
                status=409 if rejected else 502,
            ) from None
