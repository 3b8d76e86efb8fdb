"""Moving a session to another server: export it as one file, import such a file.

The format is `core.portable`'s. An export holds the workspace as a bundle (made sandboxed by
`SessionHandoff`, the agent's uncommitted work committed onto the session branch), the
transcript, the agent's own conversation and the environment without secret values. An import
makes a new, stopped session of it; `resume` continues the conversation, because the agent's
files are reinstalled for the new workspace path (Claude Code names its project directory after
the working directory, and that path is the session directory's, which differs here).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..agents import available_agents, claude_files
from ..core import portable
from ..core.environments import BadEnvironment, Environment
from ..core.errors import CattyError, NotFound, TooLarge
from ..core.labels import looks_like_label, new_label
from ..core.models import Session, SessionState
from .focus import last_holder

if TYPE_CHECKING:
    from .manager import SessionManager

CONVERSATION = "conversation/"
"""Where, among an export's agent files, Claude Code's conversation files go."""


class ExportFile:
    """An export made for one request; `discard()` removes it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def discard(self) -> None:
        """Remove the file (and the directory made for it)."""
        shutil.rmtree(self.path.parent, ignore_errors=True)


class SessionPorter:
    """Exports sessions to files and imports them as stopped sessions."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager

    # -- export ------------------------------------------------------------------------------

    async def export(self, session: Session) -> ExportFile:
        """The session as one file (running or not); TooLarge past `max_download_bytes`."""
        m = self.manager
        bundle = await m.handoff.bundle(session, have=[], record=True, all_refs=True)
        directory = Path(tempfile.mkdtemp(prefix="catty-export-"))
        out = directory / f"{session.label}{portable.SUFFIX}"
        try:
            agent, files = self._agent_files(session)
            env = _find_environment(m, session.environment)
            manifest = {
                "catty_jupyter": __version__,
                "exported": time.time(),
                "exported_from": {"host": socket.gethostname(), "session_id": session.id},
                "session": {
                    "label": session.label, "agent": session.agent,
                    "environment": session.environment, "options": session.options,
                    "branch": session.branch, "base_commit": session.base_commit,
                    "source": session.source, "origin": session.origin, "created": session.created,
                    "state": session.state.value,
                },
                "workspace": {"branch": bundle.info.get("branch"),
                              "commit": bundle.info.get("commit")},
                "agent": agent,
                "transcript": {"last_seq": m.store.last_seq(session.id)},
            }  # fmt: skip
            await asyncio.to_thread(
                portable.write_export, out, manifest=manifest, bundle=bundle.path,
                journal=m.journal(session).path, agent_files=files,
                environment=portable.portable_environment(env) if env else None,
                secret_values=env.secret_values if env else (),
            )  # fmt: skip
            size = out.stat().st_size
            if size > m.max_download_bytes:
                raise TooLarge(
                    f"the export of {session.label} is {size} bytes, over the "
                    f"{m.max_download_bytes}-byte download limit "
                    "(CattyExtension.max_download_bytes)"
                )
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        finally:
            bundle.discard()
        return ExportFile(out)

    def _agent_files(self, session: Session) -> tuple[dict[str, Any], dict[str, bytes]]:
        """What the manifest says of the agent's own files, and the files by name."""
        if session.agent != "claude":
            return {"name": session.agent}, {}
        try:
            sid, cwd, conversation = self.manager.handoff.conversation(session)
        except NotFound:
            return {"name": "claude", "session_id": None}, {}  # no turn ran yet
        files = {claude_files.SESSION_FILE: json.dumps({"session_id": sid}).encode()}
        for item in conversation:
            name = CONVERSATION + item.path
            try:
                portable.check_agent_name(name)
            except portable.PortableError:
                continue  # a side file of a name we cannot carry; the conversation itself goes
            files[name] = item.data
        return {"name": "claude", "session_id": sid, "cwd": cwd}, files

    # -- import ------------------------------------------------------------------------------

    async def import_file(
        self, path: Path, *, owner: str, client: str | None, name: str
    ) -> Session:
        """Make a stopped session of the export at PATH (a file the client called NAME).

        Nothing is left behind on refusal: no session directory, no row, no environment.
        """
        m = self.manager
        sandboxed = m._check_runtime_kernel()
        work = Path(tempfile.mkdtemp(prefix=".catty-import-", dir=path.parent))
        try:
            contents = await asyncio.to_thread(
                portable.read_export, path, work / "contents",
                max_bundle_bytes=m.max_workspace_bytes,
            )  # fmt: skip
            return await self._make(contents, sandboxed, owner, client, name)
        except portable.PortableError as exc:
            raise CattyError(f"{name}: {exc}", reason=exc.reason,
                             status=413 if exc.reason == "too_large" else 400) from None  # fmt: skip
        finally:
            shutil.rmtree(work, ignore_errors=True)

    async def _make(
        self, contents: portable.Contents, sandboxed: bool, owner: str, client: str | None,
        name: str,
    ) -> Session:  # fmt: skip
        m = self.manager
        info = contents.manifest["session"]
        if info["agent"] not in available_agents():
            raise CattyError(f"the session runs the {info['agent']!r} agent, which is not "
                             f"installed here; installed agents: {', '.join(available_agents())}",
                             reason="unknown_agent")  # fmt: skip
        env, new_env, notes = self._environment(info["environment"], contents.environment)
        label = info["label"]
        if not looks_like_label(label) or m.store.label_taken(label):
            label = new_label(m.store.label_taken)
            why = "is taken here" if looks_like_label(info["label"]) else "is not a label"
            notes.append(f"its label {info['label'][:60]!r} {why}, so it is now {label}")
        session = Session(
            id=uuid.uuid4().hex, label=label, owner=owner, agent=info["agent"],
            environment=env.name, state=SessionState.STOPPED, sandboxed=sandboxed,
            options=info["options"], created=_finite(info["created"]), source=info["source"],
            origin=_imported_origin(info["origin"]),
        )  # fmt: skip
        if env.setup_script:
            # This server has no snapshot of the environment yet: the first launch sets it up.
            session.runtime = {"setup_pending": True}
        root = m.session_dir(session)
        added = created_env = False
        try:
            root.mkdir(parents=True)
            workspace = root / "workspace"
            session.branch = f"catty/{label}"
            await asyncio.to_thread(
                portable.unbundle, contents.bundle, workspace, branch=info["branch"],
                new_branch=session.branch, max_bytes=m.max_workspace_bytes,
            )  # fmt: skip
            session.workspace = str(workspace)
            base = info["base_commit"]
            if base and not await asyncio.to_thread(portable.has_commit, workspace, base):
                base = None
                notes.append("its base commit is not in the workspace's history, so the diff "
                              "shows every file")  # fmt: skip
            session.base_commit = base
            for sub in ("home", "state"):
                (root / sub).mkdir()
            journal = m.journal(session)
            await asyncio.to_thread(portable.copy_journal, contents.journal, journal.path)
            self._install_agent(session, contents.manifest.get("agent"), contents.agent_files)
            if new_env is not None:
                m.environments.create(env.name, new_env)
                created_env = True
            m.store.add_session(session)
            added = True
            holder = last_holder([e for e in journal.read() if e.kind in ("status", "system")])
            journal.append("system", {
                "message": _imported_message(contents.manifest, name, notes),
                "imported": {"file": name, "label": info["label"],
                             "host": (contents.manifest.get("exported_from") or {}).get("host")},
            }, client=client)  # fmt: skip
            if holder is not None:
                journal.append("status", {"focus": None, "previous": holder, "message": (
                    f"{holder} held input focus on the server the session came from; the "
                    "first client to act here takes it")}, client=client)  # fmt: skip
            m.catch_up(session.id)
        except BaseException:
            if added:
                m.store.delete_session(session.id)
            if created_env:
                m.environments.delete(env.name, [])
            shutil.rmtree(root, ignore_errors=True)
            raise
        m.review.refresh_diffstat(session.id)
        return m.get(session.id)

    def _environment(
        self, name: str, exported: dict[str, Any] | None
    ) -> tuple[Environment, dict[str, Any] | None, list[str]]:
        """The environment the import runs in, the fields to create it from when it is new,
        and what the transcript should say about it."""
        registry = self.manager.environments
        found = _find_environment(self.manager, name)
        if found is not None:
            return found, None, []
        if exported is None or exported.get("name") != name:
            return registry.get("default"), None, [
                f"its environment {name!r} does not exist here and the export holds no "
                "definition of it, so it runs in 'default'"
            ]  # fmt: skip
        fields = portable.environment_fields(exported)
        try:
            env = Environment.from_json(name, fields)
        except BadEnvironment as exc:
            raise CattyError(f"the exported environment {name!r} cannot be made here: "
                             f"{exc.message}", reason="bad_environment") from None  # fmt: skip
        notes = [f"its environment {name!r} was created here from the export"]
        missing = [k for k in exported.get("secret_values_removed") or [] if k in env.secrets]
        if missing:
            notes.append(
                f"the export holds no secret values: set {', '.join(missing)} with `jupyter "
                f"catty env edit {name} --env-file FILE` before resuming"
            )
        return env, fields, notes

    def _install_agent(
        self, session: Session, agent: dict[str, Any] | None, files: dict[str, bytes]
    ) -> None:
        """Put the agent's own files where it looks for them in this session."""
        if session.agent != "claude" or not agent or not agent.get("session_id"):
            return
        state = self.manager.session_dir(session) / "state"
        cwd = agent.get("cwd")
        conversation = [claude_files.ConversationFile(n.removeprefix(CONVERSATION), data)
                        for n, data in files.items() if n.startswith(CONVERSATION)]  # fmt: skip
        if not isinstance(cwd, str) or not conversation:
            raise portable.PortableError("the manifest names a Claude Code conversation that "
                                         "the export does not hold")  # fmt: skip
        (state / claude_files.SESSION_FILE).write_text(
            json.dumps({"session_id": agent["session_id"]})
        )
        if claude_files.saved_session_id(state) != agent["session_id"]:
            raise portable.PortableError("the manifest's Claude Code session id is not one")
        try:
            claude_files.install_conversation(
                conversation, state / claude_files.CONFIG_DIR, cwd, session.workspace
            )
        except claude_files.ConversationError as exc:
            raise portable.PortableError(str(exc)) from None


