"""Network levels, secrets, resource limits and SessionStart hooks, enforced in real sandboxes.

Hosts are local servers reached by names the egress proxy resolves to loopback
(`CattyExtension.egress_resolve`): no traffic leaves the machine.
"""

from __future__ import annotations

import gzip
import http.server
import json
import logging
import secrets
import shlex
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git, results, wait_for
from tests.server.test_sandbox import run
from tests.server.test_setup_cache import ready, start

PY = sys.executable  # visible inside every sandbox (the runtime needs it)


@pytest.fixture
def catty_config() -> dict[str, Any]:
    """Names for the local origin server, and one environment per network level."""
    return {
        "egress_resolve": {"allowed.test": "127.0.0.1", "other.test": "127.0.0.1"},
        "environments": {
            "net-none": {"agent": "shell", "network": "none"},
            "net-full": {"agent": "shell", "network": "full"},
            "net-custom": {
                "agent": "shell",
                "network": "custom",
                "allowed_domains": ["allowed.test"],
            },
            "small": {"agent": "shell", "resources": {"memory": "100M"}},
            "tiny-disk": {"agent": "shell", "resources": {"disk": "2M"}},
        },
    }


class _Greeter(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello-from-outside"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def origin() -> Iterator[int]:
    """A plain HTTP server on 127.0.0.1 that answers every GET with a greeting."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Greeter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def fetch(url: str, force_proxy: bool = False) -> str:
    """A shell command that fetches URL with Python (through HTTP_PROXY when set; with
    FORCE_PROXY even where NO_PROXY says not to)."""
    opener = ("urllib.request.build_opener(urllib.request.ProxyHandler("
              "{'http': os.environ['HTTP_PROXY']})).open" if force_proxy
              else "urllib.request.urlopen")  # fmt: skip
    code = (
        "import os, urllib.request, urllib.error\n"
        "try:\n"
        f"    r = {opener}({url!r}, timeout=5); print('status', r.status, r.read().decode())\n"
        "except urllib.error.HTTPError as e: print('status', e.code, e.read().decode()[:200])\n"
        "except Exception as e: print('error', type(e).__name__)\n"
    )
    prefix = "env -u NO_PROXY -u no_proxy " if force_proxy else ""
    return f"{prefix}{PY} -c {shlex.quote(code)}"


def direct(port: int) -> str:
    """A shell command that opens a plain TCP connection to the host's 127.0.0.1:PORT."""
    code = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3); "
            "print('direct connected')\nexcept OSError as e: print('direct failed', e.errno)")  # fmt: skip
    return f"{PY} -c {shlex.quote(code)}"


async def test_custom_allowlist_lets_listed_names_through_and_blocks_the_rest(
    api: Any, session_until: Any, events: Any, origin: int
) -> None:
    s = await start(api, "net-custom")
    label = s["label"]
    out = await run(api, session_until, label, fetch(f"http://allowed.test:{origin}/"), 1)
    assert "status 200 hello-from-outside" in out, out
    out = await run(api, session_until, label, fetch(f"http://other.test:{origin}/"), 2)
    assert "status 403" in out and "other.test" in out, out

    async def blocked_event() -> Any:
        return [e for e in await events(label) if e["kind"] == "system"
                and e["payload"].get("message") == "blocked egress to other.test"]  # fmt: skip

    await wait_for(blocked_event, timeout=10, what="the blocked-egress event")
    out = await run(api, session_until, label, direct(origin), 3)
    assert "direct failed" in out, out
    await api("POST", f"sessions/{label}/stop")


async def test_full_reaches_any_name_but_not_the_hosts_loopback(
    api: Any, session_until: Any, origin: int
) -> None:
    s = await start(api, "net-full")
    label = s["label"]
    out = await run(api, session_until, label, fetch(f"http://other.test:{origin}/"), 1)
    assert "status 200" in out, out
    out = await run(
        api, session_until, label, fetch(f"http://127.0.0.1:{origin}/", force_proxy=True), 2
    )
    assert "status 403" in out, out  # the proxy refuses the host's own loopback
    out = await run(api, session_until, label, direct(origin) + "; printenv HTTPS_PROXY", 3)
    assert "direct failed" in out and "http://127.0.0.1:3128" in out, out
    await api("POST", f"sessions/{label}/stop")


