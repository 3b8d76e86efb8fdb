"""The OpenAPI spec the server serves: valid, in step with the routes, and true to real answers.

Real responses of a whole session's life are checked against the spec here; schemathesis then
throws generated requests at a live server and checks every answer the same way.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from tests.conftest import fetch_args, results
from tests.openapi_check import check_response, load_spec, path_template, schema_properties
from tests.servers import LiveServer

CLIENT = "spec-test"
"""The client every request of the flow acts as, so it keeps input focus throughout."""

STREAM = "/catty/v1/sessions/{key}/stream"
UPDATES = "/catty/v1/updates"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

Call = Callable[..., Awaitable[tuple[int, Any]]]


@pytest.fixture
def catty_config() -> dict[str, Any]:
    """Sessions default to the shell agent with no network, and end with the server."""
    return {
        "environments": {"default": {"agent": "shell", "network": "none"}},
        "stop_sessions_on_exit": True,
    }


@pytest.fixture
def call(jp_fetch: Any) -> Call:
    """Call a route under {base_url}; check the answer against the spec; return (status, body)."""

    async def fetch(
        method: str, route: str, body: Any = None, headers: dict[str, str] | None = None,
        **params: Any,
    ) -> tuple[int, Any]:  # fmt: skip
        kwargs = fetch_args(method, body, **params)
        kwargs["headers"] = {"X-Catty-Client": CLIENT, **(headers or {})}
        resp = await jp_fetch(*route.split("/"), **kwargs)
        data = check_response(
            method, "/" + route, resp.code, resp.headers.get("Content-Type"), resp.body or b""
        )
        return resp.code, data

    return fetch


def test_the_spec_is_openapi_3_1_and_its_schemas_are_valid() -> None:
    from schemathesis.specs.openapi.definitions import OPENAPI_31

    spec = load_spec()
    assert re.fullmatch(r"3\.1\.\d+", spec["openapi"])
    errors = [e.message for e in Draft202012Validator(OPENAPI_31).iter_errors(spec)]
    assert not errors, errors
    for schema in spec["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    ids = [op["operationId"] for item in spec["paths"].values()
           for m, op in item.items() if m in HTTP_METHODS]  # fmt: skip
    assert len(ids) == len(set(ids)), "operationIds must be unique"


async def test_the_server_serves_the_spec(call: Call, jp_fetch: Any) -> None:
    code, raw = await call("GET", "catty/v1/openapi.yaml")
    assert code == 200
    served = yaml.safe_load(raw)
    assert served == load_spec() and served["openapi"].startswith("3.1.")
    resp = await jp_fetch("catty", "v1", "openapi.yaml", raise_error=False,
                          headers={"Authorization": ""})  # fmt: skip
    assert resp.code == 403  # the spec is served to logged-in users only
    check_response("GET", "/catty/v1/openapi.yaml", resp.code, resp.headers["Content-Type"],
                   resp.body)  # fmt: skip


def _templates(pattern: str) -> list[str]:
    """OpenAPI path templates for a tornado route: `(?P<x>a|b)` gives one path per word."""
    match = re.search(r"\(\?P<(\w+)>([^)]*)\)", pattern)
    if match is None:
        return [pattern.replace("\\", "")]
    name, body = match.groups()
    head, tail = pattern[: match.start()], pattern[match.end() :]
    if re.fullmatch(r"\w+(\|\w+)*", body):
        return [t for word in body.split("|") for t in _templates(head + word + tail)]
    return _templates(head + "{" + name + "}" + tail)


def _group_patterns(pattern: str) -> dict[str, str]:
    return dict(re.findall(r"\(\?P<(\w+)>([^)]*)\)", pattern))


def _served(handler: type) -> set[str]:
    """The HTTP methods a handler class of ours implements (not those jupyter_server adds)."""
    return {
        m for m in HTTP_METHODS
        if any(m in vars(k) for k in handler.__mro__ if k.__module__.startswith("catty_jupyter"))
    }  # fmt: skip


async def test_the_spec_describes_exactly_the_routes_the_extension_registers(
    jp_serverapp: Any, jp_base_url: str
) -> None:
    spec = load_spec()
    prefix = jp_base_url.rstrip("/")
    registered: set[tuple[str, str]] = set()
    for host_rule in jp_serverapp.web_app.default_router.rules:
        for rule in getattr(host_rule.target, "rules", []):
            handler = rule.target
            if not getattr(handler, "__module__", "").startswith("catty_jupyter"):
                continue
            pattern = rule.matcher.regex.pattern.removesuffix("$")
            assert pattern.startswith(prefix), pattern
            pattern = pattern[len(prefix) :]
            for template in _templates(pattern):
                assert template in spec["paths"], f"{handler.__name__}: {template} not in the spec"
                registered |= {(m.upper(), template) for m in _served(handler)}
                # The spec's path parameters accept exactly what the route accepts.
                for name, regex in _group_patterns(pattern).items():
                    if "{" + name + "}" not in template:
                        continue
                    param = next(
                        p for p in _parameters(spec, template)
                        if p["in"] == "path" and p["name"] == name
                    )  # fmt: skip
                    assert param["schema"]["pattern"] == f"^{regex}$", (template, name)
    documented = {
        (m.upper(), template)
        for template, item in spec["paths"].items()
        for m in item
        if m in HTTP_METHODS
    }
    assert registered == documented, {
        "served but not in the spec": sorted(registered - documented),
        "in the spec but not served": sorted(documented - registered),
    }


def _parameters(spec: dict[str, Any], template: str) -> list[dict[str, Any]]:
    """Every parameter of TEMPLATE, path-level and operation-level, with $refs followed."""
    item = spec["paths"][template]
    found = list(item.get("parameters", []))
    for m in HTTP_METHODS:
        found += item.get(m, {}).get("parameters", [])
    refs = spec["components"]["parameters"]
    return [refs[p["$ref"].rsplit("/", 1)[-1]] if "$ref" in p else p for p in found]


async def test_a_session_life_answers_as_the_spec_says(call: Call, session_until: Any) -> None:
    code, envs = await call("GET", "catty/v1/environments")
    assert code == 200 and {e["name"] for e in envs["environments"]} >= {"default", "demo"}
    assert set(envs["environments"][0]) == schema_properties("Environment")
    code, listing = await call("GET", "catty/v1/sessions", all="1")
    assert code == 200 and listing == {"sessions": []}

    # Refusals, each with the documented status and an Error body.
    code, err = await call("POST", "catty/v1/sessions", "{not json")
    assert code == 400 and err["reason"] == "bad_json"
    code, err = await call("POST", "catty/v1/sessions", {"environment": "nowhere"})
    assert code == 404
    code, err = await call("GET", "catty/v1/sessions/brave-tiger-0000")
    assert code == 404 and err["reason"] == "not_found"
    code, err = await call("GET", "catty/v1/sessions/brave-tiger-0000/transcript")
    assert code == 404

    code, session = await call("POST", "catty/v1/sessions", {"prompt": "echo hello-spec"})
    assert code == 201 and session["state"] == "starting"
    assert set(session) == schema_properties("Session")
    label = session["label"]
    base = f"catty/v1/sessions/{label}"
    evs = await session_until(label, lambda e: results(e) >= 1, what="the first command")

    code, detail = await call("GET", base)
    assert code == 200 and detail["state"] == "running" and detail["activity"] == "idle"
    assert set(detail) == schema_properties("SessionDetail")
    assert detail["focus"]["holder"] == CLIENT
    code, same = await call("GET", f"catty/v1/sessions/{session['id']}")  # an id works too
    assert code == 200 and same["label"] == label

    code, patched = await call("PATCH", base, {"archived": True})
    assert code == 200 and patched["archived"] is True
    code, listing = await call("GET", "catty/v1/sessions")
    assert code == 200 and label not in [s["label"] for s in listing["sessions"]]
    code, patched = await call("PATCH", base, {"archived": False})
    assert code == 200 and patched["archived"] is False
    code, err = await call("PATCH", base, "[]")
    assert code == 400

    code, page = await call("GET", f"{base}/transcript")
    assert code == 200 and [e["seq"] for e in page["events"]] == [e["seq"] for e in evs[:500]]
    assert set(page["events"][0]) == schema_properties("Event")
    code, tail = await call("GET", f"{base}/transcript", tail="1", limit="2")
    assert code == 200 and [e["seq"] for e in tail["events"]] == [
        page["last_seq"] - 1, page["last_seq"],
    ]  # fmt: skip
    code, above = await call("GET", f"{base}/transcript", tail="1", limit="2",
                             before=str(tail["events"][0]["seq"]))  # fmt: skip
    assert code == 200 and above["events"][-1]["seq"] == tail["events"][0]["seq"] - 1
    code, err = await call("GET", f"{base}/transcript", after="-1")
    assert code == 400 and err["reason"] == "bad_argument"

    code, sent = await call("POST", f"{base}/messages", {"text": "sleep 30"})
    assert code == 202 and sent == {"status": "sent"}
    await session_until(label, lambda e: any(x["kind"] == "status" and
                        x["payload"].get("activity") == "busy" for x in e[len(evs):]),
                        what="the second command to start")  # fmt: skip
    code, err = await call("POST", f"{base}/messages", {"nope": 1})
    assert code == 400
    code, err = await call("POST", f"{base}/interrupt", headers={"X-Catty-Client": "intruder"})
    assert code == 409 and err["reason"] == "focus_held"
    code, done = await call("POST", f"{base}/interrupt")
    assert code == 200 and done == {"status": "interrupted"}
    code, err = await call("POST", f"{base}/permissions/abc", {"behavior": "allow"})
    assert code == 404
    code, err = await call("POST", f"{base}/permissions/abc", {"behavior": "maybe"})
    assert code == 400

    code, focus = await call("GET", f"{base}/focus")
    assert code == 200 and focus["holder"] == CLIENT and set(focus) == schema_properties("Focus")
    code, focus = await call("POST", f"{base}/focus", headers={"X-Catty-Client": "phone"})
    assert code == 200 and focus["holder"] == "phone"
    code, err = await call("POST", f"{base}/messages", {"text": "echo not mine"})
    assert code == 409 and err["reason"] == "focus_held"
    code, err = await call("DELETE", f"{base}/focus")  # only the holder may let go
    assert code == 409
    code, focus = await call("DELETE", f"{base}/focus", client="phone")
    assert code == 200 and focus["holder"] is None

    code, stopped = await call("POST", f"{base}/stop")
    assert code == 200 and stopped["state"] == "stopped" and stopped["activity"] is None
    code, err = await call("POST", f"{base}/messages", {"text": "echo too late"})
    assert code == 409 and err["reason"] == "not_running"
    code, again = await call("POST", f"{base}/stop")  # stopping a stopped session is no error
    assert code == 200 and again["state"] == "stopped"

    code, resumed = await call("POST", f"{base}/resume")
    assert code == 202 and resumed["state"] == "starting"
    code, err = await call("POST", f"{base}/resume")
    assert code == 409
    await session_until(label, lambda e: e[-1]["kind"] == "status" and e[-1]["payload"].get(
        "ready"), what="the resumed runtime")  # fmt: skip
    code, stopped = await call("POST", f"{base}/stop")
    assert code == 200 and stopped["state"] == "stopped"

    code, err = await call("DELETE", base)
    assert code == 400 and err["reason"] == "confirm_required"
    code, err = await call("DELETE", base, confirm="someone-else-0000")
    assert code == 400
    code, nothing = await call("DELETE", base, confirm=label)
    assert code == 204 and nothing is None
    code, err = await call("GET", base)
    assert code == 404


async def test_environments_answer_as_the_spec_says(call: Call) -> None:
    code, env = await call("POST", "catty/v1/environments", {
        "name": "spec-env", "agent": "shell", "network": "custom",
        "allowed_domains": "pypi.org\n*.pythonhosted.org", "include_defaults": True,
        "env": "KEY=hidden-value\nMODE=1\n", "secrets": ["KEY"], "setup_script": "true\n",
        "resources": {"cpus": "1.5", "memory": "512M", "disk": 1 << 30},
    })  # fmt: skip
    assert code == 201 and set(env) == schema_properties("Environment")
    assert set(env["resources"]) == schema_properties("Resources")
    code, listing = await call("GET", "catty/v1/environments")
    assert code == 200 and "spec-env" in [e["name"] for e in listing["environments"]]
    code, same = await call("GET", "catty/v1/environments/spec-env")
    assert code == 200 and same == env
    code, env = await call("PATCH", "catty/v1/environments/spec-env", {**env, "network": "none"})
    assert code == 200 and env["network"] == "none" and "hidden-value" not in str(env)

    code, err = await call("POST", "catty/v1/environments", {"name": "x", "env": "A=1\nB\n"})
    assert code == 400 and err["field"] == "env" and err["line"] == 2
    code, err = await call("POST", "catty/v1/environments", {"name": "spec-env"})
    assert code == 409 and err["reason"] == "exists"
    code, err = await call("POST", "catty/v1/environments", "[]")
    assert code == 400
    code, err = await call("PATCH", "catty/v1/environments/default", {"description": "x"})
    assert code == 403 and err["reason"] == "read_only"
    code, err = await call("DELETE", "catty/v1/environments/default")
    assert code == 403 and err["reason"] == "read_only"
    code, err = await call("GET", "catty/v1/environments/nowhere")
    assert code == 404
    code, err = await call("PATCH", "catty/v1/environments/nowhere", {})
    assert code == 404

    code, session = await call("POST", "catty/v1/sessions", {"environment": "spec-env"})
    assert code == 201
    code, err = await call("DELETE", "catty/v1/environments/spec-env")
    assert code == 409 and err["reason"] == "in_use" and session["label"] in err["message"]
    code, _ = await call("POST", f"catty/v1/sessions/{session['label']}/stop")
    assert code == 200
    code, nothing = await call("DELETE", "catty/v1/environments/spec-env")
    assert code == 204 and nothing is None
    code, err = await call("DELETE", "catty/v1/environments/spec-env")
    assert code == 404


async def test_downloads_answer_as_the_spec_says(call: Call, session_until: Any) -> None:
    code, session = await call("POST", "catty/v1/sessions",
                               {"prompt": "mkdir -p sub && echo spec > sub/file.txt"})  # fmt: skip
    assert code == 201
    label = session["label"]
    await session_until(label, lambda e: results(e) >= 1, what="the files")
    base = f"catty/v1/sessions/{label}/download"
    code, raw = await call("GET", base, path="sub")
    assert code == 200
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(raw)), mode="r:") as tar:
        names = tar.getnames()
    assert any(n.endswith("sub/file.txt") for n in names), names
    code, err = await call("GET", base, path="../..")
    assert code == 400 and err["reason"] == "path_outside_workspace"
    code, err = await call("GET", base, path="no/such/dir")
    assert code == 404
    code, err = await call("GET", "catty/v1/sessions/brave-tiger-0000/download")
    assert code == 404
    code, stopped = await call("POST", f"catty/v1/sessions/{label}/stop")
    assert code == 200 and stopped["state"] == "stopped"


async def test_the_mirror_page_answers_as_the_spec_says(call: Call) -> None:
    code, session = await call("POST", "catty/v1/sessions", {})
    assert code == 201
    code, page = await call("GET", f"catty/s/{session['label']}")
    assert code == 200 and session["label"].encode() in page
    code, _ = await call("GET", "catty/s/brave-tiger-0000")
    assert code == 404
    code, _ = await call("GET", "catty/static/mirror.js")
    assert code == 200
    code, _ = await call("GET", "catty/static/nothing.js")
    assert code == 404
    code, _ = await call("POST", f"catty/v1/sessions/{session['label']}/stop")
    assert code == 200


async def test_malformed_input_gets_a_documented_4xx_never_a_500(call: Call) -> None:
    code, session = await call("POST", "catty/v1/sessions", {})
    assert code == 201
    base = f"catty/v1/sessions/{session['label']}"
    lone_surrogate = '"\\ud800"'  # valid JSON, but no UTF-8 string: it cannot be encoded
    cases: list[tuple[str, str, Any, dict[str, str]]] = [
        ("POST", "catty/v1/sessions", {"repo": 5}, {}),
        ("POST", "catty/v1/sessions", {"repo": ["a"]}, {}),
        ("POST", "catty/v1/sessions", {"repo": {"a": 1}}, {}),
        ("POST", "catty/v1/sessions", '{"prompt": ' + lone_surrogate + "}", {}),
        ("POST", "catty/v1/sessions", "[" * 100_000 + "]" * 100_000, {}),
        ("POST", f"{base}/messages", '{"text": ' + lone_surrogate + "}", {}),
        ("GET", f"{base}/download", None, {"path": "a" * 5000}),
    ]
    wrong = []
    for method, route, body, params in cases:
        request = f"{method} {route} {str(params or body)[:60]}"
        try:
            code, _ = await call(method, route, body, **params)
        except AssertionError as exc:  # an undocumented status, such as a 500
            wrong.append(f"{request}: {str(exc).splitlines()[0][:120]}")
            continue
        if not 400 <= code < 500:
            wrong.append(f"{request}: {code}")
    # Cursors past any transcript are not errors: nothing comes after them, everything before.
    code, page = await call("GET", f"{base}/transcript", None, after=str(2**64))
    assert code == 200 and page["events"] == []
    code, page = await call("GET", f"{base}/transcript", None, before=str(2**64))
    assert code == 200 and page["events"]
    code, _ = await call("POST", f"{base}/stop")
    assert not wrong, "\n".join(wrong)


def test_path_templates_match_real_paths() -> None:
    assert path_template("/catty/v1/sessions/brave-tiger-1234/permissions/ab12") == (
        "/catty/v1/sessions/{key}/permissions/{request_id}"
    )
    assert path_template("/catty/v1/openapi.yaml") == "/catty/v1/openapi.yaml"
    assert path_template("/catty/v1/environments/my-env.2") == "/catty/v1/environments/{name}"


# -- schemathesis against a live server ------------------------------------------------------

SCHEMATHESIS_CONFIG = """\
# Generated by tests/server/test_openapi.py for one run.
seed = 20261121
workers = 1
request-timeout = 30
headers = {{ Authorization = "token {token}", X-Catty-Client = "schemathesis" }}
generation.max-examples = 50
generation.database = "none"
checks.enabled = false
checks.not_a_server_error.enabled = true
checks.response_schema_conformance.enabled = true