def _find_environment(manager: SessionManager, name: str) -> Environment | None:
    try:
        return manager.environments.find(name)
    except CattyError:
        return None  # stored in a form this version refuses: as good as absent


def _finite(value: float) -> float:
    """VALUE as a time, or now when it is none (infinite, or too large for a float)."""
    try:
        number = float(value)
    except OverflowError:
        return time.time()
    return number if math.isfinite(number) else time.time()


def _imported_origin(origin: dict[str, Any]) -> dict[str, Any]:
    """The origin an imported session keeps: its source's remotes and roots (teleport and push
    still know where the work belongs), the rest as recorded, the kind `import`."""
    remotes = origin.get("remotes")
    roots = origin.get("roots")
    return {
        **origin, "kind": "import",
        "remotes": {str(k): v for k, v in remotes.items() if isinstance(v, str)}
        if isinstance(remotes, dict) else {},
        "roots": [r for r in roots if isinstance(r, str)] if isinstance(roots, list) else [],
    }  # fmt: skip


def _imported_message(manifest: dict[str, Any], name: str, notes: list[str]) -> str:
    info = manifest["session"]
    host = (manifest.get("exported_from") or {}).get("host") or "another server"
    when = manifest.get("exported")
    shown = ""
    if isinstance(when, int | float):
        stamp = datetime.datetime.fromtimestamp(when, datetime.UTC)
        shown = f" on {stamp:%Y-%m-%d %H:%M} UTC"
    text = f"imported from {name}: session {info['label']} exported from {str(host)[:100]}{shown}"
    return text + "".join(f"; {note}" for note in notes)
