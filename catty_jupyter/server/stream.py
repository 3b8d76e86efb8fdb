"""The live transcript over WebSocket: replay from `after`, then follow, with no gap or duplicate;
and the base of the extension's listen-only WebSockets."""

from __future__ import annotations

import asyncio
import contextlib
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
"""Events read from the index at a time while a viewer catches up."""
MAX_UNSENT = 1000
"""Events written to a viewer's socket and not yet sent, past which it catches up from the index
instead: a slow viewer holds at most this many in memory, whatever the session's pace."""


class ListeningSocket(JupyterHandler, websocket.WebSocketHandler):  # type: ignore[misc]
    """A WebSocket that clients only listen on, open to whoever may read sessions."""

    auth_resource = AUTH_RESOURCE

    @property
    def manager(self) -> SessionManager:
        """The session manager."""
        return self.settings["catty_manager"]  # type: ignore[no-any-return]

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Authorize, check the request (`prepare_socket`), then upgrade to a WebSocket."""
        await self.manager.start()
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, "read", AUTH_RESOURCE)
        )
        if not allowed:
            raise web.HTTPError(403)
        await self.prepare_socket(*args, **kwargs)
        result = super().get(*args, **kwargs)
        if result is not None:
            await result

    async def prepare_socket(self, *args: Any, **kwargs: Any) -> None:
        """Refuse a bad request (an HTTPError) before the upgrade; by default nothing to check."""

    def on_message(self, message: str | bytes) -> None:
        """Clients only listen; input goes through the REST API."""

    def get_compression_options(self) -> dict[str, Any] | None:
        """Compress: what goes out is JSON text."""
        return {}


def retrieve_error(written: asyncio.Future[None]) -> None:
    """Take a write's error, if any, so none is reported as never retrieved: a closed socket is
    the only one, and whoever awaits the newest write (or `on_close`) deals with it."""
    if not written.cancelled():
        written.exception()


class StreamHandler(ListeningSocket):
    """Each message sent is one transcript event as JSON.

    A viewer is either *live* (the manager hands it each event as it is indexed and it writes it
    at once, with no task of its own) or *catching up* (a task reads the index from the last
    event written, a page at a time, waiting for the socket between pages). It starts catching
    up (the replay from `after`), goes live once the index has nothing more, and catches up again
    whenever its socket falls MAX_UNSENT events behind. Events go out in order, each once.
    """

    def initialize(self) -> None:  # type: ignore[override]
        """Per-connection state."""
        self._session_id: str | None = None
        self._client: str | None = None
        self._after = 0
        self._last = 0
        """The newest seq written to the socket."""
        self._unsent = 0
        self._newest_write: asyncio.Future[None] | None = None
        self._catching_up: asyncio.Task[None] | None = None
        self._subscribed = False

    async def prepare_socket(self, key: str) -> None:  # type: ignore[override]
        """Resolve the session and read `after` and `client` before upgrading."""
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

    def open(self, key: str) -> None:  # type: ignore[override]
        """Subscribe, then replay from `after` by catching up: an event indexed meanwhile is
        in the index by the time the replay reads it, so nothing falls between the two."""
        assert self._session_id is not None
        self._last = self._after
        self.manager.subscribe(self._session_id, self._deliver)
        self._subscribed = True
        if self._client is not None:
            self.manager.focus.opened(self.manager.get(self._session_id), self._client)
        self._catch_up()

    def _deliver(self, event: Event) -> None:
        """The manager indexed EVENT: write it now if this viewer is live and level with it."""
        if self._catching_up is not None or event.seq <= self._last:
            return  # the catch-up reads it from the index
        if event.seq > self._last + 1 or self._unsent >= MAX_UNSENT:
            self._catch_up()
            return
        with contextlib.suppress(websocket.WebSocketClosedError):  # on_close unsubscribes
            self._write(event)

    def _catch_up(self) -> None:
        self._catching_up = asyncio.ensure_future(self._read_index())

    async def _read_index(self) -> None:
        """Write what the index holds after the last event written, a page at a time, until
        it holds nothing more; then this viewer is live again."""
        assert self._session_id is not None
        try:
            session = self.manager.get(self._session_id)  # deleted meanwhile: NotFound
            while True:
                if self._newest_write is not None:
                    await self._newest_write  # the socket has sent all that was written
                page = self.manager.transcript(session, after=self._last, limit=REPLAY_PAGE)
                if not page:
                    break
                for event in page:
                    self._write(event)
        except (websocket.WebSocketClosedError, asyncio.CancelledError):
            return  # closed: stay out of live delivery until on_close unsubscribes
        except Exception:
            # Say so and close: the client reconnects from its last event and loses nothing.
            self.log.exception("catty: the stream of session %s failed", self._session_id)
            self.close(1011, "the server could not read the transcript")
            return
        # Level with the index, with no wait since reading it: from here the manager's next
        # event is exactly the next one.
        self._catching_up = None

    def _write(self, event: Event) -> None:
        written = self.write_message(event.wire)
        self._last = event.seq
        self._unsent += 1
        written.add_done_callback(self._sent)
        self._newest_write = written

    def _sent(self, written: asyncio.Future[None]) -> None:
        self._unsent -= 1
        retrieve_error(written)

    def on_close(self) -> None:
        """Unsubscribe."""
        if self._catching_up is not None:
            self._catching_up.cancel()
        if self._subscribed and self._session_id is not None:
            self._subscribed = False
            self.manager.unsubscribe(self._session_id, self._deliver)
            if self._client is not None:
                self.manager.focus.closed(self._session_id, self._client)
