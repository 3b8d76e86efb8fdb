"""`jupyter catty new --archive FILE`: the file is uploaded and the session starts on its files."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from pathlib import Path

from tests.test_cli import Run, catty  # noqa: F401  (the fixture)


def write_tgz(path: Path, files: dict[str, str]) -> Path:
    """A .tar.gz at PATH holding FILES."""
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return path


async def test_new_archive_uploads_it_and_the_session_works_on_its_files(
    catty: Run,  # noqa: F811
    tmp_path: Path,
) -> None:
    archive = write_tgz(tmp_path / "proj.tgz", {"proj/hello.txt": "hi from the archive\n"})
    code, out, err = await catty("new", "--agent", "shell", "--archive", str(archive), "--json",
                                 "cat hello.txt")  # fmt: skip
    assert code == 0, err
    session = json.loads(out)
    assert session["source"] == "the uploaded archive proj.tgz"
    for _ in range(100):
        code, out, err = await catty("log", session["label"])
        if "hi from the archive" in out:
            break
        await asyncio.sleep(0.1)
    assert "hi from the archive" in out
    await catty("stop", session["label"])


async def test_new_archive_says_clearly_what_is_wrong(catty: Run, tmp_path: Path) -> None:  # noqa: F811
    missing = tmp_path / "nope.zip"
    code, out, err = await catty("new", "--archive", str(missing), "hi")
    assert code == 1 and f"cannot read {missing}" in err and out == ""
    notes = tmp_path / "notes.txt"
    notes.write_text("not an archive\n")
    code, out, err = await catty("new", "--archive", str(notes), "hi")
    assert code == 1 and "not an archive" in err and "notes.txt" in err
    unsafe = write_tgz(tmp_path / "evil.tgz", {"../evil.txt": "pwned"})
    code, out, err = await catty("new", "--agent", "shell", "--archive", str(unsafe))
    assert code == 1 and "'../evil.txt' is refused" in err
    code, out, err = await catty("new", "--archive", str(notes), "--repo", ".")
    assert code == 2 and "not allowed with" in err
