"""The environment cache: what a setup script changed on the filesystem, kept for reuse.

A snapshot is keyed by everything that decides what the setup produces: the script, the
environment's variables, its network settings, the base system and the agent's version. Later
sessions mount it read-only under a writable layer of their own instead of running the script.
It is rebuilt when the key changes or when it is older than `max_age`. Builds of one key are
serialized across tasks and processes, so sessions starting at once on a cold environment build
it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import stat
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from .._version import __version__

META = "meta.json"
PRUNE_GRACE = 3600.0
"""Seconds past `max_age` before a snapshot nobody mounts is removed: a session that looked it
up just before it expired has long since recorded that it uses it."""


@dataclass(frozen=True)
class Snapshot:
    """One finished build of an environment's setup."""

    path: Path
    key: str
    built: float
    seconds: float
    size: int

    def describe(self) -> str:
        """`built 2026-11-21 10:02 UTC, 12.3 MB` for the transcript."""
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.built))
        return f"built {when}, {self.size / 1e6:.1f} MB"

    def to_json(self) -> dict[str, Any]:
        """The snapshot as plain JSON (saved with the session, so resume finds it)."""
        return {"path": str(self.path), "key": self.key, "built": self.built,
                "seconds": self.seconds, "size": self.size}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        """Read a snapshot written by `to_json`."""
        return cls(Path(data["path"]), str(data["key"]), float(data["built"]),
                   float(data.get("seconds", 0)), int(data.get("size", 0)))  # fmt: skip


def base_fingerprint() -> str:
    """What identifies the system under the snapshot: the OS release, its installed packages,
    the machine and the Python the runtime uses. A change means old snapshots may not fit."""
    parts = [platform.machine(), sys.version, sys.prefix]
    for path in ("/etc/os-release", "/var/lib/dpkg/status", "/lib/apk/db/installed"):
        with contextlib.suppress(OSError):
            parts.append(hashlib.sha256(Path(path).read_bytes()).hexdigest())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def agent_version(agent: str) -> str:
    """The version of what runs the agent (catty-jupyter and, for claude, the bundled CLI)."""
    versions = [f"catty-jupyter {__version__}", f"agent {agent}"]
    if agent == "claude":
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"claude-agent-sdk {metadata.version('claude-agent-sdk')}")
    return "; ".join(versions)


def cache_key(*, script: str, variables: str, network: str, base: str, agent: str) -> str:
    """The snapshot key for these inputs (hex digest; the inputs themselves are not kept)."""
    text = json.dumps({"script": script, "variables": variables, "network": network,
                       "base": base, "agent": agent}, sort_keys=True)  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:32]


BuildFn = Callable[[Path], Awaitable[None]]
"""Runs the setup, capturing its changes in the directory it is given; raises when it fails."""


