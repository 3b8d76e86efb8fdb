"""Egress: what a session's traffic pays for leaving through the relay and the egress proxy.

Prints a table and never fails the build on a number. The path measured is the one a sandboxed
client takes: client -> 127.0.0.1 relay (`start_forward`, inside the sandbox) -> unix socket ->
`EgressProxy` (in the Jupyter server) -> origin. The origin, the proxy and the relay each run in a
process of their own, as they would for real; the client is this process, with blocking sockets.
The baseline is the same client talking straight to the same origin, measured in this run.

- per request: REQUESTS sequential small GETs, each on a new connection (the worst case: every
  request pays for the relay's and the proxy's connection setup), as median and p95 ms, and the
  median added over direct. "proxy only" skips the relay (client on the unix socket), to show
  which half costs what.
- per MB: a BIG_MB body downloaded ROUNDS times (best kept), plain http and through a CONNECT
  tunnel, as MB/s and the ratio to direct.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from multiprocessing.queues import Queue
from pathlib import Path

from catty_jupyter.core.network import NetworkPolicy
from catty_jupyter.sandbox.egress import EgressProxy
from catty_jupyter.sandbox.portforward import PortForward, start_forward

REQUESTS = 300
WARMUP = 20
BIG_MB = 32
ROUNDS = 3
GOAL_ADDED_MS = 2.0
NAME = "origin.test"  # pointed at 127.0.0.1 by the proxy's resolve map: nothing leaves the machine


# -- the three servers, each in its own process ---------------------------------------------------


async def origin_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer one request: BIG_MB bytes for a path ending in /big, a short greeting otherwise."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        big = head.split(b" ", 2)[1].endswith(b"/big")
        size = BIG_MB * 1024 * 1024 if big else 6
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
        if not big:
            writer.write(b"hello\n")
        chunk = memoryview(bytes(1024 * 1024))
        for _ in range(BIG_MB if big else 0):
            writer.write(chunk)
            await writer.drain()
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def serve(kind: str, path: str, ready: Queue[int]) -> None:
    """Run one server until terminated; put its TCP port (0 for the proxy) on READY."""
    if kind == "origin":
        server = await asyncio.start_server(origin_handler, "127.0.0.1", 0, backlog=512)
    elif kind == "relay":
        server = await start_forward(PortForward(0, path))
    else:
        policy = NetworkPolicy("custom", (NAME,))
        proxy = EgressProxy(path, policy, resolve={NAME: "127.0.0.1"})
        await proxy.start()
        ready.put(0)
        await asyncio.Event().wait()
    ready.put(server.sockets[0].getsockname()[1])
    await asyncio.Event().wait()


def run_server(kind: str, path: str, ready: Queue[int]) -> None:
    """A process's entry point."""
    asyncio.run(serve(kind, path, ready))


# -- the client ----------------------------------------------------------------------------------

BUF = bytearray(1024 * 1024)


def fetch(connect: Callable[[], socket.socket], request: bytes, tunnel_to: str = "") -> int:
    """Send REQUEST on a new connection (through a CONNECT tunnel first if asked); bytes read."""
    with connect() as s:
        if tunnel_to:
            s.sendall(f"CONNECT {tunnel_to} HTTP/1.1\r\nHost: {tunnel_to}\r\n\r\n".encode())
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                head += s.recv(1)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"the tunnel was refused: {head!r}")
        s.sendall(request)
        view = memoryview(BUF)
        total = n = s.recv_into(view)
        if not BUF.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected answer: {bytes(BUF[:200])!r}")
        while n:
            n = s.recv_into(view)
            total += n
    return total


def tcp(port: int) -> Callable[[], socket.socket]:
    """Connect to 127.0.0.1:PORT."""
    return lambda: socket.create_connection(("127.0.0.1", port))


def unix(path: str) -> Callable[[], socket.socket]:
    """Connect to the unix socket at PATH."""

    def connect() -> socket.socket:
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        return s

    return connect


def timed(call: Callable[[], int]) -> float:
    """Milliseconds for one call."""
    t0 = time.perf_counter()
    call()
    return (time.perf_counter() - t0) * 1000


