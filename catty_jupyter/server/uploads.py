"""Archives uploaded to start sessions from: received to disk under a cap, used once, pruned.

Each upload is a directory under `{data_dir}/uploads/`: `ID.part/` while it arrives, `ID/` once
complete (`archive` and `meta.json`), `ID.claimed/` while a session is being made from it. The
session consumes it; one nobody used within `max_age` is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..core import unpack
from ..core.environments import format_size
from ..core.errors import CattyError, NotFound, TooLarge, Unavailable

MAX_AGE = 3600.0
"""Seconds an upload waits for a session to be made from it."""
_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Upload:
    """One received archive, ready to become a session's workspace."""

    id: str
    name: str
    size: int
    format: str
    path: Path
    """The archive file."""

    def to_json(self) -> dict[str, Any]:
        """The upload as the API shows it."""
        return {"upload": self.id, "name": self.name, "size": self.size, "format": self.format}

    def discard(self) -> None:
        """Remove it: a session was made from it, or it was refused for good."""
        shutil.rmtree(self.path.parent, ignore_errors=True)


class Receiving:
    """An upload on its way in: each chunk is counted against the cap before it is written."""

    def __init__(self, directory: Path, name: str, max_bytes: int) -> None:
        self.directory = directory
        self.name = name
        self.max_bytes = max_bytes
        self.size = 0
        directory.mkdir(parents=True)
        self._file: IO[bytes] | None = (directory / "archive").open("wb")

    @property
    def done(self) -> bool:
        """True once finished or discarded."""
        return self._file is None

    def write(self, chunk: bytes) -> None:
        """Append CHUNK; past the cap, discard everything and raise TooLarge."""
        if self._file is None:
            return
        self.size += len(chunk)
        if self.size > self.max_bytes:
            self.discard()
            raise too_large(self.max_bytes, self.size, exact=False)
        try:
            self._file.write(chunk)
        except OSError as exc:
            self.discard()
            raise Unavailable(f"the server could not store the upload: {exc.strerror}; "
                              "free some disk space and try again",
                              reason="upload_failed") from None  # fmt: skip

    def finish(self) -> Upload:
        """The complete upload; bad_archive (and nothing kept) when it is no archive at all."""
        assert self._file is not None, "finished twice"
        self._file.close()
        self._file = None
        archive = self.directory / "archive"
        try:
            kind = unpack.detect_format(archive)
        except unpack.ArchiveError as exc:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise CattyError(f"{self.name}: {exc}", reason=exc.reason) from None
        meta = {"name": self.name, "size": self.size, "format": kind}
        (self.directory / "meta.json").write_text(json.dumps(meta))
        upload_id = self.directory.name.removesuffix(".part")
        final = self.directory.with_name(upload_id)
        self.directory.rename(final)
        return Upload(upload_id, self.name, self.size, kind, final / "archive")

    def discard(self) -> None:
        """Drop what arrived so far (a refusal, or the client went away)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        shutil.rmtree(self.directory, ignore_errors=True)


def too_large(max_bytes: int, size: int, *, exact: bool = True) -> TooLarge:
    """The refusal of an upload over the cap."""
    shown = format_size(size) if exact else f"over {format_size(max_bytes)}"
    return TooLarge(
        f"the upload is {shown}, over the {format_size(max_bytes)} cap "
        "(CattyExtension.max_upload_bytes); upload a smaller archive or raise the cap"
    )


class Uploads:
    """The uploads directory: receive an archive, hand it to one session, prune the unused."""

    def __init__(self, root: Path, max_bytes: int, max_age: float = MAX_AGE) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.max_age = max_age

    def receive(self, name: str) -> Receiving:
        """Start receiving an archive the client calls NAME."""
        self.prune()
        return Receiving(self.root / f"{uuid.uuid4().hex}.part", clean_name(name), self.max_bytes)

    @contextlib.contextmanager
    def claim(self, upload_id: str) -> Iterator[Upload]:
        """The upload UPLOAD_ID, held so no other request can use it; NotFound if there is none.

        Unless the holder discards it, it is put back when the block ends (a request refused
        before the archive was unpacked may then be tried again).
        """
        self.prune()
        source = self.root / upload_id
        held = self.root / f"{upload_id}.claimed"
        try:
            if not _ID.fullmatch(upload_id):
                raise FileNotFoundError(upload_id)
            source.rename(held)  # atomic: a second request for it finds nothing
            meta = json.loads((held / "meta.json").read_text())
        except (OSError, ValueError):
            raise NotFound(
                f"no upload {upload_id[:40]!r}; upload the archive first (POST "
                "catty/v1/uploads): an upload makes one session and is kept for "
                f"{self.max_age / 60:.0f} minutes"
            ) from None
        os.utime(held)  # its age now counts from the claim
        try:
            yield Upload(upload_id, str(meta["name"]), int(meta["size"]), str(meta["format"]),
                         held / "archive")  # fmt: skip
        finally:
            with contextlib.suppress(OSError):
                held.rename(source)

    def prune(self, now: float | None = None) -> None:
        """Remove uploads (and partial ones) untouched for `max_age`."""
        now = time.time() if now is None else now
        with contextlib.suppress(FileNotFoundError):
            for entry in self.root.iterdir():
                if now - _touched(entry) > self.max_age:
                    shutil.rmtree(entry, ignore_errors=True)


def _touched(entry: Path) -> float:
    """When ENTRY last changed: its own mtime, or its archive's, which grows as it arrives."""
    times = []
    for path in (entry, entry / "archive"):
        with contextlib.suppress(OSError):
            times.append(path.stat().st_mtime)
    return max(times, default=0.0)


def clean_name(name: str) -> str:
    """The file name a client gave, fit to show: no directories, no control characters."""
    base = re.split(r"[/\\]", name)[-1]
    shown = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip()
    return shown[:200] or "archive"
