"""The widgets' own behaviour, driven from this process against a real server.

Outside a kernel ipywidgets keep their state without a front end, which is what these tests
read; the notebooks in test_magics.py check the same widgets inside a real kernel.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from catty_jupyter.client import CattyClient, ServerInfo
from catty_jupyter.notebook import follower
from catty_jupyter.notebook.follower import SessionFollower
from catty_jupyter.notebook.sessions import SessionList
from catty_jupyter.notebook.transcript import TranscriptView
from tests.servers import LiveServer


def _until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _client(server: LiveServer, name: str = "notebook-test") -> CattyClient:
    return CattyClient(ServerInfo(server.url, server.token), client_id=name)


def _turns(client: CattyClient, label: str) -> int:
    return sum(e["kind"] == "result" for e in client.transcript(label, limit=5000))


def _shell_session(client: CattyClient, turns: int) -> str:
    label = str(client.new("echo turn-0", agent="shell")["label"])
    _until(lambda: _turns(client, label) >= 1, "the first turn")
    for i in range(1, turns):
        client.send(label, f"echo turn-{i}")
        _until(lambda i=i: _turns(client, label) >= i + 1, f"turn {i}")
    return label


def test_follower_catches_up_across_a_server_restart(server: LiveServer) -> None:
    """Events that happen while the server is down arrive once the follower reconnects: every
    seq exactly once, in order, as the server's transcript has them."""
    client = _client(server)
    label = _shell_session(client, 1)
    seen: list[dict[str, Any]] = []
    follower = SessionFollower(client, label, 0, seen.extend).start()
    try:
        _until(lambda: any(e["kind"] == "result" for e in seen), "the first turn's events")
        server.kill()
        time.sleep(0.5)
        server.start()
        client.send(label, "echo after-the-restart")
        _until(lambda: sum(e["kind"] == "result" for e in seen) >= 2, "the second turn", 90)
    finally:
        follower.stop()
    on_server = [e["seq"] for e in client.transcript(label, limit=5000)]
    got = [e["seq"] for e in seen]
    assert got == on_server[: len(got)], (got, on_server)
    assert len(got) == len(set(got))
    assert any("after-the-restart" in str(e["payload"]) for e in seen)


def test_transcript_loads_older_events_on_demand(server: LiveServer) -> None:
    """The widget opens on the newest events; *Load older* goes back page by page to the
    first event, and then hides itself."""
    client = _client(server)
    label = _shell_session(client, 3)
    total = len(client.transcript(label, limit=5000))
    view = TranscriptView(client, label, page=5).open_session()
    try:
        assert view.first_seq > 1 and view.older_button.layout.display != "none"
        assert view.last_seq == total
        pages = 0
        while view.first_seq > 1:
            before = view.first_seq
            view.load_older()
            assert view.first_seq < before
            pages += 1
        assert pages >= 2
        assert view.older_button.layout.display == "none"
        shown = "\n".join(getattr(w, "value", "") for w in view.events_box.children)
        for i in range(3):
            assert f"echo turn-{i}" in shown
        assert shown.index("echo turn-0") < shown.index("echo turn-2")  # oldest first
    finally:
        view.close()


def test_focus_decides_what_the_widget_may_do(server: LiveServer) -> None:
    """Another client taking control makes this widget read-only and offers *Take control*;
    taking it back enables the send box again."""
    mine, theirs = _client(server, "notebook-mine"), _client(server, "phone")
    label = _shell_session(mine, 1)
    view = TranscriptView(mine, label).open_session()
    try:
        assert view.focus_holder == "notebook-mine" and not view.send_button.disabled
        theirs.take_focus(label)
        _until(lambda: view.focus_holder == "phone", "the focus change to reach the widget")
        assert view.send_button.disabled and view.take_button.layout.display != "none"
        assert "phone has control" in view.title.value
        view.take_button.click()
        _until(lambda: view.focus_holder == "notebook-mine", "taking control back")
        assert not view.send_button.disabled
        view.message.value = "echo from-the-widget"
        view.send_button.click()
        _until(lambda: "from-the-widget" in str(mine.transcript(label, limit=5000)), "the send")
    finally:
        view.close()


def test_an_expired_session_says_so_and_takes_no_message(tmp_path: Path) -> None:
    """The idle TTL ends the runtime: the widget shows `expired` and disables sending, and
    the session resumes from there."""
    config = {"cull_idle_timeout": 2, "cull_interval": 0.5}
    server = LiveServer(tmp_path / "data", tmp_path / "root", config=config).start()
    try:
        client = _client(server)
        label = _shell_session(client, 1)
        view = TranscriptView(client, label).open_session()
        try:
            _until(lambda: view.activity == "expired", "the idle TTL to expire the session", 30)
            _until(lambda: view.send_button.disabled, "sending to be disabled")
            assert "catty-badge-expired" in view.title.value
            assert client.get(label)["state"] == "expired"
        finally:
            view.close()
        assert client.resume(label)["state"] == "starting"
        _until(lambda: client.get(label)["state"] == "running", "the resumed runtime", 60)
    finally:
        server.stop()


