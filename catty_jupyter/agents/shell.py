"""The `shell` agent: each message is a bash command line, run in one persistent bash.

Bash runs interactively on a pseudo-terminal, so programs see a terminal and line-buffer their
output, and each command runs in its own foreground process group (job control). Two markers
carrying a per-agent random nonce delimit a command's output: the wrapper prints a *go* marker
once bash has read the whole command, and PROMPT_COMMAND prints an *end* marker with `$?`.
Both are removed from the output.

If bash itself ends (the user runs `exit`, or `set -e` trips), the running `send` ends with an
`error` event and every later `send` raises `RuntimeError`: resume the session for a new shell.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import fcntl
import os
import re
import secrets
import signal
import struct
import termios
import time
import uuid
from dataclasses import dataclass
from typing import Literal

from .base import Agent, AgentContext, AgentEvents

CHUNK_CHARS = 64 * 1024  # the most output one `tool_result` event carries
COALESCE_SECONDS = 0.05  # how long small pieces of output may wait to be joined into one event
MAX_BUFFERED_CHARS = 1024 * 1024  # beyond this the pty is not read: a flood waits in the program
IDLE_KEEP_CHARS = 64 * 1024  # output between commands (background jobs) kept for the next turn
STOP_GRACE_SECONDS = 1.0
START_TIMEOUT_SECONDS = 10.0
# Escaping every control and non-ASCII byte keeps the terminal's line discipline (^C, ^D) and
# bash's history expansion (`!`) away from the user's text; 200 characters, escaped, stay
# below the 4095-byte line limit of a terminal in canonical mode.
_UNSAFE = re.compile(r"[^ -~]|[\\'!]")
WINDOW = (40, 120)

_Item = tuple[Literal["text", "go", "end"], str]


class _OutputScanner:
    """Turns raw pty bytes into text pieces and the go/end markers the shell prints."""

    def __init__(self, nonce: str) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._start = f"\x1e\x1fcatty-{nonce}-"
        self._marker = re.compile(re.escape(self._start) + r"(?:go-(\d+)|end-(\d+))\x1f\x1e")
        # What may still follow the start of a marker whose end has not arrived yet.
        self._partial = re.compile(r"(?:g(?:o(?:-\d*\x1f?)?)?|e(?:n(?:d(?:-\d*\x1f?)?)?)?)?\Z")
        self._held = ""

    def feed(self, data: bytes, final: bool = False) -> list[_Item]:
        """Scan the next bytes; text that may be the start of a marker waits for more."""
        text, self._held, cr = self._held + self._decoder.decode(data, final), "", ""
        if text.endswith("\r") and not final:
            text, cr = text[:-1], "\r"  # it may be the first half of a CRLF
        text = text.replace("\r\n", "\n")
        items: list[_Item] = []
        pos = 0
        while (i := text.find(self._start, pos)) >= 0:
            match = self._marker.match(text, i)
            if match:
                items.append(("text", text[pos:i]))
                go, end = match.groups()
                items.append(("go", go) if go is not None else ("end", end))
                pos = match.end()
            elif not final and self._partial.match(text, i + len(self._start)):
                items.append(("text", text[pos:i]))
                self._held = text[i:] + cr
                return [item for item in items if item[1]]
            else:
                items.append(("text", text[pos : i + len(self._start)]))
                pos = i + len(self._start)
        # The marker's first character occurs nowhere else in it, so only the last one counts.
        tail = text.rfind(self._start[0], max(pos, len(text) - len(self._start) + 1))
        if final or tail < 0 or not self._start.startswith(text[tail:]):
            tail = len(text)
        items.append(("text", text[pos:tail]))
        self._held = text[tail:] + cr
        return [item for item in items if item[1]]


def _quote_pieces(message: str) -> list[str]:
    """The message as bodies of bash `$'...'` strings, each short enough for one tty line."""
    message = message.replace("\0", "")
    return [_UNSAFE.sub(_escape, message[i : i + 200]) for i in range(0, len(message), 200)]


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in "\\'":
        return "\\" + char
    return "".join(f"\\x{byte:02x}" for byte in char.encode("utf-8", errors="replace"))


def _wrap(message: str, nonce: str, turn: int) -> bytes:
    """The input that makes bash run MESSAGE as one command, followed by one end marker."""
    # Backslash-newline continues the assignment over lines; `eval` then runs the message in
    # the shell itself, so `cd` and `export` persist and a syntax error cannot hang the input.
    # `&& :` hands the message the previous `$?` without tripping `set -e`.
    lines = [
        '__catty_ret() { return "$1"; }; '
        f"builtin printf '\\036\\037catty-{nonce}-go-{turn}\\037\\036'; __catty_c=\\",
        *(f"$'{piece}'\\" for piece in _quote_pieces(message)),
        '\'\'; __catty_ret "$__catty_status" && :; builtin eval "$__catty_c"\n',
    ]
    return "\n".join(lines).encode("ascii")


def _prompt_command(nonce: str) -> str:
    """What bash runs before each prompt: print the end marker, keep the prompts empty."""
    return (
        "__catty_status=$?; PS0= PS1= PS2=; export -n PROMPT_COMMAND; "
        "set +o history; set +H; unset MAILCHECK; "
        f"builtin printf '\\036\\037catty-{nonce}-end-%s\\037\\036' \"$__catty_status\""
    )


def _take_terminal() -> None:
    """Make the pty on stdin the controlling terminal of the new session, with the interrupt
    signals back at their defaults (runs in the child)."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    # A server started in the background (`&`, nohup) ignores SIGINT and SIGQUIT, and ignored
    # signals stay ignored across exec: bash and every command would then shrug off interrupts.
    for sig in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def _configure_tty(fd: int) -> None:
    """No echo of what is typed, LF stays LF, and a window size programs can rely on."""
    attrs = termios.tcgetattr(fd)
    attrs[1] &= ~termios.ONLCR
    attrs[3] &= ~(termios.ECHO | termios.ECHONL)
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", WINDOW[0], WINDOW[1], 0, 0))


