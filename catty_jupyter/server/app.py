"""The jupyter-server extension: configuration, the session manager, the routes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import PeriodicCallback
from traitlets import Bool, Dict, Float, Int, Unicode, default

from ..core.environments import BadEnvironment, Environment
from . import handlers, mirror, portable_handlers, spec, upload_handlers
from .environments import EnvironmentRegistry
from .manager import SessionManager
from .uploads import Uploads

DEMO_ENVIRONMENT = "demo"


class CattyExtension(ExtensionApp):
    """Run coding agents in sandboxed sessions owned by this Jupyter server."""

    name = "catty_jupyter"

    data_dir = Unicode(
        help="Where sessions (workspaces, transcripts) and the SQLite store live. "
        "Defaults to `catty` inside the Jupyter data directory.",
    ).tag(config=True)

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return str(Path(jupyter_data_dir()) / "catty")

    runtime_kernel = Unicode(
        "catty-runtime",
        help="The kernelspec that runs session runtimes. `catty-runtime` confines each session "
        "with bubblewrap; `catty-runtime-unsandboxed` does not (every transcript then says so); "
        "any kernelspec with another provisioner (e.g. gateway_provisioners) runs it elsewhere.",
    ).tag(config=True)

    environments = Dict(
        help="Environments defined by the administrator: name -> {agent, network ('none', "
        "'trusted', 'full' or 'custom'), allowed_domains [host or *.domain, for 'custom'], "
        "include_defaults (with 'custom', add the trusted list), env (.env text, or a mapping "
        "{NAME: value}), secrets [names of variables never shown back], setup_script (bash, "
        "run before the agent starts), resources {cpus, memory, disk} (sizes like '4G'), "
        "options {permission_mode, model}, description}. Users see them but cannot change or "
        "delete them; one called `default` replaces the built-in one. `default` always exists; "
        "with demo_model, so does `demo`.",
    ).tag(config=True)

    demo_model = Bool(
        False,
        help="Run the scripted demo model inside the server and offer the `demo` environment, "
        "which drives the real Claude Code agent with no API key.",
    ).tag(config=True)

    max_workspace_bytes = Int(
        1 << 30,
        help="The largest source repository a session may copy, or what an uploaded archive "
        "may unpack to, in bytes.",
    ).tag(config=True)

    max_message_bytes = Int(
        256 * 1024, help="The largest message a client may send to an agent, in bytes."
    ).tag(config=True)

    max_download_bytes = Int(
        1 << 30, help="The largest workspace (or directory in it) a client may download, in bytes."
    ).tag(config=True)

    max_upload_bytes = Int(
        256 << 20,
        help="The largest archive a client may upload to start a session from, in bytes (what "
        "it unpacks to is capped by max_workspace_bytes). An upload unused for an hour is removed.",
    ).tag(config=True)

    cull_idle_timeout = Float(
        7200,
        help="Stop a running session after this many seconds idle (0: never). Idle means no "
        "transcript event at all (agent output, a message, a focus change, a permission answer) "
        "while the agent is not busy; watching a session does not count. A stopped session keeps "
        "its workspace and transcript; resume brings it back. A runtime that loses its server "
        "ends itself after the same time without word from one.",
    ).tag(config=True)

    cull_interval = Float(
        300, help="How often, in seconds, to look for idle sessions to stop."
    ).tag(config=True)

    focus_grace_period = Float(
        60,
        help="Seconds a focus holder that disconnected (no open stream, no request) keeps input "
        "focus before anyone may act without taking it.",
    ).tag(config=True)

    stop_sessions_on_exit = Bool(
        False,
        help="Stop every running session when the server shuts down. By default they keep "
        "running and the next server re-attaches them (a runtime left with no server ends "
        "itself after cull_idle_timeout).",
    ).tag(config=True)

    setup_timeout = Float(
        600,
        help="Seconds an environment's setup script may run before the session starting it "
        "fails with a message saying so.",
    ).tag(config=True)

    environment_cache_max_age = Float(
        7 * 24 * 3600,
        help="Seconds after which an environment's cached setup result is rebuilt by the next "
        "session that starts in it (0: never; a changed script, network setting, base system or "
        "agent version always rebuilds).",
    ).tag(config=True)

    egress_resolve = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        help="Host names the egress proxy resolves to fixed addresses instead of asking DNS: "
        "{name: IP}. Names listed here may point at loopback or link-local addresses, which "
        "the proxy otherwise refuses (e.g. an internal package mirror on this machine).",
    ).tag(config=True)

    cgroup_parent = Unicode(
        "",
        help="A delegated cgroup v2 directory to make each session's cgroup in (memory and CPU "
        "limits). Empty: the server's own cgroup is tried; where no cgroup can be used, memory is "
        "watched and CPUs pinned instead (`jupyter catty doctor` shows what this host enforces).",
    ).tag(config=True)

    def initialize_settings(self) -> None:
        """Create the session manager and hand it to the handlers."""
        self.demo_server: Any = None
        self._demo_started = False
        self._demo_lock = asyncio.Lock()
        builtin, admin = self._environments()
        self.manager = SessionManager(
            data_dir=Path(self.data_dir),
            environments=EnvironmentRegistry(builtin, admin),
            runtime_kernel=self.runtime_kernel,
            max_workspace_bytes=self.max_workspace_bytes,
            max_message_bytes=self.max_message_bytes,
            hidden_paths=[Path.home(), *self._root_dir()],
            cull_idle_timeout=self.cull_idle_timeout,
            cull_interval=self.cull_interval,
            focus_grace=self.focus_grace_period,
            stop_sessions_on_exit=self.stop_sessions_on_exit,
            max_download_bytes=self.max_download_bytes,
            setup_timeout=self.setup_timeout,
            cache_max_age=self.environment_cache_max_age,
            egress_resolve=dict(self.egress_resolve),
            cgroup_parent=self.cgroup_parent or None,
            parent=self,
            log=self.log,
        )
        self.manager.prepare_environment = self._prepare_environment
        self.settings["catty_manager"] = self.manager
        self.uploads = Uploads(Path(self.data_dir) / "uploads", max_bytes=self.max_upload_bytes)
        self.settings["catty_uploads"] = self.uploads
        self._prune_uploads = PeriodicCallback(self.uploads.prune, 300_000)
        # JupyterHub's idle culler reads the newest `*_last_activity` setting: a busy agent keeps
        # the user's server alive.
        self.manager.on_activity = self._record_activity
        self._record_activity()

    def _record_activity(self) -> None:
        self.settings["catty_last_activity"] = datetime.now(UTC)

    def _root_dir(self) -> list[Path]:
        """The server's notebook directory: the user's files, which sessions only see as copies."""
        return [Path(self.serverapp.root_dir)] if self.serverapp is not None else []

    def _environments(self) -> tuple[dict[str, Environment], dict[str, Environment]]:
        """The built-in environments, and the administrator's (from `environments`)."""
        builtin = {"default": Environment(name="default", network="full",
                                          description="Claude Code with full network access")}  # fmt: skip
        if self.demo_model:
            from ..demo import DemoModelServer

            self.demo_server = DemoModelServer()
            self._demo_port = self._demo_model_port()
            builtin[DEMO_ENVIRONMENT] = self._demo_environment()
        admin = {name: _admin_environment(name, data) for name, data in self.environments.items()}
        return builtin, admin

    def _demo_model_port(self) -> int:
        """The demo model's port: the one used before when it is free, since sessions that
        outlived a server restart still have it in their ANTHROPIC_BASE_URL."""
        saved = Path(self.data_dir) / "demo-model-port"
        with contextlib.suppress(OSError, ValueError):
            port = int(saved.read_text())
            if _port_free(port):
                return port
        port = _free_port()
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(str(port))
        return port

    def _demo_environment(self) -> Environment:
        return Environment(
            name=DEMO_ENVIRONMENT, agent="claude", network="none",
            env={"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{self._demo_port}", "ANTHROPIC_API_KEY": "demo-no-key"},
            options={"permission_mode": "acceptEdits"},
            description="The scripted demo model drives the real Claude Code; no API key needed",
        )  # fmt: skip

    async def _prepare_environment(self, env: Environment) -> None:
        """Start the demo model the first time a session needs it."""
        if env.name == DEMO_ENVIRONMENT and self.demo_server is not None:
            async with self._demo_lock:
                if not self._demo_started:
                    await self.demo_server.start(port=self._demo_port)
                    self._demo_started = True

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Start the demo model, then re-attach sessions a previous server left running."""
        _hand_address_to_kernels(serverapp)
        self.uploads.prune()
        self._prune_uploads.start()
        if self.demo_server is not None:
            await self._prepare_environment(self.manager.environment(DEMO_ENVIRONMENT))
        await self.manager.start()

    def initialize_handlers(self) -> None:
        """Register the REST and WebSocket routes under {base_url}catty/v1/."""
        self.handlers.extend(portable_handlers.handlers)  # before sessions/{key}
        self.handlers.extend(handlers.default_handlers)
        self.handlers.extend(upload_handlers.handlers)
        self.handlers.extend(mirror.handlers)
        self.handlers.extend(spec.handlers)

    async def stop_extension(self) -> None:
        """Stop every runtime and the demo model."""
        self._prune_uploads.stop()
        await self.manager.shutdown()
        if self.demo_server is not None and self._demo_started:
            await self.demo_server.stop()


def _hand_address_to_kernels(serverapp: Any) -> None:
    """Tell the kernels and terminals this server starts how to reach its catty API.

    They inherit the server's environment, so `%catty` and the Catty kernel talk to the server
    that started them (`client.find_server` reads these first). Sessions never see them: a
    sandbox inherits only `runtime.INHERITED_ENV`.
    """
    os.environ["CATTY_URL"] = str(serverapp.connection_url)
    token = str(getattr(serverapp.identity_provider, "token", "") or "")
    # A JupyterHub single-user server has no token of its own; the user's API token opens it.
    token = token or os.environ.get("JUPYTERHUB_API_TOKEN", "")
    os.environ["CATTY_TOKEN"] = token


def _admin_environment(name: str, data: Any) -> Environment:
    """An environment from the server's configuration; a mistake names it and its setting."""
    try:
        return Environment.from_config(name, dict(data))
    except BadEnvironment as exc:
        raise BadEnvironment(f"CattyExtension.environments[{name!r}]: {exc.message}",
                             field=exc.field, line=exc.line) from None  # fmt: skip


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
