"""The real Claude Code CLI (bundled with claude-agent-sdk) runs offline against the demo model."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import claude_agent_sdk as sdk
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from catty_jupyter.demo import DemoModelServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def demo(jp_asyncio_loop: asyncio.AbstractEventLoop) -> Iterator[DemoModelServer]:
    """A running demo model server, on the event loop the tests run in."""
    server = DemoModelServer()
    jp_asyncio_loop.run_until_complete(server.start())
    yield server
    jp_asyncio_loop.run_until_complete(server.stop())


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The agent's working directory."""
    path = tmp_path / "work"
    path.mkdir()
    return path


def options(demo: DemoModelServer, workspace: Path, **extra: Any) -> Any:
    """Options that point the CLI at the demo model, with its own config directory."""
    env = {
        "ANTHROPIC_BASE_URL": demo.url,
        "ANTHROPIC_API_KEY": "demo",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CONFIG_DIR": str(workspace.parent / "claude-config"),
        # bypassPermissions is refused as root unless the CLI is told it runs in a sandbox.
        "IS_SANDBOX": "1",
    }
    settings: dict[str, Any] = {
        "system_prompt": {"type": "preset", "preset": "claude_code"},
        "cwd": str(workspace),
        "permission_mode": "bypassPermissions",
        "env": env,
    }
    settings.update(extra)
    return sdk.ClaudeAgentOptions(**settings)


async def run(prompt: str, opts: Any) -> list[Any]:
    """Run one prompt through the CLI and return every message it reported."""
    return [message async for message in sdk.query(prompt=prompt, options=opts)]


def final_text(messages: list[Any]) -> str:
    """The text of the last assistant message."""
    assistant = [m for m in messages if isinstance(m, sdk.AssistantMessage)]
    return "".join(b.text for b in assistant[-1].content if isinstance(b, sdk.TextBlock))


def tool_results(demo: DemoModelServer, tool: str) -> list[str]:
    """The text of every result of `tool` that the CLI sent back to the model."""
    found: dict[str, str] = {}
    for request in demo.message_requests:
        messages = request.body.get("messages", [])
        names = {
            b["id"]: b["name"]
            for m in messages
            if m["role"] == "assistant" and isinstance(m["content"], list)
            for b in m["content"]
            if b["type"] == "tool_use"
        }
        for m in messages:
            for b in m["content"] if isinstance(m["content"], list) else []:
                if b["type"] == "tool_result" and names.get(b["tool_use_id"]) == tool:
                    content = b.get("content")
                    if isinstance(content, list):
                        content = "".join(part.get("text", "") for part in content)
                    found[b["tool_use_id"]] = str(content)
    return list(found.values())


@pytest.mark.claude
async def test_the_tour_writes_its_note_and_says_it_is_a_demo(
    demo: DemoModelServer, workspace: Path
) -> None:
    (workspace / "existing.txt").write_text("hi\n")
    messages = await run("hello", options(demo, workspace))

    assert "demo agent" in (workspace / "CATTY_DEMO.md").read_text()
    (listing,) = tool_results(demo, "Bash")
    assert "existing.txt" in listing
    assert final_text(messages).startswith("(demo model) ")
    assert isinstance(messages[-1], sdk.ResultMessage) and not messages[-1].is_error


@pytest.mark.claude
async def test_a_script_runs_its_tools_for_real(demo: DemoModelServer, workspace: Path) -> None:
    prompt = "\n".join(
        [
            "!bash echo catty-$((6 * 7))",
            "!write notes/hello.txt",
            "hello",
            "world",
            "!end",
            "!edit notes/hello.txt",
            "old: world",
            "new: demo",
            "!say finished the script",
        ]
    )
    messages = await run(prompt, options(demo, workspace))

    # Only a shell that really ran can turn the command into this output.
    assert tool_results(demo, "Bash") == ["catty-42"]
    assert (workspace / "notes" / "hello.txt").read_text() == "hello\ndemo\n"
    assert final_text(messages) == "(demo model) finished the script"


