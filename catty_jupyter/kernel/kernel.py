"""The Catty kernel: each cell is a message to a catty session, its outputs that session's
transcript, streamed as it happens.

The kernel is a client of the catty API like any other (its client id is
`catty-kernel-<kernel id>`); sessions belong to the server and outlive the kernel, so shutting
down or restarting it never stops one. Blocking HTTP calls run in threads, and the turn's
events arrive over the session's WebSocket, so the kernel stays responsive while a cell runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

from ipykernel.kernelbase import Kernel

from .._version import __version__
from ..cli import TERMINAL_STATES
from ..client import CattyClient, ClientError, find_server
from . import commands
from .commands import Command, UsageError
from .outputs import Output, TranscriptOutputs, TurnWatch, stream

ENVIRONMENT_VARIABLE = "CATTY_KERNEL_ENVIRONMENT"
"""Names the environment of sessions a plain cell starts (else the server's `default`)."""
BACKLOG = 20
"""Events `%attach` shows of a session's recent transcript."""
INTERRUPT_GRACE = 5.0
"""Seconds an interrupted cell waits for the agent to end its turn before it ends anyway."""
AFTER_RESULT = 2.0
"""Seconds a cell waits, after the turn's result, for the agent to say it is idle."""

_INTERRUPT = object()
_CLOSED = object()


class TurnInterrupted(Exception):
    """The user interrupted the cell; the agent's turn was interrupted with it."""


class CattyKernel(Kernel):
    """A wrapper kernel whose cells are messages to a coding agent session."""

    implementation = "catty"
    implementation_version = __version__
    language_info = {"name": "markdown", "mimetype": "text/markdown", "file_extension": ".md"}
    banner = "Catty: each cell is a message to a coding agent session; %help lists the commands"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.client_id = f"catty-kernel-{_kernel_id(self)}"
        self.label: str | None = None
        """The current session."""
        self._client: CattyClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cell: asyncio.Queue[Any] | None = None
        self._silent = False

    # -- the server ---------------------------------------------------------------------------

    def client(self) -> CattyClient:
        """The API client, the server found on first use; ClientError says how to name one."""
        if self._client is None:
            try:
                server = find_server()
            except ClientError as exc:
                raise ClientError(
                    f"{exc}. The Catty kernel reads $CATTY_URL and $CATTY_TOKEN; a kernel that a "
                    "Jupyter server with catty-jupyter starts has them already."
                ) from None
            self._client = CattyClient(server, client_id=self.client_id)
        return self._client

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a CattyClient method in a thread, so the kernel goes on answering meanwhile."""
        client = self.client()
        return await asyncio.to_thread(getattr(client, method), *args, **kwargs)

    # -- outputs ------------------------------------------------------------------------------

    def publish(self, *outputs: Output) -> None:
        """Send OUTPUTS on IOPub as outputs of the running cell."""
        if self._silent:
            return
        for output in outputs:
            self.send_response(self.iopub_socket, output.msg_type, output.content)  # type: ignore[no-untyped-call]

    def say(self, text: str, name: str = "stdout") -> None:
        """TEXT as a line of the cell's output."""
        self.publish(stream(text, name))

    def _error_reply(self, ename: str, message: str) -> dict[str, Any]:
        content = {"ename": ename, "evalue": message, "traceback": [f"{ename}: {message}"]}
        self.publish(Output("error", content))
        return {"status": "error", "execution_count": self.execution_count, **content}

    # -- cells --------------------------------------------------------------------------------

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
        """Send the cell to the session (or run its `%` command) and show what follows."""
        self._loop = asyncio.get_running_loop()
        self._cell = asyncio.Queue()
        self._silent = silent
        try:
            command = commands.parse(code)
            if command is None:
                if code.strip():
                    await self._message(code)
            else:
                await getattr(self, f"_cmd_{command.name}")(command)
        except UsageError as exc:
            return self._error_reply("UsageError", str(exc))
        except ClientError as exc:
            return self._error_reply("CattyError", self._hint(exc))
        except TurnInterrupted as exc:
            return self._error_reply("KeyboardInterrupt", str(exc))
        except Exception as exc:
            # A reply must go out whatever happened, or the front end waits on the cell forever.
            self.log.exception("the Catty kernel failed on a cell")
            return self._error_reply(type(exc).__name__, str(exc))
        finally:
            self._cell = None
        return {"status": "ok", "execution_count": self.execution_count, "payload": [],
                "user_expressions": {}}  # fmt: skip

    def _hint(self, exc: ClientError) -> str:
        if exc.reason == "focus_held" and self.label:
            return f"{exc}\nIn this kernel, %attach {self.label} takes input focus."
        if exc.reason == "not_running" and self.label:
            return f"{exc}\nIn this kernel, %resume starts it again."
        return str(exc)

    async def _message(self, text: str) -> None:
        if self.label is None:
            await self._new(text, environment=os.environ.get(ENVIRONMENT_VARIABLE))
            return
        label = self.label
        after = await self._last_seq(label)
        await self.call("send", label, text)
        await self._follow(label, after, TurnWatch(self.client_id))

    async def _new(self, prompt: str, **how: str | None) -> None:
        how = {k: v for k, v in how.items() if v}
        session = await self.call("new", prompt, **how)
        self.label = label = session["label"]
        self.say(f"session {label} (environment {session.get('environment')})")
        await self._follow(label, 0, TurnWatch(self.client_id))

    async def _last_seq(self, label: str) -> int:
        last = await self.call("transcript", label, limit=1, newest=True)
        return int(last[-1]["seq"]) if last else 0

    def _current(self) -> str:
        if self.label is None:
            raise UsageError("no session yet: send a message, or %new PROMPT, or %attach LABEL")
        return self.label

    # -- following a turn ---------------------------------------------------------------------

    async def _follow(self, label: str, after: int, watch: TurnWatch) -> None:
        """Show LABEL's events after AFTER until WATCH says the turn is over.

        A permission request ends the cell too: the agent waits, and `%allow`/`%deny` in the
        next cell answer it and follow the rest of the turn.
        """
        assert self._cell is not None and self._loop is not None
        queue, loop = self._cell, self._loop
        view = TranscriptOutputs(label)
        pump = asyncio.create_task(self._pump(label, after, queue))
        interrupted = False
        deadline = float("inf")
        try:
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), _left(deadline, loop))
                except TimeoutError:
                    break
                if item is _INTERRUPT:
                    if not interrupted:
                        interrupted = True
                        deadline = min(deadline, loop.time() + INTERRUPT_GRACE)
                        await self._interrupt_agent(label)
                    continue
                if item is _CLOSED:
                    self.say(f"· the server closed the stream of {label}", "stderr")
                    return
                if isinstance(item, Exception):
                    raise item
                over = watch.over(item)
                if not watch.is_own_message(item):
                    self.publish(*view.outputs(item))
                if over:
                    break
                if watch.finishing:
                    deadline = min(deadline, loop.time() + AFTER_RESULT)
                if item["kind"] == "permission_request" and not interrupted:
                    return
                if item["kind"] in ("error", "system") and await self._ended(label):
                    return
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
        if interrupted:
            raise TurnInterrupted(f"interrupted the agent's turn; {label} goes on")

    async def _pump(self, label: str, after: int, queue: asyncio.Queue[Any]) -> None:
        try:
            async for event in self.client().follow(label, after=after, present=True):
                queue.put_nowait(event)
            queue.put_nowait(_CLOSED)
        except Exception as exc:
            queue.put_nowait(exc)

    async def _ended(self, label: str) -> bool:
        session = await self.call("get", label)
        if session["state"] in TERMINAL_STATES:
            self.say(f"· {label} is {session['state']}", "stderr")
            return True
        return False

    async def _interrupt_agent(self, label: str) -> None:
        try:
            await self.call("interrupt", label)
        except ClientError as exc:
            self.say(f"! could not interrupt {label}: {exc}", "stderr")

    async def interrupt_request(self, stream: Any, ident: Any, parent: Any) -> None:  # type: ignore[override]
        """Interrupt the running cell's agent turn; the kernel process lives on."""
        # This runs on the control thread; the cell runs on the shell's event loop.
        queue, loop = self._cell, self._loop
        if queue is not None and loop is not None:
            loop.call_soon_threadsafe(queue.put_nowait, _INTERRUPT)
        if self.session is not None:
            self.session.send(stream, "interrupt_reply", {"status": "ok"}, parent, ident=ident)

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:  # type: ignore[override]
        """End the kernel only: sessions belong to the server and go on."""
        return {"status": "ok", "restart": restart}

    # -- commands -----------------------------------------------------------------------------

    async def _cmd_new(self, command: Command) -> None:
        if not command.text:
            raise UsageError(f"%new needs a prompt; usage: {commands.COMMANDS['new']}")
        repo = command.options.get("repo")
        await self._new(
            command.text,
            environment=command.options.get("env") or os.environ.get(ENVIRONMENT_VARIABLE),
            agent=command.options.get("agent"),
            repo=str(Path(repo).expanduser().resolve()) if repo else None,
        )

    async def _cmd_attach(self, command: Command) -> None:
        label = command.args[0]
        session = await self.call("get", label)
        label = self.label = session["label"]
        note = ""
        if session["state"] in TERMINAL_STATES:
            note = "; %resume starts it again"
        else:
            try:
                await self.call("take_focus", label)
                note = "; you hold input focus"
            except ClientError as exc:
                note = f"; could not take input focus: {exc}"
        self.say(f"attached to {label} ({_state(session)}, environment "
                 f"{session.get('environment')}){note}")  # fmt: skip
        recent = await self.call("transcript", label, limit=BACKLOG, newest=True)
        view = TranscriptOutputs(label)
        for event in recent:
            self.publish(*view.outputs(event))

    async def _cmd_status(self, command: Command) -> None:
        label = self._current()
        session = await self.call("get", label)
        holder = (session.get("focus") or {}).get("holder")
        focus = "you" if holder == self.client_id else holder or "nobody"
        self.say(f"{label}: {_state(session)}, environment {session.get('environment')}, "
                 f"agent {session.get('agent')}; input focus: {focus}")  # fmt: skip

    async def _cmd_list(self, command: Command) -> None:
        sessions = await self.call("list_sessions")
        if not sessions:
            self.say("no sessions yet; send a message to start one")
        for s in sessions:
            mark = "*" if s["label"] == self.label else " "
            self.say(f"{mark} {s['label']:<28} {_state(s):<16} {s.get('environment')}")

    async def _cmd_allow(self, command: Command) -> None:
        await self._answer(command, "allow")

    async def _cmd_deny(self, command: Command) -> None:
        await self._answer(command, "deny")

    async def _answer(self, command: Command, behavior: str) -> None:
        label = self._current()
        after = await self._last_seq(label)
        await self.call("answer", label, command.args[0], behavior, command.text)
        await self._follow(label, after, TurnWatch(self.client_id, started=True))

    async def _cmd_interrupt(self, command: Command) -> None:
        label = self._current()
        await self.call("interrupt", label)
        self.say(f"· interrupted {label}'s turn")

    async def _cmd_stop(self, command: Command) -> None:
        label = self._current()
        session = await self.call("stop", label)
        self.say(f"· {label} is {session['state']}; %resume starts it again")

    async def _cmd_resume(self, command: Command) -> None:
        label = self._current()
        after = await self._last_seq(label)
        await self.call("resume", label)
        await self._follow(label, after, TurnWatch(self.client_id, until_ready=True))

    async def _cmd_help(self, command: Command) -> None:
        self.say(commands.USAGE)

    # -- completion ---------------------------------------------------------------------------

    async def do_complete(self, code: str, cursor_pos: int) -> dict[str, Any]:  # type: ignore[override]
        """Complete `%` command names, and session labels after `%attach`."""
        matches, start = commands.complete(code, cursor_pos)
        before = code[:cursor_pos]
        if not matches and before.startswith("%attach ") and "\n" not in before:
            prefix = before[len("%attach ") :].strip()
            start = cursor_pos - len(prefix)
            with contextlib.suppress(ClientError, OSError, KeyError):
                sessions = await asyncio.wait_for(self.call("list_sessions"), 3)
                matches = [s["label"] for s in sessions if s["label"].startswith(prefix)]
        return {"matches": matches, "cursor_start": start, "cursor_end": cursor_pos,
                "metadata": {}, "status": "ok"}  # fmt: skip


def _left(deadline: float, loop: asyncio.AbstractEventLoop) -> float | None:
    """Seconds until DEADLINE (None: no deadline)."""
    return None if deadline == float("inf") else max(0.0, deadline - loop.time())


def _state(session: dict[str, Any]) -> str:
    activity = session.get("activity")
    return f"{session['state']} ({activity})" if activity else str(session["state"])


def _kernel_id(kernel: Kernel) -> str:
    """The kernel's id, from its connection file's name (`kernel-<id>.json`)."""
    connection_file = str(getattr(kernel.parent, "connection_file", "") or "")
    stem = Path(connection_file).stem
    return stem.removeprefix("kernel-") or str(os.getpid())
