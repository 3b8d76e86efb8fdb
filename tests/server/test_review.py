"""Review through the API: a session's diff, its diffstat, and line comments sent to the agent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from catty_jupyter.client import CattyClient, ClientError, ServerInfo
from catty_jupyter.sandbox.bwrap import SandboxUnavailable
from catty_jupyter.server import review as review_module
from tests.conftest import git, results, wait_for
from tests.test_cli import Run, catty

__all__ = ["catty"]  # the CLI fixture, used here too

CHANGE = "echo hi >> README.md && printf 'x\\n' > new.txt"


async def changed_session(api: Any, make_repo: Any, session_until: Any) -> str:
    """A shell session whose first command changed README.md and added new.txt."""
    code, s = await api("POST", "sessions", {"agent": "shell", "repo": str(make_repo()),
                                             "prompt": CHANGE, "client": "desk"})  # fmt: skip
    assert code == 201, s
    await session_until(s["label"], lambda e: results(e) >= 1, what="the change")
    return str(s["label"])


def workspace(jp_serverapp: Any, label: str) -> Path:
    """The session's workspace on disk (a test reaches in the way its agent would)."""
    manager = jp_serverapp.web_app.settings["catty_manager"]
    return Path(manager.session_dir(manager.get(label))) / "workspace"


async def test_the_diff_shows_the_agents_changes_running_and_stopped(
    api: Any, make_repo: Any, session_until: Any, jp_serverapp: Any
) -> None:
    label = await changed_session(api, make_repo, session_until)
    code, diff = await api("GET", f"sessions/{label}/diff")
    assert code == 200, diff
    files = {f["path"]: f for f in diff["files"]}
    assert sorted(files) == ["README.md", "new.txt"]
    assert (files["README.md"]["status"], files["README.md"]["added"]) == ("modified", 1)
    assert (
        "+hi\n" in files["README.md"]["patch"] and " # test repo\n" in files["README.md"]["patch"]
    )
    assert (files["new.txt"]["status"], files["new.txt"]["patch"].endswith("+x\n")) == (
        "added",
        True,
    )
    assert (diff["added"], diff["removed"], diff["files_changed"], diff["truncated"]) == (
        2,
        0,
        2,
        False,
    )
    code, session = await api("GET", f"sessions/{label}")
    assert diff["base"] == session["base_commit"]

    code, stat = await api("GET", f"sessions/{label}/diff", stat="1")
    assert code == 200 and [f["patch"] for f in stat["files"]] == ["", ""]

    async def diffstat() -> Any:
        return (await api("GET", f"sessions/{label}"))[1]["diffstat"]

    assert await wait_for(diffstat, 30, what="the diffstat") == {
        "files": 2,
        "added": 2,
        "removed": 0,
    }

    code, stopped = await api("POST", f"sessions/{label}/stop")
    assert code == 200 and stopped["state"] == "stopped"
    (workspace(jp_serverapp, label) / "late.txt").write_text("1\n2\n3\n")
    code, diff = await api("GET", f"sessions/{label}/diff", stat="true")
    assert code == 200 and (diff["files_changed"], diff["added"]) == (3, 5)
    code, err = await api("GET", "sessions/brave-tiger-0000/diff")
    assert code == 404 and err["reason"] == "not_found"


