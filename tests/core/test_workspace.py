"""Workspaces: a faithful copy of the user's repository, and the user's repository left alone."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from catty_jupyter.core import workspace as ws_module
from catty_jupyter.core.gitcmd import GitError
from catty_jupyter.core.workspace import (
    Workspace,
    WorkspaceError,
    create_empty,
    create_from_repo,
    measure_source_bytes,
)

LABEL = "brave-tiger-1234"


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the developer's git config out, and stop git from finding a repo above tmp_path."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    ):
        monkeypatch.delenv(name, raising=False)
    return home


def g(repo: Path, *args: str) -> str:
    """Run the test's own git (with an identity) and return stdout."""
    ident = ["-c", "user.name=Test", "-c", "user.email=test@example.com"]
    proc = subprocess.run(
        ["git", *ident, *args], cwd=repo, capture_output=True, text=True, check=True
    )
    return proc.stdout.strip()


def write(path: Path, text: str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)


def make_repo(path: Path, files: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True)
    g(path, "init", "-q", "-b", "main")
    for name, text in (files or {"README.md": "hello\n"}).items():
        write(path / name, text)
    g(path, "add", "-A")
    g(path, "commit", "-qm", "initial")
    return path


@pytest.fixture
def busy_repo(tmp_path: Path) -> Path:
    """A repository with history, branches, tags, a stash, and every kind of uncommitted work."""
    repo = make_repo(
        tmp_path / "src",
        {
            "a.txt": "a1\n",
            "b.txt": "b1\n",
            "gone.txt": "gone\n",
            "staged_gone.txt": "sg\n",
            "mode.txt": "m\n",
            "dir/nested.txt": "n\n",
            ".gitignore": "*.log\nbuild/\n",
        },
    )
    write(repo / "run.sh", "#!/bin/sh\n", 0o755)
    (repo / "link").symlink_to("a.txt")
    write(repo / "forced.log", "f1\n")
    g(repo, "add", "run.sh", "link")
    g(repo, "add", "-f", "forced.log")
    g(repo, "commit", "-qm", "second")
    g(repo, "tag", "v0")
    g(repo, "tag", "-a", "v1", "-m", "release one")
    g(repo, "checkout", "-qb", "feature")
    write(repo / "feature.txt", "feat\n")
    g(repo, "add", "feature.txt")
    g(repo, "commit", "-qm", "feature work")
    g(repo, "checkout", "-q", "main")
    write(repo / "a.txt", "stashed\n")
    g(repo, "stash", "-q")
    # The uncommitted work the snapshot must capture.
    write(repo / "a.txt", "a2\n")
    write(repo / "b.txt", "b2\n")
    write(repo / "new_staged.txt", "only staged\n")
    g(repo, "add", "b.txt", "new_staged.txt")
    (repo / "gone.txt").unlink()
    g(repo, "rm", "-q", "staged_gone.txt")
    (repo / "mode.txt").chmod(0o755)
    write(repo / "forced.log", "f2\n")
    write(repo / "untracked.txt", "u\n")
    write(repo / "dir" / "untracked 2 ü.txt", "u2\n")
    write(repo / "debug.log", "ignored\n")
    write(repo / "build" / "out.bin", "ignored\n")
    return repo


