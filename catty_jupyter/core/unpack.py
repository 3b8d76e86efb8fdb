"""Unpack an uploaded .zip or .tar (plain, gzip, bzip2 or xz) into a new directory, safely.

Nothing in an archive is trusted: every member's path must stay inside the destination (no
absolute paths, no `..` that leaves it, nothing written through a link), links must point inside
it, devices and fifos are refused, and the bytes actually written (never a header's claim) and
the number of members are capped. A refused or broken archive leaves nothing behind. When every
member sits under one top-level directory (a zipped project folder), that directory is dropped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

FORMATS = "zip, tar, tar.gz (tgz), tar.bz2 and tar.xz"
"""What `extract` understands, for messages."""
MAX_MEMBERS = 100_000
"""The default cap on the number of members (files, directories, links) of one archive."""
CHUNK = 1 << 20
LINK_TARGET_MAX = 4096

_T = TypeVar("_T")
Parts = tuple[str, ...]
"""A member's path inside the archive, split and normalised (never empty, never `..`)."""


class ArchiveError(Exception):
    """An archive cannot be unpacked: `reason` is `bad_archive`, `unsafe_archive`, `too_large`
    or `too_many_files`; `member` names the entry at fault, when one is."""

    def __init__(self, message: str, reason: str, member: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.member = member


@dataclass(frozen=True)
class Unpacked:
    """What `extract` made."""

    path: Path
    format: str
    files: int
    bytes: int
    stripped: str | None
    """The single top-level directory that was dropped, if there was one."""
    skipped: int
    """Members left out by the `skip` rule."""


def macos_metadata(parts: Parts) -> bool:
    """True for the `__MACOSX/` resource-fork copies macOS Finder adds to a zip."""
    return parts[0] == "__MACOSX"


def detect_format(archive: Path) -> str:
    """The archive's format from its content: `zip`, `tar`, `tar.gz`, `tar.bz2` or `tar.xz`."""
    try:
        with open(archive, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise ArchiveError(f"cannot read the archive: {exc.strerror}", "bad_archive") from None
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    if head.startswith(b"BZh"):
        return "tar.bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "tar.xz"
    if head[257:262] == b"ustar":
        return "tar"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")) or zipfile.is_zipfile(archive):
        return "zip"  # is_zipfile also finds self-extracting zips, whose data follows a stub
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise ArchiveError(
            f"zstd-compressed archives are not supported; upload one of: {FORMATS}",
            "bad_archive",
        )
    if len(head) == 512 and tarfile.is_tarfile(archive):
        return "tar"  # an old (v7) tar without the ustar magic
    raise ArchiveError(f"this is not an archive catty can unpack; upload one of: {FORMATS}",
                       "bad_archive")  # fmt: skip


def extract(
    archive: Path, dest: Path, *, max_bytes: int, max_members: int = MAX_MEMBERS,
    skip: Callable[[Parts], bool] = macos_metadata,
) -> Unpacked:  # fmt: skip
    """Unpack ARCHIVE into DEST (absent or empty); ArchiveError, and nothing left, on refusal.

    Members for which SKIP is true are left out (by default macOS Finder's `__MACOSX/`).
    """
    dest = Path(dest).absolute()
    if dest.is_symlink() or (dest.exists() and (not dest.is_dir() or any(dest.iterdir()))):
        raise FileExistsError(f"{dest} exists and is not an empty directory")
    kind = detect_format(archive)
    existed = dest.exists()
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Everything lands in a staging directory beside DEST first, so a refusal halfway through
    # leaves nothing, and the single-top-directory check sees the whole result.
    staging = Path(tempfile.mkdtemp(prefix=".catty-unpack-", dir=dest.parent))
    try:
        writer = _Writer(staging, max_bytes, max_members, skip)
        if kind == "zip":
            _unzip(archive, writer)
        else:
            _untar(archive, writer)
        top = _single_top(staging)
        if existed:
            dest.rmdir()  # empty, checked above; rename needs the name free
        (staging / top if top else staging).rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    try:
        # Links are judged where they finally are: dropping the top directory moves them.
        writer.check_links(dest, strip=1 if top else 0)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        if existed:
            dest.mkdir()
        raise
    return Unpacked(dest, kind, writer.files, writer.total, top, writer.skipped)


def _single_top(staging: Path) -> str | None:
    entries = list(staging.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0].name
    return None


@contextmanager
def _reading(member: str | None, what: str) -> Iterator[None]:
    """Turn a decoder's or parser's complaint into a bad_archive naming the member."""
    try:
        yield
    except ArchiveError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError,
            NotImplementedError, RuntimeError) as exc:  # fmt: skip
        where = f" at {member}" if member else ""
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ArchiveError(f"the {what} is damaged or unreadable{where}: {detail}",
                           "bad_archive", member) from None  # fmt: skip


def _opened(what: str, opener: Callable[[], _T]) -> _T:
    with _reading(None, what):
        return opener()


def _untar(archive: Path, writer: _Writer) -> None:
    data_filter = getattr(tarfile, "data_filter", None)
    # Stream mode reads members in order and never holds the whole index in memory.
    with _opened("tar archive", lambda: tarfile.open(archive, mode="r|*")) as tar:
        while True:
            with _reading(None, "tar archive"):
                member = tar.next()
            if member is None:
                return
            name = member.name
            parts = writer.admit(name, member.isdir())
            if parts is None:
                continue
            if member.isreg():
                writer.check_size(name, member.size)
                with _reading(name, "tar archive"):
                    src = tar.extractfile(member)
                assert src is not None
                writer.file(parts, name, src, executable=bool(member.mode & 0o111))
            elif member.isdir():
                writer.directory(parts, name)
            elif member.issym():
                writer.symlink(parts, name, member.linkname)
            elif member.islnk():
                writer.hardlink(parts, name, member.linkname)
            else:
                kind = "device" if member.ischr() or member.isblk() else "fifo" if (
                    member.isfifo()) else "special file"  # fmt: skip
                raise _unsafe(name, f"it is a {kind}, which a workspace cannot hold")
            if data_filter is not None:
                # Python's own "data" rules as a second opinion, once ours have passed.
                try:
                    data_filter(member, str(writer.root))
                except tarfile.FilterError as exc:
                    raise _unsafe(name, str(exc)) from None


def _unzip(archive: Path, writer: _Writer) -> None:
    with _opened("zip archive", lambda: zipfile.ZipFile(archive)) as zf:
        infos = zf.infolist()
        if len(infos) > writer.max_members:
            raise writer.too_many(len(infos))
        # Central-directory sizes are a claim, so they can only refuse early, never admit:
        # the bytes written are counted as they come.
        writer.check_size(None, sum(i.file_size for i in infos))
        for info in infos:
            # APPNOTE says "/", but some Windows tools write "\"; read them as separators, so a
            # "..\\" cannot slip past as a file name.
            name = info.filename.replace("\\", "/")
            mode = info.external_attr >> 16 if info.create_system == 3 else 0
            parts = writer.admit(name, info.is_dir())
            if parts is None:
                continue
            if info.flag_bits & 0x1:
                raise ArchiveError(f"{name} is encrypted; upload an archive without a password",
                                   "bad_archive", name)  # fmt: skip
            if info.is_dir():
                writer.directory(parts, name)
            elif stat.S_ISLNK(mode):
                with _reading(name, "zip archive"), zf.open(info) as link:
                    target = link.read(LINK_TARGET_MAX + 1)
                if len(target) > LINK_TARGET_MAX:
                    raise ArchiveError(f"the link {name} has an over-long target",
                                       "bad_archive", name)  # fmt: skip
                writer.symlink(parts, name, os.fsdecode(target))
            elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):
                raise _unsafe(name, "it is a device or fifo, which a workspace cannot hold")
            else:
                with _reading(name, "zip archive"):
                    src = zf.open(info)
                with src:
                    writer.file(parts, name, src, executable=bool(mode & 0o111))


