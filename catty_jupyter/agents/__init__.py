"""Agent adapters; third parties register theirs under the entry-point group `catty_jupyter.agents`."""

from __future__ import annotations

from importlib.metadata import entry_points

from .base import Agent, AgentContext, AgentEvents, PermissionDecision

ENTRY_POINT_GROUP = "catty_jupyter.agents"

__all__ = [
    "ENTRY_POINT_GROUP",
    "Agent",
    "AgentContext",
    "AgentEvents",
    "PermissionDecision",
    "available_agents",
    "load_agent",
]


def available_agents() -> list[str]:
    """Names of every installed agent adapter."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def load_agent(name: str) -> type[Agent]:
    """Find the adapter class registered under NAME."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Agent)):
                raise TypeError(f"agent entry point {name!r} is not an Agent subclass")
            return cls
    known = ", ".join(available_agents()) or "none"
    raise LookupError(f"unknown agent {name!r}; installed agents: {known}")
