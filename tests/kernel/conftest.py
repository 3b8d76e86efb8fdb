"""A real Jupyter server for the Catty kernel to talk to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import LiveServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server process for the module's tests (each test makes its own sessions)."""
    tmp = tmp_path_factory.mktemp("catty-kernel")
    live = LiveServer(data_dir=tmp / "data", root_dir=tmp / "root").start()
    yield live
    live.stop()


@pytest.fixture
def served(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    """The server, named in the environment every kernel started from here inherits."""
    monkeypatch.setenv("CATTY_URL", server.url)
    monkeypatch.setenv("CATTY_TOKEN", server.token)
    return server
