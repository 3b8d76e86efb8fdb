"""Sessions, their states, and transcript events."""

from __future__ import annotations

import enum
import json
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


class SessionState(enum.StrEnum):
    """Where a session is in its life (SPEC: starting → running → stopped | failed | expired)."""

    STARTING = "starting"
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def is_live(self) -> bool:
        """True while a runtime is (or is about to be) serving the session."""
        return self in (SessionState.STARTING, SessionState.RUNNING)


class Activity(enum.StrEnum):
    """What a running session is doing right now."""

    IDLE = "idle"
    BUSY = "busy"
    WAITING = "waiting"
    """Waiting for an answer to a permission request."""


class EventKind(enum.StrEnum):
    """The kinds of transcript events."""

    USER = "user"
    ASSISTANT = "assistant"
    TOOL_USE = "tool_use"
    TOOL_RESULT = "tool_result"
    PERMISSION_REQUEST = "permission_request"
    PERMISSION_DECISION = "permission_decision"
    STATUS = "status"
    RESULT = "result"
    SETUP_LOG = "setup_log"
    SYSTEM = "system"
    ERROR = "error"
    COMMENT = "comment"


EVENT_KINDS = frozenset(kind.value for kind in EventKind)


@dataclass(frozen=True)
class Event:
    """One append-only transcript entry; `seq` only grows within a session."""

    seq: int
    kind: str
    payload: dict[str, Any]
    ts: float = field(default_factory=time.time)
    client: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The event as the API and the journal show it."""
        # Not dataclasses.asdict: that deep-copies the payload, and this runs for every event.
        return {"seq": self.seq, "kind": self.kind, "payload": self.payload, "ts": self.ts,
                "client": self.client}  # fmt: skip

    @cached_property
    def wire(self) -> str:
        """The event as JSON text, made once however many viewers it goes to."""
        return json.dumps(self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Event:
        """Read an event written by `to_json`."""
        return cls(
            seq=int(data["seq"]),
            kind=str(data["kind"]),
            payload=dict(data.get("payload") or {}),
            ts=float(data.get("ts") or 0.0),
            client=data.get("client"),
        )


@dataclass
class Session:
    """One agent at work: what the store keeps about it."""

    id: str
    label: str
    owner: str
    agent: str
    environment: str
    state: SessionState = SessionState.STARTING
    activity: Activity = Activity.IDLE
    created: float = field(default_factory=time.time)
    last_activity: float = field(default_factory=time.time)
    workspace: str = ""
    branch: str = ""
    base_commit: str | None = None
    source: str | None = None
    archived: bool = False
    error: str | None = None
    sandboxed: bool = True
    runtime: dict[str, Any] = field(default_factory=dict)
    """How to reach the runtime: kernel id, connection info, provisioner info."""
    options: dict[str, Any] = field(default_factory=dict)
    """Agent options chosen at creation (model, permission mode, network)."""
    origin: dict[str, Any] = field(default_factory=dict)
    """Where the workspace came from, for teleport and push: `kind` (repo, empty, archive,
    import), the source's `remotes` (name → URL, credentials removed) and `roots` (the root
    commits of its history)."""

    def to_json(self) -> dict[str, Any]:
        """The session as the API shows it (no runtime internals)."""
        return {
            "id": self.id,
            "label": self.label,
            "owner": self.owner,
            "agent": self.agent,
            "environment": self.environment,
            "state": self.state.value,
            "activity": self.activity.value if self.state is SessionState.RUNNING else None,
            "created": self.created,
            "last_activity": self.last_activity,
            "branch": self.branch,
            "base_commit": self.base_commit,
            "source": self.source,
            "archived": self.archived,
            "error": self.error,
            "sandboxed": self.sandboxed,
            "options": self.options,
            "origin": self.origin,
            "disk_used": self.runtime.get("disk_used"),
            "diffstat": self.runtime.get("diffstat"),
        }
