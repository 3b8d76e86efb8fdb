"""Late attach: a viewer arrives at a session whose transcript is long.

Prints a table and never fails the build on a number. For each transcript length it measures,
on a freshly started server:

- first page: `GET sessions/{label}/transcript?tail=1&limit=50`, the newest events a late
  viewer shows first; "cold" is the first such request after the server started, "warm" the
  median of WARM_ROUNDS more.
- replay: the time for `sessions/{label}/stream?after=0` to deliver the whole transcript, and
  the server's RSS (VmRSS from /proc, sampled every SAMPLE_SECONDS during the replay) over what
  it was just before.
- session: `GET sessions/{label}`, which a viewer asks for too, and the RSS it adds.

The shortest length is the baseline: the other rows show times and memory growth as ratios to
it. The transcripts are built fast, with the server stopped: see `grow_transcript`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from catty_jupyter.core.journal import Journal
from catty_jupyter.core.models import Event
from catty_jupyter.core.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.servers import LiveServer

LENGTHS = (10_000, 100_000)
WARM_ROUNDS = 5
SAMPLE_SECONDS = 0.02
GOAL_FIRST_PAGE_MS = 100.0
# Growth this much over the baseline's, or less, counts as not growing with the length: RSS
# moves by a few MB with allocator noise alone.
GOAL_GROWTH_SLACK_MB = 5.0


def turn_events(turn: int) -> list[tuple[str, dict[str, Any]]]:
    """One agent turn of five events, about the sizes a real transcript has."""
    tool = f"toolu_{turn:08d}"
    output = "-rw-r--r-- 1 u u 120 notes.txt\n" * 6
    return [
        ("user", {"text": f"step {turn}: list the files and say what changed"}),
        ("assistant", {"text": "Let me look at the workspace first. " * 4}),
        ("tool_use", {"id": tool, "name": "Bash", "input": {"command": "ls -la && git status"}}),
        ("tool_result", {"tool_use_id": tool, "output": output, "final": False}),
        ("result", {"tool_use_id": tool, "exit_code": 0, "is_error": False, "duration_ms": 12}),
    ]


def grow_transcript(data_dir: Path, session_id: str, count: int) -> int:
    """Append COUNT events to a stopped session's journal and index; return its last seq.

    The server must be stopped. A live session's runtime appends to the journal and the server
    indexes each event as it is published; a restarted server indexes only the journals of
    sessions it re-attaches, never a stopped one's. So this does both halves of that in bulk:
    the journal lines are written exactly as `Journal.append` writes them, minus its fsync per
    event (far too slow for 100,000), and the same events go into the index with
    `Store.add_events` in one transaction.
    """
    journal = Journal(data_dir / "sessions" / session_id / "state" / "journal.jsonl")
    first = journal.last_seq() + 1
    start = time.time() - count * 0.05
    events: list[Event] = []
    turn = 0
    while len(events) < count:
        for kind, payload in turn_events(turn):
            seq = first + len(events)
            events.append(Event(seq=seq, kind=kind, payload=payload, ts=start + seq * 0.05))
        turn += 1
    del events[count:]
    with journal.path.open("ab") as f:
        for e in events:
            line = json.dumps(e.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n"
            f.write(line.encode())
        f.flush()
        os.fsync(f.fileno())
    store = Store(data_dir / "catty.db")
    try:
        store.add_events(session_id, events)
        indexed = store.last_seq(session_id)
    finally:
        store.close()
    written = Journal(journal.path).last_seq()  # read back with catty's own reader
    if written != indexed or written != events[-1].seq:
        raise RuntimeError(f"journal ends at {written}, index at {indexed}")
    return indexed


def make_sessions(server: LiveServer, lengths: tuple[int, ...]) -> dict[int, tuple[str, str]]:
    """A stopped `shell` session per length, as {length: (label, id)}; stops the server."""
    made = {}
    try:
        server.start()
        for n in lengths:
            s = server.request("POST", "sessions", {"agent": "shell"})
            made[n] = (s["label"], s["id"])
        for label, _ in made.values():
            wait_state(server, label, "running")
            server.request("POST", f"sessions/{label}/stop")
    finally:
        server.stop()
    return made


def wait_state(server: LiveServer, label: str, state: str, timeout: float = 60) -> None:
    """Wait until the session is in STATE."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = server.request("GET", f"sessions/{label}")["state"]
        if now == state:
            return
        if now not in ("starting", "running"):
            raise RuntimeError(f"session {label} is {now}:\n{server.log_tail()}")
        time.sleep(0.1)
    raise RuntimeError(f"session {label} was not {state} after {timeout} s")


