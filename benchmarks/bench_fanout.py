"""Fan-out: 1, 10 and 100 WebSocket viewers on one session fed a steady stream of events.

Prints a table and never fails the build on a number. Every row streams RATE events per second
for STREAM_SECONDS. Three paths, each in its own server process:

- bare tornado: a plain tornado WebSocket server that makes each event, stamps its `ts`,
  serializes it once and writes it to every viewer. It has no runtime, journal, IOPub or index:
  the least a Python server can do for the same load on this machine, so it is the baseline
  ("p99 vs bare" compares with it at the same number of viewers).
- catty server: a real Jupyter server with the extension, whose session runs a stand-in runtime
  (benchmarks/fake_runtime.py) that journals and publishes each event with no ipykernel work.
  It measures the server side alone: IOPub pump, index, fan-out, WebSocket.
- catty real path: a real `shell` session in the sandbox. The runtime gets `{"type": "event"}`
  control messages, the way the manager records events of its own, and journals (stamping `ts`,
  fsync), publishes on IOPub; the server indexes and fans out over `sessions/{label}/stream`.

The catty paths are fed by a process that sends control messages on the runtime's shell channel
at RATE. Latency runs from the event's `ts` (set when it is journaled) to the viewer's callback;
every process shares this machine's clock. Viewers are asyncio connections in this process (as a
browser holds its tabs); they do not negotiate permessage-deflate. "missing" counts events a
viewer had not received DRAIN_SECONDS after the feed ended; "journal/s" is the rate events were
actually journaled at, and "feed lag" (p99) how far journaling fell behind the feeder.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.context import SpawnContext
from pathlib import Path
from typing import Any

import psutil
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.servers import LiveServer, free_port

RATE = int(os.environ.get("CATTY_BENCH_RATE", "500"))
STREAM_SECONDS = float(os.environ.get("CATTY_BENCH_SECONDS", "5"))
VIEWERS = (1, 10, 100)
DRAIN_SECONDS = 10.0
GOAL_VIEWERS, GOAL_P99_MS = 100, 50.0
FAKE_KERNEL = "catty-bench-fake-runtime"
# About the size of a few lines of tool output, the bulk of a real transcript.
OUTPUT = "drwxr-xr-x 2 user user 4096 Jan  1 00:00 some-directory-name\n" * 3


def bench_payload(run: str, i: int) -> dict[str, Any]:
    """The payload of the I-th event of RUN: tool output plus what identifies it."""
    return {"tool_use_id": run, "output": OUTPUT, "final": False, "bench": run, "i": i,
            "sent": time.time()}  # fmt: skip


# -- feeders: each in a process of its own, so the viewers' work does not disturb the pacing ----


def feed_runtime(info: dict[str, Any], run: str, rate: int, count: int, start_at: float) -> None:
    """Send COUNT `event` control messages at RATE per second to the kernel at connection INFO."""
    import zmq
    from jupyter_client.session import Session

    from catty_jupyter.runtime.config import CONTROL_COMM

    session = Session(key=info["key"].encode(), signature_scheme=info["signature_scheme"])
    context = zmq.Context()
    shell = context.socket(zmq.DEALER)
    shell.linger = 5000  # hand the last messages over before the socket closes
    sep = "-" if info["transport"] == "ipc" else ":"
    shell.connect(f"{info['transport']}://{info['ip']}{sep}{info['shell_port']}")
    for i in range(count):
        delay = start_at + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        data = {"type": "event", "kind": "tool_result", "payload": bench_payload(run, i)}
        session.send(shell, "comm_msg", {"comm_id": CONTROL_COMM, "data": data})
    shell.close()
    context.term()


def serve_bare(port: int) -> None:
    """A bare tornado WebSocket broadcaster on 127.0.0.1:PORT (`POST /run` starts a stream)."""
    import tornado.web
    import tornado.websocket

    from catty_jupyter.core.models import Event

    viewers: set[tornado.websocket.WebSocketHandler] = set()

    class Viewer(tornado.websocket.WebSocketHandler):
        def open(self, *args: str, **kwargs: str) -> None:
            viewers.add(self)

        def on_close(self) -> None:
            viewers.discard(self)

    async def broadcast(run: str, rate: int, count: int, start_at: float) -> None:
        for i in range(count):
            await asyncio.sleep(max(start_at + i / rate - time.time(), 0))
            event = Event(seq=i + 1, kind="tool_result", payload=bench_payload(run, i))
            message = json.dumps(event.to_json())
            for viewer in list(viewers):
                viewer.write_message(message)

    streams: set[asyncio.Task[None]] = set()  # held, so a running stream is not collected

    class Run(tornado.web.RequestHandler):
        def post(self) -> None:
            task = asyncio.ensure_future(broadcast(**json.loads(self.request.body)))
            streams.add(task)
            task.add_done_callback(streams.discard)

    async def main() -> None:
        tornado.web.Application([(r"/ws", Viewer), (r"/run", Run)]).listen(port, "127.0.0.1")
        await asyncio.Event().wait()

    asyncio.run(main())


# -- viewers and measurement --------------------------------------------------------------------


@dataclass
class Viewer:
    """One WebSocket viewer: what it received, and when."""

    received: list[tuple[float, str]] = field(default_factory=list)
    conn: WebSocketClientConnection | None = None

    def on_message(self, message: str | bytes | None) -> None:
        """Keep the receipt time and the raw text; parsing waits until the run is over."""
        if message is not None:
            self.received.append((time.time(), message if isinstance(message, str) else ""))


async def open_viewers(url: str, headers: dict[str, str], n: int) -> list[Viewer]:
    """N connected viewers of URL."""
    viewers = [Viewer() for _ in range(n)]

    async def connect(v: Viewer) -> None:
        request = HTTPRequest(url, headers=headers)
        v.conn = await websocket_connect(request, on_message_callback=v.on_message)

    await asyncio.gather(*(connect(v) for v in viewers))
    return viewers


async def close_all(viewers: list[Viewer]) -> None:
    """Close every viewer's connection."""
    for v in viewers:
        if v.conn is not None:
            v.conn.close()
    await asyncio.sleep(0.2)


