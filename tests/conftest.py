"""Shared fixtures: a real Jupyter server with the extension, real git repositories."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test User", "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test User", "GIT_COMMITTER_EMAIL": "test@example.com",
}  # fmt: skip


def git(repo: Path, *args: str) -> str:
    """Run git in REPO as a test user; return stdout."""
    import os

    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout  # fmt: skip


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """Build a git repository with one commit (and optional uncommitted changes)."""

    def make(name: str = "repo", dirty: bool = False) -> Path:
        repo = tmp_path / name
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        (repo / "README.md").write_text("# test repo\n")
        (repo / ".gitignore").write_text("*.log\n")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", "initial")
        if dirty:
            (repo / "README.md").write_text("# test repo\n\nuncommitted line\n")
            (repo / "new_file.txt").write_text("untracked but not ignored\n")
            (repo / "debug.log").write_text("ignored\n")
        return repo

    return make


@pytest.fixture(autouse=True)
def _no_inherited_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server a test starts in this process hands its address to kernels through os.environ;
    put it back afterwards, so one test's server never answers for the next."""
    monkeypatch.delenv("CATTY_URL", raising=False)
    monkeypatch.delenv("CATTY_TOKEN", raising=False)


@pytest.fixture
def catty_config() -> dict[str, Any]:
    """Extra CattyExtension config a test module may override."""
    return {}


@pytest.fixture
def jp_server_config(tmp_path: Path, catty_config: dict[str, Any]) -> dict[str, Any]:
    """Enable the extension with its data in a temporary directory and the demo model on."""
    return {
        "ServerApp": {"jpserver_extensions": {"catty_jupyter": True}},
        "CattyExtension": {
            "data_dir": str(tmp_path / "catty-data"),
            "demo_model": True,
            # No runtime may outlive its test.
            "stop_sessions_on_exit": True,
            **catty_config,
        },
    }


def fetch_args(method: str, body: Any = None, **params: Any) -> dict[str, Any]:
    """jp_fetch's keyword arguments for a JSON API call (an empty object for a bodiless POST)."""
    kwargs: dict[str, Any] = {"method": method, "raise_error": False}
    if body is not None:
        kwargs["body"] = body if isinstance(body, str | bytes) else json.dumps(body)
    elif method in ("POST", "PATCH"):
        kwargs["body"] = "{}"
    if params:
        kwargs["params"] = params
    return kwargs


@pytest.fixture
def api(jp_fetch: Any) -> Callable[..., Awaitable[Any]]:
    """Call the catty API; returns (status, decoded JSON body)."""

    async def call(method: str, path: str, body: Any = None, **params: Any) -> tuple[int, Any]:
        resp = await jp_fetch("catty", "v1", *path.split("/"), **fetch_args(method, body, **params))
        text = resp.body.decode() if resp.body else ""
        return resp.code, (json.loads(text) if text else None)

    return call


async def wait_for(
    predicate: Callable[[], Awaitable[Any]], timeout: float = 60, interval: float = 0.1,
    what: str = "condition",
) -> Any:  # fmt: skip
    """Poll PREDICATE until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


@pytest.fixture
def events(api: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[list[dict[str, Any]]]]:
    """Fetch a session's whole transcript."""

    async def fetch(label: str) -> list[dict[str, Any]]:
        code, body = await api("GET", f"sessions/{label}/transcript", limit="5000")
        assert code == 200, body
        return list(body["events"])

    return fetch


@pytest.fixture
def session_until(api: Any, events: Any) -> Callable[..., Awaitable[list[dict[str, Any]]]]:
    """Wait until a session's transcript satisfies a predicate; return the transcript."""

    async def until(label: str, predicate: Callable[[list[dict[str, Any]]], bool],
                    timeout: float = 90, what: str = "transcript") -> list[dict[str, Any]]:  # fmt: skip
        async def check() -> list[dict[str, Any]] | None:
            evs = await events(label)
            if any(e["kind"] == "error" and e["payload"].get("fatal") for e in evs):
                raise AssertionError(f"session failed: {evs[-3:]}")
            return evs if predicate(evs) else None

        return await wait_for(check, timeout=timeout, what=what)  # type: ignore[no-any-return]

    return until


def kinds(evs: list[dict[str, Any]]) -> list[str]:
    """The kinds of events, in order."""
    return [e["kind"] for e in evs]


def results(evs: list[dict[str, Any]]) -> int:
    """How many turns have ended."""
    return sum(1 for e in evs if e["kind"] == "result")
