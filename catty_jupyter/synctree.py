"""The local side of `jupyter catty sync`: read and write files in a directory without ever
following a symbolic link in it.

Every path is walked one component at a time from a descriptor of the directory's top, each
opened with `O_NOFOLLOW`, so a link planted in the tree (or swapped in while we work) can never
send a write outside it. Files are written to a temporary name beside them and renamed into
place, so a reader sees the old file or the new one, never half of either.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 16


class TreeError(Exception):
    """A path in the directory cannot be read or written as asked; the message says why."""


@dataclass(frozen=True)
class Local:
    """What a path is in the directory now.

    `kind` is `absent`, `file`, `link`, `dir` or `other` (a device, socket or fifo); or
    `under-link` / `under-file` when a parent (`blocker`) is a symbolic link or is not a
    directory. `blob` is the git object id of a file's bytes or a link's target.
    """

    kind: str
    blob: str | None = None
    executable: bool = False
    blocker: str | None = None


def blob_id(data_chunks: Iterator[bytes], size: int, algorithm: str) -> str:
    """The git blob id of SIZE bytes (given in chunks), as `git hash-object --no-filters`."""
    h = hashlib.new(algorithm)
    h.update(b"blob %d\0" % size)
    for chunk in data_chunks:
        h.update(chunk)
    return h.hexdigest()


class LocalTree:
    """One directory, read and written relative to its top, links never followed."""

    def __init__(self, top: Path, algorithm: str = "sha1") -> None:
        self.top = top
        self.algorithm = algorithm
        """The hash of the repository's object format (`sha1` or `sha256`)."""
        try:
            self._fd = os.open(top, _DIR_FLAGS & ~os.O_NOFOLLOW)
        except OSError as exc:
            raise TreeError(f"cannot open {top}: {exc.strerror}") from None

    def close(self) -> None:
        """Let go of the directory."""
        os.close(self._fd)

    # -- reading ------------------------------------------------------------------------------

    def inspect(self, path: str) -> Local:
        """What PATH (relative, `/`-separated) is now."""
        *parents, name = path.split("/")
        fd, blocker = self._walk(parents, create=False)
        if fd is None:
            return blocker or Local("absent")
        try:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return Local("absent")
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(name, dir_fd=fd)
                raw = os.fsencode(target)
                return Local("link", blob_id(iter([raw]), len(raw), self.algorithm))
            if stat.S_ISDIR(st.st_mode):
                return Local("dir")
            if not stat.S_ISREG(st.st_mode):
                return Local("other")
            return Local("file", self._hash_file(fd, name), bool(st.st_mode & stat.S_IXUSR))
        finally:
            os.close(fd)

    def _hash_file(self, dir_fd: int, name: str) -> str:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            return blob_id(iter(lambda: f.read(_CHUNK), b""), size, self.algorithm)

    def files_under(self, path: str) -> list[str] | None:
        """Every non-directory path below the directory PATH (links not followed), or None
        when PATH cannot be read as a directory."""
        *parents, name = path.split("/")
        fd, _blocker = self._walk([*parents, name], create=False)
        if fd is None:
            return None
        found: list[str] = []
        try:
            self._collect(fd, path, found)
        finally:
            os.close(fd)
        return found

    def _collect(self, fd: int, prefix: str, found: list[str]) -> None:
        for entry in os.scandir(fd):
            child = f"{prefix}/{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                sub = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                try:
                    self._collect(sub, child, found)
                finally:
                    os.close(sub)
            else:
                found.append(child)

    def _walk(self, parts: list[str], *, create: bool) -> tuple[int | None, Local | None]:
        """A descriptor of the directory PARTS (made when CREATE), or (None, why not)."""
        fd = os.dup(self._fd)
        for i, part in enumerate(parts):
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                done = "/".join(parts[: i + 1])
                if exc.errno == errno.ENOENT and create:
                    try:
                        os.mkdir(part, 0o777, dir_fd=fd)
                        child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                    except OSError as again:
                        os.close(fd)
                        raise TreeError(
                            f"cannot make the directory {done}: {again.strerror}"
                        ) from None
                else:
                    kind = self._kind(fd, part)
                    os.close(fd)
                    if kind == "absent":
                        return None, None
                    if kind == "link":
                        return None, Local("under-link", blocker=done)
                    if kind != "dir":
                        return None, Local("under-file", blocker=done)
                    raise TreeError(f"cannot open the directory {done}: {exc.strerror}") from None
            os.close(fd)
            fd = child
        return fd, None

    @staticmethod
    def _kind(dir_fd: int, name: str) -> str:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return "absent"
        if stat.S_ISLNK(st.st_mode):
            return "link"
        return "dir" if stat.S_ISDIR(st.st_mode) else "file"

    # -- writing ------------------------------------------------------------------------------

    @contextmanager
    def _parent(self, path: str, *, create: bool) -> Iterator[tuple[int | None, str]]:
        *parents, name = path.split("/")
        fd, why = self._walk(parents, create=create)
        if fd is None and why is not None and why.kind == "under-link":
            raise TreeError(f"{why.blocker} is a symbolic link; not writing {path} through it")
        if fd is None and create:
            raise TreeError(f"{why.blocker if why else path} is in the way of {path}")
        try:
            yield fd, name
        finally:
            if fd is not None:
                os.close(fd)

    def write_file(self, path: str, fill: Callable[[int], None], executable: bool) -> None:
        """Replace PATH (made with its parents if need be) by a file whose bytes FILL writes to
        the descriptor it is given."""
        self._replace(path, lambda fd, temp, old: self._make_file(fd, temp, fill, executable, old))

    def write_link(self, path: str, target: bytes) -> None:
        """Replace PATH (made with its parents if need be) by a symbolic link to TARGET."""
        self._replace(path, lambda fd, temp, _old: os.symlink(target, os.fsencode(temp), dir_fd=fd))

    def _replace(self, path: str, make: Callable[[int, str, int | None], None]) -> None:
        with self._parent(path, create=True) as (fd, name):
            assert fd is not None
            old = self._old_mode(fd, name)
            if old is not None and stat.S_ISDIR(old):
                self._remove_empty_tree(fd, name, path)
                old = None
            temp = f".{name[:100]}.catty-sync-{secrets.token_hex(4)}"
            try:
                make(fd, temp, old)
                os.replace(temp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                with suppress(OSError):
                    os.unlink(temp, dir_fd=fd)
                raise

    @staticmethod
    def _old_mode(fd: int, name: str) -> int | None:
        try:
            return os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return None

    @staticmethod
    def _make_file(
        fd: int, temp: str, fill: Callable[[int], None], executable: bool, old: int | None
    ) -> None:
        # A new file gets git's modes less the umask; a replaced one keeps its own permissions,
        # the execute bits following git's mode.
        out = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                      0o777 if executable else 0o666, dir_fd=fd)  # fmt: skip
        try:
            fill(out)
            if old is not None and stat.S_ISREG(old):
                bits = stat.S_IMODE(old) & ~0o111
                if executable:
                    bits |= (bits & 0o444) >> 2
                os.fchmod(out, bits)
        finally:
            os.close(out)

    def chmod(self, path: str, executable: bool) -> None:
        """Set or clear the execute bits of the regular file PATH (where it may be read)."""
        with self._parent(path, create=False) as (fd, name):
            if fd is None:
                raise TreeError(f"{path} is gone")
            f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            try:
                bits = stat.S_IMODE(os.fstat(f).st_mode) & ~0o111
                os.fchmod(f, bits | ((bits & 0o444) >> 2 if executable else 0))
            finally:
                os.close(f)

    def _remove_empty_tree(self, fd: int, name: str, path: str) -> None:
        """Remove the directory NAME and the empty directories in it; refuse if a file is left."""
        sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
        try:
            for entry in list(os.scandir(sub)):
                if not entry.is_dir(follow_symlinks=False):
                    raise TreeError(f"the directory {path} is in the way and not empty")
                self._remove_empty_tree(sub, entry.name, f"{path}/{entry.name}")
        finally:
            os.close(sub)
        os.rmdir(name, dir_fd=fd)

    def delete(self, path: str) -> bool:
        """Remove the file or link PATH, then its parents that this left empty; False when it
        was not there."""
        with self._parent(path, create=False) as (fd, name):
            if fd is None:
                return False
            try:
                os.unlink(name, dir_fd=fd)
            except FileNotFoundError:
                return False
        parents = path.split("/")[:-1]
        while parents:
            with self._parent("/".join(parents), create=False) as (fd, name):
                if fd is None:
                    return True
                try:
                    os.rmdir(name, dir_fd=fd)
                except OSError:
                    return True  # not empty (or not ours to remove): stop here
            parents.pop()
        return True