class EnvironmentCache:
    """Snapshots under ROOT/KEY/BUILD_ID, with ROOT/KEY/current naming the newest."""

    def __init__(self, root: Path, max_age: float = 7 * 24 * 3600) -> None:
        self.root = root
        self.max_age = max_age
        self._locks: dict[str, asyncio.Lock] = {}

    def lookup(self, key: str) -> Snapshot | None:
        """The current snapshot for KEY, or None when there is none or it is too old."""
        try:
            build = (self.root / key / "current").read_text().strip()
            data = json.loads((self.root / key / build / META).read_text())
        except (OSError, ValueError):
            return None
        snapshot = Snapshot.from_json({**data, "path": str(self.root / key / build)})
        if self.max_age > 0 and time.time() - snapshot.built > self.max_age:
            return None
        return snapshot

    def building(self, key: str) -> bool:
        """True while a build of KEY runs in this process."""
        lock = self._locks.get(key)
        return lock is not None and lock.locked()

    async def get_or_build(self, key: str, build: BuildFn) -> tuple[Snapshot, bool]:
        """The snapshot for KEY and whether this call built it; BUILD runs only on a miss.

        Callers that arrive while a build of KEY runs wait for it and share its result; a build
        that fails leaves nothing behind and the next caller tries again.
        """
        found = self.lookup(key)
        if found is not None:
            return found, False
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            found = self.lookup(key)
            if found is not None:
                return found, False
            (self.root / key).mkdir(parents=True, exist_ok=True)
            lock_file = await asyncio.to_thread(_lock_file, self.root / key / ".lock")
            try:
                # Another server process on the same data directory may have built it.
                found = self.lookup(key)
                if found is not None:
                    return found, False
                return await self._build(key, build), True
            finally:
                lock_file.close()

    async def _build(self, key: str, build: BuildFn) -> Snapshot:
        build_id = f"{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"
        final = self.root / key / build_id
        partial = self.root / key / f".partial-{build_id}"
        partial.mkdir(parents=True)
        started = time.monotonic()
        try:
            await build(partial)
            await asyncio.to_thread(remove_tree, partial / ".work")
            size = await asyncio.to_thread(_tree_size, partial)
            snapshot = Snapshot(final, key, time.time(), time.monotonic() - started, size)
            (partial / META).write_text(json.dumps(snapshot.to_json()))
            partial.rename(final)
            current = self.root / key / ".current.tmp"
            current.write_text(build_id)
            current.replace(self.root / key / "current")
        except BaseException:
            await asyncio.to_thread(remove_tree, partial)
            raise
        return snapshot

    def prune(self, keep: set[Path]) -> list[Path]:
        """Remove the snapshots no session needs; return what was removed.

        A build goes when a newer one replaced it, or it is older than `max_age` so the next
        session would rebuild it anyway (either for PRUNE_GRACE already, so a session that
        looked it up just before has recorded it), unless it is in KEEP: what sessions, running
        or stopped, mount (resume needs it as it was). A partial build goes when no build of
        its key runs (a crashed server left it). Keys being built, here or in another process
        on this data directory, are left alone.
        """
        removed: list[Path] = []
        if not self.root.is_dir():
            return removed
        now = time.time()
        for key_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if self.building(key_dir.name):
                continue
            lock = _try_lock_file(key_dir / ".lock")
            if lock is None:
                continue  # another process builds this key right now
            try:
                current = _read_text(key_dir / "current")
                # The others were replaced when the current one was finished.
                replaced_at = _built_at(key_dir / current) if current else 0.0
                for build in sorted(p for p in key_dir.iterdir() if p.is_dir()):
                    if build.name.startswith(".partial-"):
                        stale = True
                    elif build in keep:
                        stale = False
                    elif build.name != current:
                        stale = now - replaced_at > PRUNE_GRACE
                    else:
                        stale = 0 < self.max_age < now - _built_at(build) - PRUNE_GRACE
                    if stale:
                        remove_tree(build)
                        removed.append(build)
            finally:
                lock.close()
        return removed


def _lock_file(path: Path) -> Any:
    handle = path.open("a")
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle


def _try_lock_file(path: Path) -> Any:
    """PATH locked as `_lock_file` does, or None when someone else holds it."""
    handle = path.open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _built_at(build: Path) -> float:
    """When BUILD was finished: its metadata's time, else its directory's, else 0 (long ago)."""
    try:
        return float(json.loads((build / META).read_text())["built"])
    except (OSError, ValueError, KeyError, TypeError):
        with contextlib.suppress(OSError):
            return build.stat().st_mtime
        return 0.0


def remove_tree(path: Path) -> None:
    """Remove PATH even where overlayfs left directories with no permissions (its work dirs)."""

    def make_writable(func: Any, name: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), stat.S_IRWXU)
            os.chmod(name, stat.S_IRWXU)
        with contextlib.suppress(OSError):
            func(name)

    if path.exists():
        shutil.rmtree(path, onerror=make_writable)


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
