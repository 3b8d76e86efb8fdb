"""Inside a setup sandbox: open the relays to the egress proxy, then run the setup script.

Run as `python -m catty_jupyter.sandbox.setup_runner FORWARDS_JSON SCRIPT`. The script's exit
status becomes this process's; its output goes to the inherited stdout, which the server reads.
"""

from __future__ import annotations

import asyncio
import json
import sys

from .portforward import PortForward, start_forward


async def run(forwards: list[PortForward], script: str) -> int:
    """Relay FORWARDS while `bash SCRIPT` runs; return its exit status."""
    servers = [await start_forward(forward) for forward in forwards]
    try:
        process = await asyncio.create_subprocess_exec(
            "bash", script, stdin=asyncio.subprocess.DEVNULL
        )
        return await process.wait()
    finally:
        for server in servers:
            server.close()


def main(argv: list[str]) -> None:
    """Entry point: FORWARDS_JSON SCRIPT."""
    forwards = [PortForward(**f) for f in json.loads(argv[0])]
    sys.exit(asyncio.run(run(forwards, argv[1])))


if __name__ == "__main__":
    main(sys.argv[1:])
