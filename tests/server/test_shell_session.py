"""A shell session end to end through the REST API, in a real bubblewrap sandbox."""

from __future__ import annotations

from typing import Any

from tests.conftest import results


async def test_shell_session_runs_commands_in_its_workspace(
    api: Any, make_repo: Any, session_until: Any
) -> None:
    repo = make_repo(dirty=True)
    code, s = await api(
        "POST",
        "sessions",
        {
            "agent": "shell",
            "repo": str(repo),
            "prompt": "pwd; git branch --show-current; cat new_file.txt",
        },
    )
    assert code == 201, s
    label = s["label"]
    evs = await session_until(label, lambda e: results(e) >= 1, what="first command")
    out = "".join(e["payload"].get("output", "") for e in evs if e["kind"] == "tool_result")
    assert f"catty/{label}" in out
    assert "untracked but not ignored" in out
    code, body = await api("POST", f"sessions/{label}/stop")
    assert code == 200 and body["state"] == "stopped"