@dataclass
class Row:
    """One measured configuration."""

    path: str
    viewers: int
    p50: float = 0.0
    p99: float = 0.0
    worst: float = 0.0
    missing: int = 0
    journal_rate: float = 0.0
    feed_lag_p99: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float:
    """The Q-quantile of VALUES (nearest rank), 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process and by each group of PIDS."""
    out = {"viewers": time.process_time()}
    for name, group in pids.items():
        out[name] = 0.0
        for pid in group:
            try:
                t = psutil.Process(pid).cpu_times()
                out[name] += t.user + t.system
            except psutil.Error:
                pass
    return out


async def measure(
    path: str, viewers: list[Viewer], run: str, count: int, start_at: float,
    pids: dict[str, list[int]],
) -> Row:  # fmt: skip
    """Wait for the stream to end and drain, then compute the row from what the viewers got."""
    await asyncio.sleep(max(0.0, start_at - time.time()))
    cpu0, t0 = cpu_seconds(pids), time.time()
    await asyncio.sleep(max(0.0, start_at + count / RATE - time.time()))
    cpu1, t1 = cpu_seconds(pids), time.time()
    deadline = time.monotonic() + DRAIN_SECONDS
    while any(len(v.received) < count for v in viewers) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    row = Row(path, len(viewers))
    row.cpu = {k: 100 * (cpu1[k] - cpu0[k]) / (t1 - t0) for k in cpu0}
    latencies: list[float] = []
    stamps: dict[int, tuple[float, float]] = {}
    for v in viewers:
        seen: set[int] = set()
        for received_at, raw in v.received:
            event = json.loads(raw)
            payload = event.get("payload") or {}
            if payload.get("bench") != run:
                continue  # a late event of an earlier row
            seen.add(payload["i"])
            latencies.append(received_at - event["ts"])
            stamps[payload["i"]] = (payload["sent"], event["ts"])
        row.missing += count - len(seen)
    row.p50, row.p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    row.worst = max(latencies, default=0.0) * 1000
    if len(stamps) > 1:
        ts = sorted(t for _, t in stamps.values())
        row.journal_rate = (len(ts) - 1) / max(ts[-1] - ts[0], 1e-9)
        row.feed_lag_p99 = percentile([t - s for s, t in stamps.values()], 0.99) * 1000
    return row