def print_table(latency: dict[str, list[float]], rates: dict[str, float]) -> None:
    """Both tables, with ratios to direct."""
    base = statistics.median(latency["direct"])
    print(f"\nEgress through relay + proxy ({os.cpu_count()} cores; origin, proxy and relay in "
          "processes of their own; ratios to direct, measured in this run)")  # fmt: skip
    print(f"\nper request: {REQUESTS} sequential GETs, each on a new connection")
    print(f"{'path':<34} {'median ms':>10} {'p95 ms':>8} {'added ms':>9} {'vs direct':>10}  goal")
    for name, times in latency.items():
        med = statistics.median(times)
        p95 = sorted(times)[int(len(times) * 0.95)]
        added = med - base
        goal = "" if name == "direct" else (
            "goal met" if added < GOAL_ADDED_MS else f"goal missed (> {GOAL_ADDED_MS:g} ms)")  # fmt: skip
        added_text = "-" if name == "direct" else f"{added:+.2f}"
        print(f"{name:<34} {med:>10.2f} {p95:>8.2f} {added_text:>9} {med / base:>9.1f}x  {goal}")
    print(f"\nper MB: a {BIG_MB} MB body, best of {ROUNDS}")
    print(f"{'path':<34} {'MB/s':>10} {'vs direct':>10}")
    for name, rate in rates.items():
        print(f"{name:<34} {rate:>10.0f} {rate / rates['direct']:>9.2f}x")
    print(f"goal: under {GOAL_ADDED_MS:g} ms added per request through relay + proxy\n")


def measure(origin: int, relay: int, proxy_path: str) -> tuple[dict[str, list[float]],
                                                               dict[str, float]]:  # fmt: skip
    """Run both measurements against servers already listening."""
    target = f"{NAME}:{origin}"
    small_direct = f"GET / HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n".encode()
    small_proxied = small_direct.replace(b"GET /", f"GET http://{target}/".encode(), 1)
    paths: dict[str, Callable[[], int]] = {
        "direct": lambda: fetch(tcp(origin), small_direct),
        "relay + proxy, plain http": lambda: fetch(tcp(relay), small_proxied),
        "relay + proxy, CONNECT": lambda: fetch(tcp(relay), small_direct, target),
        "proxy only (unix), plain http": lambda: fetch(unix(proxy_path), small_proxied),
    }
    for call in paths.values():
        for _ in range(WARMUP):
            call()
    latency: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(REQUESTS):  # interleaved, so drift in the machine's load hits every path alike
        for name, call in paths.items():
            latency[name].append(timed(call))

    big_direct = small_direct.replace(b"GET /", b"GET /big", 1)
    big_proxied = small_proxied.replace(b"/ HTTP", b"/big HTTP", 1)
    downloads: dict[str, Callable[[], int]] = {
        "direct": lambda: fetch(tcp(origin), big_direct),
        "relay + proxy, plain http": lambda: fetch(tcp(relay), big_proxied),
        "relay + proxy, CONNECT": lambda: fetch(tcp(relay), big_direct, target),
        "proxy only (unix), plain http": lambda: fetch(unix(proxy_path), big_proxied),
        "proxy only (unix), CONNECT": lambda: fetch(unix(proxy_path), big_direct, target),
    }
    rates: dict[str, float] = {}
    for name, call in downloads.items():
        best = float("inf")
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            got = call()
            best = min(best, time.perf_counter() - t0)
            if got < BIG_MB * 1024 * 1024:
                raise RuntimeError(f"{name}: got {got} bytes, not {BIG_MB} MB")
        rates[name] = BIG_MB / best
    return latency, rates


def main() -> None:
    """Start the servers, measure, print the table."""
    tmp = Path(tempfile.mkdtemp(prefix="catty-bench-egress-"))
    proxy_path = str(tmp / "egress.sock")
    ctx = multiprocessing.get_context("spawn")
    ready: Queue[int] = ctx.Queue()
    procs: list[multiprocessing.process.BaseProcess] = []
    try:
        ports = []
        for kind in ("origin", "proxy", "relay"):
            proc = ctx.Process(target=run_server, args=(kind, proxy_path, ready), daemon=True)
            proc.start()
            procs.append(proc)
            ports.append(ready.get(timeout=30))
        latency, rates = measure(ports[0], ports[2], proxy_path)
        print_table(latency, rates)
    except Exception as exc:
        print(f"the egress benchmark stopped early: {exc!r}")
    finally:
        for started in procs:
            started.terminate()
            started.join(5)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
