"""Where a session's workspace comes from: an uploaded archive, or a repository with no remote."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from catty_jupyter.server.uploads import Uploads
from tests.conftest import git, results

Upload = Callable[..., Awaitable[tuple[int, Any]]]

FILES = {"proj/README.md": "# uploaded\n", "proj/src/main.py": "print('from the archive')\n"}


def tar_gz(files: dict[str, str | bytes]) -> bytes:
    """A .tar.gz holding FILES."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode() if isinstance(text, str) else text
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_of(files: dict[str, str]) -> bytes:
    """A .zip holding FILES."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


@pytest.fixture
def upload(jp_fetch: Any) -> Upload:
    """POST an archive to catty/v1/uploads; returns (status, decoded JSON body)."""

    async def post(data: bytes | None, name: str | None = "proj.tar.gz", **kwargs: Any) -> tuple[int, Any]:  # fmt: skip
        if data is not None:
            kwargs["body"] = data
        resp = await jp_fetch("catty", "v1", "uploads", method="POST", raise_error=False,
                              params={"name": name} if name else {}, **kwargs)  # fmt: skip
        return resp.code, json.loads(resp.body) if resp.body else None

    return post


@pytest.fixture
def catty_config(request: Any) -> dict[str, Any]:
    """Small caps for the tests of caps."""
    if "cap" in request.node.name:
        return {"max_upload_bytes": 100_000, "max_workspace_bytes": 200_000}
    return {}


def uploads_dir(tmp_path: Path) -> list[str]:
    """What is left under data_dir/uploads."""
    root = tmp_path / "catty-data" / "uploads"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def output(evs: list[dict[str, Any]]) -> str:
    """Everything the shell printed."""
    return "".join(e["payload"].get("output", "") for e in evs if e["kind"] == "tool_result")


@pytest.mark.parametrize(("name", "data"), [
    ("proj.tar.gz", tar_gz(FILES)), ("Project Folder.zip", zip_of(FILES)),
])  # fmt: skip
async def test_a_session_from_an_uploaded_archive_sees_its_files(
    api: Any, upload: Upload, session_until: Any, tmp_path: Path, name: str, data: bytes
) -> None:
    code, up = await upload(data, name=f"C:\\Users\\me\\{name}")
    assert code == 201, up
    assert up == {**up, "name": name, "size": len(data)} and len(up["upload"]) == 32
    assert up["format"] == ("zip" if name.endswith(".zip") else "tar.gz")

    code, s = await api("POST", "sessions", {
        "agent": "shell", "archive": up["upload"],
        "prompt": "ls -A1; cat src/main.py; git log --format=%s; git status --porcelain",
    })  # fmt: skip
    assert code == 201, s
    assert s["source"] == f"the uploaded archive {name}" and s["branch"] == f"catty/{s['label']}"
    assert uploads_dir(tmp_path) == []  # used up
    evs = await session_until(s["label"], lambda e: results(e) >= 1, what="the first command")
    created = next(e for e in evs if e["kind"] == "system" and "created" in e["payload"]["message"])
    assert f"the uploaded archive {name}" in created["payload"]["message"]
    out = output(evs)
    assert out.split("\n")[:3] == [".git", "README.md", "src"]
    assert "print('from the archive')" in out and f"catty: uploaded archive {name}" in out

    code, err = await api("POST", "sessions", {"agent": "shell", "archive": up["upload"]})
    assert code == 404 and err["reason"] == "not_found" and "upload" in err["message"]
    await api("POST", f"sessions/{s['label']}/stop")


async def test_uploads_over_their_cap_and_archives_over_theirs_get_413_and_leave_nothing(
    api: Any, upload: Upload, tmp_path: Path, make_repo: Any
) -> None:
    # Declared too large: refused without keeping a byte.
    code, err = await upload(os.urandom(300_000))
    assert code == 413 and err["reason"] == "too_large" and "max_upload_bytes" in err["message"]
    assert uploads_dir(tmp_path) == []

    # Streamed without a length: counted as it arrives, the partial file dropped at the cap.
    async def produce(write: Callable[[bytes], Awaitable[None]]) -> None:
        for _ in range(30):
            await write(os.urandom(10_000))

    code, err = await upload(None, body_producer=produce)
    assert code == 413 and err["reason"] == "too_large", err
    assert uploads_dir(tmp_path) == []

    # Small enough to upload, but it unpacks past max_workspace_bytes.
    bomb = tar_gz({"zeros.bin": b"\0" * 1_000_000})
    code, up = await upload(bomb)
    assert code == 201 and up["size"] < 100_000
    code, err = await api("POST", "sessions", {"agent": "shell", "archive": up["upload"]})
    assert code == 413 and err["reason"] == "too_large" and "max_workspace_bytes" in err["message"]

    # A repository over the same cap.
    repo = make_repo()
    (repo / "big.bin").write_bytes(os.urandom(300_000))
    code, err = await api("POST", "sessions", {"agent": "shell", "repo": str(repo)})
    assert code == 413 and err["reason"] == "too_large" and "max_workspace_bytes" in err["message"]

    code, listing = await api("GET", "sessions", all="1")
    assert listing["sessions"] == [] and uploads_dir(tmp_path) == []
    assert not list((tmp_path / "catty-data" / "sessions").glob("*"))


async def test_bad_and_unsafe_archives_get_400_naming_the_member_and_make_nothing(
    api: Any, upload: Upload, tmp_path: Path
) -> None:
    code, err = await upload(b"not an archive at all\n" * 10, name="notes.txt")
    assert code == 400 and err["reason"] == "bad_archive" and "notes.txt" in err["message"]
    assert uploads_dir(tmp_path) == []

    code, up = await upload(tar_gz({"proj/ok.txt": "fine", "proj/../../evil.txt": "pwned"}))
    assert code == 201
    code, err = await api("POST", "sessions", {"agent": "shell", "archive": up["upload"]})
    assert code == 400 and err["reason"] == "unsafe_archive", err
    assert "proj/../../evil.txt" in err["message"]
    code, listing = await api("GET", "sessions", all="1")
    assert listing["sessions"] == []
    assert not list((tmp_path / "catty-data" / "sessions").glob("*"))
    assert not list(tmp_path.rglob("evil.txt")) and uploads_dir(tmp_path) == []

    code, err = await api("POST", "sessions", {"agent": "shell", "archive": "0" * 32})
    assert code == 404 and err["reason"] == "not_found"
    code, err = await api("POST", "sessions", {"agent": "shell", "archive": "../../etc"})
    assert code == 404


async def test_an_upload_survives_a_request_refused_before_it_was_unpacked(
    api: Any, upload: Upload, tmp_path: Path, make_repo: Any, session_until: Any
) -> None:
    code, up = await upload(zip_of({"a.txt": "a"}), name="a.zip")
    assert code == 201
    archive = up["upload"]
    code, err = await api("POST", "sessions", {"environment": "nowhere", "archive": archive})
    assert code == 404 and "nowhere" in err["message"]
    code, err = await api("POST", "sessions", {"repo": str(make_repo()), "archive": archive})
    assert code == 400 and err["reason"] == "bad_source"
    assert uploads_dir(tmp_path) == [archive]
    code, s = await api("POST", "sessions",
                        {"agent": "shell", "archive": archive, "prompt": "cat a.txt"})  # fmt: skip
    assert code == 201, s
    evs = await session_until(s["label"], lambda e: results(e) >= 1, what="the command")
    assert output(evs).startswith("a")
    await api("POST", f"sessions/{s['label']}/stop")


async def test_uploads_need_authorization_before_any_byte_is_kept(
    upload: Upload, tmp_path: Path
) -> None:
    code, _err = await upload(tar_gz(FILES), headers={"Authorization": ""})
    assert code == 403
    assert uploads_dir(tmp_path) == []


async def test_a_repository_with_no_remote_makes_a_session(
    api: Any, make_repo: Any, session_until: Any
) -> None:
    repo = make_repo(dirty=True)
    assert git(repo, "remote") == ""
    code, s = await api("POST", "sessions", {
        "agent": "shell", "repo": str(repo),
        "prompt": "git log --format=%s; cat new_file.txt",
    })  # fmt: skip
    assert code == 201, s
    assert s["source"] == str(repo)
    evs = await session_until(s["label"], lambda e: results(e) >= 1, what="the command")
    out = output(evs)
    assert "initial" in out and "snapshot of uncommitted work" in out
    assert "untracked but not ignored" in out
    await api("POST", f"sessions/{s['label']}/stop")


def test_uploads_nobody_used_for_an_hour_are_removed(tmp_path: Path) -> None:
    uploads = Uploads(tmp_path / "uploads", max_bytes=1 << 20)
    old = uploads.receive("old.tgz")
    old.write(tar_gz(FILES))
    stale = old.finish()
    partial = uploads.receive("partial.zip")
    partial.write(b"PK\x03\x04")
    fresh = uploads.receive("fresh.tgz")
    fresh.write(tar_gz(FILES))
    kept = fresh.finish()
    two_hours_ago = time.time() - 7200
    for path in (stale.path, stale.path.parent, partial.directory / "archive", partial.directory):
        os.utime(path, (two_hours_ago, two_hours_ago))
    uploads.prune()
    assert sorted(p.name for p in (tmp_path / "uploads").iterdir()) == [kept.id]
    with uploads.claim(kept.id) as claimed:
        assert (claimed.name, claimed.size, claimed.format) == ("fresh.tgz", kept.size, "tar.gz")
        assert not (tmp_path / "uploads" / kept.id).exists()  # held: no other request gets it
    assert (tmp_path / "uploads" / kept.id / "archive").exists()  # not used: put back
