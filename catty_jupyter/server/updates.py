"""What changed in the session list, over a WebSocket, so a list can refresh when it must
instead of polling."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from tornado import web, websocket

from .manager import SessionManager
from .stream import AUTH_RESOURCE

HINT_DELAY = 0.2
"""Seconds changes are gathered before one message names them all: a busy session changes with
every event, and a list needs one look per burst, not one per event."""


class UpdatesHandler(JupyterHandler, websocket.WebSocketHandler):  # type: ignore[misc]
    """Each message is `{"changed": [session id, ...]}`: sessions whose state, activity, focus,
    diffstat or archived flag may have changed, that were created or that were deleted. It says
    what to look at again (`GET sessions`), not what changed."""

    auth_resource = AUTH_RESOURCE

    def initialize(self) -> None:  # type: ignore[override]
        """Per-connection state."""
        self._changed: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._watching = False

    @property
    def manager(self) -> SessionManager:
        """The session manager."""
        return self.settings["catty_manager"]  # type: ignore[no-any-return]

    @ws_authenticated
    async def get(self) -> None:  # type: ignore[override]
        """Authorize, then upgrade to a WebSocket."""
        await self.manager.start()
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE)
        )
        if not allowed:
            raise web.HTTPError(403)
        result = super().get()
        if result is not None:
            await result

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
            written = self.write_message(json.dumps({"changed": changed}))
            written.add_done_callback(_retrieve)

    def on_message(self, message: str | bytes) -> None:
        """Clients only listen on this socket."""

    def on_close(self) -> None:
        """Stop hearing of changes."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._watching:
            self._watching = False
            self.manager.unwatch(self._note)

    def get_compression_options(self) -> dict[str, Any] | None:
        """Compress, as the transcript stream does."""
        return {}


def _retrieve(written: asyncio.Future[None]) -> None:
    """Take a write's error, if any: a closed socket is the only one, and on_close handles it."""
    if not written.cancelled():
        written.exception()
