"""`jupyter catty sync`: copy the files a session changed into a local directory.

The session's workspace comes over as a git bundle (its uncommitted work as a commit on top,
the session's branch left as it is) and is fetched into a throwaway bare repository of our own,
which borrows the objects of the local repository, when there is one, through
`objects/info/alternates`; nothing is ever written into the local `.git`. What the session
changed is the difference between the tree it started from and the bundle's tip. A local file
is overwritten only while it still is what the session started from (or, when watching, what
the previous round wrote); any other local change stops the whole sync before a single file is
written, unless `force`.
"""

from __future__ import annotations

import re
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .client import CattyClient, ClientError
from .core.gitcmd import GitError, git, run_git
from .syncplan import Change, Plan, SyncConflict, SyncError, SyncResult
from .synctree import LocalTree, TreeError

__all__ = ["Change", "SyncConflict", "SyncError", "SyncResult", "Syncer", "sync", "watch"]

FULL_CHECK = 30.0
"""Seconds after which `watch` fetches the workspace again even if the session looks idle."""

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class Syncer:
    """Syncs one session into one directory, round after round (`with Syncer(...) as s`)."""

    def __init__(
        self, client: CattyClient, label: str, target: Path | None = None, *,
        force: bool = False,
    ) -> None:  # fmt: skip
        self.client = client
        self.label = label
        self.force = force
        session = client.get(label)
        self.label = str(session["label"])
        self.target = _target(session, target)
        self.base = session.get("base_commit")
        recorded = (session.get("origin") or {}).get("start_commit")
        if isinstance(recorded, str) and _SHA.fullmatch(recorded):
            self.start: str | None = recorded if recorded != self.base else None
        else:  # a session made before its origin was kept: its creation event says
            self.start = _snapshot_commit(client, self.label)
        self.algorithm = "sha256" if len(self.start or self.base or "") == 64 else "sha1"
        self.ours: dict[str, str | None] = {}
        """Path → blob id last written there (None: deleted); these may be overwritten."""
        self._tmp = tempfile.TemporaryDirectory(prefix="catty-sync-")
        self.repo = Path(self._tmp.name) / "sync.git"
        self.have = self._prepare_repo()
        self._tip: str | None = None

    def __enter__(self) -> Syncer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the throwaway repository."""
        self._tmp.cleanup()

    def _prepare_repo(self) -> list[str]:
        """Make the bare repository; borrow the target's objects when it has the base commit.
        Returns the commits to name as already had."""
        git("init", "--quiet", "--bare", f"--object-format={self.algorithm}", str(self.repo))
        if not self.base or not _SHA.fullmatch(self.base):
            return []
        proc = run_git("rev-parse", "--path-format=absolute", "--git-common-dir",
                       cwd=self.target, check=False)  # fmt: skip
        if proc.returncode != 0:
            return []
        objects = Path(proc.stdout.decode().strip()) / "objects"
        has = run_git("cat-file", "-e", f"{self.base}^{{commit}}", cwd=self.target, check=False)
        if has.returncode != 0 or not objects.is_dir():
            return []
        (self.repo / "objects" / "info" / "alternates").write_text(f"{objects}\n")
        return [self.base]

    def _git(self, *args: str) -> str:
        try:
            return git(*args, cwd=self.repo)
        except GitError as exc:
            raise SyncError(f"git {args[0]} failed on {self.label}'s bundle: "
                            f"{exc.stderr.strip()[-500:]}") from None  # fmt: skip

    def fetch(self) -> str:
        """Bring the workspace as it is now into the throwaway repository; its commit."""
        dest = Path(self._tmp.name) / "session.bundle"
        have = [*self.have, *([self._tip] if self._tip else [])]
        try:
            info = self.client.bundle(self.label, dest, have=have, record=False)
            ref = f"refs/heads/{info['branch'] or 'catty/' + self.label}"
            self._git("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(dest),
                      f"+{ref}:refs/sync/tip")  # fmt: skip
        finally:
            dest.unlink(missing_ok=True)
        self._tip = self._git("rev-parse", "refs/sync/tip^{commit}")
        return self._tip

    def changes(self, tip: str) -> list[Change]:
        """What the session changed: its starting tree against TIP's."""
        start = self._starting_commit()
        raw = run_git("diff-tree", "-r", "-z", "--no-renames", "--no-commit-id", start, tip,
                      cwd=self.repo, check=False)  # fmt: skip
        if raw.returncode != 0:
            raise SyncError(f"cannot compare {self.label}'s start with its workspace: "
                            f"{raw.stderr.decode(errors='replace').strip()[-300:]}")  # fmt: skip
        fields = raw.stdout.split(b"\0")
        changes, unsafe = [], []
        for meta, name in zip(fields[0::2], fields[1::2], strict=False):
            old_mode, new_mode, old_blob, new_blob, _status = meta[1:].decode().split(" ")
            path = name.decode("utf-8", "surrogateescape")
            if not _safe_path(path):
                unsafe.append(path)
                continue
            zero = set(old_blob) == {"0"}
            changes.append(Change(path, int(old_mode, 8), int(new_mode, 8),
                                  None if zero else old_blob,
                                  None if set(new_blob) == {"0"} else new_blob))  # fmt: skip
        if unsafe:
            raise SyncError(f"{self.label}'s workspace has paths that cannot be written safely, "
                            f"so nothing was synced: {', '.join(map(repr, unsafe[:10]))}")  # fmt: skip
        return changes + self._undone(start, {c.path for c in changes})

    def _undone(self, start: str, changed: set[str]) -> list[Change]:
        """Paths an earlier round wrote that the session has since put back as they were at its
        start: they go back to that too."""
        back = sorted(set(self.ours) - changed)
        if not back:
            return []
        listed = run_git("--literal-pathspecs", "ls-tree", "-z", "--full-tree", start, "--",
                         *back, cwd=self.repo).stdout  # fmt: skip
        entries: dict[str, tuple[int, str]] = {}
        for record in filter(None, listed.split(b"\0")):
            meta, _tab, name = record.partition(b"\t")
            octal, _kind, sha = meta.decode().split(" ")
            entries[name.decode("utf-8", "surrogateescape")] = (int(octal, 8), sha)
        undone = []
        for path in back:
            mode, blob = entries.get(path, (0, None))
            undone.append(Change(path, mode, mode, blob, blob, undone=True))
        return undone

    def _starting_commit(self) -> str:
        for candidate in (self.start, self.base):
            if candidate and run_git("cat-file", "-e", f"{candidate}^{{commit}}", cwd=self.repo,
                                     check=False).returncode == 0:  # fmt: skip
                return candidate
        raise SyncError(f"{self.label}'s base commit {str(self.base)[:12]} is neither in its "
                        "branch's history nor in the target repository, so what the session "
                        "changed cannot be told; sync into the session's source repository")  # fmt: skip

    def round(self) -> SyncResult:
        """Fetch the workspace and bring the target in line with it (or raise SyncConflict
        before writing anything)."""
        tip = self.fetch()
        changes = self.changes(tip)
        try:
            tree = LocalTree(self.target, self.algorithm)
        except TreeError as exc:
            raise SyncError(str(exc)) from None
        try:
            try:
                plan = Plan(tree, changes, self.ours, force=self.force, label=self.label)
            except (OSError, TreeError) as exc:
                raise SyncError(f"cannot read the files in {self.target}: {exc}") from None
            plan.check()
            result = SyncResult(tip)
            with _deferred_interrupts():
                plan.apply(result, self.repo)
            return result
        finally:
            tree.close()