# -- the paths ----------------------------------------------------------------------------------


async def bare_rows(ctx: SpawnContext) -> list[Row]:
    """Bare tornado broadcast at each number of viewers."""
    port = free_port()
    proc = ctx.Process(target=serve_bare, args=(port,), daemon=True)
    proc.start()
    rows = []
    try:
        await wait_for_port(port)
        assert proc.pid is not None
        for n in VIEWERS:
            viewers = await open_viewers(f"ws://127.0.0.1:{port}/ws", {}, n)
            run, count, start_at = secrets.token_hex(4), int(RATE * STREAM_SECONDS), time.time() + 1
            body = json.dumps({"run": run, "rate": RATE, "count": count, "start_at": start_at})
            await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/run", method="POST", body=body)
            pids = {"server": [proc.pid]}
            rows.append(await measure("bare tornado", viewers, run, count, start_at, pids))
            await close_all(viewers)
    finally:
        proc.terminate()
        proc.join(10)
    return rows


async def catty_rows(ctx: SpawnContext, path: str, server: LiveServer) -> list[Row]:
    """One catty path at each number of viewers: a shell session fed through its runtime."""
    label = None
    rows = []
    try:
        server.start()
        assert server.proc is not None
        label = start_shell_session(server)
        connection = runtime_connection(server, label)
        children = psutil.Process(server.proc.pid).children(recursive=True)
        pids = {"server": [server.proc.pid], "runtime": [p.pid for p in children]}
        headers = {"Authorization": f"token {server.token}"}
        for n in VIEWERS:
            after = settle(server, label)
            url = f"ws://127.0.0.1:{server.port}/catty/v1/sessions/{label}/stream?after={after}"
            viewers = await open_viewers(url, headers, n)
            run, count, start_at = secrets.token_hex(4), int(RATE * STREAM_SECONDS), time.time() + 1
            args = (connection, run, RATE, count, start_at)
            feeder = ctx.Process(target=feed_runtime, args=args, daemon=True)
            feeder.start()
            rows.append(await measure(path, viewers, run, count, start_at, pids))
            await close_all(viewers)
            feeder.join(30)
    finally:
        if label is not None:
            # Stopped here, not left to the server's exit: by default a server leaves its
            # runtimes running for the next one.
            try:
                server.request("POST", f"sessions/{label}/stop")
            except Exception as exc:
                print(f"could not stop session {label}: {exc}", file=sys.stderr)
        server.stop()
    return rows


def start_shell_session(server: LiveServer, timeout: float = 60) -> str:
    """Create a `shell` session with no prompt and wait until it runs; return its label."""
    label = str(server.request("POST", "sessions", {"agent": "shell"})["label"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = server.request("GET", f"sessions/{label}")["state"]
        if state == "running":
            return label
        if state != "starting":
            raise RuntimeError(f"session {label} is {state}:\n{server.log_tail()}")
        time.sleep(0.1)
    raise RuntimeError(f"session {label} did not start in {timeout} s")


def settle(server: LiveServer, label: str, timeout: float = 10) -> int:
    """Wait until the session's index stops growing (an earlier row's tail); return its last seq."""
    last, deadline = -1, time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = int(server.request("GET", f"sessions/{label}/transcript?tail=1&limit=1")["last_seq"])
        if now == last:
            break
        last = now
        time.sleep(0.3)
    return last


def runtime_connection(server: LiveServer, label: str) -> dict[str, Any]:
    """The runtime kernel's connection info (ports and key), as the manager recorded it."""
    from catty_jupyter.core.store import Store

    store = Store(server.data_dir / "catty.db")
    try:
        session = store.get_session(label)
        assert session is not None
        return dict(session.runtime["connection"])
    finally:
        store.close()


def install_fake_kernel(tmp: Path) -> None:
    """Make the stand-in runtime a kernelspec that servers started from now on can find."""
    spec = tmp / "kernels" / FAKE_KERNEL
    spec.mkdir(parents=True)
    fake = Path(__file__).resolve().parent / "fake_runtime.py"
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, str(fake), "-f", "{connection_file}"],
        "display_name": "catty benchmark stand-in runtime", "language": "text",
        "metadata": {"kernel_provisioner": {"provisioner_name": "catty-unsandboxed"}},
    }))  # fmt: skip
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        p for p in (str(tmp), os.environ.get("JUPYTER_PATH", "")) if p
    )


