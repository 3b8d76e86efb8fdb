"""Session start time, beside its two ingredients, measured in one run on this machine.

Prints a table of medians and ratios; never fails the build on a number.

- ipykernel: `AsyncKernelManager.start_kernel` to `wait_for_ready` (a plain python3 kernel).
- bare claude: spawning the bundled Claude Code CLI via claude-agent-sdk to its `system/init`.
- session (claude): `POST sessions` to the transcript's `system/init` event, through a real
  Jupyter server, the sandbox and the runtime kernel (the demo model answers).
- session (shell): `POST sessions` to the runtime's "ready" status event.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from catty_jupyter.client import CattyClient, ServerInfo
from catty_jupyter.demo import DemoModelServer

ROUNDS = int(os.environ.get("CATTY_BENCH_ROUNDS", "5"))


async def ipykernel_start() -> float:
    """Seconds from start_kernel to a kernel that answers."""
    from jupyter_client.manager import AsyncKernelManager

    km = AsyncKernelManager(kernel_name="python3")
    t0 = time.perf_counter()
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=60)
    elapsed = time.perf_counter() - t0
    kc.stop_channels()
    await km.shutdown_kernel(now=True)
    return elapsed


async def bare_claude_start(demo: DemoModelServer, work: Path) -> float:
    """Seconds from spawning the Claude Code CLI to its system/init message."""
    from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, SystemMessage

    options = ClaudeAgentOptions(
        system_prompt={"type": "preset", "preset": "claude_code"}, cwd=str(work),
        env={"ANTHROPIC_BASE_URL": demo.url, "ANTHROPIC_API_KEY": "demo",
             "CLAUDE_CONFIG_DIR": str(work / f".claude-{secrets.token_hex(4)}"), "IS_SANDBOX": "1",
             "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1"},
        permission_mode="bypassPermissions",
    )  # fmt: skip
    t0 = time.perf_counter()
    client = ClaudeSDKClient(options)
    await client.connect()
    await client.query("!say hi")
    elapsed = 0.0
    async for msg in client.receive_response():
        if isinstance(msg, SystemMessage) and msg.subtype == "init" and not elapsed:
            elapsed = time.perf_counter() - t0
    await client.disconnect()
    return elapsed


async def session_start(client: CattyClient, agent: str, environment: str = "default") -> float:
    """Seconds from POST sessions to the agent being ready (claude: system/init)."""
    t0 = time.perf_counter()
    if agent == "claude":
        s = client.new(
            "!say hi", environment="demo", options={"permission_mode": "bypassPermissions"}
        )
    else:
        s = client.new(None, agent="shell", environment=environment)
    elapsed = 0.0
    async for event in client.follow(s["label"]):
        p = event["payload"]
        if agent == "claude" and event["kind"] == "system" and p.get("subtype") == "init":
            elapsed = time.perf_counter() - t0
        if agent == "shell" and event["kind"] == "status" and p.get("ready"):
            elapsed = time.perf_counter() - t0
        if event["kind"] == "error" and p.get("fatal"):
            raise RuntimeError(p.get("message"))
        if elapsed:
            break
    client.stop(s["label"])
    return elapsed


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def median(fn: Callable[[], Awaitable[float]]) -> float:
    """The median of ROUNDS runs, after one warm-up."""
    await fn()
    return statistics.median([await fn() for _ in range(ROUNDS)])


async def main() -> None:
    """Measure everything, print the table."""
    tmp = Path(tempfile.mkdtemp(prefix="catty-bench-"))
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_DATA_DIR": str(tmp / "data"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "rt"),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", "--CattyExtension.demo_model=True",
         "--CattyExtension.stop_sessions_on_exit=True",
         f"--ServerApp.root_dir={tmp}", "--allow-root"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    demo = DemoModelServer()
    await demo.start()
    try:
        client = CattyClient(ServerInfo(f"http://127.0.0.1:{port}/", token))
        for _ in range(100):
            try:
                client.list_sessions()
                break
            except Exception:
                await asyncio.sleep(0.1)
        rows = [
            ("ipykernel start -> ready", await median(ipykernel_start)),
            (
                "bare claude CLI spawn -> system/init",
                await median(lambda: bare_claude_start(demo, tmp)),
            ),
            (
                "session (claude): POST -> system/init",
                await median(lambda: session_start(client, "claude")),
            ),
            (
                "session (shell): POST -> ready",
                await median(lambda: session_start(client, "shell")),
            ),
        ]
    finally:
        server.terminate()
        server.wait(timeout=30)
        await demo.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    base = dict(rows)
    print(f"\nSession start, median of {ROUNDS} runs (seconds; ratios measured in this run)")
    print(f"{'measure':<42} {'median s':>9} {'vs bare claude':>15} {'vs ipykernel':>13}")
    for name, value in rows:
        print(f"{name:<42} {value:>9.3f} {value / base['bare claude CLI spawn -> system/init']:>14.2f}x "
              f"{value / base['ipykernel start -> ready']:>12.2f}x")  # fmt: skip
    print("goal: session (claude) within 1.25x of bare claude\n")


if __name__ == "__main__":
    asyncio.run(main())