def _safe_path(path: str) -> bool:
    """A relative path with no empty, `.`, `..` or `.git` component."""
    parts = path.split("/")
    return all(
        p not in ("", ".", "..") and p.lower().rstrip(". ") not in (".git", "git~1") for p in parts
    )


def _target(session: dict[str, Any], target: Path | None) -> Path:
    """The directory to sync into: TARGET, else the session's source."""
    if target is None:
        source = session.get("source")
        if not source or not Path(str(source)).is_absolute():
            raise SyncError(f"{session['label']} was not made from a directory here; pass the "
                            "directory to sync into: jupyter catty sync LABEL DIR")  # fmt: skip
        target = Path(str(source))
        if not target.is_dir():
            raise SyncError(f"{session['label']}'s source {target} is not a directory on this "
                            "machine; pass the directory to sync into: jupyter catty sync "
                            "LABEL DIR")  # fmt: skip
    target = target.expanduser().resolve()
    if not target.is_dir():
        raise SyncError(f"{target} is not a directory; pass an existing directory to sync into")
    return target


def _snapshot_commit(client: CattyClient, label: str) -> str | None:
    """The commit the session started from when its source had uncommitted work (its
    creation event says; the session's base commit is the source's HEAD under that work)."""
    for event in client.transcript(label, after=0, limit=20):
        payload = event.get("payload") or {}
        if event.get("kind") == "system" and "base_commit" in payload:
            snap = payload.get("snapshot_commit")
            return snap if isinstance(snap, str) and _SHA.fullmatch(snap) else None
    return None