async def wait_for_port(port: int, timeout: float = 30) -> None:
    """Wait until something accepts connections on 127.0.0.1:PORT."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


# -- the table ----------------------------------------------------------------------------------


def verdict(r: Row) -> str:
    """Goal met or missed, and why; bare tornado rows are the baseline."""
    if r.path == "bare tornado":
        return "(baseline)"
    why = [f"p99 {r.p99:.0f} ms"] if r.p99 > GOAL_P99_MS else []
    why += [f"{r.missing} not received in {DRAIN_SECONDS:g} s"] if r.missing else []
    why += [f"ran at {r.journal_rate:.0f}/s"] if r.journal_rate < 0.95 * RATE else []
    return "goal met" if not why else f"goal missed ({', '.join(why)})"


def print_table(rows: list[Row]) -> None:
    """Print every row with its ratio to bare tornado at the same number of viewers."""
    bare = {r.viewers: r for r in rows if r.path == "bare tornado"}
    print(f"\nFan-out at {RATE} events/s for {STREAM_SECONDS:g} s per row on {os.cpu_count()} "
          "cores (latency: event ts -> viewer receipt; ratios measured in this run)")  # fmt: skip
    print(f"{'path':<16} {'viewers':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'missing':>7} "
          f"{'journal/s':>9} {'feed lag':>8} {'CPU% srv/rt/view':>16} {'p99 vs bare':>11}  goal")  # fmt: skip
    for r in rows:
        base = bare.get(r.viewers)
        ratio = f"{r.p99 / base.p99:.1f}x" if base and base.p99 and r is not base else "-"
        cpu = "/".join(
            f"{r.cpu[k]:.0f}" if k in r.cpu else "-" for k in ("server", "runtime", "viewers")
        )
        fed = r.path != "bare tornado"
        rate = f"{r.journal_rate:.0f}" if fed else "-"
        lag = f"{r.feed_lag_p99:.0f} ms" if fed else "-"
        print(f"{r.path:<16} {r.viewers:>7} {r.p50:>8.1f} {r.p99:>8.1f} {r.worst:>8.1f} "
              f"{r.missing:>7} {rate:>9} {lag:>8} {cpu:>16} {ratio:>11}  {verdict(r)}")  # fmt: skip
    print(f"goal: p99 <= {GOAL_P99_MS:g} ms, nothing missing, at {GOAL_VIEWERS} viewers x {RATE} "
          "events/s (checked on every catty row)\n")  # fmt: skip


async def main() -> None:
    """Measure the three paths, print the table."""
    ctx = multiprocessing.get_context("spawn")
    tmp = Path(tempfile.mkdtemp(prefix="catty-bench-fanout-"))
    fake = {"runtime_kernel": FAKE_KERNEL}
    paths: list[tuple[str, Callable[[], Awaitable[list[Row]]]]] = [
        ("bare tornado", lambda: bare_rows(ctx)),
        ("catty server", lambda: catty_rows(ctx, "catty server", LiveServer(
            tmp / "a" / "data", tmp / "a" / "root", fake))),
        ("catty real path", lambda: catty_rows(ctx, "catty real path", LiveServer(
            tmp / "b" / "data", tmp / "b" / "root"))),
    ]  # fmt: skip
    rows: list[Row] = []
    try:
        install_fake_kernel(tmp)
        for name, measure_path in paths:
            try:
                rows += await measure_path()
            except Exception as exc:
                print(f"{name}: could not be measured: {exc!r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(rows)


if __name__ == "__main__":
    asyncio.run(main())
