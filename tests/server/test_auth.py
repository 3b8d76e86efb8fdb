"""Every catty route refuses requests that carry no credentials."""

from __future__ import annotations

from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from catty_jupyter.server.handlers import default_handlers

ROUTES = [
    ("GET", "sessions"), ("POST", "sessions"), ("GET", "sessions/brave-tiger-0001"),
    ("PATCH", "sessions/brave-tiger-0001"), ("DELETE", "sessions/brave-tiger-0001"),
    ("POST", "sessions/brave-tiger-0001/messages"), ("POST", "sessions/brave-tiger-0001/interrupt"),
    ("POST", "sessions/brave-tiger-0001/stop"), ("POST", "sessions/brave-tiger-0001/permissions/x"),
    ("GET", "sessions/brave-tiger-0001/transcript"), ("GET", "environments"),
]  # fmt: skip


@pytest.fixture
def jp_server_config(jp_server_config: dict[str, Any]) -> dict[str, Any]:
    """Refuse anything unauthenticated."""
    jp_server_config["ServerApp"]["allow_unauthenticated_access"] = False
    return jp_server_config


def test_every_route_is_listed_here() -> None:
    assert len(default_handlers) == 8  # add new routes to ROUTES above, then bump this


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_route_refuses_without_credentials(jp_fetch: Any, method: str, path: str) -> None:
    body = "{}" if method in ("POST", "PATCH") else None
    with pytest.raises(HTTPClientError) as err:
        # An empty Authorization header replaces the token jp_fetch would add.
        await jp_fetch("catty", "v1", *path.split("/"), method=method, body=body,
                       headers={"Authorization": ""}, follow_redirects=False)  # fmt: skip
    assert err.value.code in (401, 403), (method, path, err.value.code)


async def test_route_answers_with_credentials(jp_fetch: Any) -> None:
    resp = await jp_fetch("catty", "v1", "sessions")
    assert resp.code == 200


async def test_stream_refuses_without_credentials(jp_ws_fetch: Any) -> None:
    with pytest.raises(HTTPClientError) as err:
        await jp_ws_fetch("catty", "v1", "sessions", "brave-tiger-0001", "stream",
                          headers={"Authorization": ""})  # fmt: skip
    # jupyter_server sends unauthenticated page requests to its login page; either way, no upgrade.
    assert err.value.code in (302, 401, 403)
    if err.value.code == 302:
        assert err.value.response is not None
        assert "/login" in err.value.response.headers["Location"]
