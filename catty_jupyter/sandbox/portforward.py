"""Port forwarding across the sandbox wall: a loopback TCP port inside, a unix socket outside.

A sandbox with network `none` has only its own loopback; this is how the agent still reaches the
one thing it must (the model endpoint), and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass


@dataclass
class PortForward:
    """A loopback TCP port inside the sandbox relayed to a unix socket the server listens on."""

    port: int
    socket: str


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def start_forward(forward: PortForward) -> asyncio.Server:
    """Listen on 127.0.0.1:PORT and relay every connection to the forward's unix socket."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(forward.socket)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return await asyncio.start_server(handle, "127.0.0.1", forward.port)


async def serve_unix_to_tcp(path: str, host: str, port: int) -> asyncio.Server:
    """On the host: accept on a unix socket and relay each connection to HOST:PORT."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return await asyncio.start_unix_server(handle, path)
