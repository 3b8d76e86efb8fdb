"""What `jupyter catty sync` does with each path a session changed, decided before anything is
written: write it, delete it, leave it (already there), or refuse the whole sync because the
local file changed too."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .client import ClientError
from .core.gitcmd import SAFE_CONFIG, git_env
from .synctree import Local, LocalTree, TreeError

_KINDS = {0o100644: "file", 0o100755: "file", 0o120000: "link"}
GITLINK = 0o160000
"""The git mode of a submodule, which sync leaves alone."""
_MAX_LINK = 4096


class SyncError(ClientError):
    """Nothing could be synced, or not all of it; the message says why and what to do."""


class SyncConflict(SyncError):
    """Local files changed since the session started and the session changed them too."""

    def __init__(self, message: str, paths: list[str]) -> None:
        super().__init__(message)
        self.paths = paths


@dataclass(frozen=True)
class Change:
    """One path the session changed: its git mode and blob before and after (0 / None:
    absent)."""

    path: str
    old_mode: int
    new_mode: int
    old_blob: str | None
    new_blob: str | None
    undone: bool = False
    """The session changed it (and an earlier round wrote it), then put it back as it was."""


@dataclass
class SyncResult:
    """What one sync did."""

    commit: str
    """The bundle's tip: the workspace as it was synced."""
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Submodules, which are not synced."""

    @property
    def changed(self) -> bool:
        """Whether a local file was written or deleted."""
        return bool(self.added or self.modified or self.deleted)

    def summary(self) -> str:
        """`3 files updated, 1 deleted, 2 already up to date`."""
        updated = len(self.added) + len(self.modified)
        if not (updated or self.deleted or self.up_to_date or self.skipped):
            return "nothing to sync: the session has not changed any file"
        text = (f"{updated} file{'s' if updated != 1 else ''} updated, {len(self.deleted)} "
                f"deleted, {len(self.up_to_date)} already up to date")  # fmt: skip
        if n := len(self.skipped):
            text += f", {n} submodule{'s' if n != 1 else ''} skipped"
        return text

    def lines(self) -> list[str]:
        """One line per file written or deleted, git-status style."""
        marks = [("A", self.added), ("M", self.modified), ("D", self.deleted)]
        rows = [(path, mark) for mark, paths in marks for path in paths]
        return [f"{mark} {path}" for path, mark in sorted(rows)] + [
            f"  (submodule {path} not synced)" for path in self.skipped
        ]


class Plan:
    """What to do with each changed path, decided before anything is written."""

    def __init__(
        self, tree: LocalTree, changes: list[Change], ours: dict[str, str | None], *,
        force: bool, label: str,
    ) -> None:  # fmt: skip
        self.tree = tree
        self.ours = ours
        """Path → blob id an earlier round wrote there (None: deleted); updated by `apply`."""
        self.force = force
        self.label = label
        self.changes = changes
        self.local = {c.path: tree.inspect(c.path) for c in changes}
        self.writes: list[Change] = []
        self.deletes: list[Change] = []
        self.chmods: list[Change] = []
        self.up_to_date: list[str] = []
        self.skipped: list[str] = []
        self.blockers: list[str] = []
        self.forget: list[str] = []
        self.conflicts: dict[str, str] = {}
        self.refused: dict[str, str] = {}

    def check(self) -> None:
        """Decide every path; raise SyncConflict (naming each) when any is refused."""
        later = []
        for c in self.changes:
            local = self.local[c.path]
            if GITLINK in (c.old_mode, c.new_mode):
                self.skipped.append(c.path)
            elif c.undone and local.kind in ("dir", "under-link", "other"):
                self.forget.append(c.path)  # no longer ours, and not ours to clear away
            elif local.kind == "dir":
                later.append(c)  # fine only if the deletions empty it
            else:
                self._decide(c, local)
        deleted = {c.path for c in self.deletes}
        for c in later:
            inside = self.tree.files_under(c.path)
            if inside is None or not set(inside) <= deleted:
                self.refused[c.path] = "a directory with files of its own is here"
            else:
                self._decide(c, Local("absent"))
        for c in self.writes:
            blocker = self.local[c.path].blocker
            if self.local[c.path].kind == "under-file" and blocker and blocker not in deleted:
                self._conflict(blocker, f"a file here, where the session has {c.path}")
                if self.force and blocker not in self.blockers:
                    self.blockers.append(blocker)
        if self.conflicts or self.refused:
            raise self._refusal()

    def _decide(self, c: Change, local: Local) -> None:
        if local.kind == "under-link":
            self.refused[c.path] = f"{local.blocker} is a symbolic link here, not followed"
            return
        if local.kind == "under-file" and c.new_blob is None:
            self.up_to_date.append(c.path)
            return
        seen = None if local.kind in ("absent", "under-file") else local.blob
        if c.undone:
            # Back to what it was: only the file an earlier round wrote, untouched since then,
            # follows it; the path is not the session's any more either way.
            self.forget.append(c.path)
            if self.ours.get(c.path, "") == seen and not _same(local, c.new_mode, c.new_blob):
                (self.deletes if c.new_blob is None else self.writes).append(c)
        elif _same(local, c.new_mode, c.new_blob):
            self.up_to_date.append(c.path)
        elif (local.kind == "file" and c.new_mode in (0o100644, 0o100755)
              and seen == c.new_blob):  # fmt: skip
            self.chmods.append(c)  # the content is there already; only the mode differs
        elif (_same(local, c.old_mode, c.old_blob) or self.ours.get(c.path, "") == seen
              or self._force(c, local)):  # fmt: skip
            (self.deletes if c.new_blob is None else self.writes).append(c)

    def _force(self, c: Change, local: Local) -> bool:
        if local.kind == "other":
            self.refused[c.path] = "not a regular file here"
            return False
        since = "sync last wrote it" if c.path in self.ours else "the session started"
        self._conflict(c.path, f"changed here since {since}")
        return self.force

    def _conflict(self, path: str, why: str) -> None:
        if not self.force:
            self.conflicts[path] = why

    def _refusal(self) -> SyncConflict:
        lines = [f"  {path}: {why}" for path, why in sorted(self.conflicts.items())]
        lines += [f"  {path}: {why}" for path, why in sorted(self.refused.items())]
        n = len(lines)
        message = (
            f"not syncing {self.label} into {self.tree.top}: {n} file{'s' if n != 1 else ''} the "
            f"session changed cannot be written here:\n" + "\n".join(lines) + "\nNothing was "
            "written. "
        )
        if self.conflicts:
            message += ("Save your versions elsewhere (or undo them) and sync again, or pass "
                        "--force to overwrite them with the session's.")  # fmt: skip
        if self.refused:
            message += (" A symbolic link, directory or special file in the way is never replaced, "
                        "even with --force: move it away first.")  # fmt: skip
        return SyncConflict(message.strip(), sorted({*self.conflicts, *self.refused}))

    def apply(self, result: SyncResult, repo: Path) -> None:
        """Delete, then write (the blobs read from REPO), recording what was done in RESULT."""
        result.up_to_date += self.up_to_date
        result.skipped += self.skipped
        try:
            for path in self.blockers:
                self.tree.delete(path)
                result.deleted.append(path)
            for c in sorted(self.deletes, key=lambda c: c.path, reverse=True):
                self.tree.delete(c.path)
                self.ours[c.path] = None
                result.deleted.append(c.path)
            with BlobReader(repo) as blobs:
                for c in sorted(self.writes, key=lambda c: c.path):
                    self._write(c, blobs)
                    known = self.local[c.path].kind not in ("absent", "under-file", "dir")
                    (result.modified if known else result.added).append(c.path)
            for c in self.chmods:
                self.tree.chmod(c.path, c.new_mode == 0o100755)
                result.modified.append(c.path)
            for path in self.forget:
                self.ours.pop(path, None)
        except (OSError, TreeError, SyncError) as exc:
            done = len(result.added) + len(result.modified) + len(result.deleted)
            raise SyncError(f"sync of {self.label} stopped after {done} change(s): "
                            f"{getattr(exc, 'strerror', None) or exc}") from None  # fmt: skip

    def _write(self, c: Change, blobs: BlobReader) -> None:
        assert c.new_blob is not None
        if c.new_mode == 0o120000:
            target = blobs.read_small(c.new_blob, _MAX_LINK)
            self.tree.write_link(c.path, target)
        else:
            self.tree.write_file(c.path, lambda fd: blobs.copy(c.new_blob or "", fd),
                                 executable=c.new_mode == 0o100755)  # fmt: skip
        self.ours[c.path] = c.new_blob


def _same(local: Local, mode: int, blob: str | None) -> bool:
    """Whether LOCAL is the entry (MODE, BLOB) of a tree (None: absent); for files, the
    execute bit counts."""
    if blob is None:
        return local.kind in ("absent", "under-file")
    if _KINDS.get(mode) != local.kind or local.blob != blob:
        return False
    return local.kind != "file" or local.executable == (mode == 0o100755)


class BlobReader:
    """Blobs of a repository through one `git cat-file --batch`."""

    def __init__(self, repo: Path) -> None:
        options = [part for item in SAFE_CONFIG for part in ("-c", item)]
        self.proc = subprocess.Popen(["git", *options, "cat-file", "--batch"], cwd=repo,
                                     env=git_env(), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)  # fmt: skip

    def __enter__(self) -> BlobReader:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.kill()
        self.proc.wait()

    def _open(self, blob: str) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{blob}\n".encode())
        self.proc.stdin.flush()
        header = self.proc.stdout.readline().decode().split()
        if len(header) != 3 or header[1] != "blob":
            raise SyncError(f"the bundle lacks the file contents {blob[:12]}")
        return int(header[2])

    def _chunks(self, size: int) -> Iterator[bytes]:
        assert self.proc.stdout is not None
        left = size
        while left:
            chunk = self.proc.stdout.read(min(left, 1 << 16))
            if not chunk:
                raise SyncError("git cat-file ended early")
            left -= len(chunk)
            yield chunk
        self.proc.stdout.read(1)  # the newline after each object

    def copy(self, blob: str, fd: int) -> None:
        """Write the blob's bytes to FD."""
        for chunk in self._chunks(self._open(blob)):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]

    def read_small(self, blob: str, limit: int) -> bytes:
        """The blob's bytes, at most LIMIT of them (a link's target)."""
        size = self._open(blob)
        data = b"".join(self._chunks(size))
        if size > limit or not data or b"\0" in data:
            raise SyncError(f"the symbolic link target {blob[:12]} is not a usable path")
        return data
