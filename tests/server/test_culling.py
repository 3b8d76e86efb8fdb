"""The idle TTL: idle sessions expire (and resume), busy ones keep the server's activity fresh."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import results, wait_for


@pytest.fixture
def catty_config() -> dict[str, Any]:
    """An idle TTL of a couple of seconds, checked often."""
    return {"cull_idle_timeout": 2, "cull_interval": 0.5}


async def test_an_idle_session_expires_and_keeps_its_work(
    api: Any, session_until: Any, events: Any, tmp_path: Any
) -> None:
    code, s = await api("POST", "sessions", {"agent": "shell", "prompt": "echo kept > kept.txt"})
    label = s["label"]
    await session_until(label, lambda e: results(e) >= 1, what="the first command")

    async def expired() -> Any:
        _code, info = await api("GET", f"sessions/{label}")
        return info if info["state"] == "expired" else None

    await wait_for(expired, timeout=20, what="the idle session to be culled")
    last = (await events(label))[-1]
    assert last["kind"] == "system" and last["payload"].get("expired") is True
    assert (
        "expired after" in last["payload"]["message"] and "idle TTL" in last["payload"]["message"]
    )
    code, body = await api("POST", f"sessions/{label}/messages", {"text": "echo too late"})
    assert code == 409 and "expired" in body["message"] and "resume" in body["message"]
    code, listing = await api("GET", "sessions")
    assert [x["state"] for x in listing["sessions"] if x["label"] == label] == ["expired"]
    workspace = tmp_path / "catty-data" / "sessions" / s["id"] / "workspace"
    assert (workspace / "kept.txt").read_text() == "kept\n"

    code, body = await api("POST", f"sessions/{label}/resume")
    assert code == 202
    code, body = await api("POST", f"sessions/{label}/messages", {"text": "cat kept.txt"})
    assert code == 202, body
    evs = await session_until(label, lambda e: results(e) >= 2, what="a command after resume")
    resumed = max(e["seq"] for e in evs if e["kind"] == "user")
    assert any("kept" in e["payload"].get("output", "") for e in evs if e["seq"] > resumed)
    await api("POST", f"sessions/{label}/stop")


async def test_a_busy_agent_is_not_culled_and_counts_as_server_activity(
    api: Any, session_until: Any, jp_serverapp: Any
) -> None:
    code, s = await api("POST", "sessions", {"agent": "shell", "prompt": "sleep 4; echo woke"})
    assert code == 201, s
    label = s["label"]
    await session_until(label, lambda e: any(x["kind"] == "tool_use" for x in e), what="start")
    started = datetime.now(UTC)
    await asyncio.sleep(3)  # longer than the TTL, with no transcript event meanwhile
    _code, info = await api("GET", f"sessions/{label}")
    assert info["state"] == "running" and info["activity"] == "busy"
    # JupyterHub reads the newest *_last_activity setting: the busy agent kept it fresh.
    assert (jp_serverapp.web_app.last_activity() - started).total_seconds() > 1.5
    evs = await session_until(label, lambda e: results(e) >= 1, what="the command to finish")
    assert any("woke" in e["payload"].get("output", "") for e in evs)
    await api("POST", f"sessions/{label}/stop")