def _unsafe(member: str, why: str) -> ArchiveError:
    return ArchiveError(f"the archive member {member!r} is refused: {why}", "unsafe_archive",
                        member)  # fmt: skip


def split_member(name: str) -> Parts | None:
    """NAME as path parts inside the destination (None for the root itself); `unsafe_archive`
    for an absolute path or a `..` that climbs out."""
    if name.startswith("/"):
        raise _unsafe(name, "its path is absolute")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise _unsafe(name, "its path leaves the destination (..)")
            parts.pop()
        else:
            parts.append(part)
    return tuple(parts) or None


class _Writer:
    """Creates members under ROOT, never through a link, counting bytes and members."""

    def __init__(self, root: Path, max_bytes: int, max_members: int,
                 skip: Callable[[Parts], bool]) -> None:  # fmt: skip
        self.root = root
        self.max_bytes = max_bytes
        self.max_members = max_members
        self.skip = skip
        self.total = 0
        self.members = 0
        self.files = 0
        self.skipped = 0
        self._dirs: set[Parts] = {()}
        self._regular: set[Parts] = set()
        self._links: dict[Parts, str] = {}

    def too_many(self, count: int) -> ArchiveError:
        """The refusal for an archive with over `max_members` members."""
        return ArchiveError(
            f"the archive has {'over ' if count > self.max_members else ''}{count} members, "
            f"over the cap of {self.max_members}; upload fewer files",
            "too_many_files",
        )

    def check_size(self, member: str | None, more: int) -> None:
        """Refuse when MORE bytes would take the total over the cap."""
        if self.total + more > self.max_bytes:
            where = f" (at {member})" if member else ""
            raise ArchiveError(
                f"the archive unpacks to over {human_size(self.max_bytes)}{where}, over the cap "
                "(CattyExtension.max_workspace_bytes); upload less or raise the cap",
                "too_large", member,
            )  # fmt: skip

    def admit(self, name: str, is_dir: bool) -> Parts | None:
        """Count the member and check its path; None when it is to be left out (or the root)."""
        self.members += 1
        if self.members > self.max_members:
            raise self.too_many(self.members)
        if "\x00" in name:
            raise _unsafe(name, "its name holds a NUL byte")
        parts = split_member(name)
        if parts is None:
            if is_dir:
                return None
            raise ArchiveError(f"the archive member {name!r} has no file name", "bad_archive",
                               name)  # fmt: skip
        if self.skip(parts):
            self.skipped += 1
            return None
        return parts

    def directory(self, parts: Parts, name: str) -> None:
        """Make the directory PARTS (and its parents)."""
        self._mkdirs(parts, name)

    def file(self, parts: Parts, name: str, src: IO[bytes], *, executable: bool) -> None:
        """Write SRC to PARTS, counting its bytes as they are written."""
        fd = self._create(parts, name, executable)
        try:
            while True:
                with _reading(name, "archive"):
                    chunk = src.read(CHUNK)
                if not chunk:
                    break
                self.check_size(name, len(chunk))
                self.total += len(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        self._regular.add(parts)
        self.files += 1

    def symlink(self, parts: Parts, name: str, target: str) -> None:
        """Make PARTS a link to TARGET, which must stay inside the destination."""
        if not target or "\x00" in target:
            raise ArchiveError(f"the link {name!r} has no target", "bad_archive", name)
        if target.startswith("/"):
            raise _unsafe(name, f"it links to the absolute path {target!r}")
        try:
            split_member("/".join([*parts[:-1], target]))
        except ArchiveError:
            raise _unsafe(name, f"it links to {target!r}, outside the destination") from None
        parent = self._mkdirs(parts[:-1], name)
        self._replace(parent, parts, name)
        self._os(name, os.symlink, target, parent / parts[-1])
        self._links[parts] = name

    def hardlink(self, parts: Parts, name: str, target: str) -> None:
        """Make PARTS a copy of the file TARGET, an earlier member of the archive."""
        if target.startswith("/"):
            raise _unsafe(name, f"it is a hard link to the absolute path {target!r}")
        try:
            source = split_member(target)
        except ArchiveError:
            raise _unsafe(
                name, f"it is a hard link to {target!r}, outside the destination"
            ) from None
        if source is None or source not in self._regular:
            raise ArchiveError(f"the hard link {name!r} points at {target!r}, which is not a "
                               "file earlier in the archive", "bad_archive", name)  # fmt: skip
        # A copy, not a link: the bytes count against the cap like any other file's.
        fd = self._os(name, os.open, self.root.joinpath(*source), os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as src:
            mode = os.fstat(src.fileno()).st_mode
            self.file(parts, name, src, executable=bool(mode & 0o111))

    def check_links(self, root: Path, strip: int) -> None:
        """Refuse any link in ROOT (where the members now are, their first STRIP parts gone)
        that, resolved as the system will, through other links, points outside ROOT."""
        real_root = os.path.realpath(root)
        for parts, name in self._links.items():
            link = root.joinpath(*parts[strip:])
            resolved = os.path.realpath(link)
            if resolved != real_root and not resolved.startswith(real_root + os.sep):
                raise _unsafe(name, f"it links to {os.readlink(link)!r}, which resolves outside "
                                    "the destination")  # fmt: skip

    # -- filesystem steps ---------------------------------------------------------------------

    def _mkdirs(self, parts: Parts, name: str) -> Path:
        """The directory PARTS, made as needed with its parents; never reached through a link."""
        path = self.root
        for depth in range(1, len(parts) + 1):
            path = path / parts[depth - 1]
            prefix = parts[:depth]
            if prefix in self._dirs:
                continue
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                self._os(name, os.mkdir, path, 0o755)
                self._dirs.add(prefix)
                continue
            if stat.S_ISLNK(info.st_mode):
                raise _unsafe(name, f"it would be written through the link {'/'.join(prefix)!r}")
            raise ArchiveError(f"{'/'.join(prefix)!r} is both a file and a directory in the "
                               "archive", "bad_archive", name)  # fmt: skip
        return path

    def _replace(self, parent: Path, parts: Parts, name: str) -> None:
        """Make room for PARTS: a later member replaces an earlier file or link (as tar does),
        never a directory."""
        if parts in self._dirs:
            raise ArchiveError(f"{'/'.join(parts)!r} is both a directory and a file in the "
                               "archive", "bad_archive", name)  # fmt: skip
        with contextlib.suppress(FileNotFoundError):
            os.unlink(parent / parts[-1])  # unlinks a link itself, never what it points at
        self._regular.discard(parts)
        self._links.pop(parts, None)

    def _create(self, parts: Parts, name: str, executable: bool) -> int:
        parent = self._mkdirs(parts[:-1], name)
        self._replace(parent, parts, name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        return self._os(name, os.open, parent / parts[-1], flags, 0o755 if executable else 0o644)

    def _os(self, name: str, call: Callable[..., _T], *args: object) -> _T:
        """Run a filesystem call; a name the system cannot hold is the archive's fault."""
        try:
            return call(*args)
        except OSError as exc:
            if exc.errno in (errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL, errno.EEXIST):
                raise ArchiveError(f"the archive member {name!r} cannot be created here: "
                                   f"{exc.strerror}", "bad_archive", name) from None  # fmt: skip
            raise


def human_size(size: int) -> str:
    """SIZE in bytes as people read it (`512 B`, `3.2 MiB`)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
