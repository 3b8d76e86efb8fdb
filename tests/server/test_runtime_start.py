"""A runtime that dies as it starts: the session fails at once, saying why."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for

BROKEN_KERNEL = "catty-test-broken-runtime"


@pytest.fixture
def catty_config() -> dict[str, Any]:
    """Sessions run with a kernelspec whose process exits before it answers."""
    return {"runtime_kernel": BROKEN_KERNEL}


async def test_a_runtime_that_dies_at_start_fails_the_session_with_its_log(
    api: Any, jp_data_dir: Path
) -> None:
    spec = jp_data_dir / "kernels" / BROKEN_KERNEL
    spec.mkdir(parents=True)
    dies = "import sys; print('runtime broke on purpose', file=sys.stderr); sys.exit(3)"
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-c", dies, "{connection_file}"],
        "display_name": "a runtime that dies at once", "language": "text",
        "metadata": {"kernel_provisioner": {"provisioner_name": "catty-unsandboxed"}},
    }))  # fmt: skip
    started = time.monotonic()
    code, s = await api("POST", "sessions", {"agent": "shell", "prompt": "echo hello"})
    assert code == 201, s

    async def failed() -> dict[str, Any] | None:
        _code, info = await api("GET", f"sessions/{s['label']}")
        return info if info["state"] == "failed" else None

    info = await wait_for(failed, timeout=30, what="the session to fail")
    # Told at once, not after the 60 s a runtime has to answer.
    assert time.monotonic() - started < 15
    assert "the runtime ended before it answered" in info["error"], info["error"]
    assert "runtime broke on purpose" in info["error"]  # the runtime's own log, for the why
