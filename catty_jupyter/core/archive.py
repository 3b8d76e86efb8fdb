"""Downloads of a workspace: a path check that never leaves it, and a streamed .tar.gz."""

from __future__ import annotations

import asyncio
import os
import stat
import tarfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path, PurePosixPath

from .errors import CattyError, NotFound

CHUNK_BYTES = 256 * 1024
"""How much compressed data is handed on at a time."""


def resolve_inside(root: Path, relative: str | None) -> Path:
    """ROOT/RELATIVE, refused (400) when it would leave ROOT, by `..` or through a symlink."""
    root = root.resolve()
    if not relative or relative in (".", "/"):
        return root
    rel = PurePosixPath(relative)
    if len(relative) > 4096 or any(len(part) > 255 for part in rel.parts):
        raise CattyError(f"path {relative[:80]!r}… is too long", reason="bad_path")
    if rel.is_absolute() or ".." in rel.parts or "\x00" in relative:
        raise CattyError(
            f"path {relative!r} must be relative to the workspace and stay inside it",
            reason="path_outside_workspace",
        )
    target = (root / rel).resolve()
    if target != root and root not in target.parents:
        raise CattyError(
            f"path {relative!r} leads outside the workspace (through a symlink)",
            reason="path_outside_workspace",
        )
    if not target.exists():
        raise NotFound(f"there is no {relative!r} in the workspace")
    return target


def tree_size(path: Path) -> int:
    """Bytes in the regular files under PATH (symlinks are not followed, nor counted)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path, followlinks=False):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


class _ChunkSink:
    """A write-only file that hands full chunks to the event loop, waiting when it lags."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes | None]):
        self.loop, self.queue = loop, queue
        self.buffer = bytearray()
        self.cancelled = threading.Event()

    def write(self, data: bytes) -> int:
        if self.cancelled.is_set():
            raise OSError("the download was cancelled")
        self.buffer += data
        if len(self.buffer) >= CHUNK_BYTES:
            self.flush_chunk()
        return len(data)

    def flush_chunk(self) -> None:
        if self.buffer:
            chunk, self.buffer = bytes(self.buffer), bytearray()
            # Blocks this thread until the queue has room: memory stays bounded.
            asyncio.run_coroutine_threadsafe(self.queue.put(chunk), self.loop).result()

    def flush(self) -> None:
        """Nothing to do: chunks move on when full or at the end."""


async def tar_gz_chunks(path: Path, name: str) -> AsyncIterator[bytes]:
    """The .tar.gz of PATH (its entries under NAME/), produced in a thread, chunk by chunk.

    Symlinks are stored as links, never followed, so nothing outside PATH gets in.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=4)
    sink = _ChunkSink(loop, queue)
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with tarfile.open(fileobj=sink, mode="w|gz") as tar:  # type: ignore[call-overload]
                tar.add(str(path), arcname=name, recursive=True)
            sink.flush_chunk()
        except BaseException as exc:  # handed to the consumer below
            failure.append(exc)
        finally:
            asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

    worker = loop.run_in_executor(None, produce)
    try:
        while (chunk := await queue.get()) is not None:
            yield chunk
        await worker
        if failure and not sink.cancelled.is_set():
            raise failure[0]
    finally:
        sink.cancelled.set()
        # Let a producer blocked on a full queue finish.
        while not worker.done():
            while not queue.empty():
                queue.get_nowait()
            await asyncio.sleep(0.01)
