"""Run the demo model in the foreground: `python -m catty_jupyter.demo [--port N]`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from .server import DemoModelServer


async def serve(port: int) -> None:
    """Serve until cancelled, after printing how to point Claude Code at the server."""
    server = DemoModelServer()
    await server.start(port)
    print(f"catty-jupyter demo model listening on {server.url}", flush=True)
    print(
        f"Try: ANTHROPIC_BASE_URL={server.url} ANTHROPIC_API_KEY=demo "
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1 claude",
        flush=True,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m catty_jupyter.demo",
        description="A scripted stand-in for the Anthropic Messages API, on 127.0.0.1.",
    )
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
