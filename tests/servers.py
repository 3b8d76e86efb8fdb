"""A real `jupyter server` process with the extension, for tests that need one outside pytest's
event loop: killing and restarting the server, browsers, schemathesis."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """One Jupyter server process on 127.0.0.1; `start` it again after `kill` to restart."""

    data_dir: Path
    root_dir: Path
    config: dict[str, Any] = field(default_factory=dict)
    """Extra `CattyExtension` traits."""
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    app: str = "jupyter_server"
    """The module to run: "jupyter_server", or "jupyterlab" for the JupyterLab front end too."""
    base_url: str = "/"
    """Where the server lives under the host, as on JupyterHub (`/user/NAME/`)."""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's base URL, with a trailing slash."""
        return f"http://127.0.0.1:{self.port}{self.base_url}"

    @property
    def log_path(self) -> Path:
        """Where the server's output goes (appended across restarts)."""
        return self.data_dir.parent / "server.log"

    @property
    def lab_dir(self) -> Path:
        """Where JupyterLab (app "jupyterlab") keeps its workspaces and user settings."""
        return self.data_dir.parent / "lab"

    def start(self, timeout: float = 60) -> LiveServer:
        """Start the server and wait until the catty API answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.root_dir.mkdir(parents=True, exist_ok=True)
        # A test's server stops its sessions on the way out, so no runtime outlives the test;
        # a SIGKILL (`kill`) skips that, as a crash would.
        traits = {"data_dir": str(self.data_dir), "demo_model": True,
                  "stop_sessions_on_exit": True, **self.config}  # fmt: skip
        argv = [
            sys.executable, "-m", self.app, "--no-browser", "--ip=127.0.0.1",
            f"--port={self.port}", "--port-retries=0", f"--ServerApp.root_dir={self.root_dir}",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.base_url={self.base_url}",
            "--ServerApp.jpserver_extensions=" + _trait({"catty_jupyter": True}),
            *(f"--CattyExtension.{k}={_trait(v)}" for k, v in traits.items()),
        ]  # fmt: skip
        if self.app == "jupyterlab":
            # Lab keeps workspaces and settings in ~/.jupyter: keep them with the test instead.
            argv += [f"--LabApp.workspaces_dir={self.lab_dir / 'workspaces'}",
                     f"--LabApp.user_settings_dir={self.lab_dir / 'user-settings'}"]  # fmt: skip
        if os.getuid() == 0:
            argv.append("--allow-root")
        env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(self.data_dir.parent / "jupyter-runtime")}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited at start:\n{self.log_tail()}")
            try:
                self.request("GET", "environments")
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        raise RuntimeError(f"the server did not answer in {timeout} s:\n{self.log_tail()}")

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Call the catty API with the token; return decoded JSON (raise HTTPError on 4xx/5xx)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}catty/v1/{path}", data=data, method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def kill(self) -> None:
        """SIGKILL the server: no shutdown hooks run, as when a machine or a culler kills it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """Stop the server the polite way (SIGTERM), or kill it when it does not go."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _trait(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, dict | list):
        # traitlets reads a container on the command line as a Python literal, not JSON: JSON's
        # true/false/null would make it give up and the server refuse to start.
        return repr(value)
    return str(value)