# Most generated session keys are this session's, so requests reach more than a 404.
[dictionaries.labels]
values = ["{label}"]

[parameters]
"path.key" = {{ dictionary = "labels", probability = 0.8 }}
"path.label" = {{ dictionary = "labels", probability = 0.8 }}

# The stream and the updates are WebSockets, which schemathesis cannot speak.
[[operations]]
include-path = "{stream}"
enabled = false

[[operations]]
include-path = "{updates}"
enabled = false

# Each created session starts a real runtime: keep them few. (DELETE stays in: its `confirm`
# must repeat the label, which nothing here tells schemathesis, so it never deletes a session.)
[[operations]]
include-path = "/catty/v1/sessions"
include-method = "POST"
generation.max-examples = 5
"""


def _runtimes_of(data_dir: Path) -> list[int]:
    """Pids of processes whose command line names DATA_DIR: runtimes of that server's sessions."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if str(data_dir).encode() in cmdline and b"jupyter_server" not in cmdline:
            pids.append(int(proc.name))
    return pids


def _stop_every_session(server: LiveServer) -> None:
    """Stop what the run started, so the server's own shutdown has nothing slow left to do."""
    for session in server.request("GET", "sessions?all=1")["sessions"]:
        if session["state"] in ("starting", "running"):
            server.request("POST", f"sessions/{session['label']}/stop", {})


