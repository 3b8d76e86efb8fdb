"""The diff of a session's workspace against its base commit, computed without trusting it.

The workspace, `.git` included, is written by the agent. Its git directory serves only as an
object store: every git command here runs in a throwaway repository of our own (no hooks,
filters, attributes, drivers or config of the agent's) whose objects fall back on the
workspace's. Working files are hashed here, raw (no clean filter or line-ending conversion can
disguise a change), found with lstat and opened with O_NOFOLLOW, never through a planted
symlink. Nothing in the workspace is written. The server still runs this module in a read-only
sandbox (`python -m catty_jupyter.core.review WORKSPACE BASE [--stat]`): git parses objects the
agent wrote.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from .gitcmd import SAFE_CONFIG, git_env, run_git

MAX_PATCH_BYTES = 2 << 20
"""The most patch (and notebook diff) text one answer carries; beyond it `truncated` is set."""
MAX_FILES = 3000
"""The most files one answer lists (the totals count every file)."""
MAX_NOTEBOOK_BYTES = 5 << 20
"""Notebooks larger than this get no notebook diff."""

_SHA = re.compile(rb"[0-9a-f]{40}|[0-9a-f]{64}")
ISOLATED_GIT_ENV = {
    # Neither the server user's nor the machine's git config: only our scratch repository's.
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_ATTR_NOSYSTEM": "1",
    "GIT_LITERAL_PATHSPECS": "1",
}
_CONFIG = ("core.attributesFile=/dev/null", "core.excludesFile=/dev/null", "core.quotePath=true")
_DIFF = ("diff", "--no-ext-diff", "--no-textconv", "--no-color", "-M")
_STATUS = {"A": "added", "D": "deleted", "M": "modified", "T": "modified", "R": "renamed"}
_GITLINK = b"160000"
_GONE = b""
"""The blob id of a file that vanished while it was read: its entry is left out."""


class ReviewError(Exception):
    """The diff cannot be computed; the message says why."""


def compute_diff(
    workspace: Path, base: str | None, stat_only: bool = False, paths: Sequence[str] = (),
    max_patch_bytes: int = MAX_PATCH_BYTES,
) -> dict[str, Any]:  # fmt: skip
    """The workspace's files (uncommitted and untracked-but-not-ignored ones included) against
    BASE (None: against nothing), per file and in total; PATHS narrows it to those files."""
    if base is not None and not _SHA.fullmatch(base.encode()):
        raise ReviewError(f"{base!r} is not a commit id")
    with tempfile.TemporaryDirectory(prefix="catty-review-") as tmp:
        scratch = ScratchRepo(Path(workspace).absolute(), Path(tmp), base)
        old = scratch.base_tree()
        new = scratch.snapshot(old, {os.fsencode(p) for p in paths} or None)
        files = scratch.changes(old, new, paths)
        truncated = len(files) > MAX_FILES
        shown = files[:MAX_FILES]
        if shown and not stat_only:
            truncated |= scratch.add_patches(old, new, paths, shown, max_patch_bytes)
    return {
        "base": base,
        "files": [{k: v for k, v in f.items() if not k.startswith("_")} for f in shown],
        "added": sum(f["added"] for f in files),
        "removed": sum(f["removed"] for f in files),
        "files_changed": len(files),
        "truncated": truncated,
    }


class ScratchRepo:
    """A throwaway bare repository borrowing the workspace's objects, and our work in it."""

    def __init__(self, workspace: Path, tmp: Path, base: str | None) -> None:
        self.workspace = workspace
        self.root = os.fsencode(workspace)
        objects = workspace / ".git" / "objects"
        if not objects.is_dir():
            raise ReviewError(f"{workspace} holds no git repository (no .git/objects)")
        self.gitdir = tmp / "scratch.git"
        self.env = {
            **ISOLATED_GIT_ENV,
            "GIT_DIR": str(self.gitdir),
            "GIT_INDEX_FILE": str(tmp / "base"),
        }
        self.new_index = str(tmp / "new")
        self.algorithm = "sha256" if base is not None and len(base) == 64 else "sha1"
        if base is None:
            self.algorithm = _object_format(workspace)
        run_git("init", "--quiet", "--bare", f"--object-format={self.algorithm}",
                str(self.gitdir), env=ISOLATED_GIT_ENV)  # fmt: skip
        (self.gitdir / "objects" / "info" / "alternates").write_text(f"{objects}\n")
        self.base = base
        self._dirs: dict[bytes, bool] = {b"": True}

    def git(self, *args: str | bytes, index: str | None = None, worktree: bool = False,
            input: bytes | None = None, env: dict[str, str] | None = None) -> bytes:  # fmt: skip
        """Run git in the scratch repository; its stdout, or ReviewError."""
        env = {**self.env, **(env or {})}
        if index is not None:
            env["GIT_INDEX_FILE"] = index
        if worktree:
            env["GIT_WORK_TREE"] = str(self.workspace)
        argv = [os.fsdecode(a) for a in args]
        proc = run_git(*argv, cwd=self.workspace if worktree else self.gitdir, env=env,
                       config=_CONFIG, input=input, check=False)  # fmt: skip
        if proc.returncode != 0:
            detail = os.fsdecode(proc.stderr).strip()[-500:] or f"exit status {proc.returncode}"
            raise ReviewError(f"git {argv[0]} failed: {detail}")
        return proc.stdout

    def has_commit(self, sha: str) -> bool:
        """True when commit SHA is here (through the workspace's objects)."""
        try:
            self.git("cat-file", "-e", f"{sha}^{{commit}}")
        except ReviewError:
            return False
        return True

    def base_tree(self) -> str:
        """The base commit's tree (the empty tree without a base)."""
        if self.base is None:
            return self.git("hash-object", "-t", "tree", "--stdin", input=b"").decode().strip()
        try:
            return self.git("rev-parse", "--verify", f"{self.base}^{{tree}}").decode().strip()
        except ReviewError:
            raise ReviewError(
                f"the base commit {self.base} is missing from the workspace's repository (was "
                ".git rewritten?); the diff cannot be computed"
            ) from None

    # -- the working files as a tree ---------------------------------------------------------

    def snapshot(self, base_tree: str, only: set[bytes] | None) -> str:
        """A tree of the working files as they are (ONLY: just those, the rest as in the base)."""
        self.git("read-tree", base_tree)
        entries: list[tuple[bytes, bytes, bytes] | None] = []
        for record in self.git("ls-files", "-z", "-s", "--full-name").split(b"\0"):
            if record:
                meta, path = record.split(b"\t", 1)
                mode, sha, _stage = meta.split(b" ")
                kept = only is not None and path not in only
                entries.append((mode, sha, path) if kept else self._entry(path, mode, sha))
        listed = self.git("ls-files", "-z", "--others", "--exclude-standard", "--full-name",
                          worktree=True)  # fmt: skip
        for path in listed.split(b"\0"):
            # A path ending in / is a repository nested in the workspace: not part of its tree.
            if path and not path.endswith(b"/") and (only is None or path in only):
                entries.append(self._entry(path, None, None))
        info = b"".join(b"%s %s\t%s\0" % e for e in entries if e is not None and e[1])
        self.git("update-index", "-z", "--index-info", index=self.new_index, input=info)
        return self.git("write-tree", index=self.new_index).decode().strip()

    def _entry(self, path: bytes, mode: bytes | None, sha: bytes | None) -> tuple[bytes, bytes, bytes] | None:  # fmt: skip
        """PATH's index entry as the working file is now; None when it is not a file git keeps."""
        full = os.path.join(self.root, path)
        if not self._real_dir(os.path.dirname(path)):
            return None  # under a symlink or a file: git would not look there either
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(st.st_mode):
            return b"120000", self._store(os.readlink(full), sha), path
        if stat.S_ISDIR(st.st_mode):
            return (mode, sha, path) if mode == _GITLINK and sha else None
        if not stat.S_ISREG(st.st_mode):
            return None
        executable = b"100755" if st.st_mode & stat.S_IXUSR else b"100644"
        return executable, self._file_blob(full, sha), path

    def _real_dir(self, rel: bytes) -> bool:
        if rel not in self._dirs:
            try:
                is_dir = stat.S_ISDIR(os.lstat(os.path.join(self.root, rel)).st_mode)
            except OSError:
                is_dir = False
            self._dirs[rel] = is_dir and self._real_dir(os.path.dirname(rel))
        return self._dirs[rel]

    def _store(self, data: bytes, known: bytes | None) -> bytes:
        """The blob id of DATA, written to the scratch store unless it is KNOWN already."""
        sha = self._blob_id(io.BytesIO(data), len(data))
        if sha is not None and sha != known:
            sha = self._blob_id(io.BytesIO(data), len(data), write=True)
        assert sha is not None
        return sha

    def _file_blob(self, full: bytes, known: bytes | None) -> bytes:
        """The blob id of the file at FULL, read raw; written unless it is KNOWN already."""
        for _attempt in range(3):
            sha = self._read(full, write=False)
            if sha is not None and sha == known:
                return sha
            sha = self._read(full, write=True)
            if sha is not None:
                return sha
        raise ReviewError(f"{os.fsdecode(full)} kept shrinking while it was read; try again")

    def _read(self, full: bytes, write: bool) -> bytes | None:
        try:
            fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return _GONE  # deleted, or replaced by a symlink, meanwhile
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                return _GONE
            return self._blob_id(f, st.st_size, write)

    def _blob_id(self, f: BinaryIO, size: int, write: bool = False) -> bytes | None:
        """Hash (and with WRITE store) the first SIZE bytes of F as a blob; None if F is shorter.

        A file that grows meanwhile is taken as it was at SIZE bytes.
        """
        header = b"blob %d\0" % size
        digest = hashlib.new(self.algorithm, header)
        if not write:
            try:
                for chunk in _chunks(f, size):
                    digest.update(chunk)
            except _Shrunk:
                return None
            return digest.hexdigest().encode()
        fd, temp = tempfile.mkstemp(dir=self.gitdir / "objects")
        try:
            compressor = zlib.compressobj(1)
            with os.fdopen(fd, "wb") as out:
                out.write(compressor.compress(header))
                for chunk in _chunks(f, size):
                    digest.update(chunk)
                    out.write(compressor.compress(chunk))
                out.write(compressor.flush())
            sha = digest.hexdigest()
            (self.gitdir / "objects" / sha[:2]).mkdir(exist_ok=True)
            os.replace(temp, self.gitdir / "objects" / sha[:2] / sha[2:])
            return sha.encode()
        except _Shrunk:
            return None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    # -- the diff -----------------------------------------------------------------------------

    def changes(self, old: str, new: str, paths: Sequence[str]) -> list[dict[str, Any]]:
        """One entry per changed file, with its line counts (renames found)."""
        raw = self.git(*_DIFF, "-z", "--raw", "--no-abbrev", old, new, "--", *paths).split(b"\0")
        numstat = self.git(*_DIFF, "-z", "--numstat", old, new, "--", *paths).split(b"\0")
        files: list[dict[str, Any]] = []
        i = j = 0
        while i < len(raw) and raw[i].startswith(b":"):
            _m1, _m2, old_sha, new_sha, status = raw[i][1:].split(b" ")
            kind = status[:1].decode()
            names = raw[i + 1 : i + (3 if kind in "RC" else 2)]
            i += 1 + len(names)
            counts = numstat[j].split(b"\t")
            j += 3 if counts[2] == b"" else 1  # a rename's two names follow on their own
            binary = counts[0] == b"-"
            files.append({
                "path": os.fsdecode(names[-1]),
                "old_path": os.fsdecode(names[0]) if kind == "R" else None,
                "status": _STATUS.get(kind, "modified"),
                "added": 0 if binary else int(counts[0]),
                "removed": 0 if binary else int(counts[1]),
                "binary": binary,
                "patch": "",
                "notebook_diff": None,
                "_names": (names[0], names[-1]),
                "_blobs": (old_sha, new_sha),
            })  # fmt: skip
        return files

    def add_patches(self, old: str, new: str, paths: Sequence[str], files: list[dict[str, Any]],
                    budget: int) -> bool:  # fmt: skip
        """Fill in each file's patch and notebook diff within BUDGET bytes; True if cut short."""
        data, complete = self._stream(*_DIFF, "-p", old, new, "--", *paths, limit=budget)
        sections = _sections(data)
        if not complete and sections:
            sections.pop()  # cut off in the middle
        k = 0
        for f in files:
            header = (
                b"diff --git "
                + _quoted(b"a/" + f["_names"][0])
                + b" "
                + _quoted(b"b/" + f["_names"][1])
            )
            parts = []
            while k < len(sections) and sections[k][0] == header:
                parts.append(sections[k][1])
                k += 1
            if not f["binary"]:
                f["patch"] = b"".join(parts).decode("utf-8", "replace")
        used = len(data)
        for f in files:
            if f["binary"] or not f["path"].endswith(".ipynb"):
                continue
            text = self._notebook_diff(*f["_blobs"])
            if text is not None and used + len(text) > budget:
                return True
            f["notebook_diff"] = text
            used += len(text or "")
        return not complete

    def _stream(self, *args: str, limit: int) -> tuple[bytes, bool]:
        """Git's stdout up to LIMIT bytes, and whether that was all of it."""
        options = [part for item in (*SAFE_CONFIG, *_CONFIG) for part in ("-c", item)]
        proc = subprocess.Popen(
            ["git", *options, *args], cwd=self.gitdir, env=git_env(self.env),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        assert proc.stdout is not None
        data = proc.stdout.read(limit + 1)
        complete = len(data) <= limit
        if not complete:
            proc.kill()
        proc.stdout.close()
        if proc.wait() != 0 and complete:
            raise ReviewError(f"git {args[0]} failed (exit status {proc.returncode})")
        return data[:limit], complete

    def _notebook_diff(self, old_sha: bytes, new_sha: bytes) -> str | None:
        """nbdime's diff of two notebook blobs as text; None when either is not a notebook."""
        sides: list[bytes | None] = []
        for sha in (old_sha, new_sha):
            if not sha.strip(b"0"):
                sides.append(None)  # added or deleted: against an empty notebook
                continue
            if int(self.git("cat-file", "-s", sha)) > MAX_NOTEBOOK_BYTES:
                return None
            sides.append(self.git("cat-file", "blob", sha))
        return notebook_diff(*sides)


class _Shrunk(Exception):
    """A file ended before the size it had when it was opened."""


def _chunks(f: BinaryIO, size: int) -> Iterator[bytes]:
    remaining = size
    while remaining:
        chunk = f.read(min(remaining, 1 << 20))
        if not chunk:
            raise _Shrunk
        remaining -= len(chunk)
        yield chunk


def notebook_diff(old: bytes | None, new: bytes | None) -> str | None:
    """nbdime's notebook diff of OLD and NEW (None: an empty notebook) as plain text; None
    when either does not parse as a notebook."""
    # Only here: these imports take seconds, and most diffs hold no notebook.
    from nbdime import diff_notebooks
    from nbdime.prettyprint import PrettyPrintConfig, pretty_print_diff

    try:
        a, b = (_notebook(side) for side in (old, new))
        out = io.StringIO()
        config = PrettyPrintConfig(out=out, use_git=False, use_diff=False, use_color=False)
        pretty_print_diff(a, diff_notebooks(a, b), "", config)
    except Exception:
        return None
    return out.getvalue()


def _notebook(raw: bytes | None) -> Any:
    import nbformat

    if raw is None:
        return nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    return nbformat.reads(raw.decode(), as_version=4)  # type: ignore[no-untyped-call]


def _sections(patch: bytes) -> list[tuple[bytes, bytes]]:
    """A whole patch cut into (header line, text) per `diff --git` section."""
    starts = [m.start() for m in re.finditer(rb"^diff --git ", patch, re.MULTILINE)]
    sections = []
    for start, end in zip(starts, [*starts[1:], len(patch)], strict=False):
        text = patch[start:end]
        sections.append((text.split(b"\n", 1)[0], text))
    return sections


_C_ESCAPES = {7: b"\\a", 8: b"\\b", 9: b"\\t", 10: b"\\n", 11: b"\\v", 12: b"\\f", 13: b"\\r",
              34: b'\\"', 92: b"\\\\"}  # fmt: skip


def _quoted(name: bytes) -> bytes:
    """NAME as git writes it in a patch header (C-quoted when it must be, core.quotePath on)."""
    if not any(c < 0x20 or c in (34, 92) or c >= 0x7F for c in name):
        return name
    body = b"".join(
        _C_ESCAPES.get(c) or (b"\\%03o" % c if c < 0x20 or c >= 0x7F else bytes([c])) for c in name
    )
    return b'"' + body + b'"'


def _object_format(workspace: Path) -> str:
    proc = run_git("rev-parse", "--show-object-format", env={**ISOLATED_GIT_ENV,
                   "GIT_DIR": str(workspace / ".git")}, check=False)  # fmt: skip
    answer = os.fsdecode(proc.stdout).strip()
    return answer if proc.returncode == 0 and answer in ("sha1", "sha256") else "sha1"


def main(argv: list[str] | None = None) -> int:
    """`python -m catty_jupyter.core.review WORKSPACE BASE [--stat] [--path P]…`: print the JSON."""
    parser = argparse.ArgumentParser(prog="python -m catty_jupyter.core.review",
                                     description=compute_diff.__doc__)  # fmt: skip
    parser.add_argument("workspace", type=Path)
    parser.add_argument("base", help="the base commit; - for none (an empty base)")
    parser.add_argument("--stat", action="store_true", help="counts only, no patches")
    parser.add_argument("--path", action="append", default=[], help="only this file")
    args = parser.parse_args(argv)
    base = None if args.base in ("", "-") else args.base
    try:
        result = compute_diff(args.workspace, base, stat_only=args.stat, paths=args.path)
    except ReviewError as exc:
        print(exc, file=sys.stderr)
        return 2
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