async def test_none_has_no_way_out(api: Any, session_until: Any, origin: int) -> None:
    s = await start(api, "net-none")
    label = s["label"]
    out = await run(api, session_until, label,
                    fetch(f"http://allowed.test:{origin}/") + "; " + direct(origin), 1)  # fmt: skip
    assert "status" not in out and "error" in out and "direct failed" in out, out
    await api("POST", f"sessions/{label}/stop")


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record the server logs, at every level."""
    caplog.set_level(logging.DEBUG)
    return caplog


async def test_a_secret_reaches_the_processes_but_no_transcript_log_response_or_download(
    api: Any, session_until: Any, events: Any, jp_fetch: Any, tmp_path: Path,
    server_log: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    secret = "sk-planted-" + secrets.token_hex(12)
    responses: list[str] = []

    async def call(method: str, path: str, body: Any = None, **params: Any) -> Any:
        code, answer = await api(method, path, body, **params)
        responses.append(json.dumps(answer))
        return code, answer

    code, env = await call("POST", "environments", {
        "name": "secretive", "agent": "shell",
        "env": f"PUBLIC=visible\nAPI_TOKEN={secret}\n", "secrets": ["API_TOKEN"],
        "setup_script": 'echo "setup sees $API_TOKEN"\n',
    })  # fmt: skip
    assert code == 201, env
    assert "API_TOKEN=********" in env["env"] and "PUBLIC=visible" in env["env"]
    code, s = await call("POST", "sessions", {"agent": "shell", "environment": "secretive"})
    assert code == 201, s
    label = s["label"]
    out = await run(api, session_until, label,
                    f'echo "agent sees $API_TOKEN"; test "$API_TOKEN" = "{secret}" && echo same', 1)  # fmt: skip
    assert "agent sees ********" in out and secret not in out, out
    evs = await events(label)
    text = json.dumps(evs)
    assert "setup sees ********" in text and "agent sees ********" in text
    # The check ran with the real value: it printed `same` (the command itself was masked).
    assert any(e["kind"] == "tool_result" and "same" in e["payload"].get("output", "")
               for e in evs)  # fmt: skip
    for path in ("environments", "environments/secretive", f"sessions/{label}", "sessions",
                 f"sessions/{label}/transcript"):  # fmt: skip
        await call("GET", path)
    await call("PATCH", "environments/secretive", {"description": "still secret"})
    resp = await jp_fetch("catty", "v1", "sessions", label, "download")
    download = gzip.decompress(resp.body)
    await api("POST", f"sessions/{label}/stop")

    data = tmp_path / "catty-data"
    session_dir = data / "sessions" / s["id"]
    artifacts = {
        "API responses": "\n".join(responses).encode(),
        "download": download,
        "journal": (session_dir / "state" / "journal.jsonl").read_bytes(),
        "runtime log": (session_dir / "state" / "runtime.log").read_bytes(),
        "runtime config": (session_dir / "state" / "runtime.json").read_bytes(),
        "server log": "\n".join(r.getMessage() for r in server_log.records).encode(),
    }
    import sqlite3

    with sqlite3.connect(data / "catty.db") as db:
        artifacts["indexed events"] = json.dumps(
            db.execute("SELECT * FROM events").fetchall()
        ).encode()
        artifacts["sessions table"] = json.dumps(
            db.execute("SELECT * FROM sessions").fetchall()
        ).encode()
    leaked = [name for name, blob in artifacts.items() if secret.encode() in blob]
    assert not leaked, f"the secret leaked into: {leaked}"
    assert b"********" in artifacts["journal"]


async def test_going_over_memory_ends_only_that_sessions_tree(
    api: Any, session_until: Any, events: Any
) -> None:
    bystander = await start(api, "default")
    hog = await start(api, "small")
    for s in (bystander, hog):
        assert (await ready(api, s["label"]))["state"] == "running"
    code, body = await api("POST", f"sessions/{hog['label']}/messages", {
        "text": f"{PY} -c \"b = bytearray(400 << 20); import time; time.sleep(30)\""})  # fmt: skip
    assert code == 202, body

    async def failed() -> Any:
        _code, info = await api("GET", f"sessions/{hog['label']}")
        return info if info["state"] == "failed" else None

    info = await wait_for(failed, timeout=30, what="the memory hog to be ended")
    assert "memory limit (100M" in info["error"], info["error"]
    last = (await events(hog["label"]))[-1]
    assert last["kind"] == "error" and "memory limit" in last["payload"]["message"]
    out = await run(api, session_until, bystander["label"], "echo still-here", 1)
    assert "still-here" in out
    await api("POST", f"sessions/{bystander['label']}/stop")


async def test_workspace_disk_use_is_reported_and_capped(api: Any, session_until: Any) -> None:
    s = await start(api, "tiny-disk")
    label = s["label"]
    assert (await ready(api, label))["state"] == "running"
    code, _body = await api("POST", f"sessions/{label}/messages",
                           {"text": "head -c 5000000 /dev/zero > big.bin; ls -l big.bin"})  # fmt: skip
    assert code == 202

    async def failed() -> Any:
        _code, info = await api("GET", f"sessions/{label}")
        return info if info["state"] == "failed" else None

    info = await wait_for(failed, timeout=30, what="the session over its disk limit to stop")
    assert "disk limit of 2M" in info["error"], info["error"]
    assert info["disk_used"] > 2 * 1024 * 1024
    # A single file could not grow past the limit either.
    assert info["disk_used"] < 5_000_000


HOOK_SETTINGS = {
    "hooks": {
        "SessionStart": [
            {
                "hooks": [
                    {
                        "type": "command",
                        "command": (
                            'echo "remote=$CLAUDE_CODE_REMOTE catty=$CATTY_REMOTE label=$CATTY_SESSION_LABEL" '
                            '> "$CLAUDE_PROJECT_DIR/hook-ran.txt"; '
                            'echo "export FROM_HOOK=persisted-by-hook" >> "$CLAUDE_ENV_FILE"'
                        ),
                    }
                ]
            }
        ],
    },
}


async def test_a_repositorys_session_start_hook_knows_it_runs_remotely(
    api: Any, session_until: Any, make_repo: Any
) -> None:
    repo = make_repo()
    (repo / ".claude").mkdir()
    (repo / ".claude" / "settings.json").write_text(json.dumps(HOOK_SETTINGS))
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "a SessionStart hook")
    code, s = await api("POST", "sessions", {
        "environment": "demo", "repo": str(repo),
        "options": {"permission_mode": "bypassPermissions"},
        "prompt": "!bash cat hook-ran.txt; echo from-env=$FROM_HOOK",
    })  # fmt: skip
    assert code == 201, s
    evs = await session_until(s["label"], lambda e: results(e) >= 1, timeout=120)
    output = "".join(str(e["payload"].get("output", "")) for e in evs if e["kind"] == "tool_result")
    assert f"remote=true catty=true label={s['label']}" in output, output
    assert "from-env=persisted-by-hook" in output, output
    await api("POST", f"sessions/{s['label']}/stop")