class RssSampler:
    """The peak VmRSS of a process, sampled from a thread while a block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss(self.pid))
            self._stop.wait(SAMPLE_SECONDS)
        self.peak = max(self.peak, rss(self.pid))


def rss(pid: int) -> int:
    """The resident set size of PID in bytes (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class Row:
    """What one transcript length measured."""

    events: int
    first_page_cold: float = 0.0
    first_page_warm: float = 0.0
    replay_s: float = 0.0
    replayed: int = 0
    rss_before: int = 0
    replay_growth: int = 0
    session_ms: float = 0.0
    session_growth: int = 0
    notes: list[str] = field(default_factory=list)


def timed_ms(server: LiveServer, path: str) -> float:
    """Milliseconds for one GET of PATH, answer read."""
    t0 = time.perf_counter()
    server.request("GET", path)
    return (time.perf_counter() - t0) * 1000


async def replay(server: LiveServer, label: str, last_seq: int) -> tuple[float, int]:
    """Seconds until the stream from seq 0 has delivered LAST_SEQ, and how many events came."""
    done = asyncio.Event()
    got = [0, 0]  # events received, newest seq

    def on_message(message: str | bytes | None) -> None:
        if message is None:
            done.set()
            return
        got[0] += 1
        # The seq leads each event's JSON: reading just it keeps the client from being the
        # bottleneck of the measurement.
        text = message if isinstance(message, str) else message.decode()
        if text.startswith('{"seq": '):
            got[1] = int(text[8 : text.index(",")])
        else:
            got[1] = int(json.loads(text)["seq"])
        if got[1] >= last_seq:
            done.set()

    url = f"ws://127.0.0.1:{server.port}/catty/v1/sessions/{label}/stream?after=0"
    request = HTTPRequest(url, headers={"Authorization": f"token {server.token}"})
    t0 = time.perf_counter()
    conn = await websocket_connect(request, on_message_callback=on_message)
    try:
        await asyncio.wait_for(done.wait(), 300)
    finally:
        conn.close()
    return time.perf_counter() - t0, got[0]


async def measure(server: LiveServer, label: str, events: int) -> Row:
    """Start the server and measure one session's late attach."""
    row = Row(events)
    server.start()
    try:
        assert server.proc is not None
        pid = server.proc.pid
        page = f"sessions/{label}/transcript?tail=1&limit=50"
        row.first_page_cold = timed_ms(server, page)
        row.first_page_warm = statistics.median(timed_ms(server, page) for _ in range(WARM_ROUNDS))
        last_seq = int(server.request("GET", page)["last_seq"])
        row.rss_before = rss(pid)
        with RssSampler(pid) as sampler:
            row.replay_s, row.replayed = await replay(server, label, last_seq)
        row.replay_growth = sampler.peak - row.rss_before
        if row.replayed != last_seq:
            row.notes.append(f"replay delivered {row.replayed} of {last_seq} events")
        before = rss(pid)
        with RssSampler(pid) as sampler:
            row.session_ms = timed_ms(server, f"sessions/{label}")
        row.session_growth = sampler.peak - before
    finally:
        server.stop()
    return row


def print_table(rows: list[Row]) -> None:
    """The rows, with ratios to the shortest transcript."""
    base = rows[0]
    mb = 1024 * 1024

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.1f}x" if b > 0 else "-"

    print("\nLate attach to a stopped session's transcript, fresh server per length "
          f"({os.cpu_count()} cores; ratios to {base.events:,} events, measured in this run)")  # fmt: skip
    print(f"{'events':>8} {'page cold':>10} {'page warm':>10} {'replay s':>9} {'events/s':>9} "
          f"{'RSS MB':>7} {'replay +MB':>10} {'GET session':>12} {'+MB':>6}  goal")  # fmt: skip
    for r in rows:
        growth_goal = r is base or r.replay_growth <= base.replay_growth + GOAL_GROWTH_SLACK_MB * mb
        page_goal = max(r.first_page_cold, r.first_page_warm) <= GOAL_FIRST_PAGE_MS
        why = [] if page_goal else ["first page"]
        why += [] if growth_goal else ["replay memory grows"]
        why += r.notes
        goal = "goal met" if not why else f"goal missed ({', '.join(why)})"
        print(f"{r.events:>8,} {r.first_page_cold:>8.1f}ms {r.first_page_warm:>8.1f}ms "
              f"{r.replay_s:>9.2f} {r.replayed / r.replay_s:>9.0f} {r.rss_before / mb:>7.1f} "
              f"{r.replay_growth / mb:>10.1f} {r.session_ms:>10.1f}ms {r.session_growth / mb:>6.1f}"
              f"  {goal}")  # fmt: skip
        if r is not base:
            print(f"{'vs base':>8} {ratio(r.first_page_cold, base.first_page_cold):>10} "
                  f"{ratio(r.first_page_warm, base.first_page_warm):>10} "
                  f"{ratio(r.replay_s, base.replay_s):>9} {'':>9} {'':>7} "
                  f"{ratio(r.replay_growth, base.replay_growth):>10} "
                  f"{ratio(r.session_ms, base.session_ms):>12} "
                  f"{ratio(r.session_growth, base.session_growth):>6}")  # fmt: skip
    for r in rows[1:]:
        # Not a goal of this benchmark, but a late viewer asks for it too.
        if r.session_growth > base.session_growth + GOAL_GROWTH_SLACK_MB * mb:
            print(f"note: GET sessions/{{label}} grows with the transcript: "
                  f"{ratio(r.session_ms, base.session_ms)} the time and "
                  f"{(r.session_growth - base.session_growth) / mb:.0f} MB more memory "
                  f"for {r.events / base.events:g}x the events")  # fmt: skip
    print(f"goal: first page <= {GOAL_FIRST_PAGE_MS:g} ms (cold and warm), and replay memory "
          f"growth within {GOAL_GROWTH_SLACK_MB:g} MB of the {base.events:,}-event baseline's\n")  # fmt: skip


async def main() -> None:
    """Build the transcripts, measure each, print the table."""
    tmp = Path(tempfile.mkdtemp(prefix="catty-bench-attach-"))
    rows: list[Row] = []
    try:
        server = LiveServer(tmp / "data", tmp / "root")
        sessions = make_sessions(server, LENGTHS)
        for n, (_, session_id) in sessions.items():
            grow_transcript(server.data_dir, session_id, n)
        for n, (label, _) in sessions.items():
            rows.append(await measure(server, label, n))
    except Exception as exc:
        print(f"the late-attach benchmark stopped early: {exc!r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if rows:
        print_table(rows)


if __name__ == "__main__":
    asyncio.run(main())
