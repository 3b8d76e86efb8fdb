"""What changed in the session list, over a WebSocket, so a list can refresh when it must
instead of polling."""

from __future__ import annotations

import asyncio
import contextlib
import json

from tornado import websocket

from .stream import ListeningSocket, retrieve_error

HINT_DELAY = 0.2
"""Seconds changes are gathered before one message names them all: a busy session changes with
every event, and a list needs one look per burst, not one per event."""


class UpdatesHandler(ListeningSocket):
    """Each message is `{"changed": [session id, ...]}`: sessions whose state, activity, focus,
    diffstat or archived flag may have changed, that were created or that were deleted. It says
    what to look at again (`GET sessions`), not what changed."""

    def initialize(self) -> None:  # type: ignore[override]
        """Per-connection state."""
        self._changed: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._watching = False

    def open(self) -> None:  # type: ignore[override]
        """Start hearing of changes."""
        self.manager.watch(self._note)
        self._watching = True

    def _note(self, session_id: str) -> None:
        self._changed.add(session_id)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(HINT_DELAY, self._send)

    def _send(self) -> None:
        self._timer = None
        changed, self._changed = sorted(self._changed), set()
        with contextlib.suppress(websocket.WebSocketClosedError):  # on_close tidies up
            self.write_message(json.dumps({"changed": changed})).add_done_callback(retrieve_error)

    def on_close(self) -> None:
        """Stop hearing of changes."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._watching:
            self._watching = False
            self.manager.unwatch(self._note)
