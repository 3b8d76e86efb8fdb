"""Setup scripts and the environment cache, through the real server, bubblewrap and overlayfs."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.server.test_sandbox import run

SETUP = """\
echo "setup runs as uid $(id -u)"
mkdir -p /opt/catty-tool
echo tool-1 > /opt/catty-tool/version
echo "built $(date +%s%N)" >> /opt/catty-tool/builds
echo 'export TOOLRC=yes' > "$HOME/.toolrc"
for i in 1 2 3; do echo "step $i"; sleep 0.1; done
"""


@pytest.fixture
def catty_config() -> dict[str, Any]:
    """A short setup timeout, so the timeout test ends quickly."""
    return {"setup_timeout": 4}


async def make_env(api: Any, name: str, script: str, **fields: Any) -> None:
    """Create a shell environment with a setup script."""
    code, body = await api("POST", "environments",
                           {"name": name, "agent": "shell", "setup_script": script, **fields})  # fmt: skip
    assert code == 201, body


async def start(api: Any, env: str, prompt: str | None = None) -> dict[str, Any]:
    """Start a shell session in ENV and return it."""
    body: dict[str, Any] = {"agent": "shell", "environment": env}
    if prompt:
        body["prompt"] = prompt
    code, s = await api("POST", "sessions", body)
    assert code == 201, s
    return dict(s)


async def ready(api: Any, label: str, timeout: float = 60) -> dict[str, Any]:
    """Wait until the session runs (or has failed); return it."""

    async def settled() -> Any:
        _code, info = await api("GET", f"sessions/{label}")
        return info if info["state"] != "starting" else None

    return dict(await wait_for(settled, timeout=timeout, what=f"{label} to start"))


def messages(evs: list[dict[str, Any]], kind: str = "system") -> list[str]:
    """The messages (or setup output) of the events of KIND."""
    key = "text" if kind == "setup_log" else "message"
    return [str(e["payload"].get(key, "")) for e in evs if e["kind"] == kind]


async def test_setup_runs_as_root_streams_its_log_and_is_cached_for_the_next_session(
    api: Any, events: Any, session_until: Any
) -> None:
    await make_env(api, "tooling", SETUP)
    first = await start(api, "tooling")
    info = await ready(api, first["label"])
    assert info["state"] == "running", info
    evs = await events(first["label"])
    log = "\n".join(messages(evs, "setup_log"))
    assert "setup runs as uid 0" in log and "step 3" in log
    assert any(m.startswith("environment cache built") for m in messages(evs)), messages(evs)
    # The setup ran before the agent: every setup_log comes before the runtime's ready status.
    ready_seq = next(e["seq"] for e in evs if e["kind"] == "status" and e["payload"].get("ready"))
    assert max(e["seq"] for e in evs if e["kind"] == "setup_log") < ready_seq

    second = await start(api, "tooling")
    assert (await ready(api, second["label"]))["state"] == "running"
    evs2 = await events(second["label"])
    assert not messages(evs2, "setup_log"), "a cache hit must not run the script"
    assert any(m.startswith("environment cache hit (built ") for m in messages(evs2))
    out = await run(api, session_until, second["label"],
                    "cat /opt/catty-tool/version; wc -l < /opt/catty-tool/builds; cat ~/.toolrc", 1)  # fmt: skip
    assert "tool-1" in out and "export TOOLRC=yes" in out
    assert out.split("\n")[1].strip() == "1", out  # built once

    # Each session writes its own layer: a change in one is not seen by the other.
    await run(api, session_until, second["label"], "echo mine > /opt/catty-tool/version", 2)
    out = await run(api, session_until, first["label"], "cat /opt/catty-tool/version", 1)
    assert "tool-1" in out and "mine" not in out
    # And nothing reached the host.
    assert not Path("/opt/catty-tool").exists()
    for s in (first, second):
        await api("POST", f"sessions/{s['label']}/stop")


async def test_resume_does_not_run_the_setup_again(
    api: Any, events: Any, session_until: Any
) -> None:
    await make_env(api, "resumable", SETUP)
    s = await start(api, "resumable")
    assert (await ready(api, s["label"]))["state"] == "running"
    await run(api, session_until, s["label"], "echo kept >> /opt/catty-tool/version", 1)
    await api("POST", f"sessions/{s['label']}/stop")
    before = len(messages(await events(s["label"]), "setup_log"))
    code, body = await api("POST", f"sessions/{s['label']}/resume")
    assert code == 202, body
    assert (await ready(api, s["label"]))["state"] == "running"
    out = await run(api, session_until, s["label"], "cat /opt/catty-tool/version", 2)
    assert "tool-1" in out and "kept" in out  # the snapshot and the session's own layer
    evs = await events(s["label"])
    assert len(messages(evs, "setup_log")) == before
    assert not any("cache" in m for m in messages(evs)[-3:])
    await api("POST", f"sessions/{s['label']}/stop")


async def test_two_sessions_on_a_cold_environment_build_it_once(
    api: Any, events: Any, session_until: Any
) -> None:
    await make_env(api, "cold", SETUP + "sleep 1\n")
    a, b = await asyncio.gather(start(api, "cold"), start(api, "cold"))
    infos = await asyncio.gather(ready(api, a["label"]), ready(api, b["label"]))
    assert [i["state"] for i in infos] == ["running", "running"], infos
    built = hits = 0
    for s in (a, b):
        found = messages(await events(s["label"]))
        built += any(m.startswith("environment cache built") for m in found)
        hits += any(m.startswith("environment cache hit") for m in found)
    assert (built, hits) == (1, 1)
    out = await run(api, session_until, b["label"], "wc -l < /opt/catty-tool/builds", 1)
    assert out.strip().endswith("1"), out
    for s in (a, b):
        await api("POST", f"sessions/{s['label']}/stop")


async def test_a_changed_script_builds_again(api: Any, events: Any) -> None:
    await make_env(api, "changing", SETUP)
    s1 = await start(api, "changing")
    await ready(api, s1["label"])
    code, body = await api("PATCH", "environments/changing",
                           {"setup_script": SETUP + "echo two > /opt/catty-tool/extra\n"})  # fmt: skip
    assert code == 200, body
    s2 = await start(api, "changing")
    await ready(api, s2["label"])
    assert any(m.startswith("environment cache built") for m in messages(await events(s2["label"])))
    for s in (s1, s2):
        await api("POST", f"sessions/{s['label']}/stop")


async def test_a_failing_script_fails_the_session_with_its_last_50_lines(
    api: Any, events: Any, tmp_path: Path
) -> None:
    await make_env(api, "broken", "for i in $(seq 1 80); do echo line-$i; done\nexit 3\n")
    s = await start(api, "broken", prompt="echo never")
    info = await ready(api, s["label"])
    assert info["state"] == "failed"
    assert "exit status 3" in info["error"]
    assert "line-80" in info["error"] and "line-31" in info["error"]
    assert "line-30\n" not in info["error"]
    evs = await events(s["label"])
    assert evs[-1]["kind"] == "error" and evs[-1]["payload"]["fatal"]
    assert "line-80" in "\n".join(messages(evs, "setup_log"))
    assert not any(e["kind"] == "user" for e in evs)  # the agent never started
    # Nothing half-made stays in the cache: the next session runs the script again.
    s2 = await start(api, "broken")
    await ready(api, s2["label"])
    assert "line-1" in "\n".join(messages(await events(s2["label"]), "setup_log"))


async def test_a_script_that_runs_too_long_fails_with_a_message_saying_so(
    api: Any, events: Any
) -> None:
    await make_env(api, "slow", "echo starting; sleep 60; echo never\n")
    s = await start(api, "slow")
    info = await ready(api, s["label"], timeout=30)
    assert info["state"] == "failed"
    assert "did not finish within 4 s" in info["error"] and "setup_timeout" in info["error"]
    assert "starting" in info["error"]
    # The sleeping script is gone with its sandbox.
    left = subprocess.run(["pgrep", "-f", "sleep 60"], capture_output=True, text=True).stdout
    assert not left.strip(), left


def build_deb(tmp: Path) -> Path:
    """A tiny Debian package that installs /usr/bin/catty-hello."""
    root = tmp / "catty-hello"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: catty-hello\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: Test <test@example.com>\nDescription: test package\n"
    )
    tool = root / "usr" / "bin" / "catty-hello"
    tool.write_text("#!/bin/sh\necho hello from a package\n")
    tool.chmod(0o755)
    out = tmp / "catty-hello.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(out)],
                   check=True, capture_output=True)  # fmt: skip
    return out


@pytest.mark.skipif(shutil.which("dpkg-deb") is None or shutil.which("apt-get") is None,
                    reason="needs apt-get and dpkg-deb (Debian or Ubuntu)")  # fmt: skip
async def test_a_package_installed_with_apt_get_is_in_the_next_session(
    api: Any, events: Any, session_until: Any, tmp_path: Path
) -> None:
    # The package file must be readable inside the sandbox, where /tmp is private.
    share = Path("/var/tmp") / f"catty-deb-{tmp_path.name}"
    share.mkdir(exist_ok=True)
    try:
        deb = build_deb(share)
        await make_env(api, "apt", f"apt-get install -y {deb} 2>&1\n")
        first = await start(api, "apt")
        info = await ready(api, first["label"], timeout=120)
        assert info["state"] == "running", info
        s = await start(api, "apt")
        await ready(api, s["label"])
        assert any("cache hit" in m for m in messages(await events(s["label"])))
        out = await run(api, session_until, s["label"], "catty-hello; dpkg -s catty-hello", 1)
        assert "hello from a package" in out and "Status: install ok installed" in out
        assert shutil.which("catty-hello") is None  # the host is untouched
        for x in (first, s):
            await api("POST", f"sessions/{x['label']}/stop")
    finally:
        shutil.rmtree(share, ignore_errors=True)


async def test_sessions_without_a_setup_script_see_a_read_only_system(
    api: Any, session_until: Any
) -> None:
    s = await start(api, "default")
    assert (await ready(api, s["label"]))["state"] == "running"
    out = await run(api, session_until, s["label"], "touch /opt/x 2>&1; echo rc=$?", 1)
    assert "rc=1" in out and "Read-only" in out
    await api("POST", f"sessions/{s['label']}/stop")
