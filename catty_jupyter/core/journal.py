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
            self._last_seq = self._read_last_seq()
        return self._last_seq

    def _read_last_seq(self, block: int = 1 << 16) -> int:
        """The seq of the last complete line, reading back from the end (not the whole file)."""
        if not self.path.exists():
            return 0
        with self.path.open("rb") as f:
            end = f.seek(0, os.SEEK_END)
            pos, tail = end, b""
            while pos > 0:
                pos = max(0, pos - block)
                f.seek(pos)
                tail = f.read(end - pos)
                lines = tail.split(b"\n")
                # lines[-1] is a torn write (or empty); lines[0] may be cut unless at the start.
                complete = lines[:-1] if pos == 0 else lines[1:-1]
                for raw in reversed(complete):
                    try:
                        return int(json.loads(raw)["seq"])
                    except (ValueError, KeyError, TypeError):
                        continue
        return 0

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
