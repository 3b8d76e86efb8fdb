"""One session's runtime as the server sees it: a kernel manager, a client, the IOPub pump."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.factory import KernelProvisionerFactory

from ..core.models import Event
from ..runtime.config import CONFIG_ENV, CONTROL_COMM, EVENT_MIMETYPE
from ..sandbox.bwrap import SandboxSpec
from ..sandbox.provisioner import SPEC_ARGUMENT

# Variables a session inherits from the server's environment; nothing else crosses the wall
# (a JupyterHub token in the server's environment must never reach an agent).
INHERITED_ENV = (
    "PATH", "LANG", "LANGUAGE", "TZ", "TERM", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
)  # fmt: skip


def inherited_env() -> dict[str, str]:
    """The server's own variables a sandbox starts with (only those in INHERITED_ENV)."""
    return {k: os.environ[k] for k in INHERITED_ENV if k in os.environ}


READY_TIMEOUT = 60.0
"""Seconds a runtime has to answer once its process is up."""
IOPUB_CHECK = 0.2
"""Seconds to hear the runtime on IOPub after it answered, before asking again."""

EventSink = Callable[[Event], Awaitable[None]]
ExitSink = Callable[[int | None], Awaitable[None]]


class RuntimeHandle:
    """Launch, talk to, watch and end one runtime kernel."""

    def __init__(
        self,
        kernel_name: str,
        spec_manager: KernelSpecManager,
        runtime_dir: Path,
        log: logging.Logger,
    ) -> None:
        self.runtime_dir = runtime_dir
        self.log = log
        runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.km = AsyncKernelManager(
            kernel_name=kernel_name,
            kernel_spec_manager=spec_manager,
            transport="ipc",
            ip=str(runtime_dir / "k"),
            connection_file=str(runtime_dir / "kernel.json"),
        )
        self.client: AsyncKernelClient | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.stopping = False

    @staticmethod
    def log_path(spec: SandboxSpec) -> Path:
        """Where the runtime's stdout and stderr go."""
        return spec.state_dir / "runtime.log"

    def pids(self) -> list[int]:
        """Processes to end if this server dies and a later one finds the runtime left over."""
        provisioner = self.km.provisioner
        pids = [getattr(provisioner, "sandbox_pid", None), getattr(provisioner, "pid", None)]
        return [p for p in pids if p]

    async def info(self) -> dict[str, Any]:
        """What a later server needs to re-attach: kernel id, connection file, provisioner info."""
        assert self.km.provisioner is not None
        provisioner = await self.km.provisioner.get_provisioner_info()
        # The connection info in it carries the HMAC key as bytes; the file has it as text.
        provisioner.pop("connection_info", None)
        connection = self.km.get_connection_info()
        # Kept here too, not only in the connection file: a kernel manager removes the file it
        # wrote when it is garbage-collected, as on a polite server shutdown.
        return {
            "kernel_id": self.km.kernel_id,
            "connection_file": self.km.connection_file,
            "connection": json.loads(json.dumps(connection, default=_text)),
            "runtime_dir": str(self.runtime_dir),
            "provisioner": json.loads(json.dumps(provisioner, default=_text)),
            "pids": self.pids(),
        }

    async def start(
        self, spec: SandboxSpec, env: dict[str, str], config_path: Path,
        on_event: EventSink, on_exit: ExitSink,
    ) -> None:  # fmt: skip
        """Launch the kernel confined by SPEC and start forwarding its events."""
        kernel_env = {**inherited_env(), **env}
        kernel_env[CONFIG_ENV] = str(config_path)
        # The runtime's own output goes to a log in the state dir, so a runtime that dies at
        # start can say why.
        with self.log_path(spec).open("ab") as output:
            await self.km.start_kernel(
                env=kernel_env, independent=True, stdout=output, stderr=output,
                **{SPEC_ARGUMENT: spec.to_json()},
            )  # fmt: skip
        await self._connect(on_event, on_exit)

    async def attach(self, info: dict[str, Any], on_event: EventSink, on_exit: ExitSink) -> None:
        """Take over a runtime a previous server launched, from what `info` saved."""
        self.km.load_connection_info(info["connection"])
        self.km.kernel_id = info["kernel_id"]
        factory = KernelProvisionerFactory.instance(parent=self.km.parent)
        provisioner = factory.create_provisioner_instance(
            info["kernel_id"], self.km.kernel_spec, parent=self.km
        )
        await provisioner.load_provisioner_info(
            {**info["provisioner"], "connection_info": self.km.get_connection_info()}
        )
        self.km.provisioner = provisioner
        await self._connect(on_event, on_exit)

    async def _connect(self, on_event: EventSink, on_exit: ExitSink) -> None:
        self.client = self.km.client()
        self.client.start_channels()
        # The pump runs from the start, so whatever a runtime publishes meanwhile (one being
        # re-attached may be mid-turn) is indexed, not swallowed by the wait.
        heard = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._pump(on_event, heard)))
        await self._wait_answering(heard, timeout=READY_TIMEOUT)
        self._tasks.append(asyncio.create_task(self._watch(on_exit)))

    async def _wait_answering(self, heard: asyncio.Event, timeout: float) -> None:
        """Wait until the runtime answers `kernel_info` and its IOPub reaches the pump.

        Unlike jupyter_client's `wait_for_ready`, no 0.2 s of IOPub silence is awaited at the
        end: that wait was a fixed cost of every session start and resume.
        """
        assert self.client is not None
        deadline = time.monotonic() + timeout
        while True:
            self.client.kernel_info()
            with contextlib.suppress(Empty):
                reply = await self.client.get_shell_msg(timeout=1)
                # The kernel publishes its status around every request it handles: the pump
                # hearing one shows the IOPub subscription is live, so no event is missed.
                if reply.get("msg_type") == "kernel_info_reply":
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(heard.wait(), IOPUB_CHECK)
                        return
            if not await self.km.is_alive():
                raise RuntimeError("the runtime ended before it answered")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the runtime did not answer in {timeout:.0f} s")

    async def _pump(self, on_event: EventSink, heard: asyncio.Event) -> None:
        assert self.client is not None
        while True:
            try:
                msg = await self.client.get_iopub_msg()
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(0.05)
                continue
            heard.set()
            if msg.get("msg_type") != "display_data":
                continue
            data = (msg.get("content") or {}).get("data") or {}
            raw = data.get(EVENT_MIMETYPE)
            if isinstance(raw, dict):
                try:
                    await on_event(Event.from_json(raw))
                except Exception:
                    self.log.exception("catty: could not index a transcript event")

    async def _watch(self, on_exit: ExitSink) -> None:
        while await self.km.is_alive():
            await asyncio.sleep(0.5)
        if self.stopping:
            return
        code = None
        provisioner = self.km.provisioner
        if provisioner is not None:
            with contextlib.suppress(Exception):
                code = await provisioner.poll()
        await on_exit(code)

    def send_message(self, text: str, client_id: str | None) -> None:
        """Send a user message as an execute_request."""
        assert self.client is not None
        msg = self.client.session.msg(
            "execute_request",
            {"code": text, "silent": False, "store_history": True, "user_expressions": {},
             "allow_stdin": False, "stop_on_error": False},
            metadata={"catty_client": client_id},
        )  # fmt: skip
        self.client.shell_channel.send(msg)

    def control(self, data: dict[str, Any]) -> None:
        """Send a control message to the runtime on the catty comm."""
        assert self.client is not None
        msg = self.client.session.msg("comm_msg", {"comm_id": CONTROL_COMM, "data": data})
        self.client.shell_channel.send(msg)

    async def interrupt(self) -> None:
        """Interrupt the agent's current turn."""
        await self.km.interrupt_kernel()

    def keepalive(self) -> None:
        """Tell the runtime a server is still here (it ends itself after a long silence)."""
        if self.client is not None:
            self.control({"type": "keepalive"})

    def detach(self) -> None:
        """Stop watching and talking to the runtime, and leave it running for a later server."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        if self.client is not None:
            self.client.stop_channels()

    async def shutdown(self, now: bool = False) -> None:
        """End the runtime and stop watching it."""
        self.stopping = True
        for task in self._tasks:
            task.cancel()
        if self.client is not None:
            self.client.stop_channels()
        with contextlib.suppress(Exception):
            if self.km.has_kernel:
                await self.km.shutdown_kernel(now=now)
        with contextlib.suppress(Exception):
            await self.km.cleanup_resources()


def _text(value: Any) -> str:
    """JSON for what the kernel's connection info holds that JSON lacks (the key is bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)