@contextmanager
def _deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C (and SIGTERM) back until the files of one round are all written."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    asked: list[int] = []
    old = {sig: signal.signal(sig, lambda n, _f: asked.append(n))
           for sig in (signal.SIGINT, signal.SIGTERM)}  # fmt: skip
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if asked:
        raise KeyboardInterrupt


def sync(
    client: CattyClient, label: str, target: Path | None = None, *, force: bool = False,
    progress: Callable[[str], None] = print,
) -> SyncResult:  # fmt: skip
    """Copy the files session LABEL changed into TARGET (default: its source directory)."""
    with Syncer(client, label, target, force=force) as syncer:
        result = syncer.round()
    for line in result.lines():
        progress(line)
    progress(result.summary())
    return result


def watch(
    client: CattyClient, label: str, target: Path | None = None, *, force: bool = False,
    interval: float = 2.0, progress: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> None:  # fmt: skip
    """Sync, then sync again whenever the session changes, until STOP is set or Ctrl-C."""
    stop = stop or threading.Event()
    with Syncer(client, label, target, force=force) as syncer, _terminate_as_interrupt():
        try:
            seen = _signature(client.get(syncer.label))
            result = syncer.round()
            for line in result.lines():
                progress(line)
            progress(f"{result.summary()}; watching {syncer.label} (Ctrl-C stops)")
            _watch_rounds(syncer, seen, interval, progress, stop)
        except KeyboardInterrupt:
            progress("stopped watching")


def _watch_rounds(syncer: Syncer, seen: Any, interval: float,
                  progress: Callable[[str], None], stop: threading.Event) -> None:  # fmt: skip
    last_round, last_said = time.monotonic(), ""
    while not stop.wait(interval):
        try:
            now = _signature(syncer.client.get(syncer.label))
            if now == seen and time.monotonic() - last_round < FULL_CHECK:
                continue
            seen, last_round = now, time.monotonic()
            result = syncer.round()
        except ClientError as exc:
            if exc.status == 404:
                raise
            if str(exc) != last_said:  # say each problem once, not every round
                progress(f"! {exc}" + ("" if isinstance(exc, SyncConflict) else "; retrying"))
                last_said = str(exc)
            continue
        last_said = ""
        if result.changed:
            paths = sorted([*result.added, *result.modified, *result.deleted])
            names = ", ".join(paths[:5]) + (", …" if len(paths) > 5 else "")
            progress(f"{time.strftime('%H:%M:%S')} {result.summary()} ({names})")


def _signature(session: dict[str, Any]) -> tuple[Any, ...]:
    """What changes when the session's work may have changed."""
    return (session.get("state"), session.get("last_activity"), repr(session.get("diffstat")))


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Let SIGTERM end a watch the way Ctrl-C does (the temporary repository is removed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_n: int, _f: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
