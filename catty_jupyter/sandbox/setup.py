"""Run an environment's setup script in a sandbox, streaming its output, with a time limit.

The script runs as root of the sandbox (its own user namespace when the server is not root),
with the environment's variables, before the agent starts. Its changes to the system
directories and HOME land in the snapshot directory being built (see `layers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from .bwrap import SandboxSpec, build_command
from .launcher import LaunchPlan
from .portforward import PortForward

TAIL_LINES = 50
"""How many of the script's last lines a failed session's error shows."""

FLUSH_SECONDS = 0.2
"""Output is passed on at least this often while the script writes (one event per batch)."""

OutputSink = Callable[[str], Awaitable[None]]


@dataclass
class SetupResult:
    """How a setup run ended."""

    exit_code: int | None
    """The script's exit status; None when it was stopped for taking too long."""
    tail: list[str]
    """Its last lines of output."""
    seconds: float

    @property
    def ok(self) -> bool:
        """True when the script finished with status 0."""
        return self.exit_code == 0


async def run_setup(
    *, spec: SandboxSpec, plan: LaunchPlan, script: str, env: dict[str, str],
    forwards: list[PortForward], timeout: float, on_output: OutputSink,
) -> SetupResult:  # fmt: skip
    """Run SCRIPT confined by SPEC with PLAN's layers; pass its output to ON_OUTPUT in batches.

    ENV reaches the script's processes through the process environment (never the command
    line, which other users of the host can read). Ends the whole sandbox after TIMEOUT seconds.
    """
    script_path = spec.state_dir / "setup.sh"
    script_path.write_text(script)
    inner = [sys.executable, "-m", "catty_jupyter.sandbox.setup_runner",
             json.dumps([vars(f) for f in forwards]), str(script_path)]  # fmt: skip
    command = plan.command(build_command(spec, inner))
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True, cwd=str(spec.workspace),
    )  # fmt: skip
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    assert process.stdout is not None
    try:
        await asyncio.wait_for(_pump(process.stdout, tail, on_output), timeout)
        code: int | None = await asyncio.wait_for(process.wait(), max(1.0, timeout / 10))
    except TimeoutError:
        code = None
    finally:
        if process.returncode is None:
            # bwrap's --die-with-parent takes the whole sandbox down with it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    return SetupResult(code, list(tail), time.monotonic() - started)


async def _pump(stream: asyncio.StreamReader, tail: deque[str], on_output: OutputSink) -> None:
    """Read output until the end, in batches of what arrived within FLUSH_SECONDS."""
    pending = b""
    batch: list[str] = []
    last_flush = time.monotonic()
    while True:
        chunk = await stream.read(65536)
        if chunk:
            pending += chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            *lines, pending = pending.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                batch.append(text)
                tail.append(text)
        if not chunk and pending:
            text = pending.decode(errors="replace")
            batch.append(text)
            tail.append(text)
            pending = b""
        now = time.monotonic()
        if batch and (not chunk or now - last_flush >= FLUSH_SECONDS or len(batch) >= 200):
            await on_output("\n".join(batch))
            batch, last_flush = [], now
        if not chunk:
            return


def setup_spec(
    *, scratch: Path, home: Path, runtime_dir: Path, hidden: list[Path], readable: list[Path],
    writable: list[Path], env: dict[str, str], hostname: str,
) -> SandboxSpec:  # fmt: skip
    """The sandbox a setup runs in: an empty working directory (the setup prepares the
    environment, not a repository), HOME, and the layer targets writable."""
    (scratch / "cwd").mkdir(parents=True, exist_ok=True)
    (scratch / "state").mkdir(parents=True, exist_ok=True)
    # The sandbox maps one user, so apt-get cannot drop to its `_apt` user to download.
    apt_config = scratch / "state" / "apt.conf"
    apt_config.write_text('APT::Sandbox::User "root";\n')
    env = {"APT_CONFIG": str(apt_config), "DEBIAN_FRONTEND": "noninteractive", **env}
    return SandboxSpec(
        workspace=scratch / "cwd", home=home, state_dir=scratch / "state",
        runtime_dir=runtime_dir, network="none", hidden=hidden, readable=readable,
        writable=writable, env=env, hostname=hostname, die_with_parent=True,
    )  # fmt: skip
