"""The OpenAPI description of the REST API, served at {base_url}catty/v1/openapi.yaml."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

AUTH_RESOURCE = "catty"
SPEC_FILE = "openapi.yaml"
"""The hand-written spec, beside this module (it ships in the wheel with the package)."""


@cache
def openapi_yaml() -> bytes:
    """The OpenAPI 3.1 document, as written."""
    return files(__package__ or "catty_jupyter.server").joinpath(SPEC_FILE).read_bytes()


class OpenAPIHandler(APIHandler):
    """Serve the spec: it describes what this server runs, so it ships beside the code."""

    auth_resource = AUTH_RESOURCE

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The spec as YAML."""
        await self.finish(openapi_yaml(), set_content_type="application/yaml")


handlers = [(r"/catty/v1/openapi.yaml", OpenAPIHandler)]
