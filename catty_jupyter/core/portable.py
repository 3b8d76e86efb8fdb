"""Portable sessions: one file that carries a session to another server.

An export is a plain tar (`LABEL.catty`) whose first member is the manifest:

    manifest.json       format and version, the session's fields, each member's size and sha256
    workspace.bundle    the workspace as a git bundle: every branch and tag, the session branch
                        with the agent's uncommitted work committed on top
    journal.jsonl       the transcript
    agent/...           the agent's own files (for claude: its session id and conversation)
    environment.json    the environment's definition with secret values removed (names kept)

No member holds a secret value: every text member passes through a `Redactor` of the
environment's secret values, and the environment keeps only the names of its secrets. Reading
an export back checks everything (the manifest's format and version first, member names and
types, sizes, checksums, every transcript line) before anything is made of it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .environments import Environment, format_dotenv
from .gitcmd import GitError, git, run_git
from .models import Event
from .secrets import Redactor

FORMAT = "catty-session"
VERSION = 1
"""The export format's version; a reader refuses any other."""
SUFFIX = ".catty"

MANIFEST = "manifest.json"
BUNDLE = "workspace.bundle"
JOURNAL = "journal.jsonl"
ENVIRONMENT = "environment.json"
AGENT_DIR = "agent/"

MAX_JSON_BYTES = 1 << 20
"""The largest manifest or environment."""
MAX_JOURNAL_BYTES = 1 << 30
MAX_AGENT_BYTES = 260 << 20
"""The agent's files together (a conversation may hold 256 MiB)."""
MAX_AGENT_FILES = 10_000
_PART = re.compile(r"[A-Za-z0-9_@+=-][A-Za-z0-9._@+=-]{0,254}")
_ENVIRONMENT_FIELDS = ("description", "agent", "options", "network", "allowed_domains",
                       "include_defaults", "env", "secrets", "setup_script", "resources")  # fmt: skip


class PortableError(Exception):
    """An export that cannot be written or read; the message says why, `reason` is a code."""

    def __init__(self, message: str, reason: str = "bad_export") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Contents:
    """What an export holds, its large members as files."""

    manifest: dict[str, Any]
    bundle: Path
    journal: Path
    agent_files: dict[str, bytes]
    """The agent's files by name (relative to `agent/`)."""
    environment: dict[str, Any] | None


# -- environments ------------------------------------------------------------------------------


def portable_environment(env: Environment) -> dict[str, Any]:
    """ENV's definition without secret values: each secret keeps its name with an empty value,
    and `secret_values_removed` lists those names."""
    data = {k: v for k, v in env.to_json().items() if k in ("name", *_ENVIRONMENT_FIELDS)}
    data["env"] = format_dotenv({k: "" if k in env.secrets else v for k, v in env.env.items()})
    data["secret_values_removed"] = sorted(env.secrets)
    return data


def environment_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The fields of an exported environment that `Environment.from_json` takes."""
    return {k: data[k] for k in _ENVIRONMENT_FIELDS if k in data}


# -- writing -----------------------------------------------------------------------------------


def write_export(
    out: Path, *, manifest: dict[str, Any], bundle: Path, journal: Path,
    agent_files: dict[str, bytes], environment: dict[str, Any] | None,
    secret_values: Iterable[str] = (),
) -> None:  # fmt: skip
    """Write the export file OUT; every text member is redacted of SECRET_VALUES."""
    redact = Redactor(secret_values)
    work = out.with_name(f".{out.name}.parts")
    work.mkdir()
    try:
        members: list[tuple[str, Path]] = [(BUNDLE, bundle)]
        clean_journal = work / "journal"
        _copy_lines(journal, clean_journal, redact)
        members.append((JOURNAL, clean_journal))
        for i, (name, data) in enumerate(sorted(agent_files.items())):
            check_agent_name(name)
            path = work / f"agent-{i}"
            path.write_bytes(_redact_bytes(data, redact))
            members.append((AGENT_DIR + name, path))
        if environment is not None:
            path = work / "environment"
            path.write_text(json.dumps(redact.payload(environment), indent=1))
            members.append((ENVIRONMENT, path))
        listed = {name: {"size": p.stat().st_size, "sha256": _sha256(p)} for name, p in members}
        head = {**redact.payload(manifest), "format": FORMAT, "version": VERSION,
                "members": listed}  # fmt: skip
        raw = json.dumps(head, indent=1).encode()
        with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, MANIFEST, io.BytesIO(raw), len(raw))
            for name, path in members:
                with path.open("rb") as f:
                    _add(tar, name, f, path.stat().st_size)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _add(tar: tarfile.TarFile, name: str, data: IO[bytes], size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(time.time())
    tar.addfile(info, data)


def _copy_lines(src: Path, dest: Path, redact: Redactor) -> None:
    """SRC's complete lines (a writer may be appending), redacted, into DEST."""
    with src.open("rb") as f, dest.open("wb") as out:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            out.write(_redact_bytes(raw, redact))


