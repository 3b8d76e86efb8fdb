"""Portable sessions: export a session as one file, import it on another server, resume it there."""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catty_jupyter.client import CattyClient, ServerInfo
from tests.conftest import git, kinds, results
from tests.openapi_check import check_response
from tests.servers import LiveServer

SECRET = "hunter2-very-secret"


@pytest.fixture
def catty_config() -> dict[str, Any]:
    """Imports (like uploads) up to 1 MiB here."""
    return {"max_upload_bytes": 1 << 20}


def manager_of(jp_serverapp: Any) -> Any:
    """The extension's session manager."""
    return jp_serverapp.web_app.settings["catty_manager"]


async def export_of(jp_fetch: Any, label: str) -> tuple[int, bytes, Any]:
    """GET sessions/LABEL/export: the status, the body and the headers."""
    resp = await jp_fetch("catty", "v1", "sessions", label, "export", raise_error=False)
    check_response("GET", f"/catty/v1/sessions/{label}/export", resp.code,
                   resp.headers.get("Content-Type"), resp.body)  # fmt: skip
    return resp.code, resp.body, resp.headers


async def import_of(jp_fetch: Any, data: bytes, name: str = "s.catty") -> tuple[int, Any]:
    """POST sessions/import with DATA as the body: the status and the decoded answer."""
    resp = await jp_fetch("catty", "v1", "sessions", "import", method="POST", body=data,
                          params={"name": name}, raise_error=False,
                          headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    body = check_response("POST", "/catty/v1/sessions/import", resp.code,
                          resp.headers.get("Content-Type"), resp.body)  # fmt: skip
    return resp.code, body


def on_disk(jp_serverapp: Any) -> tuple[set[str], set[str], set[str]]:
    """Session directories, session rows and environment names: what an import may leave."""
    manager = manager_of(jp_serverapp)
    sessions = manager.data_dir / "sessions"
    dirs = {p.name for p in sessions.iterdir()} if sessions.exists() else set()
    rows = {s.id for s in manager.list_sessions(include_archived=True)}
    return dirs, rows, {e.name for e in manager.environments.list()}


async def test_a_shell_session_round_trips_with_its_work_and_without_secret_values(
    api: Any, make_repo: Any, session_until: Any, events: Any, jp_fetch: Any, jp_serverapp: Any
) -> None:
    code, env = await api("POST", "environments", {
        "name": "ported", "agent": "shell", "env": f"API_KEY={SECRET}\nMODE=fast\n",
        "secrets": ["API_KEY"], "setup_script": 'echo prepared > "$HOME/setup-marker"\n',
    })  # fmt: skip
    assert code == 201, env
    command = 'echo made > made.txt && git tag v-made && echo "key=$API_KEY mode=$MODE"'
    code, s = await api("POST", "sessions", {"environment": "ported", "repo": str(make_repo()),
                                             "prompt": command, "client": "desk"})  # fmt: skip
    assert code == 201, s
    label = s["label"]
    await session_until(label, lambda e: results(e) >= 1, what="the command")

    code, data, headers = await export_of(jp_fetch, label)  # while it runs
    assert code == 200, data
    assert headers["Content-Disposition"] == f'attachment; filename="{label}.catty"'
    assert SECRET.encode() not in data and b"API_KEY" in data
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
    assert names[0] == "manifest.json"
    assert {"workspace.bundle", "journal.jsonl", "environment.json"} <= set(names)

    # Its label is taken here: the import gets a new one, and the branch follows it.
    code, copy = await import_of(jp_fetch, data, name=f"{label}.catty")
    assert code == 201, copy
    assert copy["state"] == "stopped" and copy["label"] != label and copy["id"] != s["id"]
    assert copy["branch"] == f"catty/{copy['label']}" and copy["environment"] == "ported"
    assert copy["origin"]["kind"] == "import" and copy["agent"] == "shell"
    ws = manager_of(jp_serverapp).session_dir(manager_of(jp_serverapp).get(copy["id"]))
    ws = ws / "workspace"
    assert (ws / "made.txt").read_text() == "made\n"
    assert git(ws, "branch", "--show-current").strip() == f"catty/{copy['label']}"
    assert f"catty/{label}" not in git(ws, "branch", "--list")
    assert git(ws, "tag").split() == ["v-made"]
    original, copied = await events(label), await events(copy["label"])
    imported = [e for e in copied if e["kind"] == "system" and e["payload"].get("imported")]
    said = imported[-1]["payload"]["message"]
    assert f"imported from {label}.catty" in said
    # Focus stayed behind: the first client to act here takes it.
    assert copied[-1]["kind"] == "status" and copied[-1]["payload"]["focus"] is None
    code, focus = await api("GET", f"sessions/{copy['label']}/focus")
    assert focus["holder"] is None
    assert f"its label {label!r} is taken here" in said
    outputs = "".join(e["payload"].get("output", "") for e in copied)
    assert "key=******** mode=fast" in outputs  # the transcript came, masked as it was
    assert [e["payload"] for e in copied[: len(original)] if e["kind"] == "user"] == [
        e["payload"] for e in original if e["kind"] == "user"
    ]

    # The copy resumes and works on the imported workspace.
    code, body = await api("POST", f"sessions/{copy['label']}/resume", {"client": "desk"})
    assert code == 202, body
    await session_until(copy["label"], lambda e: e[-1]["kind"] == "status" and
                        e[-1]["payload"].get("ready"), what="the resumed copy")  # fmt: skip
    code, body = await api("POST", f"sessions/{copy['label']}/messages",
                           {"text": "cat made.txt; git status --porcelain | wc -l; "
                                    "cat ~/setup-marker",
                            "client": "desk"})  # fmt: skip
    assert code == 202, body
    evs = await session_until(copy["label"], lambda e: results(e) > results(copied),
                              what="a command in the copy")  # fmt: skip
    later = "".join(e["payload"].get("output", "") for e in evs[len(copied) :])
    assert "made\r\n0" in later or "made\n0" in later, later  # its file, and a clean status
    assert "prepared" in later  # the environment's setup, done for the import's first launch
    await api("POST", f"sessions/{copy['label']}/stop")

    # Gone from here (session and environment), an import makes the environment again,
    # naming the secret without its value, and keeps the label.
    await api("POST", f"sessions/{label}/stop")
    code, _ = await api("DELETE", f"sessions/{label}", confirm=label)
    assert code == 204
    await api("DELETE", f"sessions/{copy['label']}", confirm=copy["label"])
    code, _ = await api("DELETE", "environments/ported")
    assert code == 204, _
    code, again = await import_of(jp_fetch, data)
    assert code == 201, again
    assert again["label"] == label and again["environment"] == "ported"
    env_now = manager_of(jp_serverapp).environments.get("ported")
    assert env_now.secrets == {"API_KEY"} and env_now.env == {"API_KEY": "", "MODE": "fast"}
    said = next(
        e["payload"]["message"] for e in await events(label) if e["payload"].get("imported")
    )
    assert "environment 'ported' was created here" in said and "set API_KEY" in said


async def test_an_import_that_is_refused_leaves_nothing(
    api: Any, jp_fetch: Any, jp_serverapp: Any, session_until: Any
) -> None:
    before = on_disk(jp_serverapp)
    code, err = await import_of(jp_fetch, b"certainly not a session" * 50)
    assert code == 400 and err["reason"] == "bad_export", err
    assert "jupyter catty export" in err["message"]
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("README"), io.BytesIO(b""))
    code, err = await import_of(jp_fetch, plain.getvalue())
    assert code == 400 and "manifest.json" in err["message"], err
    code, err = await import_of(jp_fetch, b"x" * (1 << 20) + b"x")
    assert code == 413 and "max_upload_bytes" in err["message"], err
    assert on_disk(jp_serverapp) == before

    code, s = await api("POST", "sessions", {"agent": "shell", "prompt": "true"})
    await session_until(s["label"], lambda e: results(e) >= 1, what="the command")
    code, data, _ = await export_of(jp_fetch, s["label"])
    assert code == 200
    before = on_disk(jp_serverapp)
    # A file from a newer catty-jupyter says so.
    newer = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as tar, tarfile.open(fileobj=newer,
                                                                     mode="w") as out:  # fmt: skip
        for member in tar.getmembers():
            body = tar.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "manifest.json":
                body = json.dumps({**json.loads(body), "version": 9}).encode()
                member.size = len(body)
            out.addfile(member, io.BytesIO(body))
    code, err = await import_of(jp_fetch, newer.getvalue())
    assert code == 400 and err["reason"] == "unsupported_version", err
    # A damaged bundle fails the workspace, after the checks: nothing is left either.
    cut = data.replace(b"PACK", b"PACX", 1)
    code, err = await import_of(jp_fetch, cut)
    assert code == 400, err
    code, _body, _headers = await export_of(jp_fetch, "brave-tiger-0000")
    assert code == 404
    assert on_disk(jp_serverapp) == before


