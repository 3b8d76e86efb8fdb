"""Teleport, the client side: a session's branch and record into a local checkout, or a refusal
that says why, against a real server and real repositories."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from catty_jupyter.client import CattyClient, ServerInfo
from catty_jupyter.teleport import (
    BranchDiverged,
    NotThisRepository,
    TeleportError,
    TeleportResult,
    UncommittedChanges,
    normalise_url,
    teleport,
)
from tests.conftest import git, results
from tests.test_cli import Run, catty

__all__ = ["catty"]  # the CLI fixture, used here too

CHANGE = "echo hi >> README.md && printf 'x\\n' > new.txt"


@pytest.fixture
def client(jp_serverapp: Any, jp_http_port: int, jp_base_url: str) -> CattyClient:
    """A client of the test server (call it from a thread: the server runs on this loop)."""
    server = ServerInfo(f"http://127.0.0.1:{jp_http_port}{jp_base_url}",
                        jp_serverapp.identity_provider.token)  # fmt: skip
    return CattyClient(server, client_id="desk")


async def shell_session(api: Any, session_until: Any, repo: Path | None, command: str) -> str:
    """A shell session on REPO (None: an empty workspace) whose first COMMAND has run."""
    body = {"agent": "shell", "prompt": command, "client": "desk"}
    if repo is not None:
        body["repo"] = str(repo)
    code, s = await api("POST", "sessions", body)
    assert code == 201, s
    await session_until(s["label"], lambda e: results(e) >= 1, what="the command")
    return str(s["label"])


async def run_teleport(client: CattyClient, label: str, checkout: Path,
                       **kwargs: Any) -> tuple[TeleportResult, list[str]]:  # fmt: skip
    """Teleport in a thread; the result and the progress lines."""
    lines: list[str] = []
    result = await asyncio.to_thread(
        teleport, client, label, checkout, progress=lines.append, **kwargs
    )
    return result, lines


def unrelated_repo(path: Path) -> Path:
    """A repository with a history of its own (make_repo's are alike to the byte)."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "other.txt").write_text("another project\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "another project")
    return path


async def test_the_branch_arrives_with_the_agents_uncommitted_work_committed(
    api: Any, make_repo: Any, session_until: Any, client: CattyClient,
) -> None:  # fmt: skip
    repo = make_repo()
    label = await shell_session(api, session_until, repo, CHANGE)

    result, lines = await run_teleport(client, label, repo / ".")
    assert (result.branch, result.previous, result.branch_update) == (
        f"catty/{label}", "main", "created")  # fmt: skip
    assert result.uncommitted and result.stash is None and result.resume_command is None
    assert git(repo, "branch", "--show-current").strip() == f"catty/{label}"
    assert git(repo, "rev-parse", "HEAD").strip() == result.commit
    message = git(repo, "log", "-1", "--format=%B")
    assert f"work left uncommitted by the agent in session {label}" in message
    assert (repo / "new.txt").read_text() == "x\n" and "hi" in (repo / "README.md").read_text()
    assert git(repo, "status", "--porcelain") == ""
    assert any("checked out" in line for line in lines), lines
    saved = [json.loads(x) for x in Path(str(result.transcript_file)).read_text().splitlines()]
    assert saved and saved[0]["seq"] == 1 and len(saved) == result.events
    assert any(e["kind"] == "user" and e["payload"]["text"] == CHANGE for e in saved)
    assert str(result.transcript_file).startswith(str(repo / ".git"))

    # More work in the session; teleporting again moves the checked-out branch forward.
    code, _ = await api("POST", f"sessions/{label}/messages", {"text": "echo more > more.txt",
                                                               "client": "desk"})  # fmt: skip
    assert code in (200, 202)
    await session_until(label, lambda e: results(e) >= 2, what="the second command")
    again, _lines = await run_teleport(client, label, repo)
    assert again.branch_update == "fast-forwarded" and again.previous == f"catty/{label}"
    assert (repo / "more.txt").read_text() == "more\n"
    assert git(repo, "merge-base", "--is-ancestor", result.commit, again.commit) == ""


async def test_another_repository_an_empty_session_and_no_repository_are_refused(
    api: Any, make_repo: Any, session_until: Any, client: CattyClient, tmp_path: Path,
) -> None:  # fmt: skip
    label = await shell_session(api, session_until, make_repo(), "true")
    other = unrelated_repo(tmp_path / "other")
    with pytest.raises(NotThisRepository) as refused:
        await run_teleport(client, label, other)
    assert "share no history" in str(refused.value) and str(other) in str(refused.value)
    assert git(other, "branch", "--list", f"catty/{label}") == ""

    empty = await shell_session(api, session_until, None, "true")
    with pytest.raises(NotThisRepository) as refused:
        await run_teleport(client, empty, other)
    assert "empty workspace" in str(refused.value) and "download" in str(refused.value)

    (tmp_path / "plain").mkdir()
    with pytest.raises(TeleportError) as no_repo:
        await run_teleport(client, label, tmp_path / "plain")
    assert "not inside a git checkout" in str(no_repo.value)


async def test_a_fork_is_refused_and_another_spelling_of_the_origin_is_not(
    api: Any, make_repo: Any, session_until: Any, client: CattyClient, tmp_path: Path,
) -> None:  # fmt: skip
    repo = make_repo()
    git(repo, "remote", "add", "origin", "https://github.com/octo/project.git")
    label = await shell_session(api, session_until, repo, CHANGE)

    fork = tmp_path / "fork"
    git(tmp_path, "clone", "-q", str(repo), str(fork))
    git(fork, "remote", "set-url", "origin", "https://me:s3cret@github.com/someone/project.git")
    with pytest.raises(NotThisRepository) as refused:
        await run_teleport(client, label, fork)
    said = str(refused.value)
    assert "same history" in said and "fork" in said
    assert "github.com/someone/project" in said and "github.com/octo/project" in said
    assert "s3cret" not in said
    assert git(fork, "branch", "--list", f"catty/{label}") == ""

    # The same origin spelled the ssh way (with credentials elsewhere) is the same repository.
    git(fork, "remote", "set-url", "origin", "git@github.com:octo/project")
    result, _lines = await run_teleport(client, label, fork)
    assert git(fork, "branch", "--show-current").strip() == result.branch
    # A plain clone of the source directory (origin: its path) is the same repository too.
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    assert (await run_teleport(client, label, clone))[0].commit == result.commit


async def test_uncommitted_changes_stop_it_until_stashed(
    api: Any, make_repo: Any, session_until: Any, client: CattyClient,
) -> None:  # fmt: skip
    repo = make_repo()
    label = await shell_session(api, session_until, repo, CHANGE)
    (repo / "README.md").write_text("# my own edit\n")
    (repo / "scratch.txt").write_text("mine\n")
    (repo / "debug.log").write_text("ignored, so it stays\n")

    with pytest.raises(UncommittedChanges) as refused:
        await run_teleport(client, label, repo)
    said = str(refused.value)
    assert "README.md" in said and "scratch.txt" in said and "--stash" in said
    assert "debug.log" not in said
    assert sorted(refused.value.changes) == [" M README.md", "?? scratch.txt"]
    assert git(repo, "branch", "--show-current").strip() == "main"
    assert git(repo, "branch", "--list", f"catty/{label}") == ""
    # Nothing was fetched, so the session's uncommitted work was not committed either.
    _code, session = await api("GET", f"sessions/{label}/transcript", limit="5000")
    assert not any("committed onto" in e["payload"].get("message", "")
                   for e in session["events"])  # fmt: skip

    result, lines = await run_teleport(client, label, repo, stash=True)
    assert result.stash and f"catty: before teleport of {label}" in result.stash
    assert any("stashed" in line for line in lines)
    assert f"catty: before teleport of {label}" in git(repo, "stash", "list")
    assert git(repo, "branch", "--show-current").strip() == f"catty/{label}"
    assert not (repo / "scratch.txt").exists() and (repo / "debug.log").exists()
    assert "hi" in (repo / "README.md").read_text()


async def test_a_local_branch_with_commits_of_its_own_is_not_overwritten(
    api: Any, make_repo: Any, session_until: Any, client: CattyClient,
) -> None:  # fmt: skip
    repo = make_repo()
    label = await shell_session(api, session_until, repo, CHANGE)
    git(repo, "branch", f"catty/{label}")
    git(repo, "commit", "-q", "--allow-empty", "-m", "on main")
    git(repo, "checkout", "-q", f"catty/{label}")
    git(repo, "commit", "-q", "--allow-empty", "-m", "my own work")
    mine = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-q", "main")

    with pytest.raises(BranchDiverged) as refused:
        await run_teleport(client, label, repo)
    assert "1 commit(s)" in str(refused.value) and "git branch -m" in str(refused.value)
    assert git(repo, "rev-parse", f"catty/{label}").strip() == mine
    assert git(repo, "branch", "--show-current").strip() == "main"


async def test_the_command_line_stops_on_uncommitted_changes_then_stashes_and_says_what_next(
    api: Any, make_repo: Any, session_until: Any, catty: Run,
) -> None:  # fmt: skip
    repo = make_repo()
    label = await shell_session(api, session_until, repo, CHANGE)
    (repo / "mine.txt").write_text("not committed\n")

    code, out, err = await catty("teleport", label, cwd=repo)
    assert code == 1 and out == "", out
    assert "uncommitted changes" in err and "mine.txt" in err and "--stash" in err
    assert git(repo, "branch", "--show-current").strip() == "main"

    code, out, err = await catty("teleport", label, "--stash", "--dir", str(repo / ".git" / ".."))
    assert code == 0, err
    assert "stashed" in err and "checked out" in err
    assert f"is on catty/{label} at " in out and "git stash pop" in out
    assert f"jupyter catty log {label}" in out  # a shell session: no conversation to resume
    assert git(repo, "branch", "--show-current").strip() == f"catty/{label}"

    code, out, err = await catty("teleport", label, "--json", cwd=repo)
    assert code == 0 and err == "", err
    done = json.loads(out)
    assert done["branch_update"] == "unchanged" and done["resume_command"] is None
    code, out, err = await catty("teleport", "brave-tiger-0000", cwd=repo)
    assert code == 1 and "brave-tiger-0000" in err


def test_remote_urls_compare_by_repository_not_by_spelling(tmp_path: Path) -> None:
    same = ["git@github.com:o/r.git", "https://github.com/o/r", "https://u:t@GitHub.com/o/r/",
            "ssh://git@github.com:22/o/r.git", "https://github.com/o/r.git/"]  # fmt: skip
    assert {normalise_url(u, tmp_path) for u in same} == {"github.com/o/r"}
    assert normalise_url("https://github.com/fork/r", tmp_path) != "github.com/o/r"
    assert normalise_url("../up.git", tmp_path / "a") == normalise_url(
        str(tmp_path / "up"), tmp_path
    )
    assert normalise_url(f"file://{tmp_path}/x", tmp_path) == normalise_url("x", tmp_path)
