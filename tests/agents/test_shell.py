"""Tests of the `shell` agent adapter against a real bash on a real pseudo-terminal.

The runtime is replaced by a small recording fake of the `AgentEvents` protocol: this is a unit
test of the adapter, and what it must get right is the events it emits, in order and in time.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catty_jupyter.agents.base import AgentContext, PermissionDecision
from catty_jupyter.agents.shell import CHUNK_CHARS, ShellAgent, _OutputScanner


class RecordingEvents:
    """Records every emitted event with the time it was emitted."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, dict[str, Any]]] = []

    async def emit(self, kind: str, payload: dict[str, Any]) -> None:
        self.events.append((time.monotonic(), kind, payload))

    async def ask_permission(
        self, tool_name: str, tool_input: dict[str, Any], details: dict[str, Any]
    ) -> PermissionDecision:
        raise AssertionError("the shell agent never asks for permission")

    def last_turn(self) -> list[tuple[float, str, dict[str, Any]]]:
        """The events from the last `tool_use` on."""
        starts = [i for i, (_, kind, _) in enumerate(self.events) if kind == "tool_use"]
        return self.events[starts[-1] :] if starts else []

    def output(self) -> str:
        """All output of the last turn."""
        return "".join(p["output"] for _, kind, p in self.last_turn() if kind == "tool_result")

    async def wait_for_output(self, text: str, timeout: float = 5) -> None:
        """Wait until the last turn's output contains TEXT."""
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert time.monotonic() < deadline, f"no {text!r} in {self.output()!r}"
            await asyncio.sleep(0.02)

    def result(self) -> dict[str, Any]:
        """The `result` payload of the last turn."""
        (payload,) = [p for _, kind, p in self.last_turn() if kind == "result"]
        return payload


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "ws").mkdir()
    (tmp_path / "home").mkdir()
    return tmp_path / "ws"


@pytest.fixture
def recorder() -> RecordingEvents:
    return RecordingEvents()


@pytest.fixture
def agent(
    workspace: Path, recorder: RecordingEvents, jp_asyncio_loop: asyncio.AbstractEventLoop
) -> Iterator[ShellAgent]:
    """A started shell agent; the async tests run on the same loop (pytest-jupyter's)."""
    context = AgentContext(
        label="brave-tiger-1234",
        workspace=workspace,
        home=workspace.parent / "home",
        state_dir=workspace.parent,
        env={"CATTY_REMOTE": "true"},
    )
    shell = ShellAgent(context, recorder)
    jp_asyncio_loop.run_until_complete(shell.start())
    yield shell
    jp_asyncio_loop.run_until_complete(shell.stop())