async def test_the_diff_runs_in_the_review_sandbox(
    api: Any, make_repo: Any, session_until: Any, monkeypatch: pytest.MonkeyPatch,
    jp_serverapp: Any,
) -> None:  # fmt: skip
    label = await changed_session(api, make_repo, session_until)
    calls: list[tuple[Path, list[Path]]] = []
    real = review_module.review_command

    def recording(workspace: Path, hidden: list[Path], *args: Any, **kwargs: Any) -> list[str]:
        calls.append((workspace, hidden))
        assert not kwargs.get("writable")  # a diff writes nothing
        return real(workspace, hidden, *args, **kwargs)

    monkeypatch.setattr(review_module, "review_command", recording)
    code, diff = await api("GET", f"sessions/{label}/diff")
    assert code == 200 and diff["files_changed"] == 2
    manager = jp_serverapp.web_app.settings["catty_manager"]
    # This request's run, perhaps with a diffstat refresh's.
    assert calls and {c[0] for c in calls} == {workspace(jp_serverapp, label)}
    assert all(manager.data_dir in hidden for _ws, hidden in calls)  # other sessions stay hidden

    def missing(*args: Any, **kwargs: Any) -> list[str]:
        raise SandboxUnavailable("bubblewrap is not installed")

    monkeypatch.setattr(review_module, "review_command", missing)
    code, err = await api("GET", f"sessions/{label}/diff")
    assert code == 503 and err["reason"] == "no_sandbox"  # never run unconfined instead


@pytest.fixture
def catty_config(request: Any) -> dict[str, Any]:
    """The unsandboxed runtime for the test that says so."""
    if "unsandboxed" in request.node.name:
        return {"runtime_kernel": "catty-runtime-unsandboxed"}
    return {}