@pytest.mark.timeout(300)
def test_schemathesis_finds_no_server_error_and_no_answer_off_the_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    # A generated `repo` such as "." then names the empty root, not this checkout.
    monkeypatch.chdir(root)
    server = LiveServer(
        data_dir=tmp_path / "data", root_dir=root,
        config={"demo_model": False, "stop_sessions_on_exit": True,
                "environments": {"default": {"agent": "shell", "network": "none"}}},
    )  # fmt: skip
    server.start()
    try:
        label = server.request("POST", "sessions", {})["label"]
        deadline = time.monotonic() + 60
        while server.request("GET", f"sessions/{label}")["state"] != "running":
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.2)
        config = tmp_path / "schemathesis.toml"
        config.write_text(
            SCHEMATHESIS_CONFIG.format(
                token=server.token, label=label, stream=STREAM, updates=UPDATES
            )
        )
        st = Path(sys.executable).with_name("schemathesis")
        if not st.exists():
            pytest.fail(f"schemathesis is missing at {st}: run `make test`, which installs it")
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        proc = subprocess.run(
            [str(st), "--config-file", str(config), "run", "--no-color",
             f"{server.url}catty/v1/openapi.yaml", "--url", server.url.rstrip("/")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        assert proc.returncode == 0, (
            f"schemathesis exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    finally:
        try:
            _stop_every_session(server)
        finally:
            server.stop()
            leftovers = _runtimes_of(tmp_path / "data")
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    assert not leftovers, f"runtimes outlived the server: {leftovers}"
