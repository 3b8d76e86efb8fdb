"""Uploaded archives: unpacked faithfully, and nothing in one can reach outside its directory."""

from __future__ import annotations

import io
import os
import stat
import struct
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from catty_jupyter.core.unpack import ArchiveError, detect_format, extract
from catty_jupyter.core.workspace import WorkspaceError, create_from_archive

MiB = 1 << 20

Entry = tuple[str, bytes | str | None, int]
"""(name, data (a link's target for links; None for a directory), mode incl. file type)."""

FILE, DIR, LINK = stat.S_IFREG | 0o644, stat.S_IFDIR | 0o755, stat.S_IFLNK | 0o777


def tar_of(entries: list[Entry], mode: str = "w:gz", hardlinks: dict[str, str] | None = None,
           specials: dict[str, bytes] | None = None) -> bytes:  # fmt: skip
    """A tar (compressed as MODE says) holding ENTRIES, plus hard links NAME -> TARGET and
    special members NAME -> tar type."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as tar:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            info.mode = kind & 0o7777
            if stat.S_ISDIR(kind):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISLNK(kind):
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
                tar.addfile(info)
            else:
                raw = data.encode() if isinstance(data, str) else data or b""
                info.size = len(raw)
                tar.addfile(info, io.BytesIO(raw))
        for name, target in (hardlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.LNKTYPE, target
            tar.addfile(info)
        for name, kind_byte in (specials or {}).items():
            info = tarfile.TarInfo(name)
            info.type = kind_byte
            tar.addfile(info)
    return buf.getvalue()


def zip_of(entries: list[Entry], raw_names: bool = False) -> bytes:
    """A zip holding ENTRIES, made the way Info-ZIP on Unix makes one (modes in the attrs)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data, kind in entries:
            info = zipfile.ZipInfo(name + ("/" if stat.S_ISDIR(kind) and not raw_names else ""))
            info.create_system = 3
            info.external_attr = kind << 16
            raw = data.encode() if isinstance(data, str) else data or b""
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, raw)
    return buf.getvalue()


def write(tmp_path: Path, data: bytes, name: str = "upload.bin") -> Path:
    """The archive as an upload arrives: a file whose name says nothing about its format."""
    path = tmp_path / name
    path.write_bytes(data)
    return path


def refused(tmp_path: Path, data: bytes, reason: str, **limits: int) -> ArchiveError:
    """Unpack DATA, expecting a refusal with REASON that leaves nothing behind."""
    dest = tmp_path / "out" / "ws"
    dest.parent.mkdir(exist_ok=True)
    with pytest.raises(ArchiveError) as caught:
        extract(write(tmp_path, data), dest, max_bytes=limits.pop("max_bytes", 10 * MiB),
                **limits)  # fmt: skip
    assert caught.value.reason == reason, caught.value
    assert not dest.exists()
    assert list((tmp_path / "out").iterdir()) == []  # no staging directory left either
    return caught.value


