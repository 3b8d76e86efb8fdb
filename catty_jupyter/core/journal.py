"""The transcript journal: an append-only JSON-lines file, the source of truth for a transcript.

Exactly one writer appends at a time: the runtime while it runs, the session manager before the
runtime starts and after it ends. Each line is one event; a torn last line (a writer killed
mid-write) is dropped when the journal is opened for appending.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .models import Event


class Journal:
    """Append events to, and read them back from, one session's journal file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._last_seq: int | None = None

    def read(self, after: int = 0) -> Iterator[Event]:
        """Every complete event with `seq > after`, in order."""
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # a torn write: the writer died mid-line
                try:
                    event = Event.from_json(json.loads(raw))
                except (ValueError, KeyError):
                    continue
                if event.seq > after:
                    yield event

    def last_seq(self) -> int:
        """The newest seq in the journal, 0 when it is empty."""
        if self._last_seq is None:
            last = 0
            for event in self.read():
                last = event.seq
            self._last_seq = last
        return self._last_seq

    def append(self, kind: str, payload: dict[str, Any], client: str | None = None) -> Event:
        """Write one event durably and return it with its new seq."""
        if self._last_seq is None:
            self._drop_torn_tail()
        event = Event(
            seq=self.last_seq() + 1, kind=kind, payload=payload, ts=time.time(), client=client
        )
        line = json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as f:
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())
        self._last_seq = event.seq
        return event

    def _drop_torn_tail(self) -> None:
        """Cut a partial last line left by a writer that died, so appends start clean."""
        if not self.path.exists():
            return
        with self.path.open("rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
