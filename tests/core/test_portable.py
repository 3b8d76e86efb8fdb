"""The export format of a session: written, read back, and refused when it is not what it says."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from catty_jupyter.core import portable
from catty_jupyter.core import workspace as workspaces
from catty_jupyter.core.environments import Environment
from catty_jupyter.core.handoff import bundle_session
from catty_jupyter.core.journal import Journal
from tests.core.test_handoff import git

SECRET = "sk-very-secret-value-1234"
LABEL = "calm-cat-0001"


@pytest.fixture
def parts(tmp_path: Path) -> dict[str, Any]:
    """What an export is made of: a bundle of a real workspace (a second branch, a tag, the
    agent's uncommitted file), a journal, a conversation and an environment with a secret."""
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    (src / "a.txt").write_text("one\n")
    git(src, "add", ".")
    git(src, "commit", "-qm", "first")
    git(src, "tag", "v1")
    git(src, "branch", "feature")
    ws = workspaces.create_from_repo(src, tmp_path / "ws", LABEL).path
    (ws / "agent.txt").write_text("written by the agent\n")
    bundle = tmp_path / "ws.bundle"
    info = bundle_session(ws, LABEL, bundle, all_refs=True)
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append("system", {"message": "session created"}, client="desk")
    journal.append("user", {"text": "remember papaya"}, client="desk")
    journal.append("tool_result", {"output": f"KEY={SECRET}"})  # as if the agent echoed it
    env = Environment.from_json("dev", {
        "agent": "shell", "env": f"KEY={SECRET}\nMODE=fast\n", "secrets": ["KEY"],
        "setup_script": "echo setting up\n", "network": "trusted",
    })  # fmt: skip
    manifest = {"session": {
        "label": LABEL, "agent": "claude", "environment": "dev", "options": {"model": SECRET},
        "branch": f"catty/{LABEL}", "base_commit": None, "source": str(src),
        "origin": {"kind": "repo", "remotes": {}, "roots": []}, "created": 1.5,
    }, "agent": {"name": "claude", "session_id": "abc", "cwd": str(ws)}}  # fmt: skip
    files = {"claude-session.json": b'{"session_id": "abc"}',
             "conversation/abc.jsonl": f'{{"cwd": "{ws}", "said": "{SECRET}"}}\n'.encode()}  # fmt: skip
    return {"manifest": manifest, "bundle": bundle, "journal": journal.path,
            "agent_files": files, "environment": portable.portable_environment(env),
            "secret_values": env.secret_values, "tip": info["commit"], "ws": ws}  # fmt: skip


def export(parts: dict[str, Any], out: Path) -> Path:
    portable.write_export(out, **{k: v for k, v in parts.items() if k not in ("tip", "ws")})
    return out


def test_an_export_reads_back_as_it_was_written_and_its_workspace_unpacks(
    parts: dict[str, Any], tmp_path: Path
) -> None:
    out = export(parts, tmp_path / f"{LABEL}.catty")
    got = portable.read_export(out, tmp_path / "read", max_bundle_bytes=1 << 30)
    assert got.manifest["format"] == "catty-session" and got.manifest["version"] == 1
    assert got.manifest["session"]["label"] == LABEL
    assert got.manifest["session"]["options"] == {"model": "********"}
    assert set(got.agent_files) == {"claude-session.json", "conversation/abc.jsonl"}
    assert str(parts["ws"]) in got.agent_files["conversation/abc.jsonl"].decode()
    env = got.environment
    assert env is not None and env["secrets"] == ["KEY"] and env["secret_values_removed"] == ["KEY"]
    assert env["env"] == "KEY=\nMODE=fast\n" and env["setup_script"] == "echo setting up\n"
    rebuilt = Environment.from_json("dev", portable.environment_fields(env))
    assert rebuilt.env == {"KEY": "", "MODE": "fast"} and rebuilt.secrets == {"KEY"}

    journal = tmp_path / "new" / "journal.jsonl"
    journal.parent.mkdir()
    assert portable.copy_journal(got.journal, journal) == 3
    events = list(Journal(journal).read())
    assert [e.kind for e in events] == ["system", "user", "tool_result"]
    assert events[1].payload == {"text": "remember papaya"} and events[1].client == "desk"
    assert events[2].payload["output"] == "KEY=********"

    # The workspace comes back with every branch and tag, the session branch renamed.
    ws = tmp_path / "new" / "workspace"
    tip = portable.unbundle(got.bundle, ws, branch=f"catty/{LABEL}",
                            new_branch="catty/bold-owl-0002", max_bytes=1 << 30)  # fmt: skip
    assert tip == parts["tip"]
    assert git(ws, "branch", "--show-current") == "catty/bold-owl-0002"
    assert (ws / "agent.txt").read_text() == "written by the agent\n"
    assert git(ws, "status", "--porcelain") == ""
    assert set(git(ws, "branch", "--format=%(refname:short)").split()) == {
        "catty/bold-owl-0002", "feature", "main"}  # fmt: skip
    assert git(ws, "tag") == "v1"


def test_no_secret_value_is_anywhere_in_the_file(parts: dict[str, Any], tmp_path: Path) -> None:
    raw = export(parts, tmp_path / "x.catty").read_bytes()
    assert SECRET.encode() not in raw
    assert b'"KEY"' in raw  # the name stays, marked as a secret without its value


def test_a_workspace_over_the_cap_is_refused_and_removed(
    parts: dict[str, Any], tmp_path: Path
) -> None:
    ws = tmp_path / "big"
    with pytest.raises(portable.PortableError, match="max_workspace_bytes") as err:
        portable.unbundle(parts["bundle"], ws, branch=f"catty/{LABEL}",
                          new_branch=f"catty/{LABEL}", max_bytes=10)  # fmt: skip
    assert err.value.reason == "too_large" and not ws.exists()
    with pytest.raises(portable.PortableError, match="no branch catty/other"):
        portable.unbundle(parts["bundle"], ws, branch="catty/other", new_branch="catty/x",
                          max_bytes=1 << 30)  # fmt: skip
    assert not ws.exists()


def rebuild(src: Path, dest: Path, change: Any) -> Path:
    """Copy the export SRC member by member into DEST; CHANGE(info, data) may alter a member
    (return None to leave it out, or a list of (info, data) to put in its place)."""
    with tarfile.open(src) as tar, tarfile.open(dest, "w") as out:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
            changed = change(member, data)
            for info, body in changed if isinstance(changed, list) else [(member, data)]:
                info.size = len(body)
                out.addfile(info, io.BytesIO(body))
    return dest


def named(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(("extra", "message"), [
    (named("../escape.txt"), "unexpected member"),
    (named("/etc/evil"), "unexpected member"),
    (named("agent/../../escape"), "not a name"),
    (named("agent/conversation/x", tarfile.SYMTYPE, "/etc/passwd"), "not a regular file"),
    (named("agent/conversation/x", tarfile.LNKTYPE, "journal.jsonl"), "not a regular file"),
    (named("journal.jsonl"), "twice"),
    (named("manifest.json"), "twice"),
])  # fmt: skip
def test_tampered_members_are_refused(
    parts: dict[str, Any], tmp_path: Path, extra: tarfile.TarInfo, message: str
) -> None:
    good = export(parts, tmp_path / "good.catty")
    bad = rebuild(good, tmp_path / "bad.catty", lambda m, d: [(m, d)] + (
        [(extra, b"x")] if m.name == "journal.jsonl" else []))  # fmt: skip
    dest = tmp_path / "read"
    with pytest.raises(portable.PortableError, match=message):
        portable.read_export(bad, dest, max_bundle_bytes=1 << 30)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "escape").exists()


def test_damaged_or_foreign_files_are_refused(parts: dict[str, Any], tmp_path: Path) -> None:
    good = export(parts, tmp_path / "good.catty")

    def read(path: Path, **kwargs: Any) -> None:
        portable.read_export(
            path, tmp_path / path.stem, max_bundle_bytes=kwargs.get("cap", 1 << 30)
        )

    garbage = tmp_path / "garbage.catty"
    garbage.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(portable.PortableError, match="not a catty session export"):
        read(garbage)
    truncated = tmp_path / "truncated.catty"
    truncated.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(portable.PortableError):
        read(truncated)
    edited = rebuild(good, tmp_path / "edited.catty", lambda m, d: [
        (m, d.replace(b"papaya", b"banana") if m.name == "journal.jsonl" else d)])  # fmt: skip
    with pytest.raises(portable.PortableError, match=r"journal\.jsonl does not match its checksum"):
        read(edited)
    dropped = rebuild(good, tmp_path / "dropped.catty",
                      lambda m, d: [] if m.name == "environment.json" else [(m, d)])  # fmt: skip
    with pytest.raises(portable.PortableError, match=r"environment\.json is listed"):
        read(dropped)
    with pytest.raises(portable.PortableError, match="over the 10-byte limit") as err:
        read(good, cap=10)
    assert err.value.reason == "too_large"
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as tar:
        tar.addfile(named("README"), io.BytesIO(b""))
    with pytest.raises(portable.PortableError, match=r"does not begin with manifest\.json"):
        read(plain)


def test_an_unknown_format_version_is_refused_with_what_to_do(
    parts: dict[str, Any], tmp_path: Path
) -> None:
    good = export(parts, tmp_path / "good.catty")

    def bump(member: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
        if member.name != "manifest.json":
            return [(member, data)]
        return [(member, json.dumps({**json.loads(data), "version": 2}).encode())]

    newer = rebuild(good, tmp_path / "newer.catty", bump)
    with pytest.raises(portable.PortableError, match="upgrade catty-jupyter") as err:
        portable.read_export(newer, tmp_path / "read", max_bundle_bytes=1 << 30)
    assert err.value.reason == "unsupported_version"
    with pytest.raises(portable.PortableError, match=r"session\.label"):
        portable.check_manifest({"format": "catty-session", "version": 1, "members": {},
                                 "session": {"label": 3}})  # fmt: skip


def test_a_bad_transcript_line_is_named(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"seq": 1, "kind": "user", "payload": {}}\nnot json\n')
    with pytest.raises(portable.PortableError, match="line 2 is not a transcript event"):
        portable.copy_journal(src, tmp_path / "a.jsonl")
    src.write_text('{"seq": 2, "kind": "user", "payload": {}}\n{"seq": 2, "kind": "user"}\n')
    with pytest.raises(portable.PortableError, match="out of order"):
        portable.copy_journal(src, tmp_path / "b.jsonl")