def tree(root: Path) -> dict[str, str]:
    """Every path under ROOT: file contents, `->target` for links, `/` for directories."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[rel] = "->" + os.readlink(path)
        elif path.is_dir():
            found[rel] = "/"
        else:
            found[rel] = path.read_text()
    return found


PROJECT: list[Entry] = [
    ("proj", None, DIR),
    ("proj/README.md", "# hi\n", FILE),
    ("proj/src/main.py", "print('hi')\n", FILE),
    ("proj/run.sh", "#!/bin/sh\necho run\n", stat.S_IFREG | 0o755),
    ("proj/docs/readme-link", "../README.md", LINK),
]
UNPACKED = {
    "README.md": "# hi\n", "docs": "/", "docs/readme-link": "->../README.md",
    "run.sh": "#!/bin/sh\necho run\n", "src": "/", "src/main.py": "print('hi')\n",
}  # fmt: skip


@pytest.mark.parametrize(("mode", "kind"), [
    ("w:gz", "tar.gz"), ("w:", "tar"), ("w:bz2", "tar.bz2"), ("w:xz", "tar.xz"),
])  # fmt: skip
def test_a_tar_of_a_project_folder_unpacks_without_its_folder(
    tmp_path: Path, mode: str, kind: str
) -> None:
    archive = write(tmp_path, tar_of(PROJECT, mode))
    assert detect_format(archive) == kind  # by content: the name says nothing
    out = extract(archive, tmp_path / "ws", max_bytes=MiB)
    assert tree(tmp_path / "ws") == UNPACKED
    assert os.access(tmp_path / "ws" / "run.sh", os.X_OK)
    assert not os.access(tmp_path / "ws" / "README.md", os.X_OK)
    assert (out.format, out.stripped, out.files) == (kind, "proj", 3)
    assert out.bytes == sum(len(str(d)) for _n, d, k in PROJECT if stat.S_ISREG(k))


def test_a_zip_unpacks_with_its_links_and_modes(tmp_path: Path) -> None:
    archive = write(tmp_path, zip_of([*PROJECT, ("__MACOSX/proj/._README.md", "junk", FILE)]))
    out = extract(archive, tmp_path / "ws", max_bytes=MiB)
    assert tree(tmp_path / "ws") == UNPACKED  # Finder's __MACOSX copies are left out
    assert os.access(tmp_path / "ws" / "run.sh", os.X_OK)
    assert (out.format, out.stripped, out.skipped) == ("zip", "proj", 1)


def test_several_top_level_entries_are_kept_as_they_are(tmp_path: Path) -> None:
    entries: list[Entry] = [("a/one.txt", "1", FILE), ("b.txt", "2", FILE)]
    out = extract(write(tmp_path, zip_of(entries)), tmp_path / "ws", max_bytes=MiB)
    assert tree(tmp_path / "ws") == {"a": "/", "a/one.txt": "1", "b.txt": "2"}
    assert out.stripped is None
    # A single top-level *file* is not a folder to drop.
    extract(write(tmp_path, tar_of([("only.txt", "x", FILE)])), tmp_path / "ws2", max_bytes=MiB)
    assert tree(tmp_path / "ws2") == {"only.txt": "x"}


def test_an_existing_empty_destination_is_filled(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    extract(write(tmp_path, tar_of(PROJECT)), tmp_path / "ws", max_bytes=MiB)
    assert tree(tmp_path / "ws") == UNPACKED


@pytest.mark.parametrize("make", [tar_of, zip_of])
@pytest.mark.parametrize("name", ["../evil.txt", "proj/../../evil.txt", "./a/../../evil.txt"])
def test_zip_slip_is_refused_naming_the_member(tmp_path: Path, make: object, name: str) -> None:
    data = make([("proj/ok.txt", "fine", FILE), (name, "pwned", FILE)])  # type: ignore[operator]
    err = refused(tmp_path, data, "unsafe_archive")
    assert err.member == name and name in str(err) and "leaves the destination" in str(err)
    assert not list(tmp_path.rglob("evil.txt"))


def test_a_dot_dot_that_stays_inside_is_fine(tmp_path: Path) -> None:
    extract(write(tmp_path, tar_of([("a/../b.txt", "b", FILE)])), tmp_path / "ws", max_bytes=MiB)
    assert tree(tmp_path / "ws") == {"b.txt": "b"}


def test_backslashes_in_a_zip_are_separators_so_they_cannot_climb(tmp_path: Path) -> None:
    err = refused(tmp_path, zip_of([("..\\..\\evil.txt", "pwned", FILE)]), "unsafe_archive")
    assert err.member == "../../evil.txt"


@pytest.mark.parametrize("make", [tar_of, zip_of])
def test_absolute_paths_are_refused(tmp_path: Path, make: object) -> None:
    target = tmp_path / "abs-evil.txt"
    data = make([(str(target), "pwned", FILE)])  # type: ignore[operator]
    err = refused(tmp_path, data, "unsafe_archive")
    assert "absolute" in str(err)
    assert not target.exists()


@pytest.mark.parametrize("make", [tar_of, zip_of])
@pytest.mark.parametrize("target", ["../../outside", "/etc", "a/../../.."])
def test_a_link_out_then_a_file_through_it_is_refused(
    tmp_path: Path, make: object, target: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    data = make([("escape", target, LINK), ("escape/pwned.txt", "pwned", FILE)])  # type: ignore[operator]
    err = refused(tmp_path, data, "unsafe_archive")
    assert err.member == "escape" and target in str(err)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("make", [tar_of, zip_of])
def test_nothing_is_written_through_a_link_even_one_pointing_inside(
    tmp_path: Path, make: object
) -> None:
    data = make([("sub", None, DIR), ("inside", "sub", LINK), ("inside/f.txt", "x", FILE)])  # type: ignore[operator]
    err = refused(tmp_path, data, "unsafe_archive")
    assert err.member == "inside/f.txt" and "through the link 'inside'" in str(err)


@pytest.mark.parametrize("make", [tar_of, zip_of])
def test_a_link_chain_that_resolves_outside_is_refused(tmp_path: Path, make: object) -> None:
    # Each target alone looks inside; followed through `d/up` (the root), `..` leaves it.
    data = make([("d/up", "..", LINK), ("escape", "d/up/..", LINK)])  # type: ignore[operator]
    err = refused(tmp_path, data, "unsafe_archive")
    assert err.member == "escape"


def test_a_link_that_only_dropping_the_top_folder_sends_outside_is_refused(
    tmp_path: Path,
) -> None:
    # Inside the archive, proj/l -> ../proj/x stays inside; without `proj/` it would not.
    data = zip_of([("proj/x", "x", FILE), ("proj/l", "../proj/x", LINK)])
    err = refused(tmp_path, data, "unsafe_archive")
    assert err.member == "proj/l" and "resolves outside" in str(err)


def test_hard_links_are_copies_of_earlier_files_and_may_not_leave(tmp_path: Path) -> None:
    data = tar_of([("a.txt", "data", FILE)], hardlinks={"b.txt": "a.txt"})
    extract(write(tmp_path, data), tmp_path / "ws", max_bytes=MiB)
    assert tree(tmp_path / "ws") == {"a.txt": "data", "b.txt": "data"}
    assert os.stat(tmp_path / "ws" / "b.txt").st_nlink == 1

    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    for target in ("../secret.txt", str(secret), "../../../../../../etc/passwd"):
        err = refused(tmp_path, tar_of([("a.txt", "x", FILE)], hardlinks={"h": target}),
                      "unsafe_archive")  # fmt: skip
        assert err.member == "h" and "hard link" in str(err)
    err = refused(tmp_path, tar_of([], hardlinks={"h": "nowhere.txt"}), "bad_archive")
    assert "not a file earlier in the archive" in str(err)


@pytest.mark.parametrize(("kind", "word"), [
    (tarfile.CHRTYPE, "device"), (tarfile.BLKTYPE, "device"), (tarfile.FIFOTYPE, "fifo"),
])  # fmt: skip
def test_devices_and_fifos_are_refused(tmp_path: Path, kind: bytes, word: str) -> None:
    err = refused(tmp_path, tar_of([("ok.txt", "x", FILE)], specials={"dev/x": kind}),
                  "unsafe_archive")  # fmt: skip
    assert err.member == "dev/x" and word in str(err)
    err = refused(tmp_path, zip_of([("pipe", "", stat.S_IFIFO | 0o644)]), "unsafe_archive")
    assert err.member == "pipe"


@pytest.mark.parametrize("make", [tar_of, zip_of])
def test_a_bomb_stops_at_the_byte_cap(tmp_path: Path, make: object) -> None:
    bomb = make([("zeros.bin", b"\0" * (8 * MiB), FILE)])  # type: ignore[operator]
    assert len(bomb) < 64 * 1024
    err = refused(tmp_path, bomb, "too_large", max_bytes=MiB)
    assert "1.0 MiB" in str(err) and "max_workspace_bytes" in str(err)
    # Many members each under the cap are counted together.
    many = make([(f"f{i}.bin", b"\0" * (200 * 1024), FILE) for i in range(8)])  # type: ignore[operator]
    refused(tmp_path, many, "too_large", max_bytes=MiB)


def test_a_zip_whose_header_understates_a_size_is_refused(tmp_path: Path) -> None:
    data = bytearray(zip_of([("big.bin", b"\0" * (4 * MiB), FILE)]))
    for sig, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.index(sig) + offset
        data[at : at + 4] = struct.pack("<I", 100)  # "100 bytes", it says
    err = refused(tmp_path, bytes(data), "bad_archive", max_bytes=MiB)
    assert err.member == "big.bin"


@pytest.mark.parametrize("make", [tar_of, zip_of])
def test_the_member_count_is_capped(tmp_path: Path, make: object) -> None:
    data = make([(f"f{i}", "", FILE) for i in range(20)])  # type: ignore[operator]
    err = refused(tmp_path, data, "too_many_files", max_members=10)
    assert "10" in str(err)


@pytest.mark.parametrize("data", [
    b"", b"just some text\n" * 100, b"\x1f\x8b" + b"\0" * 600,
    tar_of([("f", os.urandom(50_000), FILE)])[:30_000],
    zip_of([("f", os.urandom(50_000), FILE)])[:30_000] + b"\0" * 600,
])  # fmt: skip
def test_what_is_not_a_whole_archive_is_a_bad_archive(tmp_path: Path, data: bytes) -> None:
    err = refused(tmp_path, data, "bad_archive")
    assert "zip" in str(err) or "damaged" in str(err)


def test_a_gzip_that_holds_no_tar_is_a_bad_archive(tmp_path: Path) -> None:
    import gzip

    err = refused(tmp_path, gzip.compress(b"a,b\n1,2\n" * 100), "bad_archive")
    assert "damaged or unreadable" in str(err)


def test_a_name_that_is_both_file_and_directory_is_refused(tmp_path: Path) -> None:
    err = refused(tmp_path, tar_of([("x", "file", FILE), ("x/y", "deeper", FILE)]),
                  "bad_archive")  # fmt: skip
    assert "both a file and a directory" in str(err)


def test_a_later_member_replaces_an_earlier_file_as_tar_does(tmp_path: Path) -> None:
    data = tar_of([("a.txt", "old", FILE), ("a.txt", "new", FILE)])
    extract(write(tmp_path, data), tmp_path / "ws", max_bytes=MiB)
    assert tree(tmp_path / "ws") == {"a.txt": "new"}


# -- workspaces from archives ------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def test_a_workspace_from_an_archive_is_one_commit_on_the_session_branch(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "filter-ran"
    entries: list[Entry] = [
        *PROJECT,
        ("proj/.gitignore", "*.log\n", FILE),
        ("proj/debug.log", "kept\n", FILE),
        # An uploaded repository's config must never reach git: this filter would run a command.
        ("proj/.git/config", f'[filter "x"]\n\tclean = touch {marker}\n', FILE),
        ("proj/.gitattributes", "* filter=x\n", FILE),
        ("proj/vendor/.GIT/HEAD", "ref: refs/heads/main\n", FILE),
    ]
    archive = write(tmp_path, zip_of(entries), "proj.zip")
    ws = create_from_archive(archive, tmp_path / "ws", "brave-tiger-1234", name="proj.zip",
                             max_bytes=MiB)  # fmt: skip
    assert ws.branch == "catty/brave-tiger-1234" and ws.source == "the uploaded archive proj.zip"
    assert git(ws.path, "symbolic-ref", "HEAD") == "refs/heads/catty/brave-tiger-1234"
    assert git(ws.path, "rev-parse", "HEAD") == ws.base_commit
    assert git(ws.path, "log", "--format=%s") == "catty: uploaded archive proj.zip"
    assert git(ws.path, "status", "--porcelain") == ""
    committed = set(git(ws.path, "ls-files").splitlines())
    assert committed == {".gitattributes", ".gitignore", "README.md", "debug.log",
                         "docs/readme-link", "run.sh", "src/main.py"}  # fmt: skip
    assert not marker.exists() and not (ws.path / "vendor").exists()
    assert "filter" not in (ws.path / ".git" / "config").read_text()


def test_a_refused_archive_leaves_no_workspace(tmp_path: Path) -> None:
    archive = write(tmp_path, tar_of([("../evil", "x", FILE)]))
    with pytest.raises(WorkspaceError) as caught:
        create_from_archive(archive, tmp_path / "s" / "ws", "brave-tiger-1234", name="a.tgz",
                            max_bytes=MiB)  # fmt: skip
    assert caught.value.reason == "unsafe_archive" and "../evil" in str(caught.value)
    assert list((tmp_path / "s").iterdir()) == []
    bomb = write(tmp_path, tar_of([("z", b"\0" * (2 * MiB), FILE)]))
    with pytest.raises(WorkspaceError) as caught:
        create_from_archive(bomb, tmp_path / "s" / "ws", "brave-tiger-1234", name="a.tgz",
                            max_bytes=MiB)  # fmt: skip
    assert caught.value.reason == "too_large"
    assert list((tmp_path / "s").iterdir()) == []
