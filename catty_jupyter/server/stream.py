"""The live transcript over WebSocket: replay from `after`, then follow, with no gap or duplicate."""

from __future__ import annotations

import asyncio
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from tornado import web, websocket

from ..core.errors import CattyError
from ..core.models import Event
from .manager import SessionManager

AUTH_RESOURCE = "catty"
REPLAY_PAGE = 500
"""Events read from the store at a time while replaying to a late subscriber."""


class StreamHandler(JupyterHandler, websocket.WebSocketHandler):  # type: ignore[misc]
    """Each message sent is one transcript event as JSON."""

    auth_resource = AUTH_RESOURCE

    def initialize(self) -> None:  # type: ignore[override]
        """Per-connection state."""
        self._queue: asyncio.Queue[Event] | None = None
        self._session_id: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: str | None = None

    @property
    def manager(self) -> SessionManager:
        """The session manager."""
        return self.settings["catty_manager"]  # type: ignore[no-any-return]

    async def pre_get(self, key: str) -> None:
        """Authorize, and resolve the session before upgrading."""
        user = self.current_user
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, user, "read", AUTH_RESOURCE)
        )
        if not allowed:
            raise web.HTTPError(403)
        try:
            session = self.manager.get(key)
        except CattyError as exc:
            raise web.HTTPError(exc.status, exc.message) from None
        self._session_id = session.id
        after = self.get_argument("after", "0")
        if not after.isdigit():
            raise web.HTTPError(400, f"after must be a whole number, not {after!r}")
        self._after = int(after)
        # A named client (a device, a tab) is present while its stream is open: a focus holder
        # keeps focus without a grace period running out.
        client = self.get_argument("client", "")[:100]
        self._client = client or None

    @ws_authenticated
    async def get(self, key: str) -> None:  # type: ignore[override]
        """Upgrade to a WebSocket."""
        await self.manager.start()
        await self.pre_get(key)
        result = super().get(key)
        if result is not None:
            await result

    def open(self, key: str) -> None:  # type: ignore[override]
        """Subscribe first, then replay: events indexed meanwhile are in the queue, not lost."""
        assert self._session_id is not None
        self._queue = self.manager.subscribe(self._session_id)
        if self._client is not None:
            self.manager.focus.opened(self.manager.get(self._session_id), self._client)
        self._task = asyncio.ensure_future(self._forward())

    async def _forward(self) -> None:
        assert self._queue is not None and self._session_id is not None
        last = self._after
        session = self.manager.get(self._session_id)
        try:
            # Replay page by page, so a long transcript never sits in memory whole.
            while page := self.manager.transcript(session, after=last, limit=REPLAY_PAGE):
                for event in page:
                    await self.write_message(event.wire)
                    last = event.seq
            while True:
                event = await self._queue.get()
                if event.seq <= last:
                    continue
                if event.seq > last + 1:
                    # The queue skipped ahead of what was replayed: fill from the index.
                    for missing in self.manager.transcript(
                        session, after=last, limit=event.seq - last - 1
                    ):
                        await self.write_message(missing.wire)
                        last = missing.seq
                await self.write_message(event.wire)
                last = event.seq
        except (websocket.WebSocketClosedError, asyncio.CancelledError):
            pass

    def on_message(self, message: str | bytes) -> None:
        """Clients only listen on this socket; input goes through the REST API."""

    def on_close(self) -> None:
        """Unsubscribe."""
        if self._task is not None:
            self._task.cancel()
        if self._queue is not None and self._session_id is not None:
            self.manager.unsubscribe(self._session_id, self._queue)
            if self._client is not None:
                self.manager.focus.closed(self._session_id, self._client)

    def get_compression_options(self) -> dict[str, Any] | None:
        """Compress: transcripts are text."""
        return {}