def tree_state(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every path under root (the .git directory included) with its mode and bytes."""
    state: dict[str, tuple[int, bytes]] = {}
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(parent) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                body = os.readlink(path).encode()
            elif stat.S_ISREG(info.st_mode):
                body = path.read_bytes()
            else:
                body = b""
            state[str(path.relative_to(root))] = (info.st_mode, body)
    return state


def source_state(repo: Path) -> dict[str, object]:
    """What the user would notice changing: files, .git (index, refs, config), stash, refs."""
    return {
        "tree": tree_state(repo),
        "index_mtime": (repo / ".git" / "index").stat().st_mtime_ns,
        "refs": g(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "head": g(repo, "symbolic-ref", "HEAD"),
        "stash": g(repo, "stash", "list"),
        "stage": g(repo, "ls-files", "--stage"),
    }


def refs(repo: Path, *patterns: str) -> dict[str, str]:
    out = g(repo, "for-each-ref", "--format=%(refname) %(objectname)", *patterns)
    return dict(line.split(" ") for line in out.splitlines())


# --- the copy ----------------------------------------------------------------------------


def test_copy_has_full_history_branches_and_tags(busy_repo: Path, tmp_path: Path) -> None:
    ws = create_from_repo(busy_repo, tmp_path / "ws", LABEL)
    assert ws.path == tmp_path / "ws"
    assert ws.branch == f"catty/{LABEL}"
    assert ws.source == str(busy_repo)
    assert ws.source_branch == "main"
    assert ws.base_commit == g(busy_repo, "rev-parse", "HEAD")
    assert refs(ws.path, "refs/heads/main", "refs/heads/feature", "refs/tags") == refs(
        busy_repo, "refs/heads", "refs/tags"
    )
    assert g(ws.path, "rev-list", "--count", "main") == "2"
    assert g(ws.path, "symbolic-ref", "HEAD") == f"refs/heads/catty/{LABEL}"
    assert g(ws.path, "status", "--porcelain") == ""
    # The workspace stands alone: no borrowed objects, nothing missing.
    assert not (ws.path / ".git" / "objects" / "info" / "alternates").exists()
    # Hard links would let a write in the sandbox reach the user's object files.
    assert all(p.stat().st_nlink == 1 for p in (ws.path / ".git").rglob("*") if p.is_file())
    g(ws.path, "fsck", "--no-dangling")


def test_uncommitted_work_becomes_one_snapshot_commit(busy_repo: Path, tmp_path: Path) -> None:
    ws = create_from_repo(busy_repo, tmp_path / "ws", LABEL)
    assert ws.snapshot_commit == g(ws.path, "rev-parse", "HEAD")
    assert g(ws.path, "rev-parse", "HEAD^") == ws.base_commit
    assert g(ws.path, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s") == (
        f"catty <catty@localhost>|catty <catty@localhost>|"
        f"catty: snapshot of uncommitted work in {busy_repo}"
    )
    changes = g(ws.path, "-c", "core.quotePath=false", "diff", "--name-status", "HEAD^", "HEAD")
    assert sorted(changes.splitlines()) == sorted(
        [
            "M\ta.txt",
            "M\tb.txt",
            "A\tdir/untracked 2 ü.txt",
            "M\tforced.log",
            "D\tgone.txt",
            "M\tmode.txt",
            "A\tnew_staged.txt",
            "D\tstaged_gone.txt",
            "A\tuntracked.txt",
        ]
    )
    files = ws.path
    assert (files / "a.txt").read_text() == "a2\n"
    assert (files / "new_staged.txt").read_text() == "only staged\n"
    assert (files / "forced.log").read_text() == "f2\n"
    assert os.access(files / "mode.txt", os.X_OK)
    assert os.access(files / "run.sh", os.X_OK)
    assert os.readlink(files / "link") == "a.txt"
    assert not (files / "gone.txt").exists()
    assert not (files / "debug.log").exists()
    assert not (files / "build").exists()


def test_source_is_left_exactly_as_it_was(busy_repo: Path, tmp_path: Path) -> None:
    before = source_state(busy_repo)
    create_from_repo(busy_repo, tmp_path / "ws", LABEL)
    assert source_state(busy_repo) == before
    assert g(busy_repo, "stash", "list").count("\n") == 0  # the one stash entry is still there


def test_clean_source_gives_no_snapshot(tmp_path: Path) -> None:
    src = make_repo(tmp_path / "src")
    ws = create_from_repo(src, tmp_path / "ws", LABEL)
    assert ws.snapshot_commit is None
    assert g(ws.path, "rev-parse", "HEAD") == ws.base_commit == g(src, "rev-parse", "HEAD")


def test_subdirectory_resolves_to_top_level(tmp_path: Path) -> None:
    src = make_repo(tmp_path / "src", {"pkg/mod.py": "x = 1\n"})
    ws = create_from_repo(src / "pkg", tmp_path / "ws", LABEL)
    assert ws.source == str(src)
    assert (ws.path / "pkg" / "mod.py").read_text() == "x = 1\n"


def test_repository_without_commits_snapshots_as_root(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    g(src, "init", "-q", "-b", "main")
    write(src / "staged.txt", "s\n")
    g(src, "add", "staged.txt")
    write(src / "untracked.txt", "u\n")
    before = source_state(src)
    ws = create_from_repo(src, tmp_path / "ws", LABEL)
    assert ws.base_commit is None
    assert ws.source_branch is None
    assert ws.snapshot_commit == g(ws.path, "rev-parse", "HEAD")
    assert g(ws.path, "rev-list", "--parents", "-n1", "HEAD") == ws.snapshot_commit  # a root
    assert (ws.path / "staged.txt").read_text() == "s\n"
    assert (ws.path / "untracked.txt").read_text() == "u\n"
    assert source_state(src) == before
    g(ws.path, "fsck", "--no-dangling")


def test_empty_repository_gets_an_empty_root_commit(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    g(src, "init", "-q")
    ws = create_from_repo(src, tmp_path / "ws", LABEL)
    assert ws.snapshot_commit is None
    assert ws.base_commit == g(ws.path, "rev-parse", f"catty/{LABEL}")
    assert g(ws.path, "ls-tree", "HEAD") == ""


def test_detached_head_has_no_source_branch(tmp_path: Path) -> None:
    src = make_repo(tmp_path / "src")
    write(src / "README.md", "two\n")
    g(src, "commit", "-qam", "two")
    g(src, "checkout", "-q", "--detach", "HEAD^")
    ws = create_from_repo(src, tmp_path / "ws", LABEL)
    assert ws.source_branch is None
    assert ws.base_commit == g(src, "rev-parse", "HEAD")
    assert (ws.path / "README.md").read_text() == "hello\n"
    assert g(ws.path, "rev-parse", "main") == g(src, "rev-parse", "main")


def test_linked_worktree_source(tmp_path: Path) -> None:
    src = make_repo(tmp_path / "src")
    g(src, "worktree", "add", "-q", "-b", "side", str(tmp_path / "side"))
    write(tmp_path / "side" / "README.md", "changed on side\n")
    ws = create_from_repo(tmp_path / "side", tmp_path / "ws", LABEL)
    assert ws.source_branch == "side"
    assert (ws.path / "README.md").read_text() == "changed on side\n"


# --- refusals and cleanup ----------------------------------------------------------------


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError) as err:
        create_from_repo(tmp_path / "nope", tmp_path / "ws", LABEL)
    assert err.value.reason == "no_such_path"
    assert str(tmp_path / "nope") in str(err.value)
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize("kind", ["plain_dir", "file", "bare"])
def test_not_a_repository(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "thing"
    if kind == "file":
        path.write_text("x")
    else:
        path.mkdir()
        if kind == "bare":
            g(path, "init", "-q", "--bare")
    with pytest.raises(WorkspaceError) as err:
        create_from_repo(path, tmp_path / "ws", LABEL)
    assert err.value.reason == "not_a_repo"
    assert str(err.value) == (
        f"{path} is not a git repository; run `git init` there or pass --repo with a repository"
    )
    assert not (tmp_path / "ws").exists()


def test_too_large_leaves_nothing(busy_repo: Path, tmp_path: Path) -> None:
    dest = tmp_path / "deep" / "ws"
    with pytest.raises(WorkspaceError) as err:
        create_from_repo(busy_repo, dest, LABEL, max_bytes=1024)
    assert err.value.reason == "too_large"
    assert re.fullmatch(
        rf"the repository at {re.escape(str(busy_repo))} is \d+\.\d KiB, over the 1\.0 KiB cap "
        r"\(CattyExtension\.max_workspace_bytes\); .*",
        str(err.value),
    )
    assert not dest.exists()


def test_measure_counts_git_dir_and_unignored_files_only(tmp_path: Path) -> None:
    src = make_repo(tmp_path / "src", {".gitignore": "*.bin\n"})
    small = measure_source_bytes(src)
    write(src / "big.bin", "x" * 1_000_000)
    assert measure_source_bytes(src) == small
    write(src / "big.txt", "x" * 1_000_000)
    assert measure_source_bytes(src) == small + 1_000_000
    git_dir = sum(p.lstat().st_size for p in (src / ".git").rglob("*") if p.is_file())
    assert small >= git_dir


def test_failure_midway_removes_the_partial_copy(busy_repo: Path, tmp_path: Path) -> None:
    g(busy_repo, "branch", "catty")  # refs/heads/catty blocks refs/heads/catty/<label>
    dest = tmp_path / "ws"
    with pytest.raises(WorkspaceError) as err:
        create_from_repo(busy_repo, dest, LABEL)
    assert err.value.reason == "git_failed"
    assert not dest.exists()


def test_failure_keeps_a_given_empty_dest_empty(
    busy_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise GitError(["add"], 1, "disk full")

    monkeypatch.setattr(ws_module, "_snapshot", broken)
    dest = tmp_path / "ws"
    dest.mkdir()
    with pytest.raises(WorkspaceError, match="disk full") as err:
        create_from_repo(busy_repo, dest, LABEL)
    assert err.value.reason == "git_failed"
    assert dest.is_dir() and list(dest.iterdir()) == []


def test_dest_must_be_new_or_empty(busy_repo: Path, tmp_path: Path) -> None:
    dest = tmp_path / "ws"
    write(dest / "keep.txt", "mine\n")
    with pytest.raises(WorkspaceError) as err:
        create_from_repo(busy_repo, dest, LABEL)
    assert err.value.reason == "dest_not_empty"
    assert (dest / "keep.txt").read_text() == "mine\n"
    with pytest.raises(WorkspaceError):
        create_empty(dest / "keep.txt", LABEL)


def test_dest_parents_are_created_and_empty_dest_accepted(tmp_path: Path) -> None:
    src = make_repo(tmp_path / "src")
    assert create_from_repo(src, tmp_path / "a" / "b" / "ws", LABEL).path.is_dir()
    (tmp_path / "empty").mkdir()
    ws = create_from_repo(src, tmp_path / "empty", LABEL)
    assert (ws.path / "README.md").exists()


def test_label_must_make_a_branch_name(tmp_path: Path) -> None:
    src = make_repo(tmp_path / "src")
    with pytest.raises(WorkspaceError) as err:
        create_from_repo(src, tmp_path / "ws", "bad..label")
    assert err.value.reason == "bad_label"
    assert not (tmp_path / "ws").exists()


# --- git settings --------------------------------------------------------------------------


def test_user_config_hooks_and_environment_do_not_interfere(
    busy_repo: Path, tmp_path: Path, isolated_git: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = make_repo(tmp_path / "other")
    marker = tmp_path / "hook-ran"
    hooks = tmp_path / "hooks"
    for hook_dir in (hooks, busy_repo / ".git" / "hooks"):
        for name in ("pre-commit", "post-checkout", "reference-transaction", "post-index-change"):
            write(hook_dir / name, f"#!/bin/sh\necho {name} >> {marker}\n", 0o755)
    (isolated_git / ".gitconfig").write_text(
        f"[core]\n\thooksPath = {hooks}\n"
        "[commit]\n\tgpgSign = true\n[gpg]\n\tprogram = false\n"
        "[user]\n\tuseConfigOnly = true\n"
    )
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Someone Else")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "1")
    ws = create_from_repo(busy_repo, tmp_path / "ws", LABEL)
    empty = create_empty(tmp_path / "empty", LABEL)
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_INDEX_FILE")
    assert not marker.exists()
    assert ws.source == str(busy_repo)
    assert g(ws.path, "log", "-1", "--format=%an %cn") == "catty catty"
    assert g(empty.path, "log", "-1", "--format=%an %cn") == "catty catty"


# --- empty workspaces ----------------------------------------------------------------------


def test_create_empty(tmp_path: Path) -> None:
    ws = create_empty(tmp_path / "a" / "ws", LABEL)
    assert ws == Workspace(
        tmp_path / "a" / "ws", f"catty/{LABEL}", ws.base_commit, None, None, None
    )
    assert g(ws.path, "symbolic-ref", "HEAD") == f"refs/heads/catty/{LABEL}"
    assert g(ws.path, "rev-list", "--parents", "HEAD") == ws.base_commit  # one root commit
    assert g(ws.path, "ls-tree", "HEAD") == ""
    write(ws.path / "new.txt", "n\n")
    g(ws.path, "add", "new.txt")
    assert g(ws.path, "diff", "--cached", "--stat", str(ws.base_commit)).startswith("new.txt")


# --- speed ---------------------------------------------------------------------------------


def test_a_few_thousand_files_copy_quickly(tmp_path: Path) -> None:
    src = make_repo(
        tmp_path / "src", {f"d{i % 40}/f{i}.py": f"value = {i}\n" * 20 for i in range(3000)}
    )
    for i in range(0, 3000, 300):
        write(src / f"d{i % 40}" / f"f{i}.py", "changed\n")
        write(src / f"new{i}.txt", "new\n")
    started = time.monotonic()
    ws = create_from_repo(src, tmp_path / "ws", LABEL)
    elapsed = time.monotonic() - started
    assert ws.snapshot_commit is not None
    assert len(g(ws.path, "ls-files").splitlines()) == 3010
    assert elapsed < 5, f"copying 3000 files took {elapsed:.1f}s"
