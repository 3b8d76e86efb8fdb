"""Input focus: which one client of a session may steer it.

Any number of clients watch a session; exactly one at a time holds input focus and may send
messages, interrupt and answer permission requests. Taking focus is explicit. A holder that
drops off (no open stream left) keeps focus for a grace period, so a phone's network blip does
not lose it; after that the focus is free and the next client to act takes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import Conflict


class FocusHeld(Conflict):
    """A client without focus tried to steer; the message names the holder."""

    def __init__(self, holder: str, label: str) -> None:
        super().__init__(
            f"{holder} holds input focus on {label}; take control first (the Take control "
            f"button, or POST sessions/{label}/focus) to steer from here",
            reason="focus_held",
        )
        self.holder = holder


@dataclass
class Focus:
    """The focus of one session: its holder and which clients have a stream open."""

    grace: float = 60.0
    """Seconds a disconnected holder keeps focus."""
    holder: str | None = None
    since: float | None = None
    """When the holder took focus."""
    last_seen: float = 0.0
    """When the holder last acted or had a stream open."""
    streams: dict[str, int] = field(default_factory=dict)
    """Open streams per client."""

    def connected(self, client: str) -> bool:
        """True while CLIENT has a stream open."""
        return self.streams.get(client, 0) > 0

    def expires(self) -> float | None:
        """When a disconnected holder loses focus; None while connected or with no holder."""
        if self.holder is None or self.connected(self.holder):
            return None
        return self.last_seen + self.grace

    def lapsed(self, now: float) -> bool:
        """True when the holder's grace period is over (the focus is free but not yet let go)."""
        expires = self.expires()
        return expires is not None and now >= expires

    def current(self, now: float) -> str | None:
        """The holder, unless its grace period is over."""
        return None if self.lapsed(now) else self.holder

    def take(self, client: str, now: float) -> str | None:
        """Give CLIENT focus; return the previous holder (None when it was free)."""
        previous = self.current(now)
        self.holder, self.since, self.last_seen = client, now, now
        return previous

    def release(self) -> str | None:
        """Let the focus go; return who held it."""
        previous, self.holder, self.since = self.holder, None, None
        return previous

    def seen(self, client: str, now: float) -> None:
        """CLIENT acted: a holder's grace period starts again from now."""
        if client == self.holder:
            self.last_seen = now

    def connect(self, client: str, now: float) -> None:
        """CLIENT opened a stream."""
        self.streams[client] = self.streams.get(client, 0) + 1
        self.seen(client, now)

    def disconnect(self, client: str, now: float) -> None:
        """CLIENT closed a stream; the holder's grace period starts when its last one closes."""
        left = self.streams.get(client, 0) - 1
        if left > 0:
            self.streams[client] = left
        else:
            self.streams.pop(client, None)
        self.seen(client, now)

    def to_json(self, now: float) -> dict[str, Any]:
        """The focus as the API shows it."""
        holder = self.current(now)
        return {
            "holder": holder,
            "connected": holder is not None and self.connected(holder),
            "since": self.since if holder is not None else None,
            "expires": self.expires() if holder is not None else None,
        }
