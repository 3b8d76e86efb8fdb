"""The mobile mirror page `{base_url}catty/s/{label}` and the script and stylesheet it loads.

The page is a static skeleton; `static/mirror.js` fills it through the REST and WebSocket API
under `{base_url}catty/v1/`, so it sees exactly what every other client sees.
"""

from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path
from string import Template
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from ..core.errors import CattyError
from .manager import SessionManager

AUTH_RESOURCE = "catty"
STATIC_DIR = Path(__file__).with_name("static")
ASSET_TYPES = {
    "mirror.js": "text/javascript; charset=utf-8",
    "mirror.css": "text/css; charset=utf-8",
}
"""The files under `static/` that are served, with their content types; nothing else is."""

# A Host header is only echoed into the CSP when it is a plain host[:port], so a forged header
# cannot add directives.
_PLAIN_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


def _asset(name: str) -> bytes:
    """The bytes of a served file (read per request: a few kilobytes, always current)."""
    return (STATIC_DIR / name).read_bytes()


def asset_version(name: str) -> str:
    """A short hash of a served file, put in its URL so a browser never runs a stale copy."""
    return hashlib.sha256(_asset(name)).hexdigest()[:12]


class MirrorHandler(JupyterHandler):
    """Shared by the page and its assets: authentication like the REST API, our own CSP."""

    auth_resource = AUTH_RESOURCE

    @property
    def content_security_policy(self) -> str:
        """Only our own script and stylesheet, and requests back to this server.

        jupyter_server's default allows inline script; this page needs none, so any script an
        agent manages to get into the page cannot run. `connect-src` names ws:/wss: for this
        host as well as 'self', because browsers before CSP level 3 do not match WebSockets
        against 'self'.
        """
        sources = ["'self'"]
        host = self.request.host
        if _PLAIN_HOST.fullmatch(host):
            sources += [f"ws://{host}", f"wss://{host}"]
        return "; ".join([
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {' '.join(sources)}",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'self'",
        ])  # fmt: skip

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """A small page of our own, styled like the mirror and under the same CSP."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(render_error_page(self.base_url, status_code, str(message)))


class MirrorPageHandler(MirrorHandler):
    """The mirror of one session, for a phone."""

    @property
    def manager(self) -> SessionManager:
        """The session manager."""
        return self.settings["catty_manager"]  # type: ignore[no-any-return]

    @web.authenticated
    @authorized
    async def get(self, label: str) -> None:
        """The page's skeleton, with what the script needs in `data-` attributes."""
        try:
            session = self.manager.get(label)
        except CattyError as exc:
            raise web.HTTPError(exc.status, f"There is no session called “{label}”.") from None
        # Reading the token sets the `_xsrf` cookie, which the script sends back on POSTs.
        xsrf = self.xsrf_token.decode()
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        # The login link may carry ?token=; never pass it on to another site.
        self.set_header("Referrer-Policy", "no-referrer")
        self.finish(render_page(self.base_url, session.label, xsrf))


class MirrorAssetHandler(MirrorHandler):
    """The page's script and stylesheet, served only to logged-in users like the page."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        """One asset; cached for good when the URL names its current version."""
        content_type = ASSET_TYPES.get(name)
        if content_type is None:
            raise web.HTTPError(404, "No such file.")
        data = _asset(name)
        current = self.get_argument("v", "") == hashlib.sha256(data).hexdigest()[:12]
        self.set_header("Content-Type", content_type)
        self.set_header(
            "Cache-Control", "private, max-age=31536000, immutable" if current else "no-cache"
        )
        self.finish(data)


def _static_url(base_url: str, name: str) -> str:
    return f"{base_url}catty/static/{name}?v={asset_version(name)}"


def render_page(base_url: str, label: str, xsrf: str) -> str:
    """The mirror page for session LABEL; every value is escaped into an attribute or text."""
    template = Template((STATIC_DIR / "mirror.html").read_text(encoding="utf-8"))
    return template.substitute(
        label=html.escape(label),
        base_url=html.escape(base_url),
        xsrf=html.escape(xsrf),
        css=html.escape(_static_url(base_url, "mirror.css")),
        js=html.escape(_static_url(base_url, "mirror.js")),
    )


def render_error_page(base_url: str, status: int, message: str) -> str:
    """A plain page saying what went wrong, styled like the mirror."""
    css = html.escape(_static_url(base_url, "mirror.css"))
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><link rel="stylesheet" href="{css}">'
        f"<title>{status} · catty</title></head>"
        f'<body class="error-page"><main><h1>{status}</h1><p>{html.escape(message)}</p>'
        '<p class="hint">Sessions are listed by <code>jupyter catty list</code>.</p>'
        "</main></body></html>\n"
    )


handlers = [
    (r"/catty/s/(?P<label>[A-Za-z0-9_-]+)", MirrorPageHandler),
    (r"/catty/static/(?P<name>[A-Za-z0-9_.-]+)", MirrorAssetHandler),
]
"""The mirror's routes, relative to the server's base_url."""
