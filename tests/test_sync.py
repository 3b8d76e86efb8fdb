"""`jupyter catty sync`: a session's changed files copied back into a directory, against a real
server, real sessions and real git."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from tests.conftest import git, results
from tests.server.test_review import workspace
from tests.test_cli import Run, _read_until, catty

__all__ = ["catty"]  # the CLI fixture, used here too

WORK = ("echo hi >> README.md && printf 'x\\n' > new.txt && rm gone.txt && mkdir -p sub && "
        "printf 'deep\\n' > sub/deep.txt && chmod +x run.sh")  # fmt: skip


def source_repo(make_repo: Any, dirty: bool = False) -> Path:
    """A repository with files for a session to change, delete, and leave alone."""
    repo = make_repo()
    (repo / "gone.txt").write_text("to be deleted\n")
    (repo / "untouched.txt").write_text("the session never touches this\n")
    (repo / "run.sh").write_text("#!/bin/sh\necho run\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "more files")
    if dirty:
        (repo / "README.md").write_text("# test repo\n\nuncommitted line\n")
        (repo / "draft.txt").write_text("untracked draft\n")
    return repo


async def session_on(api: Any, session_until: Any, repo: Path, command: str = WORK) -> str:
    """A shell session on REPO whose first command (COMMAND) has run."""
    code, s = await api("POST", "sessions", {"agent": "shell", "repo": str(repo),
                                             "prompt": command, "client": "desk"})  # fmt: skip
    assert code == 201, s
    await session_until(s["label"], lambda e: results(e) >= 1, what="the command")
    return str(s["label"])


def branch_tip(jp_serverapp: Any, label: str) -> str:
    """The session branch's commit in its workspace."""
    return git(workspace(jp_serverapp, label), "rev-parse", f"refs/heads/catty/{label}").strip()


async def test_sync_copies_what_the_session_changed_and_nothing_else(
    catty: Run, api: Any, make_repo: Any, session_until: Any, jp_serverapp: Any, events: Any
) -> None:
    repo = source_repo(make_repo, dirty=True)
    label = await session_on(api, session_until, repo)
    before = branch_tip(jp_serverapp, label)
    # Local work the session knows nothing of stays as it is.
    (repo / "untouched.txt").write_text("edited here meanwhile\n")
    (repo / "mine.txt").write_text("made here meanwhile\n")

    code, out, err = await catty("sync", label)
    assert code == 0, err
    assert "4 files updated, 1 deleted, 0 already up to date" in out, out
    assert "A new.txt" in out and "D gone.txt" in out and "M README.md" in out
    # README.md had uncommitted work when the session started; the session's line follows it.
    assert (repo / "README.md").read_text() == "# test repo\n\nuncommitted line\nhi\n"
    assert (repo / "new.txt").read_text() == "x\n"
    assert (repo / "sub" / "deep.txt").read_text() == "deep\n"
    assert not (repo / "gone.txt").exists()
    assert os.access(repo / "run.sh", os.X_OK)
    assert (repo / "untouched.txt").read_text() == "edited here meanwhile\n"
    assert (repo / "mine.txt").read_text() == "made here meanwhile\n"
    assert (repo / "draft.txt").read_text() == "untracked draft\n"
    # The user's repository gained no branch, commit or object of the session.
    assert git(repo, "branch", "--list", f"catty/{label}") == ""
    assert git(repo, "log", "--format=%s", "-1").strip() == "more files"

    # Again: everything is already there.
    code, out, err = await catty("sync", label)
    assert code == 0, err
    assert "0 files updated, 0 deleted, 5 already up to date" in out, out

    # Syncing never moved the session's branch or committed its work.
    assert branch_tip(jp_serverapp, label) == before
    assert git(workspace(jp_serverapp, label), "status", "--porcelain").strip() != ""
    assert not any("committed onto" in e["payload"].get("message", "")
                   for e in await events(label))  # fmt: skip


