"""What a session can and cannot reach, checked from inside a real bubblewrap sandbox."""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import results


@pytest.fixture
def jp_home_dir() -> Iterator[Path]:
    """A home directory outside /tmp (which every sandbox replaces anyway), like a real one."""
    home = Path(tempfile.mkdtemp(prefix="catty-home-", dir="/var/tmp"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def planted_in_home(jp_home_dir: Path) -> Iterator[tuple[Path, str]]:
    """A secret file in the real user's home directory (removed afterwards)."""
    secret = secrets.token_hex(8)
    assert Path.home() == jp_home_dir
    path = jp_home_dir / ".catty-test-planted"
    path.write_text(secret)
    yield path, secret
    path.unlink(missing_ok=True)


async def run(api: Any, session_until: Any, label: str, command: str, turn: int) -> str:
    """Send COMMAND to a shell session and return its output."""
    code, body = await api("POST", f"sessions/{label}/messages", {"text": command})
    assert code == 202, body
    evs = await session_until(label, lambda e: results(e) >= turn, what=command)
    last_user = max(e["seq"] for e in evs if e["kind"] == "user")
    return "".join(
        e["payload"].get("output", "")
        for e in evs
        if e["kind"] == "tool_result" and e["seq"] > last_user
    )


async def test_session_cannot_see_home_other_sessions_or_write_outside(
    api: Any, session_until: Any, planted_in_home: tuple[Path, str], tmp_path: Path
) -> None:
    home_file, secret = planted_in_home
    code, other = await api(
        "POST", "sessions", {"agent": "shell", "prompt": "echo mine > theirs.txt"}
    )
    code, s = await api("POST", "sessions", {"agent": "shell"})
    assert code == 201, s
    label = s["label"]
    await session_until(other["label"], lambda e: results(e) >= 1)
    other_ws = tmp_path / "catty-data" / "sessions" / other["id"] / "workspace"
    assert (other_ws / "theirs.txt").read_text() == "mine\n"

    out = await run(api, session_until, label, f"cat {home_file}; echo rc=$?", 1)
    assert secret not in out and "rc=1" in out
    out = await run(api, session_until, label, f"cat {other_ws}/theirs.txt; echo rc=$?", 2)
    assert "mine" not in out and "rc=1" in out
    outside = tmp_path / "written-from-inside.txt"
    out = await run(api, session_until, label,
                    f"echo x > /usr/catty-probe; echo rc=$?; echo x > {outside}; echo x > ~/in-home",
                    3)  # fmt: skip
    assert "rc=1" in out  # the root filesystem is read-only
    assert not outside.exists()  # /tmp inside is private
    session_home = tmp_path / "catty-data" / "sessions" / s["id"] / "home"
    assert (session_home / "in-home").exists()  # its own HOME is writable and kept
    out = await run(
        api, session_until, label, "echo $HOME; echo $CATTY_REMOTE $CLAUDE_CODE_REMOTE", 4
    )
    assert str(session_home) in out and "true true" in out
