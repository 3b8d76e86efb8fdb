"""Follow the server from a background thread of a notebook kernel: a session's transcript,
and which sessions changed.

A widget must keep updating while the kernel is idle, and while it runs other cells, so each
WebSocket is read on a thread of its own with its own event loop. Events are handed on in
batches (a catch-up of thousands of events becomes a few widget updates, not thousands), and a
dropped connection is reopened from the last `seq` seen, so nothing is missed or repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Self

from ..client import CattyClient, ClientError

log = logging.getLogger(__name__)

BATCH_SECONDS = 0.1
"""How long events are gathered before they are handed on together."""

MAX_BACKOFF = 5.0
"""The longest wait between attempts to reconnect."""

Events = list[dict[str, Any]]

LIST_POLL_SECONDS = 60.0
"""How often a session list looks again while the server's change hints arrive (a safety net)."""

LIST_FALLBACK_SECONDS = 3.0
"""How often a session list looks again while no hints can be had (an older or restarting
server)."""


class _BackgroundLoop:
    """A thread with an event loop of its own, running `_main` until it returns or `stop()`."""

    def __init__(self, name: str) -> None:
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Self:
        """Start the thread."""
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop (returns at once; the thread ends soon after)."""
        self._stopping.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)

    async def _main(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._task = loop.create_task(self._main())
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(self._task)
        finally:
            loop.close()


class SessionFollower(_BackgroundLoop):
    """Reads SESSION's events after AFTER and calls ON_EVENTS with each batch, on its own thread.

    ON_EVENTS runs on the follower's thread; ON_GONE (if given) runs once when the session no
    longer exists. `stop()` ends the thread.
    """

    def __init__(
        self, client: CattyClient, label: str, after: int, on_events: Callable[[Events], None],
        on_gone: Callable[[str], None] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(f"catty-follow-{label}")
        self.client = client
        self.label = label
        self.last_seq = after
        self._on_events = on_events
        self._on_gone = on_gone

    async def _main(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                await self._read_stream()
            except ClientError as exc:
                if exc.status == 404 or not self._exists():
                    if self._on_gone is not None:
                        self._on_gone(str(exc))
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                pass  # a network error: reconnect below, from the last seq seen
            if self._stopping.is_set():
                return
            backoff = 0.2 if time.monotonic() - started > 10 else min(backoff * 2, MAX_BACKOFF)
            await asyncio.sleep(backoff)

    def _exists(self) -> bool:
        try:
            self.client.get(self.label)
        except ClientError as exc:
            return exc.status != 404
        return True

    async def _read_stream(self) -> None:
        batch: Events = []
        flush_at: float | None = None
        stream = self.client.follow(self.label, after=self.last_seq, present=True)
        pending: asyncio.Future[dict[str, Any]] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(stream))
                timeout = None if flush_at is None else max(0.0, flush_at - time.monotonic())
                done, _ = await asyncio.wait({pending}, timeout=timeout)
                if done:
                    try:
                        event = pending.result()
                    except StopAsyncIteration:
                        break
                    finally:
                        pending = None
                    if event.get("seq", 0) <= self.last_seq:
                        continue  # already delivered before a reconnect
                    batch.append(event)
                    self.last_seq = int(event["seq"])
                    flush_at = flush_at or time.monotonic() + BATCH_SECONDS
                if flush_at is not None and time.monotonic() >= flush_at:
                    self._deliver(batch)
                    batch, flush_at = [], None
        finally:
            self._deliver(batch)
            if pending is not None:
                pending.cancel()
            with contextlib.suppress(Exception):
                await stream.aclose()  # type: ignore[attr-defined]

    def _deliver(self, batch: Events) -> None:
        if batch:
            try:
                self._on_events(batch)
            except Exception:
                # A widget that fails to draw an event must not stop the follower; the kernel's
                # log (the server's terminal) says what went wrong.
                log.exception("catty: drawing events of %s failed", self.label)


class ChangeWatcher(_BackgroundLoop):
    """Calls ON_CHANGE on its own thread whenever the server says sessions changed (and once
    on connecting), every LIST_POLL_SECONDS meanwhile, and every LIST_FALLBACK_SECONDS while
    the server's hints cannot be had. `stop()` ends the thread."""

    def __init__(self, client: CattyClient, on_change: Callable[[], None]) -> None:
        super().__init__("catty-session-list")
        self.client = client
        self._on_change = on_change

    async def _main(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._read_hints()
            except asyncio.CancelledError:
                raise
            except Exception:
                pass  # no hints (an older server, a restart): look now, then try again
            if self._stopping.is_set():
                return
            self._notify()
            await asyncio.sleep(LIST_FALLBACK_SECONDS)

    async def _read_hints(self) -> None:
        hints = self.client.changes()
        pending: asyncio.Future[list[str]] | None = None
        try:
            while not self._stopping.is_set():
                if pending is None:
                    pending = asyncio.ensure_future(anext(hints))
                done, _ = await asyncio.wait({pending}, timeout=LIST_POLL_SECONDS)
                if done:
                    try:
                        pending.result()
                    except StopAsyncIteration:
                        return  # the server closed the socket
                    finally:
                        pending = None
                self._notify()  # a hint, the connection itself, or the safety poll
        finally:
            if pending is not None:
                pending.cancel()
            with contextlib.suppress(Exception):
                await hints.aclose()  # type: ignore[attr-defined]

    def _notify(self) -> None:
        try:
            self._on_change()
        except Exception:
            log.debug("catty: the session list could not refresh", exc_info=True)
