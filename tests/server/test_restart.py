"""Sessions outlive the Jupyter server: a SIGKILLed server's successor re-attaches them."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catty_jupyter.client import CattyClient, ServerInfo
from catty_jupyter.sandbox.provisioner import runtime_alive
from tests.servers import LiveServer

TURN = "for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 0.4; done; echo all-done"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A real server process (restartable) whose data lives in the test's tmp dir."""
    live = LiveServer(data_dir=tmp_path / "data", root_dir=tmp_path / "root")
    yield live
    live.stop()
    # A server that was SIGKILLed last leaves its runtimes to the idle TTL; end them here.
    for pids in _runtime_pids(live).values():
        for pid in pids:
            if runtime_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    import os
                    import signal

                    os.kill(pid, signal.SIGKILL)


def _runtime_pids(live: LiveServer) -> dict[str, list[int]]:
    """Each session's runtime pids, as the store saved them (by label)."""
    db = live.data_dir / "catty.db"
    if not db.exists():
        return {}
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT label, runtime FROM sessions").fetchall()
    return {label: json.loads(runtime).get("pids") or [] for label, runtime in rows}


def _journal(live: LiveServer, session_id: str) -> list[dict[str, Any]]:
    path = live.data_dir / "sessions" / session_id / "state" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _output(events: list[dict[str, Any]]) -> str:
    return "".join(e["payload"].get("output", "") for e in events if e["kind"] == "tool_result")


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
    return value


async def _follow_until(client: CattyClient, label: str, after: int, stop: Any) -> list[Any]:
    seen: list[dict[str, Any]] = []
    async with contextlib.aclosing(client.follow(label, after=after)) as stream:
        async for event in stream:
            seen.append(event)
            if stop(seen):
                break
    return seen


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
async def test_a_server_killed_mid_turn_loses_nothing(server: LiveServer, how: str) -> None:
    # SIGKILL is a crash or a culler; SIGTERM a polite shutdown, which by default leaves
    # sessions running for the next server.
    server.config["stop_sessions_on_exit"] = False
    server.start()
    client = CattyClient(ServerInfo(server.url, server.token), client_id="desk")
    session = client.new(TURN, agent="shell")
    label = session["label"]

    # Watch live until the turn is under way, then kill the server in the middle of it.
    before = await _follow_until(client, label, 0, lambda seen: "tick 2" in _output(seen))
    assert "all-done" not in _output(before)
    server.kill() if how == "SIGKILL" else server.stop()
    pids = _runtime_pids(server)[label]
    assert any(runtime_alive(p) for p in pids), "the runtime died with the server"

    server.config["stop_sessions_on_exit"] = True  # this time, clean up on the way out
    server.start()
    listed = {s["label"]: s for s in client.list_sessions()}
    assert listed[label]["state"] == "running", listed[label]

    # A viewer reconnecting from the last event it saw gets exactly what it missed.
    last_seen = before[-1]["seq"]
    missed = await _follow_until(
        client, label, last_seen, lambda seen: any(e["kind"] == "result" for e in seen)
    )
    assert [e["seq"] for e in missed] == list(range(last_seen + 1, last_seen + 1 + len(missed)))
    assert "all-done" in _output(before + missed)
    assert all(f"tick {i}" in _output(before + missed) for i in range(1, 9))

    # Once the agent is idle, the indexed transcript is the runtime's journal, event for event.
    _wait(lambda: client.get(label)["activity"] == "idle", 30, "the agent to be idle")
    transcript = client.transcript(label, limit=5000)
    journal = _journal(server, session["id"])
    assert transcript == journal
    assert [e["seq"] for e in transcript] == list(range(1, len(transcript) + 1))
    assert missed == journal[last_seen : last_seen + len(missed)]

    # The re-attached runtime is fully driven by the new server.
    client.send(label, "echo after-the-restart")
    after = await _follow_until(
        client, label, transcript[-1]["seq"], lambda seen: any(e["kind"] == "result" for e in seen)
    )
    assert "after-the-restart" in _output(after)


async def test_a_runtime_with_no_server_ends_itself_after_the_idle_ttl(tmp_path: Path) -> None:
    live = LiveServer(data_dir=tmp_path / "data", root_dir=tmp_path / "root",
                      config={"cull_idle_timeout": 2, "cull_interval": 1})  # fmt: skip
    live.start()
    try:
        client = CattyClient(ServerInfo(live.url, live.token), client_id="desk")
        label = client.new("echo hello", agent="shell")["label"]
        _wait(lambda: client.get(label)["activity"] == "idle" and client.transcript(label)[-1]
              ["kind"] == "status", 30, "the first turn")  # fmt: skip
        pids = _runtime_pids(live)[label]
        live.kill()
        assert any(runtime_alive(p) for p in pids)
        _wait(lambda: not any(runtime_alive(p) for p in pids), 30, "the orphaned runtime to end")

        # The next server finds it ended on its own: expired, not failed, and says why.
        live.start()
        info = client.get(label)
        assert info["state"] == "expired", info
        last = client.transcript(label, limit=5000)[-1]
        assert last["payload"].get("ended_idle") is True
        assert "ended itself" in last["payload"]["message"]
    finally:
        live.stop()
