"""`jupyter catty attach`: a session's live transcript in the terminal, and typing to it.

Lines typed here go to the agent while this terminal holds input focus. Any number of
terminals, tabs and phones may watch; taking focus is explicit (`/take`), and whoever held it is
told in the transcript. `--read-only` never sends and never takes focus.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from typing import Any

from .cli import TERMINAL_STATES, follow, render
from .client import CattyClient, ClientError

HELP = (
    "type a message and Enter to send it; /take takes input focus; /interrupt; "
    "/allow ID; /deny ID [MESSAGE]; /quit or Ctrl-D detaches (the session goes on)"
)


def _stdin_lines(loop: asyncio.AbstractEventLoop) -> asyncio.Queue[str | None]:
    """Lines from stdin, read in a daemon thread (None at end of input).

    A daemon thread, not the loop's executor, so that leaving does not wait for a line.
    """
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\n"))
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, daemon=True, name="catty-attach-stdin").start()
    return queue


def _say(text: str) -> None:
    print(text, flush=True)


async def _command(client: CattyClient, label: str, line: str, read_only: bool) -> bool:
    """Act on one typed line; return False to detach."""
    word, _, rest = line.partition(" ")
    if word in ("/quit", "/exit", "/detach"):
        return False
    if word == "/help":
        _say(f"· {HELP}")
        return True
    if read_only and line.strip():
        _say("· read-only: nothing was sent (attach without --read-only to type)")
        return True
    try:
        if word == "/take":
            focus = await asyncio.to_thread(client.take_focus, label)
            _say(f"· you ({focus['holder']}) hold input focus")
        elif word == "/interrupt":
            await asyncio.to_thread(client.interrupt, label)
        elif word in ("/allow", "/deny") and rest.strip():
            request_id, _, message = rest.strip().partition(" ")
            await asyncio.to_thread(client.answer, label, request_id, word[1:], message)
        elif word.startswith("/"):
            _say(f"· unknown command {word}; {HELP}")
        elif line.strip():
            await asyncio.to_thread(client.send, label, line)
    except ClientError as exc:
        hint = "; type /take to take control" if exc.reason == "focus_held" else ""
        _say(f"! {exc}{hint}")
    return True


async def attach(
    client: CattyClient, label: str, read_only: bool = False, backlog: int = 30
) -> None:
    """Show LABEL's recent events, follow it live, and send what is typed until detached."""
    info = client.get(label)
    holder = (info.get("focus") or {}).get("holder")
    me = client.client_id
    who = "you hold it" if holder == me else f"{holder} holds it" if holder else "nobody holds it"
    _say(f"· attached to {label} ({info['state']}) as {me}; input focus: {who}")
    _say(f"· {'read-only: watching only' if read_only else HELP}")
    recent = client.transcript(label, limit=backlog, newest=True) if backlog else []
    for event in recent:
        text = render(event, label=label)
        if text is not None:
            _say(text)
    if info["state"] in TERMINAL_STATES:
        _say(f"· {label} is {info['state']}; `jupyter catty resume {label}` starts it again")
    after = recent[-1]["seq"] if recent else 0
    loop = asyncio.get_running_loop()
    lines = _stdin_lines(loop)
    live = asyncio.ensure_future(follow(client, label, after, present=not read_only))
    try:
        while True:
            next_line = asyncio.ensure_future(lines.get())
            done, _ = await asyncio.wait({live, next_line}, return_when=asyncio.FIRST_COMPLETED)
            if live in done:
                next_line.cancel()
                live.result()  # a stream that failed says why
                _say(f"· {label} ended; detached")
                return
            line: Any = next_line.result()
            if line is None or not await _command(client, label, line, read_only):
                _say(f"· detached from {label}; it goes on (jupyter catty attach {label})")
                return
    finally:
        live.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await live
