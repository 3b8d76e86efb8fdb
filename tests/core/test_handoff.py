"""A session's branch handed over as a git bundle: exactly the diff, uncommitted work included."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from catty_jupyter.core import workspace as workspaces
from catty_jupyter.core.handoff import HandoffError, bundle_session
from catty_jupyter.core.review import compute_diff


def git(cwd: Path, *args: str) -> str:
    """Run git for the test (as a user would) and return its output."""
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@x", *args], cwd=cwd, check=True,
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


@pytest.fixture
def session_ws(tmp_path: Path) -> tuple[Path, Path, str]:
    """A source repo with two commits, and a session workspace copied from it."""
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    (src / "a.txt").write_text("one\n")
    git(src, "add", ".")
    git(src, "commit", "-qm", "first")
    (src / "b.txt").write_text("two\n")
    git(src, "add", ".")
    git(src, "commit", "-qm", "second")
    ws = workspaces.create_from_repo(src, tmp_path / "ws", "calm-cat-0001")
    assert ws.base_commit is not None
    return src, ws.path, ws.base_commit


def fetch(repo: Path, bundle: Path, branch: str) -> str:
    """Fetch BRANCH from BUNDLE into REPO as a local branch; its commit."""
    git(repo, "fetch", "-q", str(bundle), f"+refs/heads/{branch}:refs/heads/{branch}")
    return git(repo, "rev-parse", branch)


def test_uncommitted_work_arrives_as_one_commit_that_says_so(
    session_ws: tuple[Path, Path, str], tmp_path: Path
) -> None:
    src, ws, base = session_ws
    (ws / "a.txt").write_text("one\nmore\n")  # the agent edits, and leaves it uncommitted
    (ws / "new.txt").write_text("fresh\n")  # untracked
    (ws / "b.txt").unlink()
    git(ws, "add", "a.txt")  # partly staged: staging must not matter
    shown = compute_diff(ws, base)
    out = tmp_path / "s.bundle"
    info = bundle_session(ws, "calm-cat-0001", out, have=[base], record=True)
    assert info["uncommitted"] and info["recorded"] and info["branch"] == "catty/calm-cat-0001"
    tip = fetch(src, out, "catty/calm-cat-0001")
    assert tip == info["commit"]
    assert "work left uncommitted by the agent in session calm-cat-0001" in git(
        src, "log", "-1", "--format=%B", tip
    )
    # Exactly what the diff showed: same files, same line counts.
    numstat = git(src, "diff", "--numstat", base, tip).splitlines()
    got = {line.split("\t")[2]: (int(line.split("\t")[0]), int(line.split("\t")[1]))
           for line in numstat}  # fmt: skip
    want = {f["path"]: (f["added"], f["removed"]) for f in shown["files"]}
    assert got == want == {"a.txt": (1, 0), "new.txt": (1, 0), "b.txt": (0, 1)}
    # Recorded in the workspace: the branch moved and the agent's git status is clean.
    assert git(ws, "rev-parse", "HEAD") == tip
    assert git(ws, "status", "--porcelain") == ""


def test_without_record_the_workspace_is_untouched(
    session_ws: tuple[Path, Path, str], tmp_path: Path
) -> None:
    src, ws, base = session_ws
    (ws / "a.txt").write_text("changed\n")
    head = git(ws, "rev-parse", "HEAD")
    out = tmp_path / "s.bundle"
    info = bundle_session(ws, "calm-cat-0001", out, have=[base])
    assert info["uncommitted"] and not info["recorded"]
    assert git(ws, "rev-parse", "HEAD") == head
    assert git(ws, "status", "--porcelain") == "M a.txt"
    assert fetch(src, out, "catty/calm-cat-0001") == info["commit"]


def test_committed_work_is_bundled_as_is_and_only_what_is_new_travels(
    session_ws: tuple[Path, Path, str], tmp_path: Path
) -> None:
    src, ws, base = session_ws
    (ws / "c.txt").write_text("c\n" * 1000)
    git(ws, "add", ".")
    git(ws, "commit", "-qm", "agent commit")
    out = tmp_path / "s.bundle"
    info = bundle_session(ws, "calm-cat-0001", out, have=[base, "0" * 40])
    assert not info["uncommitted"] and info["commit"] == git(ws, "rev-parse", "HEAD")
    assert info["have"] == [base]  # a commit the workspace does not know is ignored
    heads = git(src, "bundle", "list-heads", str(out))
    assert heads.endswith("refs/heads/catty/calm-cat-0001")
    full = tmp_path / "full.bundle"
    bundle_session(ws, "calm-cat-0001", full)
    assert out.stat().st_size < full.stat().st_size
    assert fetch(src, out, "catty/calm-cat-0001") == info["commit"]


def test_a_receiver_that_has_everything_still_gets_a_bundle(
    session_ws: tuple[Path, Path, str], tmp_path: Path
) -> None:
    src, ws, _base = session_ws
    out = tmp_path / "s.bundle"
    first = bundle_session(ws, "calm-cat-0001", out)
    tip = fetch(src, out, "catty/calm-cat-0001")
    again = tmp_path / "again.bundle"
    bundle_session(ws, "calm-cat-0001", again, have=[tip])
    assert fetch(src, again, "catty/calm-cat-0001") == first["commit"]


def test_all_refs_carries_every_branch_and_tag(
    session_ws: tuple[Path, Path, str], tmp_path: Path
) -> None:
    _src, ws, _base = session_ws
    git(ws, "tag", "v1")
    out = tmp_path / "all.bundle"
    info = bundle_session(ws, "calm-cat-0001", out, all_refs=True)
    assert {"refs/heads/main", "refs/tags/v1", "refs/heads/catty/calm-cat-0001"} <= set(
        info["refs"]
    )
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--mirror", str(out), str(clone))
    assert git(clone, "rev-parse", "v1") == git(ws, "rev-parse", "v1")


def test_agent_git_config_is_never_run(session_ws: tuple[Path, Path, str], tmp_path: Path) -> None:
    _src, ws, _base = session_ws
    planted = tmp_path / "planted"
    # A clean filter and a hook the agent planted: neither runs, and the raw bytes travel.
    git(ws, "config", "filter.evil.clean", f"touch {planted}; cat")
    git(ws, "config", "core.hooksPath", str(tmp_path / "hooks"))
    (ws / ".gitattributes").write_text("*.txt filter=evil\n")
    (ws / "a.txt").write_text("secret change\n")
    out = tmp_path / "s.bundle"
    bundle_session(ws, "calm-cat-0001", out, record=True)
    assert not planted.exists()


def test_a_workspace_without_commits_is_refused(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    git(ws, "init", "-q")
    with pytest.raises(HandoffError, match="nothing to hand over"):
        bundle_session(ws, "calm-cat-0001", tmp_path / "x.bundle")
