"""The `claude` agent: Claude Code driven through claude-agent-sdk."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import asdict, is_dataclass
from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    PermissionResultAllow,
    PermissionResultDeny,
    ResultMessage,
    SystemMessage,
    TextBlock,
    ThinkingBlock,
    ToolPermissionContext,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from .base import Agent, AgentContext, AgentEvents
from .claude_files import CONFIG_DIR, SESSION_FILE


class UnknownMessage:
    """A stream-json message this SDK version does not know; kept whole for the transcript."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data


class _KeepingClient(ClaudeSDKClient):
    """A client that yields unknown message types instead of dropping them.

    The SDK skips message types it does not recognise; the transcript must keep them, so this
    reads the raw stream the SDK's own `receive_messages` reads.
    """

    async def receive_messages(self) -> AsyncIterator[Any]:  # type: ignore[override]
        from claude_agent_sdk._internal.message_parser import parse_message

        assert self._query is not None
        async for data in self._query.receive_messages():
            message = parse_message(data)
            yield message if message is not None else UnknownMessage(data)


def _plain(value: Any) -> Any:
    """A JSON-safe copy of an SDK value."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    return json.loads(json.dumps(value, default=str))


def _tool_result_text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))


class ClaudeAgent(Agent):
    """Claude Code in the session's workspace, with its own CLAUDE_CONFIG_DIR."""

    name = "claude"

    def __init__(self, context: AgentContext, events: AgentEvents) -> None:
        super().__init__(context, events)
        self.config_dir = context.state_dir / CONFIG_DIR
        self.session_id: str | None = None
        self._client: _KeepingClient | None = None
        self._inbox: asyncio.Queue[tuple[str, asyncio.Future[None]] | None] = asyncio.Queue()
        self._owner: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None

    def options(self) -> ClaudeAgentOptions:
        """The SDK options for this session."""
        opts = self.context.options
        env = {
            "CLAUDE_CONFIG_DIR": str(self.config_dir),
            # The sandbox is the boundary; Claude Code asks for this before it runs as root.
            "IS_SANDBOX": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
        }
        resume = self._saved_session_id() if self.context.resume else None
        return ClaudeAgentOptions(
            system_prompt={"type": "preset", "preset": "claude_code"},
            cwd=str(self.context.workspace),
            env=env,
            can_use_tool=self._can_use_tool,
            permission_mode=opts.get("permission_mode") or "default",
            model=opts.get("model"),
            resume=resume,
            # The repository's own .claude/settings.json (its SessionStart hooks among them)
            # applies, as it would on the user's machine.
            setting_sources=["user", "project", "local"],
            stderr=lambda line: None,
        )

    def _saved_session_id(self) -> str | None:
        path = self.context.state_dir / SESSION_FILE
        if not path.exists():
            return None
        return str(json.loads(path.read_text()).get("session_id") or "") or None

    def _save_session_id(self, session_id: str) -> None:
        if session_id and session_id != self.session_id:
            self.session_id = session_id
            path = self.context.state_dir / SESSION_FILE
            path.write_text(json.dumps({"session_id": session_id}))

    async def start(self) -> None:
        """Spawn the Claude Code CLI and wait for its initialize handshake."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self._ready = asyncio.get_running_loop().create_future()
        # The SDK requires connect, every query and disconnect to happen in one task.
        self._owner = asyncio.create_task(self._own_client())
        await self._ready

    async def _own_client(self) -> None:
        assert self._ready is not None
        client = _KeepingClient(self.options())
        try:
            await client.connect()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            return
        self._client = client
        self._ready.set_result(None)
        try:
            while (item := await self._inbox.get()) is not None:
                message, done = item
                try:
                    await client.query(message)
                    async for msg in client.receive_response():
                        await self._record(msg)
                except Exception as exc:
                    if not done.done():
                        done.set_exception(exc)
                else:
                    if not done.done():
                        done.set_result(None)
        finally:
            self._client = None
            with contextlib.suppress(Exception):
                await client.disconnect()

    async def send(self, message: str) -> None:
        """Run one Claude Code turn and record what it does."""
        if self._owner is None or self._owner.done():
            raise RuntimeError("the Claude Code process has ended; resume the session")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._inbox.put((message, done))
        await done

    async def interrupt(self) -> None:
        """Ask Claude Code to abandon the current turn."""
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.interrupt()

    async def stop(self) -> None:
        """End the CLI process."""
        if self._owner is None:
            return
        await self._inbox.put(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._owner), timeout=10)
        except (TimeoutError, Exception):
            self._owner.cancel()

    async def _can_use_tool(
        self, tool_name: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResultAllow | PermissionResultDeny:
        details = {
            "tool_use_id": context.tool_use_id,
            "title": context.title,
            "blocked_path": context.blocked_path,
            "reason": context.decision_reason,
        }
        decision = await self.events.ask_permission(
            tool_name, _plain(tool_input), {k: v for k, v in details.items() if v}
        )
        if decision.behavior == "allow":
            return PermissionResultAllow(updated_input=tool_input)
        return PermissionResultDeny(message=decision.message or "The user denied this action.")

    async def _record(self, msg: Any) -> None:
        """Turn one SDK message into transcript events."""
        emit = self.events.emit
        if isinstance(msg, AssistantMessage):
            if msg.session_id:
                self._save_session_id(msg.session_id)
            for block in msg.content:
                if isinstance(block, TextBlock):
                    await emit("assistant", {"text": block.text, "message_id": msg.message_id,
                                             "model": msg.model})  # fmt: skip
                elif isinstance(block, ToolUseBlock):
                    await emit("tool_use", {"id": block.id, "name": block.name,
                                            "input": _plain(block.input)})  # fmt: skip
                elif isinstance(block, ThinkingBlock):
                    await emit("assistant", {"thinking": block.thinking,
                                             "message_id": msg.message_id})  # fmt: skip
                else:
                    await emit("system", {"subtype": "content_block", "raw": _plain(block)})
        elif isinstance(msg, UserMessage):
            blocks = msg.content if isinstance(msg.content, list) else []
            for block in blocks:
                if isinstance(block, ToolResultBlock):
                    await emit(
                        "tool_result",
                        {"tool_use_id": block.tool_use_id, "output": _tool_result_text(block.content),
                         "is_error": bool(block.is_error)},
                    )  # fmt: skip
        elif isinstance(msg, ResultMessage):
            self._save_session_id(msg.session_id)
            await emit(
                "result",
                {"subtype": msg.subtype, "is_error": msg.is_error, "result": msg.result,
                 "duration_ms": msg.duration_ms, "num_turns": msg.num_turns,
                 "total_cost_usd": msg.total_cost_usd, "usage": _plain(msg.usage),
                 "session_id": msg.session_id, "terminal_reason": msg.terminal_reason},
            )  # fmt: skip
        elif isinstance(msg, SystemMessage):
            if msg.subtype == "init":
                self._save_session_id(str(msg.data.get("session_id") or ""))
            await emit("system", {"subtype": msg.subtype, "data": _plain(msg.data)})
        elif isinstance(msg, UnknownMessage):
            await emit("system", {"subtype": "unknown", "raw": _plain(msg.data)})
        else:
            await emit("system", {"subtype": type(msg).__name__, "raw": _plain(msg)})
