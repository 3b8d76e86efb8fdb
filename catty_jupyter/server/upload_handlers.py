"""`POST {base_url}catty/v1/uploads`: an archive streamed to disk, to start a session from."""

from __future__ import annotations

from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.http1connection import HTTP1Connection

from ..core.errors import CattyError
from .handlers import AUTH_RESOURCE, CattyHandler
from .uploads import Receiving, Uploads, too_large

DRAIN_BYTES = 64 << 20
"""Past the cap, this much more of a body is still read (and thrown away), so a client that is
still sending gets the 413 instead of a reset connection; beyond it the connection is cut."""


@web.stream_request_body
class UploadsHandler(CattyHandler):
    """Receive an archive; `POST sessions` with `{"archive": ID}` makes a session from it."""

    def initialize(self) -> None:  # type: ignore[override]
        """Per-request state."""
        self._receiving: Receiving | None = None
        self._refusal: CattyError | None = None

    @property
    def uploads(self) -> Uploads:
        """The uploads directory."""
        return self.settings["catty_uploads"]  # type: ignore[no-any-return]

    async def prepare(self) -> None:  # type: ignore[override]
        """Check who is asking before the body arrives, then get ready to receive it."""
        await super().prepare()
        if self._finished or self.request.method != "POST":
            return
        # The decorators on post() only run once the whole body is in: anyone the server does
        # not authorize must be refused before a byte of it reaches the disk.
        user = self.current_user
        allowed = user and await ensure_async(
            self.authorizer.is_authorized(self, user, "write", AUTH_RESOURCE)
        )
        if not allowed:
            raise web.HTTPError(403, f"User is not authorized to write on {AUTH_RESOURCE}")
        cap = self.uploads.max_bytes
        if isinstance(self.request.connection, HTTP1Connection):
            self.request.connection.set_max_body_size(cap + DRAIN_BYTES)
        declared = self.request.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > cap:
            if int(declared) > cap + DRAIN_BYTES:
                raise too_large(cap, int(declared))
            self._refusal = too_large(cap, int(declared))
            return
        self._receiving = self.uploads.receive(self.get_argument("name", ""))

    def data_received(self, chunk: bytes) -> None:
        """Write the chunk; past the cap, drop the partial file and read on without keeping."""
        if self._receiving is None or self._refusal is not None:
            return
        try:
            self._receiving.write(chunk)
        except CattyError as exc:
            self._refusal = exc

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """The archive is in: answer its id, name and size (413 past `max_upload_bytes`)."""
        if self._refusal is not None:
            raise self._refusal
        assert self._receiving is not None
        self.reply(self._receiving.finish().to_json(), status=201)

    def on_finish(self) -> None:
        """A request that ended without a complete upload leaves no partial file."""
        self._drop_partial()

    def on_connection_close(self) -> None:
        """The client went away mid-upload."""
        super().on_connection_close()
        self._drop_partial()

    def _drop_partial(self) -> None:
        if self._receiving is not None and not self._receiving.done:
            self._receiving.discard()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors are JSON `{"message", "reason"}`, as on every catty route."""
        self._drop_partial()
        super().write_error(status_code, **kwargs)


handlers = [(r"/catty/v1/uploads", UploadsHandler)]