@pytest.mark.claude
async def test_a_denied_tool_is_acknowledged_and_a_resumed_session_remembers(
    demo: DemoModelServer, workspace: Path
) -> None:
    asked: list[str] = []

    async def deny_bash(name: str, tool_input: dict[str, Any], context: Any) -> Any:
        asked.append(name)
        if name == "Bash":
            return sdk.PermissionResultDeny(message="no shell in this test")
        return sdk.PermissionResultAllow()

    guarded = options(demo, workspace, permission_mode="default", can_use_tool=deny_bash)
    async with sdk.ClaudeSDKClient(guarded) as client:
        await client.query("!bash touch should-not-exist\n!write kept.txt\nkept\n!end")
        first = [m async for m in client.receive_response()]

    assert asked == ["Bash", "Write"]
    assert not (workspace / "should-not-exist").exists()
    assert (workspace / "kept.txt").read_text() == "kept\n"
    refusal = [
        b.text
        for m in first
        if isinstance(m, sdk.AssistantMessage)
        for b in m.content
        if isinstance(b, sdk.TextBlock)
    ]
    assert any("refused" in t and "no shell in this test" in t for t in refusal)

    session_id = first[-1].session_id
    resumed = await run("!recall", options(demo, workspace, resume=session_id))
    assert "- !bash touch should-not-exist !write kept.txt kept !end" in final_text(resumed)


async def post(demo: DemoModelServer, path: str, body: dict[str, Any]) -> Any:
    """POST JSON to the demo model and return the response."""
    client = AsyncHTTPClient()
    return await client.fetch(demo.url + path, method="POST", body=json.dumps(body))


async def test_the_server_answers_plain_json_counts_tokens_and_404s(
    demo: DemoModelServer,
) -> None:
    body = {
        "model": "claude-x",
        "tools": [{"name": "Bash"}],
        "messages": [{"role": "user", "content": "!say hi"}],
    }
    message = json.loads((await post(demo, "/v1/messages?beta=true", body)).body)
    assert message["model"] == "claude-x" and message["stop_reason"] == "end_turn"
    assert message["content"] == [{"type": "text", "text": "(demo model) hi"}]
    assert message["usage"]["input_tokens"] > 0 and message["usage"]["output_tokens"] > 0

    count = json.loads((await post(demo, "/v1/messages/count_tokens", body)).body)
    assert count["input_tokens"] > 0

    with pytest.raises(HTTPClientError) as missing:
        await AsyncHTTPClient().fetch(demo.url + "/v1/models")
    assert missing.value.code == 404
    assert json.loads(missing.value.response.body)["type"] == "error"
    assert [r.path for r in demo.requests] == [
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/models",
    ]


async def test_slow_streams_text_over_the_given_seconds(demo: DemoModelServer) -> None:
    prompt = "!slow 1\n!say " + "watch this turn as it happens " * 3
    body = {
        "model": "m",
        "stream": True,
        "tools": [{}],
        "messages": [{"role": "user", "content": prompt}],
    }
    arrivals: list[float] = []
    chunks: list[bytes] = []

    def on_chunk(chunk: bytes) -> None:
        arrivals.append(time.monotonic())
        chunks.append(chunk)

    started = time.monotonic()
    await AsyncHTTPClient().fetch(
        demo.url + "/v1/messages", method="POST", body=json.dumps(body), streaming_callback=on_chunk
    )
    events = [
        json.loads(line[len("data: ") :])
        for line in b"".join(chunks).decode().splitlines()
        if line.startswith("data: ")
    ]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    deltas = [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"]
    assert len(deltas) >= 5
    assert "".join(deltas) == "(demo model) " + prompt.split("!say ", 1)[1].strip()
    # The text streams: the first chunk arrives well before the last, which waits for the pacing.
    assert arrivals[-1] - arrivals[0] >= 0.5 and arrivals[-1] - started >= 0.8