# -- two servers, the real Claude Code ------------------------------------------------------------


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two real servers, each with its own data directory."""
    one = LiveServer(data_dir=tmp_path / "one" / "data", root_dir=tmp_path / "one" / "root")
    two = LiveServer(data_dir=tmp_path / "two" / "data", root_dir=tmp_path / "two" / "root")
    try:
        yield one.start(), two.start()
    finally:
        for server in (one, two):
            server.stop()


def cli(server: LiveServer, *args: str, cwd: Path) -> tuple[int, str, str]:
    """Run `jupyter catty ARGS` against SERVER."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("CATTY_")}
    proc = subprocess.run(
        [sys.executable, "-m", "catty_jupyter.cli", "--url", server.url, "--token",
         server.token, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


def turns(client: CattyClient, label: str, count: int, timeout: float = 120) -> list[Any]:
    """The transcript once COUNT turns have ended (failing on a fatal error)."""
    deadline = time.monotonic() + timeout
    while True:
        evs = client.transcript(label, limit=5000)
        fatal = [e for e in evs if e["kind"] == "error" and e["payload"].get("fatal")]
        assert not fatal, fatal
        if results(evs) >= count:
            return evs
        assert time.monotonic() < deadline, f"timed out waiting for turn {count}: {evs[-5:]}"
        time.sleep(0.2)


@pytest.mark.claude
@pytest.mark.timeout(400)
def test_a_claude_session_moves_to_another_server_and_remembers(
    servers: tuple[LiveServer, LiveServer], tmp_path: Path
) -> None:
    one, two = servers
    first = CattyClient(ServerInfo(one.url, one.token), client_id="desk")
    second = CattyClient(ServerInfo(two.url, two.token), client_id="laptop")
    prompt = "!say the password is papaya\n!write notes.txt\nwritten on the first server\n!end"
    s = first.new(prompt, environment="demo", options={"permission_mode": "bypassPermissions"})
    label = s["label"]
    turns(first, label, 1)

    file = tmp_path / "moved.catty"
    code, out, err = cli(one, "export", label, "-o", str(file), cwd=tmp_path)
    assert code == 0, err
    assert str(file) in out and "jupyter catty import" in err
    code, out, err = cli(two, "import", str(file), cwd=tmp_path)
    assert code == 0, err
    assert out.strip() == label and f"jupyter catty resume {label}" in err

    moved = second.get(label)
    assert moved["state"] == "stopped" and moved["agent"] == "claude"
    assert moved["origin"]["kind"] == "import" and moved["id"] != s["id"]
    workspace = two.data_dir / "sessions" / moved["id"] / "workspace"
    assert (workspace / "notes.txt").read_text() == "written on the first server\n"
    assert git(workspace, "branch", "--show-current").strip() == f"catty/{label}"
    before = second.transcript(label, limit=5000)
    assert any(e["kind"] == "user" and "papaya" in e["payload"].get("text", "") for e in before)
    assert any("imported from moved.catty" in e["payload"].get("message", "") for e in before)

    assert second.resume(label)["state"] == "starting"
    deadline = time.monotonic() + 120
    while (state := second.get(label)["state"]) != "running":
        # One read per check: reading twice raced with the start finishing in between.
        assert state == "starting", second.transcript(label)[-3:]
        assert time.monotonic() < deadline
        time.sleep(0.2)
    second.send(label, "!recall")
    evs = turns(second, label, results(before) + 1)
    recalled = " ".join(e["payload"].get("text", "") for e in evs[len(before) :]
                        if e["kind"] == "assistant")  # fmt: skip
    # The demo model's !recall lists the prompts Claude Code sent it: the turn on the first
    # server is there only if the conversation itself came along and resumed.
    assert "the password is papaya" in recalled, recalled
    assert "user" in kinds(evs[len(before) :])
    second.stop(label)


def test_the_client_reports_a_refusal_clearly(tmp_path: Path) -> None:
    server = LiveServer(data_dir=tmp_path / "data", root_dir=tmp_path / "root").start()
    try:
        client = CattyClient(ServerInfo(server.url, server.token))
        junk = tmp_path / "junk.catty"
        junk.write_bytes(b"junk" * 1000)
        code, _out, err = cli(server, "import", str(junk), cwd=tmp_path)
        assert code == 1 and "junk.catty: this is not a catty session export" in err, err
        code, _out, err = cli(server, "import", str(tmp_path / "absent.catty"), cwd=tmp_path)
        assert code == 1 and "no such file" in err
        code, _out, err = cli(server, "export", "brave-tiger-0000", "-o", str(junk), cwd=tmp_path)
        assert code == 1 and "no session" in err
        assert junk.read_bytes() == b"junk" * 1000  # a failed export leaves the file alone
        assert client.list_sessions(include_archived=True) == []
    finally:
        server.stop()
