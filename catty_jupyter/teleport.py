"""Teleport: take a session's branch and conversation into a local checkout of its repository.

The command line (`jupyter catty teleport`) and the magic (`%catty teleport`) both call
`teleport`. Everything arrives through the API (a git bundle of the session's branch, the
agent's own conversation files), so it works the same for sandboxed and remote runtimes. It
refuses rather than guesses: another repository, a fork, uncommitted changes (unless told to
stash them) and a local branch of the same name with commits of its own all stop it before it
changes anything.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .agents import claude_files
from .client import CattyClient, ClientError
from .core.gitcmd import run_git
from .core.workspace import without_credentials

SHOWN_CHANGES = 5
"""How many uncommitted paths a refusal lists."""
_TRANSCRIPT_PAGE = 5000


class TeleportError(Exception):
    """Teleport stopped before changing anything it should not; the message says why."""


class NotThisRepository(TeleportError):
    """The checkout is another repository, or a fork of the session's."""


class UncommittedChanges(TeleportError):
    """The checkout has uncommitted changes; teleport again with stash to set them aside."""

    def __init__(self, message: str, checkout: str, changes: list[str]) -> None:
        super().__init__(message)
        self.checkout = checkout
        self.changes = changes
        """`git status --porcelain` lines (all of them, not only those the message lists)."""


class BranchDiverged(TeleportError):
    """A local branch of the session's name has commits the session's branch lacks."""


