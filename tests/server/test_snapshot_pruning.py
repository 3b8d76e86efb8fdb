"""Environment snapshots nobody needs are removed; one a stopped session mounts stays, so it
resumes as it was (real server, bubblewrap and overlayfs)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from catty_jupyter.sandbox import envcache
from tests.server.test_sandbox import run
from tests.server.test_setup_cache import SETUP, make_env, ready, start

MAX_AGE = 2.0


@pytest.fixture
def catty_config() -> dict[str, Any]:
    """Snapshots that are too old after two seconds."""
    return {"environment_cache_max_age": MAX_AGE}


async def test_a_stopped_sessions_snapshot_outlives_its_replacement_until_it_is_deleted(
    api: Any, session_until: Any, jp_serverapp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(envcache, "PRUNE_GRACE", 0.0)
    manager = jp_serverapp.web_app.settings["catty_manager"]
    await make_env(api, "aging", SETUP)
    first = await start(api, "aging")
    assert (await ready(api, first["label"]))["state"] == "running"
    await run(api, session_until, first["label"], "echo mine >> /opt/catty-tool/version", 1)
    await api("POST", f"sessions/{first['label']}/stop")
    old = Path(manager.get(first["label"]).runtime["snapshot"]["path"])

    await asyncio.sleep(MAX_AGE + 0.5)  # the snapshot is too old: the next session rebuilds
    second = await start(api, "aging")
    assert (await ready(api, second["label"]))["state"] == "running"
    await api("POST", f"sessions/{second['label']}/stop")
    replacement = manager.get(second["label"]).runtime["snapshot"]
    new = Path(replacement["path"])
    assert new != old

    # Both are mounted by a session (stopped ones resume on theirs): nothing goes.
    assert await manager.prune_snapshots() == []
    code, body = await api("POST", f"sessions/{first['label']}/resume")
    assert code == 202, body
    assert (await ready(api, first["label"]))["state"] == "running"
    out = await run(api, session_until, first["label"], "cat /opt/catty-tool/version", 2)
    assert "tool-1" in out and "mine" in out  # its snapshot and its own layer, as they were
    await api("POST", f"sessions/{first['label']}/stop")

    # Once no session mounts them, the replaced one and the too-old one go.
    for s in (first, second):
        code, _ = await api("DELETE", f"sessions/{s['label']}", confirm=s["label"])
        assert code == 204
    # The replacement must be too old by now; on a fast machine the steps above take less.
    await asyncio.sleep(max(0.0, replacement["built"] + MAX_AGE + 0.2 - time.time()))
    assert sorted(await manager.prune_snapshots()) == sorted([old, new])
    assert not old.exists() and not new.exists()
