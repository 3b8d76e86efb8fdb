"""The agent runtime kernel: hosts one agent adapter inside the sandbox.

A user message is an `execute_request`; every transcript event is appended to the journal and
then published on IOPub as `display_data` with the catty event mimetype. Control messages from
the session manager (start the agent, answer a permission request) arrive as `comm_msg` on the
`catty.control` comm, which ipykernel dispatches even while a turn is running, so the agent's
event loop never blocks on them. Interrupt arrives on the control channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Literal

from ipykernel.kernelbase import Kernel

from .._version import __version__
from ..agents import Agent, AgentContext, PermissionDecision, load_agent
from ..core.journal import Journal
from ..core.models import Activity
from ..core.secrets import Redactor
from ..sandbox.portforward import start_forward
from .config import CONFIG_ENV, CONTROL_COMM, EVENT_MIMETYPE, RuntimeConfig


def summarize(kind: str, payload: dict[str, Any]) -> str:
    """A one-line plain-text rendering of an event, for frontends that show only text."""
    text = payload.get("text") or payload.get("message") or payload.get("output") or ""
    if kind == "tool_use":
        text = f"{payload.get('name')}: {payload.get('input')}"
    return f"[{kind}] {str(text)[:200]}"


class CattyRuntimeKernel(Kernel):
    """A wrapper kernel whose 'code' is messages to a coding agent."""

    implementation = "catty-runtime"
    implementation_version = __version__
    language_info = {"name": "text", "mimetype": "text/plain", "file_extension": ".txt"}
    banner = "catty-jupyter agent runtime"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.config_data = RuntimeConfig.read(Path(os.environ[CONFIG_ENV]))
        self.journal = Journal(self.config_data.journal_path)
        self.redactor = Redactor(os.environ.get(name, "") for name in self.config_data.secret_names)
        self.agent: Agent | None = None
        self._agent_ready: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._permissions: dict[str, asyncio.Future[PermissionDecision]] = {}
        self._activity = Activity.IDLE
        self._forwards: list[asyncio.Server] = []
        self._last_contact = self._last_event = time.monotonic()
        self._watchdog: asyncio.Task[None] | None = None
        self.shell_handlers["comm_msg"] = self._on_comm_msg
        self.shell_handlers["comm_open"] = self._ignore_comm
        self.shell_handlers["comm_close"] = self._ignore_comm

    # -- events -------------------------------------------------------------------------------

    async def emit(self, kind: str, payload: dict[str, Any], client: str | None = None) -> None:
        """Journal an event, then publish it to every listener; secret values never reach
        either (an agent that prints one shows the mask)."""
        event = self.journal.append(kind, self.redactor.payload(payload), client=client)
        self._last_event = time.monotonic()
        if self.session is None:
            return
        self.session.send(
            self.iopub_socket,
            "display_data",
            {
                "data": {
                    EVENT_MIMETYPE: event.to_json(),
                    "text/plain": summarize(event.kind, event.payload),
                },
                "metadata": {},
                "transient": {},
            },
            parent=self.get_parent(),  # type: ignore[no-untyped-call]
            ident=self._topic("display_data"),  # type: ignore[no-untyped-call]
        )

    async def _set_activity(self, activity: Activity) -> None:
        if activity is not self._activity:
            self._activity = activity
            await self.emit("status", {"activity": activity.value})

    async def ask_permission(
        self, tool_name: str, tool_input: dict[str, Any], details: dict[str, Any]
    ) -> PermissionDecision:
        """Publish a permission request and wait for the focus holder's answer."""
        request_id = uuid.uuid4().hex
        assert self._loop is not None
        future: asyncio.Future[PermissionDecision] = self._loop.create_future()
        self._permissions[request_id] = future
        await self.emit(
            "permission_request",
            {"request_id": request_id, "tool_name": tool_name, "input": tool_input, **details},
        )
        await self._set_activity(Activity.WAITING)
        try:
            decision = await future
        finally:
            self._permissions.pop(request_id, None)
            if not self._permissions:
                await self._set_activity(Activity.BUSY)
        await self.emit(
            "permission_decision",
            {"request_id": request_id, "behavior": decision.behavior, "message": decision.message},
            client=decision.client,
        )
        return decision

    # -- lifecycle ----------------------------------------------------------------------------

    async def _start_agent(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._agent_ready is not None:
            await self._agent_ready.wait()
            return
        self._agent_ready = asyncio.Event()
        cfg = self.config_data
        self._watchdog = asyncio.create_task(self._end_when_orphaned())
        started = time.monotonic()
        try:
            for forward in cfg.forwards:
                self._forwards.append(await start_forward(forward))
            agent_cls = load_agent(cfg.agent)
            context = AgentContext(
                label=cfg.label,
                workspace=Path(cfg.workspace),
                home=Path(cfg.home),
                state_dir=Path(cfg.state_dir),
                env=dict(os.environ),
                options=dict(cfg.options),
                resume=cfg.resume,
            )
            self.agent = agent_cls(context, self)
            await self.agent.start()
        except Exception as exc:
            await self.emit(
                "error",
                {"message": f"the {cfg.agent} agent could not start: {exc}", "fatal": True,
                 "traceback": traceback.format_exc(limit=5)},
            )  # fmt: skip
            raise
        finally:
            self._agent_ready.set()
        await self.emit(
            "status",
            {"activity": Activity.IDLE.value, "ready": True,
             "startup_ms": round((time.monotonic() - started) * 1000)},
        )  # fmt: skip

    async def _end_when_orphaned(self) -> None:
        """End the runtime once no server has been in touch, and the agent silent, for the TTL.

        The server sends a keepalive now and then; a runtime whose server is gone for good
        (culled, crashed, never restarted) would otherwise run forever.
        """
        timeout = self.config_data.idle_timeout
        while True:
            await asyncio.sleep(min(max(timeout / 4, 0.25), 30))
            quiet = time.monotonic() - max(self._last_contact, self._last_event)
            if quiet >= timeout:
                break
        await self.emit(
            "system",
            {"message": f"no Jupyter server was in touch and the agent was idle for "
             f"{timeout:.0f} s, so the runtime ended itself; resume the session to go on",
             "ended_idle": True},
        )  # fmt: skip
        await self.do_shutdown(False)
        os._exit(0)

    async def do_execute(  # type: ignore[override]
        self,
        code: str,
        silent: bool,
        store_history: bool = True,
        user_expressions: dict[str, Any] | None = None,
        allow_stdin: bool = False,
        *,
        cell_meta: dict[str, Any] | None = None,
        cell_id: str | None = None,
    ) -> dict[str, Any]:
        """Run one agent turn for the message CODE."""
        parent = self.get_parent()  # type: ignore[no-untyped-call]
        client = (parent.get("metadata") or {}).get("catty_client")
        self._last_contact = time.monotonic()
        reply = {"status": "ok", "execution_count": self.execution_count, "payload": [],
                 "user_expressions": {}}  # fmt: skip
        if self.agent is None:
            await self._start_agent()
        assert self.agent is not None
        await self.emit("user", {"text": code}, client=client)
        await self._set_activity(Activity.BUSY)
        try:
            await self.agent.send(code)
        except asyncio.CancelledError:
            await self.emit("system", {"message": "the turn was cancelled"})
        except Exception as exc:
            await self.emit("error", {"message": f"the agent failed: {exc}",
                                      "traceback": traceback.format_exc(limit=5)})  # fmt: skip
        finally:
            await self._set_activity(Activity.IDLE)
        return reply

    async def interrupt_request(self, stream: Any, ident: Any, parent: Any) -> None:  # type: ignore[override]
        """Interrupt the agent's turn (not the kernel process: it must live on)."""
        if self.agent is not None and self._loop is not None:
            asyncio.run_coroutine_threadsafe(self.agent.interrupt(), self._loop)
        if self.session is not None:
            self.session.send(stream, "interrupt_reply", {"status": "ok"}, parent, ident=ident)

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:  # type: ignore[override]
        """Stop the agent and everything it started before the kernel exits."""
        for future in self._permissions.values():
            future.cancel()
        if self.agent is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.agent.stop(), timeout=10)
        for server in self._forwards:
            server.close()
        return {"status": "ok", "restart": restart}

    # -- control comm -------------------------------------------------------------------------

    async def _ignore_comm(self, stream: Any, ident: Any, parent: Any) -> None:
        return None

    async def _on_comm_msg(self, stream: Any, ident: Any, parent: dict[str, Any]) -> None:
        content = parent.get("content") or {}
        if content.get("comm_id") != CONTROL_COMM:
            return
        data = content.get("data") or {}
        kind = data.get("type")
        self._last_contact = time.monotonic()
        if kind == "keepalive":
            return
        if kind == "start":
            with contextlib.suppress(Exception):
                await self._start_agent()
        elif kind == "permission_reply":
            future = self._permissions.get(str(data.get("request_id")))
            if future is not None and not future.done():
                behavior: Literal["allow", "deny"] = (
                    "allow" if data.get("behavior") == "allow" else "deny"
                )
                future.set_result(
                    PermissionDecision(
                        behavior=behavior,
                        message=str(data.get("message") or ""),
                        client=data.get("client"),
                    )
                )
        elif kind == "event":
            # The manager records events it originates (e.g. a comment) through the runtime
            # while it runs, so the journal keeps exactly one writer.
            await self.emit(str(data.get("kind")), dict(data.get("payload") or {}),
                            client=data.get("client"))  # fmt: skip
