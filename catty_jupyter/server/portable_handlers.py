"""`GET …/sessions/{key}/export` and `POST …/sessions/import`: a session as one file, and back."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..core.errors import CattyError
from .handlers import _KEY, CattyHandler
from .upload_handlers import UploadsHandler


class ExportHandler(CattyHandler):
    """The session as one `.catty` file, for `POST sessions/import` on another server."""

    @web.authenticated
    @authorized
    async def get(self, key: str) -> None:
        """Stream the export (the agent's uncommitted work is committed onto its branch first)."""
        session = self.session(key)
        export = await self.manager.portable.export(session)
        try:
            self.set_header("Content-Type", "application/x-tar")
            self.set_header("Content-Disposition",
                            f'attachment; filename="{export.path.name}"')  # fmt: skip
            with export.path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    self.write(chunk)
                    await self.flush()
            self.finish()
        finally:
            export.discard()


@web.stream_request_body
class ImportHandler(UploadsHandler):
    """Receive an export (streamed to disk under `max_upload_bytes`) and make a stopped
    session of it."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """The file is in: answer the new session, `stopped` (413 past the cap, 400 when the
        file is not a session export)."""
        if self._refusal is not None:
            raise self._refusal
        assert self._receiving is not None
        try:
            upload = self._receiving.finish()
        except CattyError as exc:
            if exc.reason != "bad_archive":
                raise
            raise CattyError(f"{self._receiving.name}: this is not a catty session export; "
                             "make one with `jupyter catty export LABEL -o FILE`",
                             reason="bad_export") from None  # fmt: skip
        try:
            session = await self.manager.portable.import_file(
                upload.path, owner=self.owner, client=self.client_id(), name=upload.name
            )
        finally:
            upload.discard()
        self.reply(session.to_json(), status=201)


handlers = [
    # Before the routes of sessions/{key}, which would take `import` for a label.
    (r"/catty/v1/sessions/import", ImportHandler),
    (rf"/catty/v1/sessions/{_KEY}/export", ExportHandler),
]
