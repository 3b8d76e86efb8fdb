"""`jupyter catty` as a user runs it, in a subprocess, against a real running server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

Run = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def catty(jp_serverapp: Any, http_server: Any, jp_http_port: int, jp_base_url: str) -> Run:
    """Run `jupyter catty ARGS` pointed at the test server; returns (status, stdout, stderr)."""
    url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
    token = jp_serverapp.identity_provider.token

    async def run(
        *args: str, cwd: Path | None = None, url_flag: bool = True
    ) -> tuple[int, str, str]:
        env = {**os.environ, "CATTY_URL": url, "CATTY_TOKEN": token} if url_flag else {
            **{k: v for k, v in os.environ.items() if not k.startswith("CATTY_")},
            "JUPYTER_RUNTIME_DIR": str(Path(cwd or ".") / "no-servers-here"),
        }  # fmt: skip
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "catty_jupyter.cli", *args, cwd=cwd, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        return proc.returncode or 0, out.decode(), err.decode()

    return run


async def test_new_list_send_log_stop(catty: Run, make_repo: Any) -> None:
    repo = make_repo(dirty=True)
    code, out, err = await catty("new", "--agent", "shell", "--json", "echo first", cwd=repo)
    assert code == 0, err
    session = json.loads(out)
    label = session["label"]
    assert session["source"] == str(repo)  # --repo defaults to the current directory

    code, out, err = await catty("send", label, "echo second-$((40 + 2))")
    assert code == 0, err
    for _ in range(100):
        code, out, err = await catty("log", label)
        if "second-42" in out:
            break
        await asyncio.sleep(0.1)
    assert "> echo first" in out and "first\n" in out and "second-42" in out

    code, out, err = await catty("list")
    assert code == 0 and label in out and "running" in out
    code, out, err = await catty("list", "--json")
    assert [s["label"] for s in json.loads(out)] == [label]
    code, out, err = await catty("stop", label)
    assert code == 0 and out.strip() == "stopped"


async def test_follow_ends_when_the_session_stops(catty: Run) -> None:
    code, out, err = await catty("new", "--agent", "shell", "--empty", "--json", "echo hi")
    assert code == 0, err
    label = json.loads(out)["label"]
    follower = asyncio.ensure_future(catty("log", "--follow", label))
    await asyncio.sleep(2)
    await catty("stop", label)
    code, out, _err = await asyncio.wait_for(follower, 30)
    assert code == 0 and "hi" in out and "session stopped" in out


async def test_clear_messages_for_bad_repos_and_no_server(catty: Run, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    code, out, err = await catty("new", "--agent", "shell", "--repo", str(missing))
    assert code == 1 and str(missing) in err and out == "", err
    (tmp_path / "plain").mkdir()
    code, out, err = await catty("new", "--agent", "shell", "--repo", str(tmp_path / "plain"))
    assert code == 1 and "not a git repository" in err, err
    code, out, err = await catty("send", "no-such-0000", "hi")
    assert code == 1 and "no-such-0000" in err and out == ""
    code, _out, err = await catty("list", cwd=tmp_path, url_flag=False)
    assert code == 1 and "no running Jupyter server" in err and "--url" in err


async def _read_until(stream: asyncio.StreamReader, needle: str, timeout: float = 60) -> str:
    """Read a subprocess's output until NEEDLE shows up; return all of it."""
    seen = ""
    while needle not in seen:
        chunk = await asyncio.wait_for(stream.read(4096), timeout)
        if not chunk:
            raise AssertionError(f"output ended before {needle!r}:\n{seen}")
        seen += chunk.decode()
    return seen


async def test_attach_follows_live_and_types_only_with_focus(
    catty: Run, jp_serverapp: Any, jp_http_port: int, jp_base_url: str, api: Any
) -> None:
    code, out, err = await catty("--client", "desk", "new", "--agent", "shell", "--empty",
                                 "--json", "echo first-turn")  # fmt: skip
    assert code == 0, err
    label = json.loads(out)["label"]
    env = {**os.environ, "CATTY_URL": f"http://127.0.0.1:{jp_http_port}{jp_base_url}",
           "CATTY_TOKEN": jp_serverapp.identity_provider.token, "CATTY_CLIENT": "desk"}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "catty_jupyter.cli", "attach", label, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        seen = await _read_until(proc.stdout, "first-turn\n")
        assert f"attached to {label}" in seen and "you hold it" in seen

        proc.stdin.write(b"echo typed-$((6 * 7))\n")
        await proc.stdin.drain()
        await _read_until(proc.stdout, "typed-42")

        # Another device takes control: the terminal is told, and its typing is refused.
        code, _ = await api("POST", f"sessions/{label}/focus", {"client": "phone"})
        assert code == 200
        await _read_until(proc.stdout, "phone took control from desk")
        proc.stdin.write(b"echo refused\n")
        await proc.stdin.drain()
        seen = await _read_until(proc.stdout, "/take")
        assert "phone holds input focus" in seen

        proc.stdin.write(b"/take\necho mine-again\n")
        await proc.stdin.drain()
        await _read_until(proc.stdout, "mine-again\n")
        proc.stdin.close()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    # --read-only sends nothing and never takes focus.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "catty_jupyter.cli", "attach", "--read-only", label,
        env={**env, "CATTY_CLIENT": "viewer"}, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out_bytes, _ = await asyncio.wait_for(proc.communicate(b"echo sneaky\n/take\n"), 60)
    assert "read-only: nothing was sent" in out_bytes.decode()
    code, focus = await api("GET", f"sessions/{label}/focus")
    assert focus["holder"] == "desk"
    code, body = await api("GET", f"sessions/{label}/transcript")
    assert "sneaky" not in json.dumps(body)


async def test_resume_archive_download_delete(catty: Run, tmp_path: Path) -> None:
    code, out, err = await catty("new", "--agent", "shell", "--empty", "--json",
                                 "echo payload > made.txt")  # fmt: skip
    label = json.loads(out)["label"]
    for _ in range(100):
        code, out, err = await catty("log", label)
        if "turn done" in out:
            break
        await asyncio.sleep(0.1)
    assert (await catty("stop", label))[1].strip() == "stopped"

    code, out, err = await catty("download", label, "-o", str(tmp_path / "ws.tgz"))
    assert code == 0 and "ws.tgz" in out, err
    import tarfile

    with tarfile.open(tmp_path / "ws.tgz") as tar:
        made = tar.extractfile(f"{label}/made.txt")
        assert made is not None and made.read() == b"payload\n"

    code, out, err = await catty("resume", label)
    assert code == 0 and out.strip() == "starting", err
    code, out, err = await catty("archive", label)
    assert code == 0 and out.strip() == "archived"
    assert label not in (await catty("list"))[1]
    assert label in (await catty("list", "--all"))[1]

    code, out, err = await catty("delete", label)  # no terminal to confirm on
    assert code == 1 and "--yes" in err
    code, out, err = await catty("delete", "--yes", label)
    assert code == 0 and f"deleted {label}" in out, err
    code, out, err = await catty("list", "--all")
    assert label not in out
