"""An administrator's unsandboxed runtime: every transcript says so, and setup scripts do not
run (unconfined, they would change the host itself)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.test_sandbox import run
from tests.server.test_setup_cache import make_env, messages, ready, start


@pytest.fixture
def catty_config() -> dict[str, Any]:
    """Sessions run with the unsandboxed kernelspec."""
    return {"runtime_kernel": "catty-runtime-unsandboxed"}


async def test_setup_is_not_run_and_the_transcript_says_why(
    api: Any, events: Any, session_until: Any
) -> None:
    await make_env(api, "with-setup", "touch /opt/should-not-exist\n")
    s = await start(api, "with-setup")
    info = await ready(api, s["label"])
    assert info["state"] == "running" and info["sandboxed"] is False
    said = messages(await events(s["label"]))
    assert any("NOT sandboxed" in m for m in said)
    assert any("setup script of environment 'with-setup' was not run" in m for m in said)
    out = await run(api, session_until, s["label"], "echo label=$CATTY_SESSION_LABEL", 1)
    assert f"label={s['label']}" in out
    await api("POST", f"sessions/{s['label']}/stop")
