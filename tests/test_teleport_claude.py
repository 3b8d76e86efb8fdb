"""Teleport brings a Claude Code conversation home: the user's own `claude --resume` continues it.

The session runs the real Claude Code CLI in its sandbox, driven by the demo model; after the
teleport the same CLI, run as a user would in the local checkout, resumes the conversation.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import claude_agent_sdk
import pytest

from catty_jupyter.agents import claude_files
from tests.conftest import git, results
from tests.test_teleport import client, run_teleport

__all__ = ["client"]  # the fixture, used here too

pytestmark = pytest.mark.claude

TURNS = [
    "!write notes.txt\nwritten in the first turn\n!end",
    "!say the second turn only talks",
    "!bash echo third > third.txt",
]


def bundled_cli() -> Path:
    """The Claude Code CLI that claude-agent-sdk ships (the one sessions run)."""
    path = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    assert path.exists(), f"no bundled Claude Code CLI at {path}"
    return path


async def test_the_users_own_claude_resumes_every_turn_in_the_checkout(
    api: Any, make_repo: Any, session_until: Any, client: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, jp_serverapp: Any,
) -> None:  # fmt: skip
    repo = make_repo()
    code, s = await api("POST", "sessions", {
        "environment": "demo", "repo": str(repo), "prompt": TURNS[0], "client": "desk",
        "options": {"permission_mode": "bypassPermissions"},
    })  # fmt: skip
    assert code == 201, s
    label = s["label"]
    for n, text in enumerate(TURNS, start=1):
        if n > 1:
            code, body = await api("POST", f"sessions/{label}/messages",
                                   {"text": text, "client": "desk"})  # fmt: skip
            assert code in (200, 202), body
        await session_until(label, lambda e, n=n: results(e) >= n, timeout=120,
                            what=f"turn {n}")  # fmt: skip

    checkout = tmp_path / "home" / "project"
    git(tmp_path, "clone", "-q", str(repo), str(checkout))
    config = tmp_path / "my-claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    result, lines = await run_teleport(client, label, checkout)

    # The branch holds what the agent did, its uncommitted files committed in a commit that
    # says so.
    assert git(checkout, "branch", "--show-current").strip() == f"catty/{label}"
    assert (checkout / "notes.txt").read_text() == "written in the first turn\n"
    assert (checkout / "third.txt").read_text() == "third\n"
    assert result.uncommitted and "uncommitted" in git(checkout, "log", "-1", "--format=%s")

    # The conversation is where the user's Claude Code looks for it, about the checkout.
    assert result.session_id and result.resume_command == f"claude --resume {result.session_id}"
    installed = Path(str(result.conversation_file))
    top = str(checkout.resolve())
    assert installed == (config / "projects" / claude_files.project_dir_name(top)
                         / f"{result.session_id}.jsonl")  # fmt: skip
    text = installed.read_text()
    manager = jp_serverapp.web_app.settings["catty_manager"]
    workspace = str(Path(manager.session_dir(manager.get(label))) / "workspace")
    assert top in text and workspace not in text
    assert any("installed for Claude Code" in line for line in lines), lines

    # The user's own `claude --resume` in the checkout continues it, every turn remembered.
    port = (tmp_path / "catty-data" / "demo-model-port").read_text().strip()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE"))},
        "CLAUDE_CONFIG_DIR": str(config), "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
        "ANTHROPIC_API_KEY": "any", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1", **({"IS_SANDBOX": "1"} if os.getuid() == 0 else {}),
    }  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        str(bundled_cli()), "--resume", str(result.session_id), "-p", "!recall",
        cwd=checkout, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    said = out.decode()
    assert proc.returncode == 0, (said, err.decode()[-2000:])
    for turn in TURNS:
        assert "- " + " ".join(turn.split()) in said, said
    # It resumed in the checkout: the conversation file grew there, not elsewhere.
    assert "!recall" in installed.read_text()