async def test_a_file_changed_here_and_by_the_session_stops_the_sync_unless_force(
    catty: Run, api: Any, make_repo: Any, session_until: Any
) -> None:
    repo = source_repo(make_repo)
    label = await session_on(api, session_until, repo)
    (repo / "README.md").write_text("my own edit\n")
    (repo / "new.txt").write_text("I made one too\n")

    code, out, err = await catty("sync", label)
    assert code == 1 and out == "", out
    assert "README.md" in err and "new.txt" in err and "--force" in err, err
    assert "Nothing was written" in err
    # Nothing was written, not even the files that were free to write.
    assert (repo / "README.md").read_text() == "my own edit\n"
    assert (repo / "new.txt").read_text() == "I made one too\n"
    assert (repo / "gone.txt").exists() and not (repo / "sub").exists()
    assert not os.access(repo / "run.sh", os.X_OK)

    code, out, err = await catty("sync", "--force", label)
    assert code == 0, err
    assert (repo / "README.md").read_text() == "# test repo\nhi\n"
    assert (repo / "new.txt").read_text() == "x\n"
    assert not (repo / "gone.txt").exists()
    assert (repo / "untouched.txt").read_text() == "the session never touches this\n"


async def test_a_planted_symbolic_link_is_never_followed(
    catty: Run, api: Any, make_repo: Any, session_until: Any, tmp_path: Path
) -> None:
    repo = source_repo(make_repo)
    label = await session_on(api, session_until, repo)
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "sub").symlink_to(outside)

    for flags in ((), ("--force",)):
        code, _out, err = await catty("sync", *flags, label)
        assert code == 1 and "sub/deep.txt" in err and "symbolic link" in err, err
        assert list(outside.iterdir()) == [] and (repo / "gone.txt").exists()

    (repo / "sub").unlink()
    victim = outside / "victim.txt"
    victim.write_text("not yours\n")
    (repo / "new.txt").symlink_to(victim)
    code, _out, err = await catty("sync", label)
    assert code == 1 and "new.txt" in err, err
    code, _out, err = await catty("sync", "--force", label)
    assert code == 0, err
    assert victim.read_text() == "not yours\n"
    assert not (repo / "new.txt").is_symlink() and (repo / "new.txt").read_text() == "x\n"


async def test_sync_into_another_directory(
    catty: Run, api: Any, make_repo: Any, session_until: Any, tmp_path: Path
) -> None:
    label = await session_on(api, session_until, source_repo(make_repo))
    elsewhere = tmp_path / "elsewhere"  # not a repository: the whole branch comes over
    elsewhere.mkdir()
    code, _out, err = await catty("sync", label, str(elsewhere))
    # README.md and run.sh are missing here, which is a change of their own.
    assert code == 1 and "README.md" in err and "run.sh" in err, err
    assert list(elsewhere.iterdir()) == []
    code, _out, err = await catty("sync", "--force", label, str(elsewhere))
    assert code == 0, err
    assert sorted(p.name for p in elsewhere.rglob("*") if p.is_file()) == [
        "README.md", "deep.txt", "new.txt", "run.sh"]  # fmt: skip

    code, _out, err = await catty("sync", label, str(tmp_path / "missing"))
    assert code == 1 and "missing" in err and "not a directory" in err
    code, s = await api("POST", "sessions", {"agent": "shell", "prompt": "true"})
    code, _out, err = await catty("sync", s["label"])
    assert code == 1 and "pass the directory" in err and "DIR" in err, err
    code, out, err = await catty("sync", s["label"], str(tmp_path))
    assert code == 0 and "nothing to sync" in out, err


async def test_watch_follows_later_changes(
    api: Any, make_repo: Any, session_until: Any, jp_serverapp: Any, jp_http_port: int,
    jp_base_url: str,
) -> None:  # fmt: skip
    repo = source_repo(make_repo)
    label = await session_on(api, session_until, repo)
    env = {**os.environ, "CATTY_URL": f"http://127.0.0.1:{jp_http_port}{jp_base_url}",
           "CATTY_TOKEN": jp_serverapp.identity_provider.token}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "catty_jupyter.cli", "sync", "--watch", "--interval", "0.5",
        label, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        await _read_until(proc.stdout, "watching")
        assert (repo / "new.txt").read_text() == "x\n"

        # The file the first round wrote is ours: the session's newer version replaces it.
        code, _ = await api("POST", f"sessions/{label}/messages",
                            {"text": "printf 'second\\n' > new.txt && rm sub/deep.txt",
                             "client": "desk"})  # fmt: skip
        assert code in (200, 202)
        seen = await _read_until(proc.stdout, " 1 deleted", timeout=60)
        assert (repo / "new.txt").read_text() == "second\n", seen
        assert not (repo / "sub").exists()
    finally:
        if proc.returncode is None:
            proc.terminate()
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0 and "stopped watching" in out.decode()