def _redact_bytes(data: bytes, redact: Redactor) -> bytes:
    if not redact:
        return data
    return redact.text(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- reading -----------------------------------------------------------------------------------


def read_export(path: Path, dest: Path, *, max_bundle_bytes: int) -> Contents:
    """Check the export at PATH and unpack it into DEST (a new directory): the bundle and the
    journal as files there, the rest in memory. PortableError says what is wrong."""
    dest.mkdir()
    try:
        with tarfile.open(path, "r:*") as tar:
            return _read_members(_members(tar), tar, dest, max_bundle_bytes)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise PortableError(
            f"this is not a catty session export (a .catty file from `jupyter catty export`), "
            f"or it is damaged: {exc}"
        ) from None


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Members one at a time (a huge tar never lists itself in memory)."""
    while (member := tar.next()) is not None:
        yield member


def _read_members(
    members: Iterator[tarfile.TarInfo], tar: tarfile.TarFile, dest: Path, max_bundle_bytes: int
) -> Contents:
    first = next(members, None)
    if first is None or first.name != MANIFEST:
        raise PortableError("this is not a catty session export: it does not begin with "
                            f"{MANIFEST}; make one with `jupyter catty export`")  # fmt: skip
    if not first.isreg():
        raise PortableError(f"{MANIFEST} is not a regular file")
    manifest = check_manifest(_json(MANIFEST, _bytes_of(tar, first, MAX_JSON_BYTES)))
    listed: dict[str, Any] = manifest["members"]
    seen: dict[str, str] = {}
    agent: dict[str, bytes] = {}
    environment = None
    caps = {BUNDLE: max_bundle_bytes, JOURNAL: MAX_JOURNAL_BYTES}
    for member in members:
        name = member.name
        if name in seen or name == MANIFEST:
            raise PortableError(f"{name} appears twice in the export")
        if not member.isreg():
            raise PortableError(f"{name!r} is not a regular file; an export holds only files")
        if name in caps:
            target = dest / name
            _check_size(name, member.size, caps[name])
            seen[name] = _extract(tar, member, target)
        elif name == ENVIRONMENT:
            raw = _bytes_of(tar, member, MAX_JSON_BYTES)
            environment = _json(name, raw)
            seen[name] = hashlib.sha256(raw).hexdigest()
        elif name.startswith(AGENT_DIR):
            check_agent_name(name.removeprefix(AGENT_DIR))
            total = sum(map(len, agent.values())) + member.size
            _check_size("the agent's files", total, MAX_AGENT_BYTES)
            if len(agent) >= MAX_AGENT_FILES:
                raise PortableError(f"the export holds over {MAX_AGENT_FILES} agent files")
            data = _bytes_of(tar, member, MAX_AGENT_BYTES)
            agent[name.removeprefix(AGENT_DIR)] = data
            seen[name] = hashlib.sha256(data).hexdigest()
        else:
            raise PortableError(f"the export holds an unexpected member {name[:200]!r}")
    for name in (BUNDLE, JOURNAL):
        if name not in seen:
            raise PortableError(f"the export has no {name}; it is incomplete")
    if set(seen) != set(listed):
        missing = sorted(set(listed) ^ set(seen))[0]
        raise PortableError(f"{missing} is listed in the manifest but not in the export, or the "
                            "other way round; the file is damaged")  # fmt: skip
    for name, digest in seen.items():
        if not isinstance(listed[name], dict) or listed[name].get("sha256") != digest:
            raise PortableError(f"{name} does not match its checksum; the file is damaged")
    if environment is not None and not isinstance(environment.get("name"), str):
        raise PortableError(f"{ENVIRONMENT} does not name the environment")
    return Contents(manifest, dest / BUNDLE, dest / JOURNAL, agent, environment)


def check_manifest(data: Any) -> dict[str, Any]:
    """The manifest, refused unless it is one this version reads."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PortableError("this is not a catty session export: its manifest is not one")
    version = data.get("version")
    if version != VERSION:
        newer = isinstance(version, int) and version > VERSION
        raise PortableError(
            f"this export is in format version {version!r}, and this catty-jupyter reads only "
            f"version {VERSION}"
            + ("; upgrade catty-jupyter on this server to import it" if newer else ""),
            reason="unsupported_version",
        )
    session = data.get("session")
    checks = {"session": isinstance(session, dict), "members": isinstance(data.get("members"),
              dict), "agent": isinstance(data.get("agent"), dict | None)}  # fmt: skip
    if isinstance(session, dict):
        checks.update({
            f"session.{k}": isinstance(session.get(k), t) for k, t in (
                ("label", str), ("agent", str), ("environment", str), ("options", dict),
                ("branch", str), ("base_commit", str | None), ("source", str | None),
                ("origin", dict), ("created", int | float),
            )
        })  # fmt: skip
    wrong = [name for name, ok in checks.items() if not ok]
    if wrong:
        raise PortableError(f"the manifest's {wrong[0]} is missing or of the wrong type")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_size(name: str, size: int, cap: int) -> None:
    if size > cap:
        raise PortableError(f"{name} in the export is {size} bytes, over the {cap}-byte limit",
                            reason="too_large")  # fmt: skip


def check_agent_name(name: str) -> None:
    """Refuse NAME (relative to `agent/`) unless it is a plain relative path of safe parts."""
    parts = name.split("/")
    if not name or len(parts) > 8 or not all(_PART.fullmatch(p) and p not in (".", "..")
                                             for p in parts):  # fmt: skip
        raise PortableError(f"{(AGENT_DIR + name)[:200]!r} is not a name an export may hold")


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> str:
    """Copy MEMBER to TARGET; its sha256."""
    source = tar.extractfile(member)
    assert source is not None
    digest = hashlib.sha256()
    with source, target.open("xb") as out:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _bytes_of(tar: tarfile.TarFile, member: tarfile.TarInfo, cap: int) -> bytes:
    _check_size(member.name, member.size, cap)
    source = tar.extractfile(member)
    assert source is not None
    with source:
        return source.read()


def _json(name: str, raw: bytes) -> Any:
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise PortableError(f"{name} in the export is not valid JSON") from None
    if not isinstance(data, dict):
        raise PortableError(f"{name} in the export is not a JSON object")
    return data


# -- the transcript ------------------------------------------------------------------------------


def copy_journal(src: Path, dest: Path) -> int:
    """Write SRC's events to the journal DEST, each line checked (a JSON event, seq growing);
    return the last seq. PortableError names the first bad line."""
    last = 0
    with src.open("rb") as f, dest.open("xb") as out:
        for number, raw in enumerate(f, start=1):
            try:
                data = json.loads(raw)
                if not isinstance(data, dict) or not isinstance(data.get("payload", {}), dict):
                    raise ValueError("not an event")
                event = Event.from_json(data)
                if not (0 < len(event.kind) <= 64) or not isinstance(event.client, str | None):
                    raise ValueError("not an event")
            except (ValueError, KeyError, TypeError, RecursionError):
                raise PortableError(f"{JOURNAL} line {number} is not a transcript event") from None
            if event.seq <= last:
                raise PortableError(f"{JOURNAL} line {number}: seq {event.seq} does not follow "
                                    f"{last}; the transcript is out of order")  # fmt: skip
            last = event.seq
            out.write(json.dumps(event.to_json(), ensure_ascii=False,
                                 separators=(",", ":")).encode() + b"\n")  # fmt: skip
        out.flush()
        os.fsync(out.fileno())
    return last


# -- the workspace -------------------------------------------------------------------------------


def unbundle(bundle: Path, dest: Path, *, branch: str, new_branch: str, max_bytes: int) -> str:
    """Make the workspace DEST (absent or empty) from BUNDLE: every branch and tag, BRANCH
    renamed NEW_BRANCH and checked out; return its commit. PortableError when the bundle is
    unusable or the files are over MAX_BYTES (DEST is then removed)."""
    try:
        git("init", "--quiet", f"--initial-branch={new_branch}", str(dest))
        heads = _bundle_refs(dest, bundle)
        tip = heads.get(f"refs/heads/{branch}")
        if tip is None:
            raise PortableError(f"the workspace bundle has no branch {branch}; it is not the "
                                "bundle of that session")  # fmt: skip
        git("fetch", "--quiet", "--no-tags", "--update-head-ok", str(bundle),
            "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*", cwd=dest)  # fmt: skip
        if branch != new_branch:
            git("update-ref", "-d", f"refs/heads/{branch}", cwd=dest)
        git("update-ref", "-m", "catty: imported session branch", f"refs/heads/{new_branch}",
            tip, cwd=dest)  # fmt: skip
        git("symbolic-ref", "HEAD", f"refs/heads/{new_branch}", cwd=dest)
        git("reset", "--hard", "--quiet", cwd=dest)
        size = sum(os.lstat(os.path.join(parent, name)).st_size
                   for parent, _dirs, files in os.walk(dest) for name in files)  # fmt: skip
        if size > max_bytes:
            raise PortableError(f"the imported workspace takes {size} bytes, over the "
                                f"{max_bytes}-byte cap (CattyExtension.max_workspace_bytes)",
                                reason="too_large")  # fmt: skip
        return tip
    except GitError as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise PortableError(f"the workspace bundle cannot be unpacked: {exc.stderr.strip()[-500:]}"
                            ) from None  # fmt: skip
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def has_commit(repo: Path, commit: str) -> bool:
    """True when REPO holds COMMIT."""
    return run_git("cat-file", "-e", f"{commit}^{{commit}}", cwd=repo, check=False).returncode == 0


def _bundle_refs(repo: Path, bundle: Path) -> dict[str, str]:
    """The refs BUNDLE holds (`git bundle verify` first: it must stand alone)."""
    git("bundle", "verify", "--quiet", str(bundle), cwd=repo)
    listed = git("bundle", "list-heads", str(bundle), cwd=repo)
    pairs = (line.split(" ", 1) for line in listed.splitlines() if " " in line)
    return {name: sha for sha, name in pairs}