@dataclass
class TeleportResult:
    """What teleport did."""

    label: str
    agent: str
    checkout: str
    """The checkout's top-level directory."""
    branch: str
    commit: str
    """The commit the session's branch is at, now checked out."""
    previous: str
    """What was checked out before (a branch name, or a commit)."""
    branch_update: str
    """`created`, `fast-forwarded` or `unchanged`."""
    uncommitted: bool
    """The agent had left work uncommitted, now committed onto the branch (the commit says so)."""
    stash: str | None = None
    """The stash entry holding the checkout's own uncommitted changes, when stashed."""
    session_id: str | None = None
    """The agent's own conversation id (claude)."""
    conversation_file: str | None = None
    """Where the conversation was installed for the user's own Claude Code."""
    transcript_file: str | None = None
    """The session's catty transcript, saved as JSON lines."""
    events: int = 0
    notes: list[str] = field(default_factory=list)
    """Things worth telling the user (the agent still busy, no conversation yet, …)."""

    @property
    def resume_command(self) -> str | None:
        """What to run in the checkout to continue the conversation, when there is one."""
        return f"claude --resume {self.session_id}" if self.conversation_file else None

    def to_json(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return {**asdict(self), "resume_command": self.resume_command}


def teleport(
    client: CattyClient, label: str, checkout: Path, *, stash: bool = False,
    progress: Callable[[str], object] = lambda _line: None,
    claude_config: Path | None = None,
) -> TeleportResult:  # fmt: skip
    """Check session LABEL's branch out in the git checkout holding CHECKOUT and install its
    conversation where the user's own agent finds it.

    Refuses another repository, a fork, uncommitted changes (STASH sets them aside first) and a
    local `catty/LABEL` with commits of its own. PROGRESS receives a line per step;
    CLAUDE_CONFIG is Claude Code's config directory (default: $CLAUDE_CONFIG_DIR, ~/.claude).
    """
    top = checkout_top(checkout)
    info = client.teleport_info(label)
    label = str(info["label"])
    check_same_repository(top, info)
    changes = uncommitted_changes(top)
    if changes and not stash:
        raise UncommittedChanges(_dirty_message(top, label, changes), str(top), changes)
    progress(f"{label}: {top} is a checkout of its repository")
    notes = _busy_note(client, label) if info.get("state") == "running" else []

    # The transcript travels while the branch is bundled and fetched (it can be long).
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catty-transcript")
    transcript = pool.submit(_download_transcript, client, label, top)
    pool.shutdown(wait=False)
    try:
        result = _take_branch(client, top, info, changes, notes, progress)
    except BaseException:
        _discard(transcript)
        raise
    try:
        result.transcript_file, result.events = _keep(transcript)
        progress(f"transcript: {result.events} events saved in {result.transcript_file}")
    except (ClientError, OSError) as exc:
        result.notes.append(f"the transcript could not be saved: {exc}")
    _install_conversation(client, info, top, result, claude_config)
    if result.conversation_file:
        progress(f"conversation {result.session_id} installed for Claude Code")
    return result


def _take_branch(
    client: CattyClient, top: Path, info: dict[str, Any], changes: list[str], notes: list[str],
    progress: Callable[[str], object],
) -> TeleportResult:  # fmt: skip
    """Fetch the session's branch, stash the checkout's changes (when there are any: teleport
    was told to), and check the branch out."""
    label, branch = str(info["label"]), str(info["branch"])
    local_tip = _commit(top, f"refs/heads/{branch}")
    progress(f"fetching {branch} from the server")
    tip, uncommitted = _fetch(client, top, info, local_tip)
    update = _branch_update(top, branch, local_tip, tip)
    if uncommitted:
        progress("the agent's uncommitted work was committed onto the branch (the commit says so)")
    stash_entry = _stash(top, label) if changes else None
    if stash_entry:
        progress(f"your uncommitted changes are stashed: {stash_entry}")
    previous = _current(top)
    try:
        _move_branch(top, branch, local_tip, tip, update, previous)
    except TeleportError as exc:
        kept = f"; your changes are in {stash_entry.split(':')[0]}" if stash_entry else ""
        raise TeleportError(f"{exc}{kept}") from None
    was = "" if previous == branch else f" (you were on {previous})"
    progress(f"checked out {branch} at {tip[:12]}{was}")

    result = TeleportResult(
        label=label, agent=str(info["agent"]), checkout=str(top), branch=branch, commit=tip,
        previous=previous, branch_update=update, uncommitted=uncommitted, stash=stash_entry,
        notes=notes,
    )  # fmt: skip
    return result


def _fetch(
    client: CattyClient, top: Path, info: dict[str, Any], local_tip: str | None
) -> tuple[str, bool]:
    """Fetch the session's branch into TOP's object store (no ref moves yet): its tip, and
    whether the agent's uncommitted work was committed onto it."""
    label, ref = str(info["label"]), f"refs/heads/{info['branch']}"
    known = (info.get("base_commit"), local_tip, _commit(top, "HEAD"))
    have = [str(sha) for sha in dict.fromkeys(known) if sha and _commit(top, str(sha))]
    with tempfile.TemporaryDirectory(prefix="catty-teleport-") as tmp:
        bundle = Path(tmp) / f"{label}.bundle"
        got = client.bundle(label, bundle, have=have, record=True)
        tip = _bundle_tip(top, bundle, ref)
        _git(top, "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(bundle), ref)
    return tip, bool(got.get("uncommitted"))


# -- which repository -------------------------------------------------------------------------


def checkout_top(path: Path) -> Path:
    """The top-level directory of the git checkout holding PATH."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise TeleportError(f"{path} is not a directory")
    proc = run_git("rev-parse", "--show-toplevel", cwd=path, check=False)
    top = os.fsdecode(proc.stdout).strip()
    if proc.returncode != 0 or not top:
        raise TeleportError(
            f"{path} is not inside a git checkout; run teleport in a clone of the session's "
            "repository (or point at one with --dir)"
        )
    return Path(top)


def check_same_repository(top: Path, info: dict[str, Any]) -> None:
    """Refuse unless TOP is the session's repository: its history, and not a fork of it."""
    label, origin = info["label"], info.get("origin") or {}
    kind, source = origin.get("kind"), str(info.get("source") or "")
    if kind == "empty":
        raise NotThisRepository(
            f"{label} started in an empty workspace, so no local repository is its own; get "
            f"its files with `jupyter catty download {label}` (or `%catty download {label}`)"
        )
    same_dir = bool(source) and _same_path(top, source)
    base, roots = info.get("base_commit"), [str(r) for r in origin.get("roots") or []]
    shares = (base and _commit(top, str(base))) or any(_commit(top, r) for r in roots)
    if not shares and not (same_dir and not base and not roots):
        came = f"{source}" if source else "another repository"
        if kind == "archive":
            came = "an uploaded archive"
        raise NotThisRepository(
            f"{top} is not the repository {label} came from ({came}): they share no history. "
            f"Run teleport in a checkout of that repository, or get the files with "
            f"`jupyter catty download {label}`"
        )
    if same_dir or kind == "unknown":
        # A session older than origin records: its history is all there is to compare.
        return
    theirs = {name: str(url) for name, url in (origin.get("remotes") or {}).items()}
    _check_not_a_fork(top, label, source, theirs)


def _check_not_a_fork(top: Path, label: str, source: str, theirs: dict[str, str]) -> None:
    ours = {name: without_credentials(url) for name, url in local_remotes(top).items()}
    mine = {name: normalise_url(url, top) for name, url in ours.items()}
    known_source = {normalise_url(source, top)} if source else set()
    known = {normalise_url(url, Path(source or "/")) for url in theirs.values()} | known_source
    if not theirs:
        if not ours or known & set(mine.values()):
            return
        shown = ", ".join(f"{n} {u}" for n, u in sorted(ours.items()))
        raise NotThisRepository(
            f"{top} has the same history, but its remotes ({shown}) are not where {label} came "
            f"from: {source}, which has no remote. Teleport into {source} or a clone of it"
        )
    names = sorted(theirs, key=lambda n: (n != "origin", n))
    shared = [n for n in names if n in mine]
    if shared:
        name = shared[0]
        # A clone of the very source directory (its origin is that path) is the same repository.
        if mine[name] in (normalise_url(theirs[name], Path(source or "/")), *known_source):
            return
        raise NotThisRepository(
            f"{top} has the same history, but its {name} is {ours[name]} and {label} came from "
            f"{theirs[name]}: a fork is not the same repository. Teleport into a clone of "
            f"{theirs[name]}"
        )
    if known & set(mine.values()):
        return
    wanted = theirs[names[0]]
    have = ", ".join(f"{n} {u}" for n, u in sorted(ours.items())) or "no remotes"
    raise NotThisRepository(
        f"{top} has the same history but {have}; {label} came from {wanted}. Teleport into a "
        f"clone of it, or add it here: git remote add {names[0]} {wanted}"
    )


def local_remotes(top: Path) -> dict[str, str]:
    """The checkout's remotes: name → URL."""
    out = _git(top, "config", "--get-regexp", r"^remote\..*\.url$", check=False) or ""
    found = {}
    for line in out.splitlines():
        key, _, url = line.partition(" ")
        found[key.removeprefix("remote.").removesuffix(".url")] = url.strip()
    return found


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://([^/]*)(.*)$")
_SCP = re.compile(r"^(?:[^@/:]+@)?([^/:]+):(.*)$")
_PORT = re.compile(r":\d*$")


def normalise_url(url: str, base: Path) -> str:
    """URL in a form where two spellings of one repository compare equal: `git@host:o/r.git`,
    `ssh://git@host:22/o/r` and `https://user:pw@HOST/o/r/` all become `host/o/r`; a local
    path (relative ones against BASE) becomes its absolute form."""
    url = url.strip()
    if m := _SCHEME.match(url):
        scheme, authority, path = m.groups()
        if scheme.lower() == "file":
            return _path_key(Path(path or "/"))
        host = _PORT.sub("", authority.rpartition("@")[2])
        return f"{host.lower()}/{_strip(path)}"
    if (m := _SCP.match(url)) and "/" not in url.split(":", 1)[0]:
        host, path = m.groups()
        return f"{host.lower()}/{_strip(path)}"
    path = Path(url).expanduser()
    return _path_key(path if path.is_absolute() else base / path)


def _strip(path: str) -> str:
    path = path.strip("/")
    path = path.removesuffix(".git").rstrip("/")
    return path


def _path_key(path: Path) -> str:
    resolved = os.path.realpath(path)
    return "file:" + resolved.removesuffix("/").removesuffix(".git").removesuffix("/")


def _same_path(top: Path, other: str) -> bool:
    return os.path.realpath(top) == os.path.realpath(other)


# -- the checkout ------------------------------------------------------------------------------


def uncommitted_changes(top: Path) -> list[str]:
    """The checkout's uncommitted changes: changed tracked files and untracked files that are
    not ignored, as `git status --porcelain` lines."""
    proc = run_git("status", "--porcelain", cwd=top, check=False)
    if proc.returncode != 0:
        said = os.fsdecode(proc.stderr).strip()[-800:]
        raise TeleportError(f"git status failed in {top}: {said}")
    return [line for line in os.fsdecode(proc.stdout).splitlines() if line]


def listed_changes(changes: list[str]) -> str:
    """The first few CHANGES, one per indented line, and how many more there are."""
    shown = "\n".join(f"  {line}" for line in changes[:SHOWN_CHANGES])
    more = len(changes) - SHOWN_CHANGES
    return shown + (f"\n  … and {more} more" if more > 0 else "")


def _dirty_message(top: Path, label: str, changes: list[str]) -> str:
    return (
        f"{top} has uncommitted changes, and teleport checks out another branch:\n"
        f"{listed_changes(changes)}\n"
        "Commit them, or teleport again with --stash to set them aside first "
        f"(`git stash push --include-untracked`; `git stash pop` brings them back).\n"
        f"Nothing was changed; {label} was not fetched."
    )


def _stash(top: Path, label: str) -> str | None:
    before = _commit(top, "refs/stash")
    _git(top, "stash", "push", "--include-untracked", "--quiet", "-m",
         f"catty: before teleport of {label}")  # fmt: skip
    after = _commit(top, "refs/stash")
    if after is None or after == before:
        return None
    return _git(top, "stash", "list", "-1", "--format=%gd: %gs")


def _bundle_tip(top: Path, bundle: Path, ref: str) -> str:
    heads = _git(top, "bundle", "list-heads", str(bundle), ref, check=False) or ""
    for line in heads.splitlines():
        sha, _, name = line.partition(" ")
        if name == ref:
            return sha
    raise TeleportError(f"the server's bundle holds no {ref}; teleport again, or report this")


def _branch_update(top: Path, branch: str, local: str | None, tip: str) -> str:
    """How the local BRANCH moves to TIP; refuses to lose commits only the local branch has."""
    if local is None:
        return "created"
    if local == tip:
        return "unchanged"
    proc = run_git("merge-base", "--is-ancestor", local, tip, cwd=top, check=False)
    if proc.returncode == 0:
        return "fast-forwarded"
    extra = _git(top, "rev-list", "--count", local, f"^{tip}") or "some"
    raise BranchDiverged(
        f"your local {branch} has {extra} commit(s) that the session's branch does not have, so "
        f"teleport will not overwrite it. Rename it (git branch -m {branch} {branch}-mine) or "
        f"delete it (git branch -D {branch}), then teleport again. Nothing was changed."
    )


def _move_branch(top: Path, branch: str, local: str | None, tip: str, update: str,
                 previous: str) -> None:  # fmt: skip
    ref = f"refs/heads/{branch}"
    if update != "unchanged" and previous == branch:
        # Checked out already (a second teleport): move it with the files, as a pull would.
        _git(top, "merge", "--ff-only", "--quiet", tip)
        return
    if update != "unchanged":
        _git(top, "update-ref", "-m", "catty: teleport", ref, tip, local or "0" * len(tip))
    if previous != branch:
        _git(top, "checkout", "--quiet", branch)


def _current(top: Path) -> str:
    name = _git(top, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return name or (_commit(top, "HEAD") or "an unborn branch")


def _commit(top: Path, rev: str) -> str | None:
    return _git(top, "rev-parse", "--quiet", "--verify", f"{rev}^{{commit}}", check=False) or None


def _git(top: Path, *args: str, check: bool = True) -> str | None:
    proc = run_git(*args, cwd=top, check=False)
    if proc.returncode != 0:
        if not check:
            return None
        said = os.fsdecode(proc.stderr).strip()[-800:] or f"exit status {proc.returncode}"
        raise TeleportError(f"git {args[0]} failed in {top}: {said}")
    return os.fsdecode(proc.stdout).strip()


# -- the session's record ----------------------------------------------------------------------


def _busy_note(client: CattyClient, label: str) -> list[str]:
    session = client.get(label)
    if session.get("activity") in ("busy", "waiting"):
        return [f"{label}'s agent is still working: you got its work so far; teleport again "
                "later for the rest"]  # fmt: skip
    return []


def _download_transcript(client: CattyClient, label: str, top: Path) -> tuple[Path, Path, int]:
    """Download the session's whole transcript as JSON lines beside where it will be kept in
    the checkout's git directory: (the download, its final path, how many events)."""
    path = Path(_git(top, "rev-parse", "--path-format=absolute", "--git-path",
                     f"catty/{label}.jsonl") or "")  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    count = 0
    try:
        with temp.open("w") as out:
            for event in all_events(client, label):
                out.write(json.dumps(event) + "\n")
                count += 1
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp, path, count


def _keep(download: Future[tuple[Path, Path, int]]) -> tuple[str, int]:
    """Put a finished transcript download in its place: (where it is, how many events)."""
    temp, path, count = download.result()
    os.replace(temp, path)
    return str(path), count


def _discard(download: Future[tuple[Path, Path, int]]) -> None:
    """Remove a transcript download that is no longer wanted (teleport stopped)."""
    try:
        temp, _path, _count = download.result()
    except BaseException:
        return  # it removed its own partial file
    temp.unlink(missing_ok=True)


def all_events(client: CattyClient, label: str) -> Iterable[dict[str, Any]]:
    """Every event of LABEL's transcript, oldest first, page by page."""
    after = 0
    while True:
        page = client.transcript(label, after=after, limit=_TRANSCRIPT_PAGE)
        yield from page
        if len(page) < _TRANSCRIPT_PAGE:
            return
        after = int(page[-1]["seq"])


def _install_conversation(client: CattyClient, info: dict[str, Any], top: Path,
                          result: TeleportResult, config: Path | None) -> None:  # fmt: skip
    if info.get("agent") != "claude":
        return
    if not info.get("conversation"):
        result.notes.append(f"{result.label} has no Claude Code conversation yet (no turn ran)")
        return
    target = config or claude_files.user_config_dir()
    # The branch is home by now: a conversation that cannot follow is said, not raised.
    try:
        conv = client.conversation(result.label)
        files = [claude_files.ConversationFile(str(f["path"]), _file_bytes(f))
                 for f in conv["files"]]  # fmt: skip
        installed = claude_files.install_conversation(files, target, str(conv["cwd"]), str(top))
    except (ClientError, claude_files.ConversationError, OSError, ValueError) as exc:
        result.notes.append(f"the conversation could not be installed in {target}: {exc}")
        return
    result.session_id = str(conv["session_id"])
    result.conversation_file = str(installed)


def _file_bytes(item: dict[str, Any]) -> bytes:
    if "text" in item:
        return str(item["text"]).encode()
    return base64.b64decode(str(item.get("base64") or ""))