def test_the_session_list_follows_the_server_without_polling(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new session, its end and its deletion show in the list within seconds, although the
    list would look again on its own only after a minute."""
    monkeypatch.setattr(follower, "LIST_FALLBACK_SECONDS", 60.0)  # LIST_POLL_SECONDS is 60
    client = _client(server)
    listing = SessionList(client).watch()

    def shown() -> str:
        return str(listing._repr_mimebundle_()["text/plain"])

    try:
        before = listing.count
        label = str(client.new("echo listed", agent="shell")["label"])
        _until(lambda: listing.count == before + 1, "the new session in the list", 10)
        client.stop(label)
        _until(lambda: f"{label}  stopped" in shown(), "the stop in the list", 10)
        client.delete(label)
        _until(lambda: listing.count == before and label not in shown(), "the deletion", 10)
    finally:
        listing.close()
    watcher = listing._watcher
    assert watcher is not None
    _until(lambda: not watcher.alive, "the list's thread to end", 10)


def test_diff_widget_comments_reach_the_agent(server: LiveServer, tmp_path: Path) -> None:
    """Selecting a diff line opens a comment box; the comment queues, can be withdrawn, and
    goes to the agent with the next message as a `comment` event."""
    from catty_jupyter.notebook.diffview import DiffView

    client = _client(server)
    label = _shell_session(client, 1)
    client.send(label, "printf 'alpha\\nbeta\\n' > notes.txt")
    _until(lambda: _turns(client, label) >= 2, "the write")
    diff = DiffView(client, label).refresh()
    assert (diff.files_changed, diff.added, diff.removed) == (1, 2, 0)
    section = diff.files_box.children[0]
    assert "notes.txt" in section.get_title(0) and "+2 -0" in section.get_title(0)
    patch_box = section.children[0]
    picker = patch_box.children[0]
    beta = next(v for text, v in picker.options if text == "+beta")
    picker.value = beta
    form = patch_box.children[1]
    assert "line 2" in form.children[0].value and "beta" in form.children[0].value
    form.children[1].value = "call it <b>gamma</b>"
    form.children[2].children[0].click()  # Add comment
    _until(lambda: diff.queued == 1, "the comment to queue")
    queued = client.comments(label)
    assert queued[0]["path"] == "notes.txt" and queued[0]["line"] == 2
    diff.message.value = "echo comments-sent"
    diff.send_button.click()
    evs = _until(
        lambda: [e for e in client.transcript(label, limit=5000) if e["kind"] == "comment"],
        "the comment event",
    )
    assert evs[0]["payload"]["text"] == "call it <b>gamma</b>"
    _until(lambda: diff.queued == 0, "the queue to empty")


@pytest.mark.claude
def test_permission_buttons_follow_focus_and_answer_the_agent(server: LiveServer) -> None:
    """A permission request shows *Approve*/*Deny*, enabled only while this notebook holds
    focus; *Approve* lets the real Claude Code run the command, and the buttons go away."""
    mine, theirs = _client(server, "notebook-mine"), _client(server, "phone")
    session = mine.new("!bash touch approved-by-widget\n!say done after approval",
                       environment="demo", options={"permission_mode": "default"})  # fmt: skip
    label = session["label"]
    view = TranscriptView(mine, label).open_session()
    try:
        _until(
            lambda: view.permissions_box.children and view.activity == "waiting",
            "the permission request",
            90,
        )
        (row,) = view.permissions_box.children
        approve, deny = row.children[1], row.children[2]
        assert "Bash" in row.children[0].value
        assert not approve.disabled and not deny.disabled

        theirs.take_focus(label)  # someone else steers: this notebook may not answer
        _until(lambda: approve.disabled and deny.disabled, "the buttons to be disabled")
        view.take_button.click()
        _until(lambda: not approve.disabled, "the buttons to be enabled again")

        approve.click()
        _until(lambda: not view.permissions_box.children, "the request to be answered", 60)
        evs = _until(lambda: _turns(mine, label) >= 1 and mine.transcript(label, limit=5000),
                     "the turn to end", 90)  # fmt: skip
        decision = next(e for e in evs if e["kind"] == "permission_decision")
        assert decision["payload"]["behavior"] == "allow" and decision["client"] == "notebook-mine"
        result = next(e for e in evs if e["kind"] == "tool_result")
        assert not result["payload"].get("is_error"), result
    finally:
        view.close()
