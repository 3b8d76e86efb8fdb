"""Every catty route refuses requests that carry no credentials."""

from __future__ import annotations

import re
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError
from tornado.websocket import WebSocketHandler

SAMPLE = {"key": "brave-tiger-0001", "label": "brave-tiger-0001", "request_id": "x",
          "action": "stop", "name": "mirror.js", "comment_id": "x"}  # fmt: skip


def _all_routes() -> list[tuple[str, str]]:
    """Every (method, path) the extension serves, read from its route tables."""
    from catty_jupyter.server import handlers, mirror, spec, upload_handlers

    routes = []
    for pattern, handler, *_ in [*handlers.default_handlers, *spec.handlers, *mirror.handlers,
                                 *upload_handlers.handlers]:  # fmt: skip
        if issubclass(handler, WebSocketHandler):
            continue  # WebSockets have their own test below
        path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: SAMPLE[m.group(1)], pattern)
        path = path.replace("\\", "")
        for method in ("get", "post", "patch", "delete", "put"):
            if method in vars(handler) or any(method in vars(b) for b in handler.__mro__[1:2]):
                routes.append((method.upper(), path.lstrip("/")))
    return routes


ROUTES = _all_routes()


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    """Refuse anything unauthenticated."""
    jp_server_config["ServerApp"]["allow_unauthenticated_access"] = False
    return jp_server_config


def test_the_route_table_is_read() -> None:
    # Guards the reading above: a broken regex substitution would silently test nothing.
    assert ("POST", "catty/v1/sessions/brave-tiger-0001/focus") in ROUTES
    assert len(ROUTES) >= 15


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_route_refuses_without_credentials(jp_fetch: Any, method: str, path: str) -> None:
    body = "{}" if method in ("POST", "PATCH", "PUT") else None
    with pytest.raises(HTTPClientError) as err:
        # An empty Authorization header replaces the token jp_fetch would add.
        await jp_fetch(*path.split("/"), method=method, body=body,
                       headers={"Authorization": ""}, follow_redirects=False)  # fmt: skip
    if err.value.code == 302:  # pages send a browser to the login page instead
        assert method == "GET" and "/login" in err.value.response.headers["Location"]
    else:
        assert err.value.code in (401, 403), (method, path, err.value.code)


async def test_route_answers_with_credentials(jp_fetch: Any) -> None:
    resp = await jp_fetch("catty", "v1", "sessions")
    assert resp.code == 200


@pytest.mark.parametrize("path", ["sessions/brave-tiger-0001/stream", "updates"])
async def test_websockets_refuse_without_credentials(jp_ws_fetch: Any, path: str) -> None:
    with pytest.raises(HTTPClientError) as err:
        await jp_ws_fetch("catty", "v1", *path.split("/"), headers={"Authorization": ""})
    # jupyter_server sends unauthenticated page requests to its login page; either way, no upgrade.
    assert err.value.code in (302, 401, 403)
    if err.value.code == 302:
        assert err.value.response is not None
        assert "/login" in err.value.response.headers["Location"]
