"""Make the copy of a repository (or an empty repository) that a session works in.

A workspace is a full clone of the source: every branch and tag, full history, plus one commit
holding whatever the user had not committed yet (staged, unstaged, deleted and untracked files
that .gitignore does not exclude). The source repository is never modified.

Not handled yet: submodule contents (a submodule is recorded as its commit, its directory stays
empty), and paths hidden by a sparse checkout (they look deleted to git, so they are).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from catty_jupyter.core import unpack
from catty_jupyter.core.gitcmd import GitError, git, run_git

_CAP_SETTING = "CattyExtension.max_workspace_bytes"
_IDENTITY_CONFIG = ("user.name=catty", "user.email=catty@localhost")
# The environment wins over config, so a user's own GIT_AUTHOR_* must not leak into our commits.
_IDENTITY_ENV = {
    "GIT_AUTHOR_NAME": "catty",
    "GIT_AUTHOR_EMAIL": "catty@localhost",
    "GIT_COMMITTER_NAME": "catty",
    "GIT_COMMITTER_EMAIL": "catty@localhost",
}


class WorkspaceError(Exception):
    """A workspace could not be made; the message says what to do, `reason` is a short code."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Workspace:
    """A session's copy of its source, checked out on the session's own branch."""

    path: Path
    branch: str
    base_commit: str | None
    source: str | None
    source_branch: str | None
    snapshot_commit: str | None


def measure_source_bytes(source: Path) -> int:
    """Bytes a copy of `source` would take: its git directory plus its non-ignored files."""
    return _measure(_repo_top(Path(source)))


