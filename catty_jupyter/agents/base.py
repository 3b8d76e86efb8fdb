"""The small interface every agent adapter implements, and what the runtime hands it."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol


@dataclass(frozen=True)
class PermissionDecision:
    """The answer to a permission request: allow, or deny with a message for the agent."""

    behavior: Literal["allow", "deny"]
    message: str = ""
    client: str | None = None


class AgentEvents(Protocol):
    """What an adapter uses to report to the session's transcript and to ask for permission."""

    async def emit(self, kind: str, payload: dict[str, Any]) -> None:
        """Record one transcript event (journaled before anyone sees it)."""

    async def ask_permission(
        self, tool_name: str, tool_input: dict[str, Any], details: dict[str, Any]
    ) -> PermissionDecision:
        """Publish a permission request and wait, without limit, for the focus holder's answer."""


@dataclass
class AgentContext:
    """Everything an adapter needs to know about the session it serves."""

    label: str
    workspace: Path
    home: Path
    state_dir: Path
    """A private directory that survives restarts of the runtime (for the agent's own files)."""
    env: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    resume: bool = False
    """True when this runtime continues an earlier one of the same session."""


class Agent(abc.ABC):
    """One agent at work in one session; the runtime drives it one message at a time."""

    name: ClassVar[str]
    """The name users pick the agent by (`--agent NAME`)."""

    def __init__(self, context: AgentContext, events: AgentEvents) -> None:
        self.context = context
        self.events = events

    @abc.abstractmethod
    async def start(self) -> None:
        """Get ready to take messages; return when the agent is ready."""

    @abc.abstractmethod
    async def send(self, message: str) -> None:
        """Run one turn for a user message, emitting transcript events; return when it ends."""

    @abc.abstractmethod
    async def interrupt(self) -> None:
        """Stop the current turn as soon as possible; the agent stays usable."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """End the agent and everything it started."""
