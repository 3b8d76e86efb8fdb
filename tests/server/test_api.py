"""The REST and WebSocket API: bad input, authorization, and the live stream's guarantees."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from catty_jupyter.server import stream
from tests.conftest import results


async def test_bad_input_gets_a_clear_4xx(api: Any, tmp_path: Path, make_repo: Any) -> None:
    code, body = await api("GET", "sessions/brave-tiger-0000")
    assert code == 404 and "brave-tiger-0000" in body["message"] and body["reason"] == "not_found"
    code, body = await api("POST", "sessions", "{not json")
    assert code == 400 and "not valid JSON" in body["message"]
    code, body = await api("POST", "sessions", "[1, 2]")
    assert code == 400 and "JSON object" in body["message"]

    missing = tmp_path / "nowhere"
    code, body = await api("POST", "sessions", {"agent": "shell", "repo": str(missing)})
    assert code == 400 and body["reason"] == "no_such_path" and str(missing) in body["message"]
    plain = tmp_path / "plain-dir"
    plain.mkdir()
    code, body = await api("POST", "sessions", {"agent": "shell", "repo": str(plain)})
    assert code == 400 and body["reason"] == "not_a_repo" and "git" in body["message"]
    code, body = await api("POST", "sessions", {"agent": "nope"})
    assert code == 400 and "shell" in body["message"]
    code, body = await api("POST", "sessions", {"environment": "nope"})
    assert code == 404 and "default" in body["message"]
    code, body = await api(
        "GET",
        "sessions",
    )
    assert code == 200 and body["sessions"] == []  # nothing half-made by the refusals above
    assert not list((tmp_path / "catty-data" / "sessions").glob("*"))

    code, s = await api("POST", "sessions", {"agent": "shell", "repo": str(make_repo())})
    assert code == 201
    code, body = await api("POST", f"sessions/{s['label']}/messages", {"text": "x" * 300_000})
    assert code == 413 and "limit" in body["message"]
    code, body = await api("POST", f"sessions/{s['label']}/messages", {"nope": 1})
    assert code == 400
    code, body = await api("GET", f"sessions/{s['label']}/transcript", after="-1")
    assert code == 400
    code, body = await api("POST", f"sessions/{s['label']}/permissions/abc", {"behavior": "allow"})
    assert code in (404, 409)
    code, body = await api("DELETE", f"sessions/{s['label']}")
    assert code == 400 and f"confirm={s['label']}" in body["message"]
    code, body = await api("DELETE", f"sessions/{s['label']}", confirm=s["label"])
    assert code == 204
    assert not (tmp_path / "catty-data" / "sessions" / s["id"]).exists()
    code, body = await api("GET", f"sessions/{s['label']}")
    assert code == 404


async def test_workspace_size_cap_names_the_size(
    api: Any, make_repo: Any, catty_config: Any
) -> None:
    repo = make_repo()
    (repo / "big.bin").write_bytes(b"\0" * 300_000)
    code, body = await api("POST", "sessions", {"agent": "shell", "repo": str(repo)})
    assert code == 413 and body["reason"] == "too_large"
    assert "KiB" in body["message"] and "cap" in body["message"]


@pytest.fixture
def catty_config(request: Any) -> dict[str, Any]:
    """A small workspace cap for the size test."""
    if request.node.name.startswith("test_workspace_size_cap"):
        return {"max_workspace_bytes": 200_000}
    return {}


async def test_stream_replays_from_after_then_goes_live_without_gap_or_duplicate(
    api: Any, jp_ws_fetch: Any, session_until: Any, events: Any
) -> None:
    _code, s = await api("POST", "sessions", {
        "agent": "shell",
        "prompt": "for i in 1 2 3 4 5 6; do echo line-$i; sleep 0.3; done",
    })  # fmt: skip
    label = s["label"]
    # Attach mid-turn: once some output exists, but before the command ends.
    evs = await session_until(label, lambda e: any("line-2" in x["payload"].get("output", "")
                                                    for x in e), what="mid-turn")  # fmt: skip
    assert results(evs) == 0
    after = evs[len(evs) // 2]["seq"]
    ws = await jp_ws_fetch("catty", "v1", "sessions", label, "stream", params={"after": str(after)})
    got: list[dict[str, Any]] = []
    while not any(e["kind"] == "result" for e in got):
        got.append(json.loads(await asyncio.wait_for(ws.read_message(), 30)))
    ws.close()
    seqs = [e["seq"] for e in got]
    assert seqs == list(range(after + 1, seqs[-1] + 1))  # every event after N, exactly once
    full = await events(label)
    assert [e for e in full if after < e["seq"] <= seqs[-1]] == got
    out = "".join(e["payload"].get("output", "") for e in full if e["kind"] == "tool_result")
    assert out.count("line-6") == 1


@pytest.mark.parametrize("max_unsent", [stream.MAX_UNSENT, 50])
async def test_a_burst_reaches_every_viewer_in_order_exactly_once(
    api: Any, jp_ws_fetch: Any, jp_serverapp: Any, monkeypatch: Any, max_unsent: int
) -> None:
    """A viewer following live and one that joins mid-burst and replays each get every event,
    in order, once; also when the burst outruns their sockets (a small MAX_UNSENT), so they
    fall back to reading the index and then go live again."""
    monkeypatch.setattr(stream, "MAX_UNSENT", max_unsent)
    manager = jp_serverapp.web_app.settings["catty_manager"]
    _code, s = await api("POST", "sessions", {"agent": "shell"})
    label = s["label"]
    code, _ = await api("POST", f"sessions/{label}/stop")
    assert code == 200
    session = manager.get(label)

    async def open_viewer(after: int) -> Any:
        return await jp_ws_fetch(
            "catty", "v1", "sessions", label, "stream", params={"after": str(after)}
        )

    def burst(n: int) -> int:
        # In one go, without yielding: every viewer's queue fills faster than it can write.
        for i in range(n):
            manager._write(session, "system", {"message": f"burst line {i}"})
        return int(manager.store.last_seq(session.id))

    async def read_until(ws: Any, seq: int) -> list[int]:
        seqs: list[int] = []
        while not seqs or seqs[-1] < seq:
            seqs.append(json.loads(await asyncio.wait_for(ws.read_message(), 30))["seq"])
        return seqs

    following = await open_viewer(0)
    middle = burst(700)
    joining = await open_viewer(middle - 350)
    last = burst(700)
    live = await read_until(following, last)
    late = await read_until(joining, last)
    following.close()
    joining.close()
    assert live == list(range(1, last + 1))
    assert late == list(range(middle - 349, last + 1))


async def test_stream_rejects_unknown_sessions(jp_ws_fetch: Any) -> None:
    with pytest.raises(HTTPClientError) as err:
        await jp_ws_fetch("catty", "v1", "sessions", "no-such-0001", "stream")
    assert err.value.code == 404
