"""Sync's decisions and its local writes, without a server: a real git store for the session's
files, a real directory for the user's."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from catty_jupyter.syncplan import Change, Plan, SyncConflict, SyncResult
from catty_jupyter.synctree import LocalTree, TreeError


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An empty bare repository to hold blobs."""
    repo = tmp_path / "store.git"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    return repo


def blob(store: Path, data: bytes) -> str:
    """Write DATA into STORE; its blob id."""
    return subprocess.run(["git", "-C", str(store), "hash-object", "-w", "--stdin"], input=data,
                          capture_output=True, check=True).stdout.decode().strip()  # fmt: skip


def run(top: Path, store: Path, changes: list[Change], force: bool = False,
        ours: dict[str, str | None] | None = None) -> SyncResult:  # fmt: skip
    """Check and apply CHANGES to TOP."""
    tree = LocalTree(top)
    try:
        plan = Plan(tree, changes, {} if ours is None else ours, force=force, label="s-1")
        plan.check()
        result = SyncResult("tip")
        plan.apply(result, store)
        return result
    finally:
        tree.close()


def test_local_hashes_are_gits(tmp_path: Path, store: Path) -> None:
    (tmp_path / "f").write_bytes(b"some\r\nbytes\0")
    (tmp_path / "l").symlink_to("some/target")
    tree = LocalTree(tmp_path)
    try:
        assert tree.inspect("f").blob == blob(store, b"some\r\nbytes\0")
        assert tree.inspect("l").kind == "link"
        assert tree.inspect("l").blob == blob(store, b"some/target")
        assert tree.inspect("missing/x").kind == "absent"
        assert tree.inspect("f/x").kind == "under-file"
    finally:
        tree.close()


def test_writes_never_go_through_a_link(tmp_path: Path) -> None:
    top, outside = tmp_path / "top", tmp_path / "outside"
    top.mkdir()
    outside.mkdir()
    (top / "dir").symlink_to(outside)
    (top / "file").symlink_to(outside / "victim")
    tree = LocalTree(top)
    try:
        with pytest.raises(TreeError, match="symbolic link"):
            tree.write_file("dir/new", lambda fd: os.write(fd, b"x") and None, executable=False)
        assert tree.inspect("dir/new").kind == "under-link"
        tree.write_file("file", lambda fd: os.write(fd, b"mine") and None, executable=True)
    finally:
        tree.close()
    assert list(outside.iterdir()) == []
    assert not (top / "file").is_symlink() and (top / "file").read_bytes() == b"mine"
    assert os.access(top / "file", os.X_OK)


def test_deletes_prune_emptied_directories_only(tmp_path: Path, store: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "x").write_text("x")
    (tmp_path / "a" / "keep").write_text("k")
    x = blob(store, b"x")
    result = run(tmp_path, store, [Change("a/b/x", 0o100644, 0, x, None)])
    assert result.deleted == ["a/b/x"]
    assert not (tmp_path / "a" / "b").exists() and (tmp_path / "a" / "keep").exists()


def test_a_directory_becomes_a_file_and_a_file_a_directory(tmp_path: Path, store: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a")
    (tmp_path / "notes").write_text("n")
    a, n, f = blob(store, b"a"), blob(store, b"n"), blob(store, b"f")
    changes = [Change("data/a.txt", 0o100644, 0, a, None), Change("data", 0, 0o100644, None, f),
               Change("notes", 0o100644, 0, n, None),
               Change("notes/n.txt", 0, 0o100755, None, n)]  # fmt: skip
    result = run(tmp_path, store, changes)
    assert (tmp_path / "data").read_text() == "f"
    assert (tmp_path / "notes" / "n.txt").read_text() == "n"
    assert os.access(tmp_path / "notes" / "n.txt", os.X_OK)
    assert sorted(result.added) == ["data", "notes/n.txt"]
    assert sorted(result.deleted) == ["data/a.txt", "notes"]


def test_conflicts_and_refusals_stop_everything(tmp_path: Path, store: Path) -> None:
    (tmp_path / "edited").write_text("mine")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "own").write_text("own")
    base, new = blob(store, b"base"), blob(store, b"new")
    changes = [Change("edited", 0o100644, 0o100644, base, new),
               Change("dir", 0, 0o100644, None, new),
               Change("free", 0, 0o100644, None, new)]  # fmt: skip
    for force in (False, True):
        with pytest.raises(SyncConflict) as info:
            run(tmp_path, store, changes, force=force)
        assert info.value.paths == (["dir"] if force else ["dir", "edited"])
        assert not (tmp_path / "free").exists()
    assert "edited: changed here" in str(run_error(tmp_path, store, changes))
    result = run(tmp_path, store, changes[::2], force=True)
    assert (tmp_path / "edited").read_text() == "new" and result.modified == ["edited"]


def run_error(top: Path, store: Path, changes: list[Change]) -> SyncConflict:
    """The refusal of CHANGES."""
    with pytest.raises(SyncConflict) as info:
        run(top, store, changes)
    return info.value


def test_a_file_an_earlier_round_wrote_follows_the_session(tmp_path: Path, store: Path) -> None:
    base, first, second = blob(store, b"base"), blob(store, b"first"), blob(store, b"second")
    (tmp_path / "f").write_text("first")
    ours: dict[str, str | None] = {"f": first}
    run(tmp_path, store, [Change("f", 0o100644, 0o100644, base, second)], ours=ours)
    assert (tmp_path / "f").read_text() == "second" and ours == {"f": second}
    # The session put it back as it was: so does sync, and the file is no longer ours.
    run(tmp_path, store, [Change("f", 0o100644, 0o100644, base, base, undone=True)], ours=ours)
    assert (tmp_path / "f").read_text() == "base" and ours == {}
    # Edited here after we wrote it: a later version of the session's is a conflict.
    ours["f"] = base
    (tmp_path / "f").write_text("edited")
    assert run_error(tmp_path, store, [Change("f", 0o100644, 0o100644, first, second)]).paths == [
        "f"]  # fmt: skip