def _session_groups(sid: int) -> set[int]:
    """Process groups of the live processes in session SID (empty where /proc is missing)."""
    groups: set[int] = set()
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            try:
                with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue
            if len(fields) > 3 and fields[0] != "Z" and fields[3] == str(sid):
                groups.add(int(fields[2]))
    return groups


def _program(pid: int) -> str:
    """The program PID runs ("" where /proc is missing)."""
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _killpg(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


@dataclass
class _Turn:
    """The state of the message being run."""

    number: int
    status: int | None = None
    interrupted: bool = False
    forced: bool = False  # an interrupt reached bash before it ran the command
    signals: int = 0


class ShellAgent(Agent):
    """Runs each message as a bash command line in one persistent bash on a pseudo-terminal."""

    name = "shell"

    _proc: asyncio.subprocess.Process | None = None
    _exit_watch: asyncio.Task[int] | None = None
    _exit_status: int | None = None
    _master = -1
    _reading = _ready = _stopped = False
    _turn: _Turn | None = None
    _turns = 0
    _active: int | None = None  # the turn whose command bash runs now, if any
    _interrupt_at_go: int | None = None  # the turn to interrupt once bash has read it all

    def __init__(self, context: AgentContext, events: AgentEvents) -> None:
        super().__init__(context, events)
        self._nonce = secrets.token_hex(8)
        self._scanner = _OutputScanner(self._nonce)
        self._lock, self._wakeup = asyncio.Lock(), asyncio.Event()
        self._out: list[str] = []
        self._idle: list[str] = []
        self._out_len = self._idle_len = 0
        self._out_since = 0.0

    async def start(self) -> None:
        """Start bash on a fresh pty; return once it has printed its first end marker."""
        if self._proc is not None:
            raise RuntimeError("the shell agent is already started")
        master, slave = os.openpty()
        try:
            _configure_tty(slave)
            self._proc = await asyncio.create_subprocess_exec(
                "bash", "--noprofile", "--norc", "--noediting", "-i",
                stdin=slave, stdout=slave, stderr=slave, cwd=self.context.workspace,
                env=self._environment(), start_new_session=True, preexec_fn=_take_terminal,
            )  # fmt: skip
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self._master = master
        os.set_blocking(master, False)
        self._set_reading(True)
        self._exit_watch = asyncio.create_task(self._watch_exit(self._proc))
        try:
            await asyncio.wait_for(self._wait_ready(), START_TIMEOUT_SECONDS)
        except BaseException as exc:
            await self.stop()
            if isinstance(exc, TimeoutError):
                raise RuntimeError(f"bash was not ready after {START_TIMEOUT_SECONDS} s") from None
            raise
        if self.context.resume:
            # A shell cannot be brought back: say so, so nobody expects old variables to exist.
            await self.events.emit(
                "system",
                {"message": "this is a new shell: the previous shell's state (variables, "
                 "working directory, background jobs) was reset; the workspace's files are as "
                 "they were", "shell_reset": True},
            )  # fmt: skip

    async def send(self, message: str) -> None:
        """Run MESSAGE in the shell, streaming its output, and report its exit status."""
        async with self._lock:
            if self._proc is None or self._stopped or self._exit_status is not None:
                raise RuntimeError(self._unusable())
            tool_id = str(uuid.uuid4())
            command = {"command": message}
            await self.events.emit("tool_use", {"id": tool_id, "name": "Bash", "input": command})
            self._turns += 1
            turn = self._turn = _Turn(self._turns)
            started = time.monotonic()
            try:
                await self._write(_wrap(message, self._nonce, turn.number))
                status = await self._pump(tool_id, turn)
            except BaseException:
                if turn.status is None:
                    self._request_interrupt(turn)  # a cancelled turn must not run on
                raise
            finally:
                self._turn = None
            if status is None or self._stopped:
                await self.events.emit(
                    "error", {"tool_use_id": tool_id, "message": self._unusable()}
                )
                return
            duration_ms = int((time.monotonic() - started) * 1000)
            await self.events.emit(
                "result",
                {"tool_use_id": tool_id, "exit_code": status, "is_error": status != 0,
                 "duration_ms": duration_ms, "interrupted": turn.interrupted},
            )  # fmt: skip

    async def interrupt(self) -> None:
        """Send SIGINT to the running command's process group; the shell itself lives on.

        A second interrupt of the same command sends SIGKILL, for programs that ignore SIGINT.
        """
        turn = self._turn
        if turn is not None and turn.status is None:
            turn.interrupted = True
            self._request_interrupt(turn)

    async def stop(self) -> None:
        """End bash and every process group in its session; close the pty. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._proc is not None:
            await self._end_session(self._proc)
        self._set_reading(False)
        if self._master >= 0:
            os.close(self._master)
            self._master = -1
        self._wakeup.set()

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("PROMPT_COMMAND", "PS0", "PS1", "PS2", "BASH_ENV", "ENV", "MAIL", "MAILPATH"):
            env.pop(name, None)
        # The transcript is plain text, and nobody is there to page through output.
        env.update({"TERM": "dumb", "PAGER": "cat", "GIT_PAGER": "cat"})
        env.update(self.context.env)
        env["HOME"] = str(self.context.home)
        env["PWD"] = str(self.context.workspace)
        env["PROMPT_COMMAND"] = _prompt_command(self._nonce)
        return env

    async def _wait_ready(self) -> None:
        while not self._ready:
            if self._exit_status is not None:
                output = "".join(self._idle)[-2000:].strip()
                raise RuntimeError(f"bash exited on start (status {self._exit_status}): {output}")
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _watch_exit(self, proc: asyncio.subprocess.Process) -> int:
        self._exit_status = await proc.wait()
        self._wakeup.set()
        return self._exit_status

    def _unusable(self) -> str:
        """Why no command can run now."""
        if self._proc is None:
            return "the shell agent is not started; call start() first"
        if self._stopped:
            return "the shell was stopped; resume the session for a new shell"
        code = self._exit_status or 0
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"status {code}"
        return f"the shell exited ({how}); its state is gone: resume the session for a new shell"

    def _request_interrupt(self, turn: _Turn) -> None:
        if self._active is None and self._interrupt_at_go != turn.number:
            # Bash is still reading the command: a signal now would discard half of it and run
            # the rest, so the signal waits for the go marker (see _dispatch).
            self._interrupt_at_go = turn.number
            return
        # A second request before the go marker means the command may never start (another
        # program took the input): signal now, and let the prompt this brings end the turn.
        turn.forced = self._active is None
        self._interrupt_at_go = None
        self._signal_foreground(turn)

    def _signal_foreground(self, turn: _Turn) -> None:
        proc = self._proc
        if proc is None or self._exit_status is not None or self._master < 0:
            return
        try:
            group = os.tcgetpgrp(self._master)
        except OSError:
            group = proc.pid
        turn.signals += 1
        escalate = turn.signals > 1 and group != proc.pid  # never SIGKILL the shell itself
        program = _program(group)
        _killpg(group, signal.SIGKILL if escalate else signal.SIGINT)
        # A job the shell was starting (between fork and exec) misses the signal; so when the
        # foreground job is another one, or has run a new program since, signal it again.
        asyncio.get_running_loop().call_later(0.1, self._resignal, turn, group, program, 3)

    def _resignal(self, turn: _Turn, group: int, program: str, left: int) -> None:
        if self._turn is not turn or turn.status is not None or self._proc is None or left < 1:
            return
        with contextlib.suppress(OSError):
            now = os.tcgetpgrp(self._master)
            now_program = _program(now)
            if now != self._proc.pid and (now != group or now_program != program):
                _killpg(now, signal.SIGINT)
            loop = asyncio.get_running_loop()
            loop.call_later(0.1, self._resignal, turn, now, now_program, left - 1)

    async def _pump(self, tool_id: str, turn: _Turn) -> int | None:
        """Emit the turn's output until its end marker (its status) or bash's death (None)."""
        loop = asyncio.get_running_loop()
        while True:
            dead = turn.status is None and self._exit_status is not None
            if dead:
                self._set_reading(True)
                await asyncio.sleep(0.1)  # the pty hands over the shell's last writes a bit late
                self._dispatch(self._scanner.feed(b"", final=True))
            finished = turn.status is not None
            due = self._out_len >= CHUNK_CHARS or loop.time() >= self._out_since + COALESCE_SECONDS
            if self._out and (finished or dead or due):
                await self._emit_output(tool_id)
            if finished or dead:
                return turn.status
            self._wakeup.clear()
            timeout = self._out_since + COALESCE_SECONDS - loop.time() if self._out else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout)

    async def _emit_output(self, tool_id: str) -> None:
        text = "".join(self._out)
        self._out.clear()
        self._out_len = 0
        self._set_reading(True)
        for i in range(0, len(text), CHUNK_CHARS):
            payload = {"tool_use_id": tool_id, "output": text[i : i + CHUNK_CHARS], "final": False}
            await self.events.emit("tool_result", payload)

    async def _write(self, data: bytes) -> None:
        loop, fd, view = asyncio.get_running_loop(), self._master, memoryview(data)
        while view and self._exit_status is None and not self._stopped:
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                # Bash reads its input line by line; any wakeup (writable, output, exit) will do.
                self._wakeup.clear()
                loop.add_writer(fd, self._wakeup.set)
                try:
                    await self._wakeup.wait()
                finally:
                    loop.remove_writer(fd)

    def _set_reading(self, on: bool) -> None:
        loop = asyncio.get_running_loop()
        if on and not self._reading and self._master >= 0:
            loop.add_reader(self._master, self._on_readable)
        elif not on and self._reading:
            loop.remove_reader(self._master)
        self._reading = on and self._master >= 0

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, CHUNK_CHARS)
        except BlockingIOError:
            return
        except OSError:  # EIO: no process has the terminal open any more
            data = b""
        self._dispatch(self._scanner.feed(data, final=not data))
        if not data or self._out_len > MAX_BUFFERED_CHARS:
            self._set_reading(False)
        self._wakeup.set()

    def _dispatch(self, items: list[_Item]) -> None:
        turn = self._turn
        for kind, value in items:
            ours = turn is not None and turn.status is None and self._active == turn.number
            if kind == "text" and ours:
                if not self._out:
                    self._out_since = asyncio.get_running_loop().time()
                self._out.append(value)
                self._out_len += len(value)
            elif kind == "text":
                # Output between commands (background jobs) goes with the next command's output.
                self._idle.append(value)
                self._idle_len += len(value)
                if self._idle_len > IDLE_KEEP_CHARS:
                    kept = "".join(self._idle)[-IDLE_KEEP_CHARS:]
                    self._idle, self._idle_len = [kept], len(kept)
            elif kind == "go":
                self._active = int(value)
                mine = turn is not None and self._active == turn.number
                if mine:
                    self._out, self._out_len = self._idle, self._idle_len
                    self._idle, self._idle_len = [], 0
                    self._out_since = asyncio.get_running_loop().time()
                if self._interrupt_at_go == self._active:
                    self._interrupt_at_go = None
                    self._signal_foreground(turn if mine and turn else _Turn(self._active))
            else:
                if ours and turn is not None:
                    turn.status = int(value)
                elif turn is not None and turn.forced and self._active is None:
                    turn.status = 130  # the command was discarded unread
                self._ready = True
                self._active = None

    async def _end_session(self, proc: asyncio.subprocess.Process) -> None:
        """SIGHUP every process group of bash's session, then SIGKILL what outlives a grace."""
        loop = asyncio.get_running_loop()
        sid = proc.pid
        for group in _session_groups(sid) | ({sid} if proc.returncode is None else set()):
            _killpg(group, signal.SIGHUP)
            _killpg(group, signal.SIGCONT)  # a stopped job must run to act on its SIGHUP
        deadline = loop.time() + STOP_GRACE_SECONDS
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), STOP_GRACE_SECONDS)
        while _session_groups(sid) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for group in _session_groups(sid) | ({sid} if proc.returncode is None else set()):
            _killpg(group, signal.SIGKILL)
        await proc.wait()
        if self._exit_watch is not None:
            await self._exit_watch
