"""Check real responses against the OpenAPI spec the server ships (server/openapi.yaml)."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from catty_jupyter.server.spec import openapi_yaml

SPEC_URI = "urn:catty:openapi"
"""The spec's name in the schema registry, so `#/components/schemas/X` refs resolve inside it."""


@cache
def load_spec() -> dict[str, Any]:
    """The spec as the server serves it."""
    return yaml.safe_load(openapi_yaml())  # type: ignore[no-any-return]


@cache
def _registry() -> Registry[Any]:
    resource = DRAFT202012.create_resource(load_spec())
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    return registry


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def path_template(path: str) -> str:
    """The spec's path template that PATH (below the base_url: /catty/v1/...) matches."""
    for template in load_spec()["paths"]:
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(regex, path):
            return str(template)
    raise AssertionError(f"{path} matches no path in the spec")


def documented_response(method: str, template: str, status: int) -> tuple[str, dict[str, Any]]:
    """Where the spec documents METHOD TEMPLATE answering STATUS (a URI), and what it says."""
    operation = load_spec()["paths"][template].get(method.lower())
    assert operation is not None, f"the spec has no {method} {template}"
    responses = operation["responses"]
    for key in (str(status), f"{str(status)[0]}XX", "default"):
        if key in responses:
            response = responses[key]
            uri = SPEC_URI + "#" + _pointer("paths", template, method.lower(), "responses", key)
            if "$ref" in response:
                uri = SPEC_URI + response["$ref"]
                response = load_spec()["components"]["responses"][response["$ref"].rsplit("/")[-1]]
            return uri, dict(response)
    raise AssertionError(f"the spec does not document {status} for {method} {template}")


def check_response(
    method: str, path: str, status: int, content_type: str | None, body: bytes
) -> Any:
    """Validate one real response against the spec; return its body (decoded when JSON).

    The status must be documented, the content type must be one the spec lists for it (no body
    when it lists none), and a JSON body must match the schema.
    """
    uri, response = documented_response(method, path_template(path), status)
    where = f"{method} {path} -> {status}"
    content = response.get("content") or {}
    if not content:
        assert not body, f"{where}: the spec documents no body, got {body[:200]!r}"
        return None
    media = (content_type or "").split(";")[0].strip()
    assert media in content, f"{where}: content type {media!r}, the spec lists {sorted(content)}"
    if media != "application/json":
        return body
    data = json.loads(body)
    schema = {"$ref": uri + _pointer("content", media, "schema")}
    validator = Draft202012Validator(schema, registry=_registry())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        details = "\n".join(f"  at {list(e.absolute_path)}: {e.message}" for e in errors[:10])
        raise AssertionError(f"{where}: the body breaks the spec:\n{details}\nbody: {data!r}")
    return data


def schema_properties(name: str) -> set[str]:
    """The property names of components/schemas/NAME (following allOf)."""
    schema = load_spec()["components"]["schemas"][name]
    names = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        if "$ref" in part:
            names |= schema_properties(part["$ref"].rsplit("/", 1)[-1])
        names |= set(part.get("properties", {}))
    return names