async def test_an_unsandboxed_session_is_diffed_without_bwrap(
    api: Any, make_repo: Any, session_until: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    label = await changed_session(api, make_repo, session_until)
    code, session = await api("GET", f"sessions/{label}")
    assert session["sandboxed"] is False

    def refused(*args: Any) -> list[str]:
        raise AssertionError("an unsandboxed session needs no review sandbox")

    monkeypatch.setattr(review_module, "review_command", refused)
    code, diff = await api("GET", f"sessions/{label}/diff")
    assert code == 200 and (diff["files_changed"], diff["added"]) == (2, 2)


async def test_the_agents_git_filters_never_run_on_the_host(
    api: Any, make_repo: Any, session_until: Any, tmp_path: Path
) -> None:
    marker = Path(f"/tmp/PWNED-{tmp_path.name}-{id(tmp_path)}")
    trap = (f"git config filter.evil.clean 'touch {marker}; cat' && git config filter.evil.process"
            f" 'touch {marker}' && git config diff.evil.textconv 'touch {marker}; cat' && "
            f"echo '* filter=evil diff=evil' > .gitattributes && echo changed >> README.md")  # fmt: skip
    code, s = await api("POST", "sessions", {"agent": "shell", "repo": str(make_repo()),
                                             "prompt": trap})  # fmt: skip
    assert code == 201
    label = s["label"]
    await session_until(label, lambda e: results(e) >= 1, what="the trap")
    try:
        code, diff = await api("GET", f"sessions/{label}/diff")
        assert code == 200, diff
        assert {f["path"] for f in diff["files"]} == {".gitattributes", "README.md"}
        assert not marker.exists()
    finally:
        marker.unlink(missing_ok=True)


async def test_comments_are_queued_checked_withdrawn_and_sent_before_the_message(
    api: Any, make_repo: Any, session_until: Any, events: Any
) -> None:
    label = await changed_session(api, make_repo, session_until)
    base = f"sessions/{label}/comments"
    for body, field in [
        ({"path": "../x", "line": 1, "text": "no"}, "path"),
        ({"path": "README.md", "line": 0, "text": "no"}, "line"),
        ({"path": "README.md", "line": "2", "text": "no"}, "line"),
        ({"path": "README.md", "line": 2, "side": "middle", "text": "no"}, "side"),
        ({"path": "README.md", "line": 2, "text": ""}, "text"),
        ({"path": "README.md", "line": 2, "text": "x" * 20_000}, "text"),
    ]:
        code, err = await api("POST", base, body)
        assert code == 400 and err["reason"] == "bad_comment" and err["field"] == field, body
    code, err = await api("POST", "sessions/brave-tiger-0000/comments",
                          {"path": "a", "line": 1, "text": "x"})  # fmt: skip
    assert code == 404

    code, first = await api("POST", base, {"path": "README.md", "line": 2, "text": "say hello",
                                           "client": "phone"})  # fmt: skip
    assert code == 201 and first["line_text"] == "hi" and first["side"] == "new"
    assert first["client"] == "phone"
    code, second = await api("POST", base, {"path": "new.txt", "line": 1, "side": "new",
                                            "text": "`rm -rf ~` is not what I meant"})  # fmt: skip
    assert code == 201 and second["line_text"] == "x"
    code, third = await api("POST", base, {"path": "nowhere.py", "line": 5, "text": "later"})
    assert code == 201 and third["line_text"] is None
    code, listed = await api("GET", base)
    assert code == 200 and [c["id"] for c in listed["comments"]] == [
        first["id"], second["id"], third["id"],
    ]  # fmt: skip
    assert listed["comments"][0] == first
    code, _ = await api("DELETE", f"{base}/{third['id']}")
    assert code == 204
    code, err = await api("DELETE", f"{base}/{third['id']}")
    assert code == 404
    code, err = await api("DELETE", f"{base}/nosuchcomment")
    assert code == 404

    before = len(await events(label))
    code, _ = await api("POST", f"sessions/{label}/messages", {"text": "echo reviewed",
                                                               "client": "desk"})  # fmt: skip
    assert code == 202
    evs = await session_until(label, lambda e: results(e) >= 2, what="the reviewed turn")
    new = [e for e in evs[before:] if e["kind"] in ("comment", "user")]
    assert [e["kind"] for e in new] == ["comment", "comment", "user"]
    assert new[0]["payload"] == {"id": first["id"], "path": "README.md", "line": 2, "side": "new",
                                 "line_text": "hi", "text": "say hello"}  # fmt: skip
    assert (new[0]["client"], new[1]["payload"]["id"]) == ("phone", second["id"])
    text = new[2]["payload"]["text"]
    assert text.startswith("echo reviewed\n\n# Review comments on your changes:\n")
    assert "# - README.md line 2 (new): `hi`\n#   Comment: say hello\n" in text
    output = "".join(
        e["payload"].get("output", "") for e in evs[before:] if e["kind"] == "tool_result"
    )
    result = [e for e in evs[before:] if e["kind"] == "result"][-1]
    assert "reviewed" in output and result["payload"]["exit_code"] == 0  # the block ran nothing

    code, listed = await api("GET", base)
    assert listed["comments"] == []
    code, err = await api("DELETE", f"{base}/{first['id']}")
    assert code == 404  # sent: no longer withdrawable

    code, err = await api("POST", f"sessions/{label}/messages", {"text": "  ", "client": "desk"})
    assert code == 400 and err["reason"] == "empty_message"
    code, _ = await api("POST", base, {"path": "new.txt", "line": 1, "text": "one more"})
    assert code == 201
    code, _ = await api("POST", f"sessions/{label}/messages", {"text": "", "client": "desk"})
    assert code == 202
    evs = await session_until(label, lambda e: results(e) >= 3, what="the comment-only turn")
    user = [e for e in evs if e["kind"] == "user"][-1]
    assert user["payload"]["text"].startswith("# Please address these review comments.\n\n")
    assert [e for e in evs if e["kind"] == "result"][-1]["payload"]["exit_code"] == 0


async def test_comments_wait_while_a_message_is_refused(
    api: Any, make_repo: Any, session_until: Any
) -> None:
    label = await changed_session(api, make_repo, session_until)
    code, _ = await api("POST", f"sessions/{label}/comments",
                        {"path": "new.txt", "line": 1, "text": "keep me"})  # fmt: skip
    assert code == 201
    code, err = await api("POST", f"sessions/{label}/messages", {"text": "", "client": "intruder"})
    assert code == 409 and err["reason"] == "focus_held"
    code, _ = await api("POST", f"sessions/{label}/stop")
    assert code == 200
    code, err = await api("POST", f"sessions/{label}/messages", {"text": "", "client": "desk"})
    assert code == 409 and err["reason"] == "not_running"
    code, listed = await api("GET", f"sessions/{label}/comments")
    assert [c["text"] for c in listed["comments"]] == ["keep me"]


async def test_the_client_and_the_cli_show_the_diff_and_comments(
    catty: Run, api: Any, make_repo: Any, session_until: Any, jp_serverapp: Any,
    jp_http_port: int, jp_base_url: str,
) -> None:  # fmt: skip
    label = await changed_session(api, make_repo, session_until)
    code, out, err = await catty("diff", label, "--stat")
    assert code == 0, err
    assert out.splitlines() == ["+1 -0 README.md", "+1 -0 new.txt", "2 files changed, +2 -0"]
    code, out, err = await catty("diff", label)
    assert code == 0 and "@@ -1 +1,2 @@\n # test repo\n+hi\n" in out and "\033[" not in out
    code, out, err = await catty("diff", label, "--json")
    assert json.loads(out)["files_changed"] == 2
    code, out, err = await catty("diff", "brave-tiger-0000")
    assert code == 1 and "brave-tiger-0000" in err

    server = ServerInfo(f"http://127.0.0.1:{jp_http_port}{jp_base_url}",
                        jp_serverapp.identity_provider.token)  # fmt: skip
    client = CattyClient(server, client_id="desk")
    stat = await asyncio.to_thread(client.diff, label, True)
    assert [f["added"] for f in stat["files"]] == [1, 1]
    added = await asyncio.to_thread(client.add_comment, label, "README.md", 2, "why?")
    assert added["line_text"] == "hi"
    assert [c["id"] for c in await asyncio.to_thread(client.comments, label)] == [added["id"]]
    await asyncio.to_thread(client.withdraw_comment, label, added["id"])
    assert await asyncio.to_thread(client.comments, label) == []
    with pytest.raises(ClientError) as caught:
        await asyncio.to_thread(client.add_comment, label, "/etc/passwd", 1, "x")
    assert caught.value.status == 400 and caught.value.details == {"field": "path"}
    code, out, err = await catty("--client", "desk", "send", label)
    assert code == 1 and "the message is empty" in err  # nothing queued, nothing to send
    await asyncio.to_thread(client.add_comment, label, "new.txt", 1, "and this", "new")
    code, out, err = await catty("--client", "desk", "send", label)  # the comments alone
    assert code == 0, err
    evs = await session_until(label, lambda e: results(e) >= 2, what="the comment turn")
    assert [e["kind"] for e in evs if e["kind"] in ("comment", "user")][-2:] == ["comment", "user"]


async def test_a_comment_on_a_removed_line_of_a_renamed_file_quotes_the_old_file(
    api: Any, make_repo: Any, session_until: Any
) -> None:
    """The diff tabs send a removed line of a renamed file under the file's old path."""
    repo = make_repo()
    (repo / "notes.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    git(repo, "add", "notes.txt")
    git(repo, "commit", "-q", "-m", "notes")
    prompt = "mv notes.txt guide.txt && sed -i 's/^line 2$/line two/' guide.txt"
    code, s = await api("POST", "sessions", {"agent": "shell", "repo": str(repo),
                                             "prompt": prompt, "client": "desk"})  # fmt: skip
    assert code == 201, s
    label = s["label"]
    await session_until(label, lambda e: results(e) >= 1, what="the rename")
    code, diff = await api("GET", f"sessions/{label}/diff")
    [renamed] = diff["files"]
    assert (renamed["status"], renamed["old_path"], renamed["path"]) == (
        "renamed", "notes.txt", "guide.txt",
    )  # fmt: skip
    base = f"sessions/{label}/comments"
    code, old = await api("POST", base, {"path": "notes.txt", "line": 2, "side": "old",
                                         "text": "why rename it?"})  # fmt: skip
    assert code == 201 and old["line_text"] == "line 2", old
    code, new = await api("POST", base, {"path": "guide.txt", "line": 2, "text": "spell it out"})
    assert code == 201 and new["line_text"] == "line two", new
