"""Handing a session's work over through the API: its branch as a bundle, and push to a remote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import fetch_args, git, results
from tests.server.test_review import CHANGE, changed_session, workspace
from tests.test_cli import catty

__all__ = ["catty"]  # the CLI fixture, used here too


async def bundle_of(jp_fetch: Any, label: str, body: dict[str, Any], dest: Path) -> Any:
    """POST sessions/LABEL/bundle; the response (its body saved at DEST when it is a bundle)."""
    resp = await jp_fetch("catty", "v1", "sessions", label, "bundle",
                          **fetch_args("POST", body))  # fmt: skip
    if resp.code == 200:
        dest.write_bytes(resp.body)
    return resp


async def test_the_bundle_carries_the_agents_uncommitted_work_on_its_branch(
    api: Any, make_repo: Any, session_until: Any, jp_serverapp: Any, jp_fetch: Any,
    events: Any, tmp_path: Path,
) -> None:  # fmt: skip
    label = await changed_session(api, make_repo, session_until)
    _code, session = await api("GET", f"sessions/{label}")
    source = Path(session["source"])
    code, info = await api("GET", f"sessions/{label}/teleport")
    assert code == 200, info
    assert info["branch"] == f"catty/{label}" and info["base_commit"] == session["base_commit"]
    assert info["origin"]["kind"] == "repo" and info["origin"]["remotes"] == {}
    assert info["origin"]["roots"] == [session["base_commit"]]  # one commit: it is the root
    assert info["conversation"] is None  # the shell agent keeps none

    dest = tmp_path / "s.bundle"
    resp = await bundle_of(jp_fetch, label, {"have": [session["base_commit"]]}, dest)
    assert resp.code == 200
    assert resp.headers["Content-Type"] == "application/x-git-bundle"
    commit = resp.headers["X-Catty-Commit"]
    assert resp.headers["X-Catty-Uncommitted"] == "1"
    git(source, "fetch", "-q", str(dest), f"refs/heads/catty/{label}:refs/heads/catty/{label}")
    assert git(source, "rev-parse", f"catty/{label}").strip() == commit
    changed = git(source, "diff", "--stat", session["base_commit"], commit)
    assert "README.md" in changed and "new.txt" in changed
    message = git(source, "log", "-1", "--format=%s", commit)
    assert f"uncommitted by the agent in session {label}" in message
    # Recorded in the workspace, said in the transcript; the diff did not change.
    assert git(workspace(jp_serverapp, label), "rev-parse", "HEAD").strip() == commit
    assert git(workspace(jp_serverapp, label), "status", "--porcelain") == ""
    evs = await events(label)
    assert any(e["payload"].get("commit") == commit for e in evs if e["kind"] == "system")
    _code, diff = await api("GET", f"sessions/{label}/diff", stat="1")
    assert (diff["files_changed"], diff["added"]) == (2, 2)

    # Bad input gets a clear 4xx.
    resp = await bundle_of(jp_fetch, label, {"have": ["nope"]}, dest)
    assert resp.code == 400 and json.loads(resp.body)["reason"] == "bad_have"
    resp = await bundle_of(jp_fetch, label, {"record": "yes"}, dest)
    assert resp.code == 400
    code, err = await api("GET", f"sessions/{label}/conversation")
    assert code == 404 and err["reason"] == "no_conversation" and "shell" in err["message"]


async def test_push_sends_the_branch_to_a_remote_of_the_source(
    api: Any, make_repo: Any, session_until: Any, events: Any, tmp_path: Path
) -> None:
    repo = make_repo()
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main")
    code, s = await api("POST", "sessions", {"agent": "shell", "repo": str(repo),
                                             "prompt": CHANGE, "client": "desk"})  # fmt: skip
    assert code == 201, s
    label = s["label"]
    await session_until(label, lambda e: results(e) >= 1, what="the change")

    code, pushed = await api("POST", f"sessions/{label}/push", {"remote": "origin"})
    assert code == 200, pushed
    assert pushed["branch"] == f"catty/{label}" and pushed["url"] == str(remote)
    assert git(remote, "rev-parse", f"catty/{label}").strip() == pushed["commit"]
    tree = git(remote, "ls-tree", "--name-only", pushed["commit"]).split()
    assert "new.txt" in tree  # the uncommitted work went too
    assert git(repo, "branch", "--list", f"catty/{label}") == ""  # the checkout is untouched
    evs = await events(label)
    assert any("pushed to origin" in e["payload"].get("message", "") for e in evs)

    code, err = await api("POST", f"sessions/{label}/push", {"remote": "upstream"})
    assert code == 400 and err["reason"] == "unknown_remote" and "origin" in err["message"]
    # The remote moved on meanwhile: a rejected push says so and changes nothing there.
    git(repo, "checkout", "-q", "-b", "other")
    git(repo, "commit", "-q", "--allow-empty", "-m", "someone else's work")
    git(repo, "push", "-q", "--force", "origin", f"other:catty/{label}")
    moved = git(remote, "rev-parse", f"catty/{label}").strip()
    code, err = await api("POST", f"sessions/{label}/push", {})
    assert code == 409 and err["reason"] == "push_rejected", err
    assert git(remote, "rev-parse", f"catty/{label}").strip() == moved


async def test_push_without_a_remote_says_what_to_do(
    api: Any, make_repo: Any, session_until: Any
) -> None:
    code, s = await api("POST", "sessions", {"agent": "shell", "repo": str(make_repo()),
                                             "prompt": "true", "client": "desk"})  # fmt: skip
    await session_until(s["label"], lambda e: results(e) >= 1, what="the command")
    code, err = await api("POST", f"sessions/{s['label']}/push", {})
    assert code == 409 and err["reason"] == "no_remote" and "git remote add" in err["message"]


async def test_the_bundle_is_made_in_the_sandbox_writing_only_the_workspace(
    api: Any, make_repo: Any, session_until: Any, jp_serverapp: Any, jp_fetch: Any,
    monkeypatch: Any, tmp_path: Path,
) -> None:  # fmt: skip
    from catty_jupyter.sandbox.bwrap import SandboxUnavailable
    from catty_jupyter.server import review as review_module

    label = await changed_session(api, make_repo, session_until)
    calls: list[dict[str, Any]] = []
    real = review_module.review_command

    def recording(ws: Path, hidden: list[Path], *args: Any, **kwargs: Any) -> list[str]:
        calls.append({"workspace": ws, "hidden": hidden, "writable": kwargs.get("writable")})
        return real(ws, hidden, *args, **kwargs)

    monkeypatch.setattr(review_module, "review_command", recording)
    resp = await bundle_of(jp_fetch, label, {"record": False}, tmp_path / "a.bundle")
    assert resp.code == 200
    manager = jp_serverapp.web_app.settings["catty_manager"]
    (made,) = [c for c in calls if c["writable"]]
    assert manager.data_dir in made["hidden"]
    assert workspace(jp_serverapp, label) not in made["writable"]  # record=false writes nothing
    calls.clear()
    resp = await bundle_of(jp_fetch, label, {}, tmp_path / "b.bundle")
    (made,) = [c for c in calls if c["writable"]]
    assert workspace(jp_serverapp, label) in made["writable"] and len(made["writable"]) == 2

    def missing(*args: Any, **kwargs: Any) -> list[str]:
        raise SandboxUnavailable("bubblewrap is not installed")

    monkeypatch.setattr(review_module, "review_command", missing)
    resp = await bundle_of(jp_fetch, label, {}, tmp_path / "c.bundle")
    assert resp.code == 503 and json.loads(resp.body)["reason"] == "no_sandbox"


async def test_jupyter_catty_push(catty: Any, make_repo: Any, api: Any, session_until: Any,
                                  tmp_path: Path) -> None:  # fmt: skip
    repo = make_repo()
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "upstream", str(remote))
    code, s = await api("POST", "sessions", {"agent": "shell", "repo": str(repo),
                                             "prompt": CHANGE, "client": "desk"})  # fmt: skip
    label = s["label"]
    await session_until(label, lambda e: results(e) >= 1, what="the change")
    code, out, err = await catty("push", label)
    assert code != 0 and "no remote 'origin'" in err and "upstream" in err
    code, out, err = await catty("push", label, "--remote", "upstream")
    assert code == 0, err
    assert f"pushed catty/{label} at" in out and str(remote) in out
    assert "new.txt" in git(remote, "ls-tree", "--name-only", f"catty/{label}").split()
