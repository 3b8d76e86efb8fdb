"""What the JupyterLab side panel asks of the server: agents, focus in the list, root paths."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

from catty_jupyter.agents import available_agents
from tests.conftest import git
from tests.servers import LiveServer


def _repo_in(folder: Path) -> Path:
    """A git repository with one committed file, at FOLDER."""
    folder.mkdir(parents=True, exist_ok=True)
    git(folder, "init", "-q", "-b", "main")
    (folder / "app.py").write_text("print('hello from the root folder')\n")
    git(folder, "add", ".")
    git(folder, "commit", "-q", "-m", "initial")
    return folder


async def test_agents_lists_every_agent_the_server_can_run(api: Any) -> None:
    code, body = await api("GET", "agents")
    assert code == 200
    names = [a["name"] for a in body["agents"]]
    assert names == available_agents() and {"claude", "shell"} <= set(names)


async def test_session_list_shows_who_holds_focus(api: Any) -> None:
    code, made = await api("POST", "sessions", {"agent": "shell", "client": "lab-tab"})
    assert code == 201
    label = made["label"]
    code, listing = await api("GET", "sessions")
    assert code == 200
    [listed] = [s for s in listing["sessions"] if s["label"] == label]
    assert listed["focus"]["holder"] == "lab-tab"
    code, detail = await api("GET", f"sessions/{label}")
    assert code == 200 and listed["focus"]["holder"] == detail["focus"]["holder"]

    code, _ = await api("POST", f"sessions/{label}/focus", {"client": "phone"})
    assert code == 200
    code, listing = await api("GET", "sessions")
    assert [s["focus"]["holder"] for s in listing["sessions"] if s["label"] == label] == ["phone"]
    code, _ = await api("POST", f"sessions/{label}/stop", {"client": "phone"})
    assert code == 200


async def test_relative_repo_is_a_folder_in_the_server_root(
    api: Any, jp_root_dir: Path, tmp_path: Path, make_repo: Any
) -> None:
    app = _repo_in(jp_root_dir / "projects" / "app")
    code, s = await api("POST", "sessions", {"agent": "shell", "repo": "projects/app"})
    assert code == 201, s
    assert s["source"] == str(app) and s["origin"]["kind"] == "repo"
    workspace = tmp_path / "catty-data" / "sessions" / s["id"] / "workspace"
    assert (workspace / "app.py").read_text() == (app / "app.py").read_text()

    # A folder of the file browser that is no repository: the message names the folder.
    (jp_root_dir / "notes").mkdir()
    code, err = await api("POST", "sessions", {"agent": "shell", "repo": "notes"})
    assert code == 400 and err["reason"] == "not_a_repo"
    assert str(jp_root_dir / "notes") in err["message"] and "git" in err["message"]
    code, err = await api("POST", "sessions", {"agent": "shell", "repo": "projects/nothing"})
    assert code == 400 and err["reason"] == "no_such_path"
    assert str(jp_root_dir / "projects" / "nothing") in err["message"]

    # "" and "." are the root folder itself; an absolute path is taken as it is.
    for root in ("", "."):
        code, err = await api("POST", "sessions", {"agent": "shell", "repo": root})
        assert code == 400 and str(jp_root_dir) in err["message"], (root, err)
    _repo_in(jp_root_dir)
    code, at_root = await api("POST", "sessions", {"agent": "shell", "repo": "."})
    assert code == 201 and at_root["source"] == str(jp_root_dir)
    elsewhere = make_repo()
    code, absolute = await api("POST", "sessions", {"agent": "shell", "repo": str(elsewhere)})
    assert code == 201 and absolute["source"] == str(elsewhere)
    for made in (s, at_root, absolute):
        code, _ = await api("POST", f"sessions/{made['label']}/stop")
        assert code == 200


async def test_a_home_folder_of_an_unknown_user_is_a_clear_400(api: Any) -> None:
    code, err = await api("POST", "sessions", {"agent": "shell", "repo": "~nosuchuser-catty/app"})
    assert code == 400 and err["reason"] == "bad_repo", err
    assert "~nosuchuser-catty/app" in err["message"] and "full path" in err["message"]
    code, listing = await api("GET", "sessions")
    assert code == 200 and listing["sessions"] == []  # nothing half-made


async def test_updates_name_each_session_whose_listing_changed(api: Any, jp_ws_fetch: Any) -> None:
    ws = await jp_ws_fetch("catty", "v1", "updates")
    messages: list[list[str]] = []

    async def named(session_id: str) -> None:
        """Read hints until one names SESSION_ID."""
        while True:
            changed = json.loads(await asyncio.wait_for(ws.read_message(), 10))["changed"]
            messages.append(changed)
            if session_id in changed:
                return

    code, s = await api("POST", "sessions", {"agent": "shell", "prompt": "echo hi"})
    assert code == 201
    await named(s["id"])  # created
    label = s["label"]
    for change in (("PATCH", f"sessions/{label}", {"archived": True}),
                   ("POST", f"sessions/{label}/stop", None)):  # fmt: skip
        code, _ = await api(*change)
        assert code == 200
        await named(s["id"])
    code, _ = await api("DELETE", f"sessions/{label}", confirm=label)
    assert code == 204
    await named(s["id"])
    ws.close()
    # Hints name sessions, never more: a list refetches what it shows through the REST API.
    assert all(isinstance(i, str) and len(i) == 32 for changed in messages for i in changed)


def test_the_launcher_offers_the_catty_kernel_but_not_the_runtimes(tmp_path: Path) -> None:
    # A real server in the real environment (the jp_ fixtures isolate kernelspecs).
    server = LiveServer(data_dir=tmp_path / "data", root_dir=tmp_path / "root").start()
    try:
        req = urllib.request.Request(f"{server.url}api/kernelspecs",
                                     headers={"Authorization": f"token {server.token}"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as resp:
            offered = set(json.loads(resp.read())["kernelspecs"])
        assert "catty" in offered  # the user-facing kernel: each cell is a message to a session
        assert not {"catty-runtime", "catty-runtime-unsandboxed"} & offered, offered
        # The session manager still finds its runtime.
        made = server.request("POST", "sessions", {"agent": "shell", "prompt": "echo found"})
        deadline = time.monotonic() + 60
        while server.request("GET", f"sessions/{made['label']}")["state"] == "starting":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert server.request("GET", f"sessions/{made['label']}")["state"] == "running"
    finally:
        server.stop()
