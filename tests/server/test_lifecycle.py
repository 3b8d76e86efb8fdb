"""A session's life: runtime death and resume, input focus, archive, delete, download."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from tests.conftest import kinds, results, wait_for


def manager_of(jp_serverapp: Any) -> Any:
    """The extension's session manager (to reach the runtime's pids, as a crash would)."""
    return jp_serverapp.web_app.settings["catty_manager"]


async def shell_session(api: Any, session_until: Any, prompt: str = "echo ready",
                        client: str = "desk") -> dict[str, Any]:  # fmt: skip
    """A running shell session whose first command has finished."""
    code, s = await api("POST", "sessions", {"agent": "shell", "prompt": prompt, "client": client})
    assert code == 201, s
    await session_until(s["label"], lambda e: results(e) >= 1, what="the first command")
    return dict(s)


async def _if(fetch: Any, predicate: Any) -> Any:
    evs = await fetch
    return evs if predicate(evs) else None


def output(evs: list[dict[str, Any]]) -> str:
    """Everything the shell printed."""
    return "".join(e["payload"].get("output", "") for e in evs if e["kind"] == "tool_result")


async def test_a_killed_runtime_fails_the_session_and_resume_starts_a_new_shell(
    api: Any, session_until: Any, events: Any, jp_serverapp: Any
) -> None:
    s = await shell_session(api, session_until, "export MARK=before; echo $MARK")
    label = s["label"]
    handle = manager_of(jp_serverapp).runtimes[s["id"]]
    os.kill(handle.km.provisioner.sandbox_pid, signal.SIGKILL)

    async def failed() -> Any:
        _code, info = await api("GET", f"sessions/{label}")
        return info if info["state"] == "failed" else None

    info = await wait_for(failed, timeout=30, what="the session to fail")
    assert "runtime ended unexpectedly" in info["error"]
    last = (await events(label))[-1]
    assert last["kind"] == "error" and last["payload"]["fatal"] is True
    assert "resume" in last["payload"]["message"]
    code, body = await api(
        "POST", f"sessions/{label}/messages", {"text": "echo hi", "client": "desk"}
    )
    assert code == 409 and "resume it first" in body["message"], body

    code, body = await api("POST", f"sessions/{label}/resume", {"client": "desk"})
    assert code == 202 and body["state"] == "starting", body
    code, body = await api("POST", f"sessions/{label}/resume", {"client": "desk"})
    assert code == 409 and body["reason"] == "already_running"
    code, body = await api("POST", f"sessions/{label}/messages",
                           {"text": "echo mark=${MARK:-unset}; cat /proc/1/comm", "client": "desk"})  # fmt: skip
    assert code == 202, body
    # (session_until would stop at the earlier fatal error; this transcript has one on purpose.)
    evs = await wait_for(lambda: _if(events(label), lambda e: results(e) >= 2), timeout=60,
                         what="the command after resume")  # fmt: skip
    resumed_from = max(e["seq"] for e in evs if e["kind"] == "error")
    later = [e for e in evs if e["seq"] > resumed_from]
    assert any(e["payload"].get("shell_reset") for e in later), kinds(later)
    assert "mark=unset" in output(later)  # a new shell: the variable is gone, as it says
    assert "before" in output(evs)  # and the old turn is still in the transcript


@pytest.mark.claude
async def test_a_resumed_claude_session_remembers_its_earlier_turns(
    api: Any, session_until: Any
) -> None:
    code, s = await api("POST", "sessions", {"environment": "demo",
                                             "prompt": "!say the password is papaya"})  # fmt: skip
    assert code == 201, s
    label = s["label"]
    await session_until(label, lambda e: results(e) >= 1, what="the first turn")
    code, body = await api("POST", f"sessions/{label}/stop")
    assert body["state"] == "stopped"
    code, body = await api("POST", f"sessions/{label}/resume")
    assert code == 202, body
    code, body = await api("POST", f"sessions/{label}/messages", {"text": "!recall"})
    assert code == 202, body
    evs = await session_until(label, lambda e: results(e) >= 2, what="the turn after resume")
    last_result = max(e["seq"] for e in evs if e["kind"] == "result")
    first_result = min(e["seq"] for e in evs if e["kind"] == "result")
    recalled = " ".join(e["payload"].get("text", "") for e in evs
                        if e["kind"] == "assistant" and first_result < e["seq"] < last_result)  # fmt: skip
    # The demo model's !recall lists the user prompts the agent sent it: the earlier turn is
    # there only if Claude Code resumed its own conversation.
    assert "!say the password is papaya" in recalled, recalled


async def test_focus_one_hand_on_the_wheel(
    api: Any, session_until: Any, events: Any, jp_ws_fetch: Any
) -> None:
    s = await shell_session(api, session_until)
    label = s["label"]
    code, focus = await api("GET", f"sessions/{label}/focus")
    assert focus["holder"] == "desk"

    # The desk watches; the phone, a viewer, may not steer.
    desk = await jp_ws_fetch("catty", "v1", "sessions", label, "stream",
                             params={"after": str(s.get("seq", 0)), "client": "desk"})  # fmt: skip
    code, body = await api(
        "POST", f"sessions/{label}/messages", {"text": "echo hi", "client": "phone"}
    )
    assert (
        code == 409
        and body["reason"] == "focus_held"
        and "desk holds input focus" in body["message"]
    )
    code, body = await api("POST", f"sessions/{label}/interrupt", {"client": "phone"})
    assert code == 409

    # Taking control is explicit, and the desk is told at once on its stream.
    code, focus = await api("POST", f"sessions/{label}/focus", {"client": "phone"})
    assert code == 200 and focus["holder"] == "phone"

    async def told() -> Any:
        while True:
            event = json.loads(await asyncio.wait_for(desk.read_message(), 10))
            if event["kind"] == "status" and "focus" in event["payload"]:
                return event

    change = await told()
    assert change["payload"]["focus"] == "phone" and change["payload"]["previous"] == "desk"
    assert (
        change["client"] == "phone"
        and "phone took control from desk" in change["payload"]["message"]
    )
    code, body = await api(
        "POST", f"sessions/{label}/messages", {"text": "echo hi", "client": "desk"}
    )
    assert code == 409 and "phone holds input focus" in body["message"]
    code, body = await api("POST", f"sessions/{label}/messages",
                           {"text": "echo from-the-phone", "client": "phone"})  # fmt: skip
    assert code == 202
    evs = await session_until(label, lambda e: results(e) >= 2, what="the phone's command")
    assert [e["client"] for e in evs if e["kind"] == "user"][-1] == "phone"

    # Only the holder lets go; then anyone acting takes it.
    code, body = await api("DELETE", f"sessions/{label}/focus", client="desk")
    assert code == 409
    code, focus = await api("DELETE", f"sessions/{label}/focus", client="phone")
    assert code == 200 and focus["holder"] is None
    code, body = await api(
        "POST", f"sessions/{label}/messages", {"text": "echo back", "client": "desk"}
    )
    assert code == 202
    code, focus = await api("GET", f"sessions/{label}/focus")
    assert focus["holder"] == "desk" and focus["connected"] is True
    desk.close()
    await api("POST", f"sessions/{label}/stop")


@pytest.fixture
def catty_config() -> dict[str, Any]:
    """A short focus grace period, so the test can watch it lapse."""
    return {"focus_grace_period": 1.5}


async def test_a_holder_that_drops_off_keeps_focus_for_the_grace_period(
    api: Any, session_until: Any, jp_ws_fetch: Any
) -> None:
    s = await shell_session(api, session_until, client="phone")
    label = s["label"]
    phone = await jp_ws_fetch("catty", "v1", "sessions", label, "stream",
                              params={"client": "phone"})  # fmt: skip
    await asyncio.sleep(2)  # longer than the grace period, but connected: still held
    code, focus = await api("GET", f"sessions/{label}/focus")
    assert focus == {**focus, "holder": "phone", "connected": True, "expires": None}

    phone.close()  # a network blip
    dropped = time.time()

    async def disconnected() -> Any:
        _code, focus = await api("GET", f"sessions/{label}/focus")
        return focus if not focus["connected"] else None

    focus = await wait_for(disconnected, timeout=10, what="the server to notice")
    assert focus["holder"] == "phone" and focus["expires"] >= dropped + 1.0
    code, _body = await api(
        "POST", f"sessions/{label}/messages", {"text": "echo x", "client": "desk"}
    )
    assert code == 409  # within the grace period the phone still holds it

    async def lapsed() -> Any:
        _code, focus = await api("GET", f"sessions/{label}/focus")
        return focus["holder"] is None

    await wait_for(lapsed, timeout=10, what="the grace period to end")
    evs = await session_until(label, lambda e: any(
        "lapsed" in str(ev["payload"].get("message")) for ev in e), what="the lapse event")  # fmt: skip
    assert next(ev for ev in evs if "lapsed" in str(ev["payload"].get("message")))["payload"][
        "previous"] == "phone"  # fmt: skip
    code, _body = await api(
        "POST", f"sessions/{label}/messages", {"text": "echo x", "client": "desk"}
    )
    assert code == 202
    await api("POST", f"sessions/{label}/stop")


async def test_archive_hides_a_session_from_the_default_list(api: Any, session_until: Any) -> None:
    s = await shell_session(api, session_until)
    label = s["label"]
    code, body = await api("PATCH", f"sessions/{label}", {"archived": True})
    assert code == 200 and body["archived"] is True
    code, body = await api("GET", "sessions")
    assert label not in [x["label"] for x in body["sessions"]]
    code, body = await api("GET", "sessions", all="1")
    assert label in [x["label"] for x in body["sessions"]]
    await api("POST", f"sessions/{label}/stop")


async def test_delete_leaves_nothing_on_disk(
    api: Any, session_until: Any, tmp_path: Path, jp_serverapp: Any
) -> None:
    data = tmp_path / "catty-data"
    s = await shell_session(api, session_until, "echo data > f.txt")
    label, sid = s["label"], s["id"]
    manager = manager_of(jp_serverapp)
    runtime_dir = manager.runtime_dir(manager.get(label))
    assert (data / "sessions" / sid / "workspace" / "f.txt").exists() and runtime_dir.exists()
    before = {p for p in data.rglob("*") if sid not in str(p)}

    code, body = await api("DELETE", f"sessions/{label}", confirm="wrong-label")
    assert code == 400 and body["reason"] == "confirm_required"
    code, body = await api("DELETE", f"sessions/{label}", confirm=label)
    assert code == 204
    assert not list(data.rglob(f"*{sid}*")) and not runtime_dir.exists()
    after = {p for p in data.rglob("*")}
    assert after <= before | {p for p in after if p.name.startswith("catty.db")}
    assert manager.store.events(sid) == []
    code, body = await api("GET", f"sessions/{label}/transcript")
    assert code == 404


async def test_download_streams_the_workspace_and_never_leaves_it(
    api: Any, session_until: Any, jp_fetch: Any, jp_serverapp: Any, tmp_path: Path
) -> None:
    secret = tmp_path / "outside-secret.txt"
    secret.write_text("not yours\n")
    s = await shell_session(
        api, session_until,
        f"mkdir -p sub && echo hello > sub/hello.txt && ln -s {secret} link-out && "
        "ln -s /etc link-dir",
    )  # fmt: skip
    label = s["label"]
    await api("POST", f"sessions/{label}/stop")  # works for a stopped session too

    resp = await jp_fetch("catty", "v1", "sessions", label, "download")
    assert resp.headers["Content-Type"] == "application/gzip"
    assert f'filename="{label}.tar.gz"' in resp.headers["Content-Disposition"]
    with tarfile.open(fileobj=io.BytesIO(resp.body), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile(members[f"{label}/sub/hello.txt"]).read() == b"hello\n"  # type: ignore[union-attr]
        assert members[f"{label}/link-out"].issym()  # a link, never the file it points to
        assert f"{label}/.git/HEAD" in members
    assert b"not yours" not in resp.body

    resp = await jp_fetch("catty", "v1", "sessions", label, "download", params={"path": "sub"})
    with tarfile.open(fileobj=io.BytesIO(resp.body), mode="r:gz") as tar:
        assert tar.getnames() == [f"{label}-sub", f"{label}-sub/hello.txt"]

    async def download(path: str) -> tuple[int, Any]:
        resp = await jp_fetch("catty", "v1", "sessions", label, "download",
                              params={"path": path}, raise_error=False)  # fmt: skip
        return resp.code, json.loads(resp.body)

    for bad in ("../", "/etc", "sub/../../state", "link-dir", "link-dir/passwd"):
        code, body = await download(bad)
        assert code == 400 and body["reason"] == "path_outside_workspace", (bad, body)
    code, body = await download("nope")
    assert code == 404

    manager_of(jp_serverapp).max_download_bytes = 10
    code, body = await api("GET", f"sessions/{label}/download")
    assert code == 413 and "max_download_bytes" in body["message"]
    with pytest.raises(HTTPClientError):
        await jp_fetch("catty", "v1", "sessions", "brave-tiger-0000", "download")
