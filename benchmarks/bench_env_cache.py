"""Session start with an environment cache hit, beside a cold start and no setup script at all.

Prints a table of medians and ratios measured in this run; never fails the build on a number.

- no setup script: `POST sessions` (shell agent) to the runtime's "ready" status event.
- cold: the same in an environment whose setup script installs a package with apt-get (a local
  .deb, so nothing is downloaded) and has never run: the script runs, its result is snapshotted.
- cache hit: the same environment once its snapshot exists: overlays instead of the script.

Goal: a cache hit within 1.1x of a session with no setup script.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_session_start import free_port, session_start

from catty_jupyter.client import CattyClient, ServerInfo

ROUNDS = int(os.environ.get("CATTY_BENCH_ROUNDS", "5"))


def build_deb(where: Path) -> Path | None:
    """A tiny local package for the setup script to install, or None without dpkg-deb."""
    if shutil.which("dpkg-deb") is None or shutil.which("apt-get") is None:
        return None
    root = where / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: catty-bench\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: Bench <bench@example.com>\nDescription: benchmark package\n"
    )
    tool = root / "usr" / "bin" / "catty-bench"
    tool.write_text("#!/bin/sh\necho bench\n")
    tool.chmod(0o755)
    out = where / "catty-bench.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(out)],
                   check=True, capture_output=True)  # fmt: skip
    return out


async def start(client: CattyClient, environment: str) -> float:
    """Seconds from POST sessions (shell agent) to the runtime's ready status."""
    return await session_start(client, "shell", environment)


async def main() -> None:
    """Measure the three starts, print the table."""
    # Under /var/tmp, not /tmp: every sandbox has a private /tmp, and the package must be seen.
    tmp = Path(tempfile.mkdtemp(prefix="catty-bench-", dir="/var/tmp"))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_DATA_DIR": str(tmp / "data"),
           "JUPYTER_RUNTIME_DIR": str(tmp / "rt")}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", "--CattyExtension.stop_sessions_on_exit=True",
         f"--ServerApp.root_dir={tmp}", "--allow-root"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    # Outside the server's root_dir, which sandboxes do not see.
    deb = build_deb(Path(tempfile.mkdtemp(prefix="pkg-", dir=tmp.parent)))
    script = (f"apt-get install -y {deb}\n" if deb else
              "mkdir -p /opt/bench && head -c 10000000 /dev/urandom > /opt/bench/blob\n")  # fmt: skip
    try:
        client = CattyClient(ServerInfo(f"http://127.0.0.1:{port}/", token))
        for _ in range(100):
            try:
                client.list_sessions()
                break
            except Exception:
                await asyncio.sleep(0.1)
        client.create_environment("plain", agent="shell", network="none")
        client.create_environment("cached", agent="shell", network="none", setup_script=script)
        await start(client, "plain")  # warm-up
        await start(client, "cached")  # builds the snapshot
        plain, hit, cold = [], [], []
        for i in range(ROUNDS):
            plain.append(await start(client, "plain"))
            hit.append(await start(client, "cached"))
            # A script no snapshot exists for: a cold start every round.
            client.create_environment(f"cold-{i}", agent="shell", network="none",
                                      setup_script=f"{script}# round {i}\n")  # fmt: skip
            cold.append(await start(client, f"cold-{i}"))
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
        if deb is not None:
            shutil.rmtree(deb.parent, ignore_errors=True)
    base = statistics.median(plain)
    rows = [("no setup script", base), ("cache hit", statistics.median(hit)),
            ("cold (setup script runs)", statistics.median(cold))]  # fmt: skip
    what = "apt-get install of a local .deb" if deb else "a 10 MB file under /opt (no apt-get)"
    print(f"\nSession start (shell agent, POST -> ready), median of {ROUNDS} runs; setup: {what}")
    print(f"{'start':<28} {'median s':>9} {'vs no setup':>12}")
    for name, value in rows:
        print(f"{name:<28} {value:>9.3f} {value / base:>11.2f}x")
    print("goal: cache hit within 1.10x of no setup script\n")


if __name__ == "__main__":
    asyncio.run(main())
