"""The real Claude Code CLI in a real sandbox, driven offline by the demo model, through the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git, kinds, results

pytestmark = pytest.mark.claude

SCRIPT = """Please do this.
!bash echo "tool says $((6 * 7))" && git branch --show-current
!write hello.txt
written by the agent
!end
"""


async def test_agent_runs_bash_and_writes_a_file_on_its_branch(
    api: Any, make_repo: Any, session_until: Any, tmp_path: Path
) -> None:
    repo = make_repo(dirty=True)
    status_before = git(repo, "status", "--porcelain")
    code, s = await api("POST", "sessions", {
        "environment": "demo", "repo": str(repo), "prompt": SCRIPT,
        "options": {"permission_mode": "bypassPermissions"},
    })  # fmt: skip
    assert code == 201, s
    label = s["label"]
    evs = await session_until(label, lambda e: results(e) >= 1, what="the first turn")

    assert {"user", "tool_use", "tool_result", "assistant", "result"} <= set(kinds(evs))
    tools = [e["payload"]["name"] for e in evs if e["kind"] == "tool_use"]
    assert tools == ["Bash", "Write"]
    outputs = " ".join(e["payload"]["output"] for e in evs if e["kind"] == "tool_result")
    assert "tool says 42" in outputs
    assert f"catty/{label}" in outputs
    result = next(e for e in evs if e["kind"] == "result")["payload"]
    assert result["is_error"] is False and "usage" in result
    final = [
        e["payload"]["text"] for e in evs if e["kind"] == "assistant" and "text" in e["payload"]
    ]
    assert final[-1].startswith("(demo model)")

    # The file is in the session's workspace on its branch, and nowhere in the user's repo.
    workspace = tmp_path / "catty-data" / "sessions" / s["id"] / "workspace"
    assert (workspace / "hello.txt").read_text() == "written by the agent\n"
    assert git(workspace, "branch", "--show-current").strip() == f"catty/{label}"
    assert "untracked but not ignored" in (workspace / "new_file.txt").read_text()
    code, body = await api("POST", f"sessions/{label}/stop")
    assert code == 200 and body["state"] == "stopped"
    assert not (repo / "hello.txt").exists()
    assert git(repo, "status", "--porcelain") == status_before


async def test_denied_permission_reaches_the_agent_and_the_turn_goes_on(
    api: Any, session_until: Any
) -> None:
    code, s = await api("POST", "sessions", {
        "environment": "demo", "options": {"permission_mode": "default"},
        "prompt": "!bash touch should-not-exist\n!say still going after the refusal",
    })  # fmt: skip
    assert code == 201, s
    label = s["label"]
    evs = await session_until(label, lambda e: "permission_request" in kinds(e), what="a request")
    request = next(e for e in evs if e["kind"] == "permission_request")["payload"]
    assert request["tool_name"] == "Bash"
    code, info = await api("GET", f"sessions/{label}")
    assert info["activity"] == "waiting"
    assert [p["request_id"] for p in info["pending_permissions"]] == [request["request_id"]]

    # Only the focus holder answers: the phone must take control first.
    answer = {"behavior": "deny", "message": "not in this repo, please", "client": "phone"}
    code, body = await api("POST", f"sessions/{label}/permissions/{request['request_id']}", answer)
    assert code == 409 and body["reason"] == "focus_held", body
    assert "anonymous holds input focus" in body["message"]
    code, focus = await api("POST", f"sessions/{label}/focus", {"client": "phone"})
    assert code == 200 and focus["holder"] == "phone", focus
    code, body = await api("POST", f"sessions/{label}/permissions/{request['request_id']}", answer)
    assert code == 200, body
    evs = await session_until(label, lambda e: results(e) >= 1, what="the turn to end")
    decision = next(e for e in evs if e["kind"] == "permission_decision")
    assert decision["payload"]["behavior"] == "deny" and decision["client"] == "phone"
    texts = " ".join(e["payload"].get("text", "") for e in evs if e["kind"] == "assistant")
    assert "not in this repo, please" in texts
    assert "still going after the refusal" in texts
    tool_results = [e["payload"] for e in evs if e["kind"] == "tool_result"]
    assert tool_results and tool_results[0]["is_error"] is True

    # The same request cannot be answered twice.
    code, body = await api("POST", f"sessions/{label}/permissions/{request['request_id']}",
                           {"behavior": "allow", "client": "phone"})  # fmt: skip
    assert code == 404, body
    await api("POST", f"sessions/{label}/stop")
