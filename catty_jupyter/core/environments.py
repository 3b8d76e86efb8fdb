"""Environments: named recipes for sessions (agent, network level, variables, agent options)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import CattyError

NETWORK_LEVELS: tuple[str, ...] = ("none", "full")
"""The network levels a session can have (allowlists come with the egress proxy)."""


@dataclass(frozen=True)
class Environment:
    """What a session started in this environment runs with."""

    name: str
    agent: str = "claude"
    network: str = "none"
    env: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        """The environment as the API shows it (variable names only, never values)."""
        return {
            "name": self.name,
            "agent": self.agent,
            "network": self.network,
            "variables": sorted(self.env),
            "options": self.options,
            "description": self.description,
        }

    @classmethod
    def from_config(cls, name: str, data: dict[str, Any]) -> Environment:
        """Build an environment from the extension's `environments` config entry."""
        network = str(data.get("network", "none"))
        if network not in NETWORK_LEVELS:
            raise CattyError(
                f"environment {name!r}: network must be one of {', '.join(NETWORK_LEVELS)}, "
                f"not {network!r}",
                reason="bad_environment",
            )
        return cls(
            name=name,
            agent=str(data.get("agent", "claude")),
            network=network,
            env={str(k): str(v) for k, v in dict(data.get("env") or {}).items()},
            options=dict(data.get("options") or {}),
            description=str(data.get("description", "")),
        )