def gone(pid: int) -> bool:
    """True when PID no longer runs (a zombie left to an init that does not reap counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


async def test_cd_exports_and_status_persist(
    agent: ShellAgent, recorder: RecordingEvents, workspace: Path
) -> None:
    await agent.send("mkdir sub && cd sub && export GREETING=hello")
    await agent.send("false")
    await agent.send('echo $?; pwd; echo "$GREETING $HOME $CATTY_REMOTE"')
    home = workspace.parent / "home"
    assert recorder.output() == f"1\n{workspace / 'sub'}\nhello {home} true\n"


async def test_events_of_one_turn(agent: ShellAgent, recorder: RecordingEvents) -> None:
    await agent.send("echo out; echo err >&2; exit_code() { return 3; }; exit_code")
    kinds = [kind for _, kind, _ in recorder.events]
    assert kinds[0] == "tool_use" and kinds[-1] == "result" and "user" not in kinds
    tool_use = recorder.events[0][2]
    assert tool_use["name"] == "Bash" and tool_use["input"]["command"].startswith("echo out")
    for _, kind, payload in recorder.events[1:-1]:
        assert kind == "tool_result"
        assert payload["tool_use_id"] == tool_use["id"] and payload["final"] is False
    assert recorder.output() == "out\nerr\n"
    result = recorder.result()
    assert result["tool_use_id"] == tool_use["id"]
    assert result["exit_code"] == 3 and result["is_error"] is True
    assert result["interrupted"] is False and isinstance(result["duration_ms"], int)


async def test_awkward_messages_round_trip(agent: ShellAgent, recorder: RecordingEvents) -> None:
    text = "quotes ' \" \\ $HOME `x` !! ^C \x03 tab\t é ✓ 🐈 " + "long " * 2000
    await agent.send(f"cat <<'EOF'\n{text}\nEOF")
    assert recorder.output() == text + "\n"
    await agent.send("echo 'unterminated")
    assert recorder.result()["exit_code"] == 2
    await agent.send("echo still here")
    assert recorder.output() == "still here\n"


async def test_output_streams_while_the_command_runs(
    agent: ShellAgent, recorder: RecordingEvents
) -> None:
    await agent.send("echo start; sleep 1; echo end")
    chunks = [(t, p["output"]) for t, kind, p in recorder.last_turn() if kind == "tool_result"]
    end_time = recorder.last_turn()[-1][0]
    assert chunks[0][1] == "start\n"
    assert end_time - chunks[0][0] > 0.8
    assert "".join(c for _, c in chunks) == "start\nend\n"


async def test_programs_see_a_line_buffered_terminal(
    agent: ShellAgent, recorder: RecordingEvents
) -> None:
    script = "import sys, time; print('first'); time.sleep(0.5); print('second')"
    await agent.send(f'test -t 1 && echo tty; {sys.executable} -c "{script}"; printf "a\\r\\nb\\r"')
    chunks = [(t, p["output"]) for t, kind, p in recorder.last_turn() if kind == "tool_result"]
    assert chunks[0][1].endswith("first\n")
    assert recorder.last_turn()[-1][0] - chunks[0][0] > 0.4
    assert recorder.output() == "tty\nfirst\nsecond\na\nb\r"


async def test_utf8_split_across_reads(agent: ShellAgent, recorder: RecordingEvents) -> None:
    await agent.send("printf '\\xc3'; sleep 0.1; printf '\\xa9 \\xff\\n'")
    assert recorder.output() == "é \ufffd\n"


async def test_background_output_comes_with_the_next_command(
    agent: ShellAgent, recorder: RecordingEvents
) -> None:
    await agent.send("(sleep 0.2; echo late) &")
    await asyncio.sleep(0.5)
    await agent.send("echo now")
    output = recorder.output()  # bash's "[1]+ Done" notice comes in between
    assert output.startswith("late\n") and output.endswith("now\n")


def test_markers_split_anywhere_are_found() -> None:
    scanner = _OutputScanner("abc")
    stream = "x\x1e\x1fcatty-abc-go-1\x1f\x1eé\r\nout\x1e\x1fcatty-abc-end-130\x1f\x1e\x1e\x1ftail"
    items = []
    for byte in stream.encode():
        items += scanner.feed(bytes([byte]))
    items += scanner.feed(b"", final=True)
    text = "".join(v for k, v in items if k == "text")
    assert [i for i in items if i[0] != "text"] == [("go", "1"), ("end", "130")]
    assert text == "xé\nout\x1e\x1ftail"


async def test_interrupt_stops_the_command_not_the_shell(
    agent: ShellAgent, recorder: RecordingEvents
) -> None:
    for command in ("sleep 100", "while :; do :; done"):
        turn = asyncio.create_task(agent.send(command))
        await asyncio.sleep(0.2)
        await agent.interrupt()
        # A command that would run for minutes ends: the interrupt reached it.
        await asyncio.wait_for(turn, 20)
        result = recorder.result()
        assert result["exit_code"] == 130 and result["interrupted"] is True
    await agent.send("echo alive")
    assert recorder.output() == "alive\n"
    assert recorder.result()["interrupted"] is False


async def test_interrupt_right_after_send_is_not_lost(
    agent: ShellAgent, recorder: RecordingEvents
) -> None:
    # Repeated because the interrupt can land while bash is still starting the job.
    for _ in range(5):
        turn = asyncio.create_task(agent.send("sleep 100"))
        await asyncio.sleep(0)
        await agent.interrupt()
        await asyncio.wait_for(turn, 2)
        assert recorder.result()["exit_code"] == 130


async def test_a_cancelled_turn_does_not_keep_running(
    agent: ShellAgent, recorder: RecordingEvents
) -> None:
    turn = asyncio.create_task(agent.send("sleep 100"))
    await asyncio.sleep(0.2)
    turn.cancel()
    with pytest.raises(asyncio.CancelledError):
        await turn
    await asyncio.wait_for(agent.send("echo next"), 2)
    assert recorder.output().endswith("next\n")


async def test_a_program_ignoring_sigint_is_killed_on_the_second_interrupt(
    agent: ShellAgent, recorder: RecordingEvents
) -> None:
    script = "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('ready')"
    turn = asyncio.create_task(agent.send(f'{sys.executable} -c "{script}; time.sleep(100)"'))
    await recorder.wait_for_output("ready\n")
    await agent.interrupt()
    await asyncio.sleep(0.2)
    assert not turn.done()
    await agent.interrupt()
    await asyncio.wait_for(turn, 2)
    assert recorder.result()["exit_code"] == 137
    await agent.send("echo alive")
    assert recorder.output() == "alive\n"


async def test_large_output_arrives_whole(agent: ShellAgent, recorder: RecordingEvents) -> None:
    await agent.send("yes abcdefghi | head -c 5000000")
    chunks = [p["output"] for _, kind, p in recorder.last_turn() if kind == "tool_result"]
    assert all(len(c) <= CHUNK_CHARS for c in chunks)
    assert "".join(chunks) == "abcdefghi\n" * 500000
    assert recorder.result()["exit_code"] == 0


async def test_exit_ends_the_turn_with_an_error(
    agent: ShellAgent, recorder: RecordingEvents
) -> None:
    await agent.send("echo bye; exit 3")
    last = recorder.events[-1]
    assert last[1] == "error"
    assert last[2]["message"].startswith("the shell exited (status 3); ")
    assert "bye\n" in recorder.output()
    with pytest.raises(RuntimeError, match="the shell exited"):
        await agent.send("echo hello")


async def test_stop_ends_every_process_of_the_session(
    agent: ShellAgent, recorder: RecordingEvents
) -> None:
    await agent.send("sleep 1000 & echo $!")
    background = int(recorder.output().split()[-1])
    assert not gone(background)
    turn = asyncio.create_task(agent.send("sleep 1000"))
    await asyncio.sleep(0.2)
    await agent.stop()
    await asyncio.wait_for(turn, 2)
    assert recorder.events[-1][1] == "error"
    assert gone(background)
    await agent.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        await agent.send("echo hello")


def test_interrupts_work_when_the_server_ignores_sigint(tmp_path: Path) -> None:
    """A server started in the background (`cmd &`, nohup) inherits SIGINT ignored; the shell
    it starts must still be interruptible."""
    code = (
        "import asyncio, signal, sys\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from tests.agents.test_shell import interrupt_once\n"
        "print(asyncio.run(interrupt_once(sys.argv[2])))\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code, str(root), str(tmp_path)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "130"


async def interrupt_once(tmp: str) -> int:
    """Start a shell agent, interrupt `sleep 100` at once; its exit code (130 when it worked)."""
    recorder = RecordingEvents()
    base = Path(tmp)
    for sub in ("ws", "home", "state"):
        (base / sub).mkdir(exist_ok=True)
    agent = ShellAgent(AgentContext(label="t", workspace=base / "ws", home=base / "home",
                                    state_dir=base / "state"), recorder)  # fmt: skip
    await agent.start()
    try:
        turn = asyncio.create_task(agent.send("sleep 100"))
        await asyncio.sleep(0.3)
        await agent.interrupt()
        await asyncio.wait_for(turn, 10)
        return int(recorder.result()["exit_code"])
    finally:
        await agent.stop()
