"""Input focus for every session: who may steer, and telling everyone when that changes.

The rules live in `core.focus.Focus`; this keeps one per session, restores it from the transcript
after a server restart, and records each change as a `status` event with a `focus` key, so every
viewer (the previous holder included) learns of it at once on its stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..core.focus import Focus, FocusHeld
from ..core.models import Event, Session
from ..core.store import Store

Recorder = Callable[[Session, str, dict[str, Any], str | None], None]


class FocusKeeper:
    """The focus of each session this server knows."""

    def __init__(self, store: Store, grace: float, record: Recorder) -> None:
        self.store = store
        self.grace = grace
        self._record = record
        self._focus: dict[str, Focus] = {}

    def of(self, session: Session) -> Focus:
        """The session's focus, restored from its transcript the first time it is asked for."""
        focus = self._focus.get(session.id)
        if focus is None:
            focus = self._focus[session.id] = Focus(grace=self.grace)
            # Only the kinds that can name a holder: a long transcript is mostly other kinds.
            holder = last_holder(self.store.events(session.id, kinds=("status", "system")))
            if holder is not None:
                # Whoever held it before a server restart keeps it for a grace period.
                focus.take(holder, time.time())
        return focus

    def to_json(self, session: Session) -> dict[str, Any]:
        """The session's focus as the API shows it."""
        return self.of(session).to_json(time.time())

    def take(self, session: Session, client: str) -> dict[str, Any]:
        """Give CLIENT input focus; the previous holder learns it from the transcript at once."""
        focus, now = self.of(session), time.time()
        if focus.current(now) == client:
            focus.seen(client, now)
            return focus.to_json(now)
        previous = focus.take(client, now)
        message = f"{client} took control" + (f" from {previous}" if previous else "")
        self._record(session, "status",
                     {"focus": client, "previous": previous, "message": message}, client)  # fmt: skip
        return focus.to_json(now)

    def claim_if_free(self, session: Session, client: str) -> None:
        """Quietly give CLIENT focus when nobody holds it (the creator of a session)."""
        focus, now = self.of(session), time.time()
        if focus.current(now) is None:
            focus.take(client, now)

    def release(self, session: Session, client: str) -> dict[str, Any]:
        """Let go of focus; only its holder may."""
        focus, now = self.of(session), time.time()
        holder = focus.current(now)
        if holder is None:
            return focus.to_json(now)
        if holder != client:
            raise FocusHeld(holder, session.label)
        focus.release()
        self._record(session, "status", {"focus": None, "previous": client,
                                         "message": f"{client} let go of control"}, client)  # fmt: skip
        return focus.to_json(now)

    def steer(self, session: Session, client: str | None) -> None:
        """Refuse CLIENT unless it may steer; a client acting on a free focus takes it."""
        if client is None:
            return
        focus, now = self.of(session), time.time()
        holder = focus.current(now)
        if holder is not None and holder != client:
            raise FocusHeld(holder, session.label)
        if holder is None:
            self.take(session, client)
        focus.seen(client, now)

    def opened(self, session: Session, client: str) -> None:
        """CLIENT opened a live stream: it is present, so its grace period does not run."""
        self.of(session).connect(client, time.time())

    def closed(self, session_id: str, client: str) -> None:
        """CLIENT's stream closed: a holder's grace period starts when its last one does."""
        if session_id in self._focus:
            self._focus[session_id].disconnect(client, time.time())

    def lapse(self) -> None:
        """Let go of focus whose holder has been away longer than the grace period."""
        now = time.time()
        for session_id, focus in list(self._focus.items()):
            if focus.holder is None or not focus.lapsed(now):
                continue
            holder = focus.release()
            session = self.store.get_session(session_id)
            if session is not None:
                message = (f"{holder} was away for {focus.grace:.0f} s, so its control lapsed; "
                           "anyone may take it")  # fmt: skip
                self._record(session, "status",
                             {"focus": None, "previous": holder, "message": message}, None)  # fmt: skip

    def forget(self, session_id: str) -> None:
        """Drop a deleted session's focus."""
        self._focus.pop(session_id, None)


def last_holder(events: list[Event]) -> str | None:
    """Who held focus by the transcript: the last focus change, else the session's creator."""
    for event in reversed(events):
        if event.kind == "status" and "focus" in event.payload:
            holder = event.payload["focus"]
            return str(holder) if holder else None
    for event in events:
        if event.kind == "system" and event.client:
            return event.client
    return None