def create_from_repo(
    source: Path, dest: Path, label: str, *, max_bytes: int = 1 << 30
) -> Workspace:
    """Copy the repo at `source` into `dest`, uncommitted work included, on `catty/<label>`."""
    top = _repo_top(Path(source))
    branch = _branch_name(label)
    dest = _checked_dest(dest)
    size = _measure(top)
    if size > max_bytes:
        raise WorkspaceError(
            f"the repository at {top} is {unpack.human_size(size)}, over the {unpack.human_size(max_bytes)} cap "
            f"({_CAP_SETTING}); make it smaller or raise the cap",
            "too_large",
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _removed_on_failure(dest, f"copy {top}"):
        return _copy(top, dest, branch)


def create_empty(dest: Path, label: str) -> Workspace:
    """Make an empty repository in `dest` whose branch `catty/<label>` has one empty commit."""
    branch = _branch_name(label)
    dest = _checked_dest(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _removed_on_failure(dest, "create an empty workspace"):
        git("init", "--quiet", f"--initial-branch={branch}", str(dest))
        root = _empty_root_commit(dest)
        _check_out(dest, branch, root)
        return Workspace(dest, branch, root, None, None, None)


def create_from_archive(
    archive: Path, dest: Path, label: str, *, name: str, max_bytes: int = 1 << 30
) -> Workspace:
    """Unpack the uploaded ARCHIVE (called NAME) into `dest`, all of it one commit on
    `catty/<label>`; `.git` directories in it are left out (see `git_metadata`)."""
    branch = _branch_name(label)
    dest = _checked_dest(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _removed_on_failure(dest, f"unpack {name}"):
        try:
            unpack.extract(archive, dest, max_bytes=max_bytes, skip=git_metadata)
        except unpack.ArchiveError as exc:
            raise WorkspaceError(str(exc), exc.reason) from None
        git("init", "--quiet", f"--initial-branch={branch}", str(dest))
        # Ignored files too: the base is exactly what was uploaded, so the diff is the agent's.
        git("add", "--all", "--force", cwd=dest)
        tree = git("write-tree", cwd=dest)
        commit = git(
            "commit-tree", "--no-gpg-sign", "-m", f"catty: uploaded archive {name}", tree,
            cwd=dest, env=_IDENTITY_ENV, config=_IDENTITY_CONFIG,
        )  # fmt: skip
        _check_out(dest, branch, commit)
        return Workspace(dest, branch, commit, f"the uploaded archive {name}", None, None)


def git_metadata(parts: tuple[str, ...]) -> bool:
    """True for archive members inside a `.git` (and macOS Finder's `__MACOSX/`).

    An uploaded repository's config and hooks could make git run commands on the server, and a
    `.git` file could point git at another repository; git itself refuses such paths (any case,
    NTFS spellings), so they would fail the commit anyway.
    """
    return unpack.macos_metadata(parts) or any(
        p.lower().rstrip(". ") in (".git", "git~1") for p in parts
    )


def _copy(top: Path, dest: Path, branch: str) -> Workspace:
    head = _optional(top, "rev-parse", "--quiet", "--verify", "HEAD^{commit}")
    ref = _optional(top, "symbolic-ref", "--quiet", "HEAD")
    source_branch = ref.removeprefix("refs/heads/") if head and ref else None
    # --no-local talks to the source through upload-pack: only reachable objects travel, and
    # nothing is hard-linked, so writing in the workspace can never reach the user's files.
    git("clone", "--no-local", "--no-checkout", "--quiet", "--", str(top), str(dest))
    if head:
        # A clone only makes remote-tracking refs; the session should see the branches as the
        # user has them.
        git(
            "fetch", "--quiet", "--update-head-ok", "--no-tags", "origin",
            "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*",
            cwd=dest,
        )  # fmt: skip
    snapshot = _snapshot(top, dest, head)
    if head:
        base: str | None = head
    elif snapshot:
        base = None  # nothing was ever committed: the snapshot is the root
    else:
        base = _empty_root_commit(dest)
    tip = snapshot or base
    assert tip is not None
    _check_out(dest, branch, tip)
    return Workspace(dest, branch, base, str(top), source_branch, snapshot)


def _snapshot(top: Path, dest: Path, head: str | None) -> str | None:
    """Commit the source's uncommitted work into `dest`; None when there is none."""
    src_objects = Path(_git_path(top, "objects"))
    dest_objects = dest / ".git" / "objects"
    with tempfile.TemporaryDirectory(prefix="catty-snapshot-") as tmp:
        # Git runs in the SOURCE so its own view decides what is uncommitted: its ignore rules,
        # info/exclude, attributes, filemode and eol settings, and its index, whose stat data
        # spares rehashing unchanged files. Three redirections keep the source untouched: a
        # copy of its index absorbs the `add`, new objects go to the workspace's object store,
        # and the source's store is only read, as an alternate.
        index = Path(tmp) / "index"
        src_index = Path(_git_path(top, "index"))
        if src_index.exists():
            shutil.copy2(src_index, index)
        env = {
            "GIT_INDEX_FILE": str(index),
            "GIT_OBJECT_DIRECTORY": str(dest_objects),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(src_objects),
        }
        # A split index would otherwise write a new shared index file into the source's .git.
        git("add", "--all", cwd=top, env=env, config=("core.splitIndex=false",))
        tree = git("write-tree", cwd=top, env=env)
        base_tree = git("rev-parse", f"{head}^{{tree}}", cwd=dest) if head else _empty_tree(dest)
        if tree == base_tree:
            return None
        parents = ["-p", head] if head else []
        message = f"catty: snapshot of uncommitted work in {top}"
        commit = git(
            "commit-tree", "--no-gpg-sign", *parents, "-m", message, tree,
            cwd=top, env={**env, **_IDENTITY_ENV}, config=_IDENTITY_CONFIG,
        )  # fmt: skip
    # Staged content (and trees the index cached) may exist only in the source's store; copy
    # every object the snapshot adds so the workspace stands alone, without an alternate.
    revs = f"{commit}\n" + (f"^{head}\n" if head else "")
    git(
        "pack-objects", "--revs", "--quiet", str(dest_objects / "pack" / "pack"),
        cwd=dest, env={"GIT_ALTERNATE_OBJECT_DIRECTORIES": str(src_objects)},
        input=revs.encode(),
    )  # fmt: skip
    git("prune-packed", "--quiet", cwd=dest)
    return commit


def _check_out(repo: Path, branch: str, commit: str) -> None:
    git("update-ref", "-m", "catty: session branch", f"refs/heads/{branch}", commit, cwd=repo)
    git("symbolic-ref", "HEAD", f"refs/heads/{branch}", cwd=repo)
    git("reset", "--hard", "--quiet", cwd=repo)


def _empty_tree(repo: Path) -> str:
    # Asked of git rather than hard-coded, so SHA-256 repositories work too.
    return git("hash-object", "-t", "tree", "--stdin", cwd=repo, input=b"")


def _empty_root_commit(repo: Path) -> str:
    tree = git("mktree", cwd=repo, input=b"")
    return git(
        "commit-tree", "--no-gpg-sign", "-m", "catty: empty workspace", tree,
        cwd=repo, env=_IDENTITY_ENV, config=_IDENTITY_CONFIG,
    )  # fmt: skip


def _repo_top(source: Path) -> Path:
    path = source.expanduser().absolute()
    if not path.exists():
        raise WorkspaceError(
            f"{path} does not exist; pass the path of a git repository", "no_such_path"
        )
    not_a_repo = WorkspaceError(
        f"{path} is not a git repository; run `git init` there or pass --repo with a repository",
        "not_a_repo",
    )
    if not path.is_dir():
        raise not_a_repo
    proc = run_git("rev-parse", "--show-toplevel", cwd=path, check=False)
    err = os.fsdecode(proc.stderr)
    if proc.returncode != 0 and "safe.directory" in err:
        raise WorkspaceError(f"git refuses to read {path}: {err.strip()}", "git_failed")
    top = os.fsdecode(proc.stdout).removesuffix("\n")
    if proc.returncode != 0 or not top:
        raise not_a_repo
    return Path(top)


def _branch_name(label: str) -> str:
    branch = f"catty/{label}"
    if not label or run_git("check-ref-format", f"refs/heads/{branch}", check=False).returncode:
        raise WorkspaceError(
            f"{label!r} cannot be part of a git branch name; use letters, digits and dashes",
            "bad_label",
        )
    return branch


def _checked_dest(dest: Path) -> Path:
    dest = Path(dest).expanduser().absolute()
    if (dest.exists() or dest.is_symlink()) and (not dest.is_dir() or any(dest.iterdir())):
        raise WorkspaceError(
            f"{dest} already exists and is not empty; choose a new directory for the workspace",
            "dest_not_empty",
        )
    return dest


@contextmanager
def _removed_on_failure(dest: Path, what: str) -> Iterator[None]:
    """Leave `dest` as it was found (absent or empty) if anything inside fails."""
    existed = dest.exists()
    try:
        yield
    except BaseException as exc:
        _remove(dest, keep_dir=existed)
        if isinstance(exc, GitError):
            raise WorkspaceError(f"could not {what}: {exc}", "git_failed") from exc
        raise


def _remove(path: Path, *, keep_dir: bool) -> None:
    if not path.exists():
        return
    if not keep_dir:
        shutil.rmtree(path, ignore_errors=True)
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _measure(top: Path) -> int:
    total = _dir_bytes(Path(_git_path(top, "", common=True)))
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=top)
    for name in set(listed.split("\0")) - {""}:
        try:
            info = os.lstat(top / name)
        except OSError:
            continue  # deleted in the working tree: it will not be copied
        if not stat.S_ISDIR(info.st_mode):
            total += info.st_size
    return total


def _dir_bytes(root: Path) -> int:
    total = 0
    for parent, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except OSError:
                continue
    return total


def _git_path(top: Path, name: str, *, common: bool = False) -> str:
    # Asked of git so linked worktrees (their index and objects live apart) work too.
    what = ["--git-common-dir"] if common else ["--git-path", name]
    return git("rev-parse", "--path-format=absolute", *what, cwd=top)


def _optional(top: Path, *args: str) -> str | None:
    proc = run_git(*args, cwd=top, check=False)
    if proc.returncode != 0:
        return None
    return os.fsdecode(proc.stdout).removesuffix("\n") or None


def describe_origin(source: Path) -> dict[str, object]:
    """What teleport and push need to know of a source repository: its remotes (name → URL,
    with any user name or password taken out) and the root commits of its history."""
    top = _repo_top(Path(source))
    remotes: dict[str, str] = {}
    listed = _optional(top, "config", "--get-regexp", r"^remote\..*\.url$") or ""
    for line in listed.splitlines():
        key, _, url = line.partition(" ")
        remotes[key.removeprefix("remote.").removesuffix(".url")] = without_credentials(url)
    head = _optional(top, "rev-parse", "--quiet", "--verify", "HEAD^{commit}")
    roots = (_optional(top, "rev-list", "--max-parents=0", head) or "").split() if head else []
    return {"kind": "repo", "remotes": remotes, "roots": roots}


def without_credentials(url: str) -> str:
    """URL without a user name or password (`https://user:token@host/x` → `https://host/x`);
    scp-like `git@host:path` addresses keep their user, which is no secret."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
