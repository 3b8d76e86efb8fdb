"""The session manager: the owner of every session, its workspace and its runtime."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupyter_core.paths import jupyter_path, jupyter_runtime_dir
from traitlets.config import LoggingConfigurable

from ..agents import available_agents
from ..core import archive
from ..core import workspace as workspaces
from ..core.environments import Environment, format_size
from ..core.errors import CattyError, Conflict, NotFound, TooLarge, Unavailable
from ..core.journal import Journal
from ..core.labels import new_label
from ..core.models import Activity, Event, Session, SessionState
from ..core.store import Store
from ..runtime.config import RuntimeConfig
from ..sandbox import limits
from ..sandbox.bwrap import SandboxSpec, SandboxUnavailable, find_bwrap, python_paths
from ..sandbox.envcache import EnvironmentCache, Snapshot
from ..sandbox.layers import prepare_dirs, system_layers
from ..sandbox.provisioner import runtime_alive
from .environments import EnvironmentRegistry
from .focus import FocusKeeper
from .handoff import SessionHandoff
from .portable import SessionPorter
from .review import SessionReview
from .runtime import RuntimeHandle, inherited_env
from .sandboxing import Preparation, SessionSandboxes, SetupFailed
from .uploads import Upload

UNSANDBOXED_WARNING = (
    "This session is NOT sandboxed: the administrator configured the runtime kernel {kernel!r}, "
    "whose provisioner does not confine the agent. It can read and write everything you can."
)


class SessionManager(LoggingConfigurable):
    """Create, find, drive and end sessions; fan their transcripts out to subscribers."""

    def __init__(
        self, *, data_dir: Path, environments: EnvironmentRegistry, runtime_kernel: str,
        max_workspace_bytes: int, max_message_bytes: int, hidden_paths: list[Path],
        cull_idle_timeout: float = 7200, cull_interval: float = 300, focus_grace: float = 60,
        stop_sessions_on_exit: bool = False, max_download_bytes: int = 1 << 30,
        setup_timeout: float = 600, cache_max_age: float = 7 * 24 * 3600,
        egress_resolve: dict[str, str] | None = None, cgroup_parent: str | None = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.cull_idle_timeout = cull_idle_timeout
        self.cull_interval = cull_interval
        self.stop_sessions_on_exit = stop_sessions_on_exit
        self.max_download_bytes = max_download_bytes
        self.data_dir = data_dir
        self.environments = environments
        self.runtime_kernel = runtime_kernel
        self.max_workspace_bytes = max_workspace_bytes
        self.max_message_bytes = max_message_bytes
        self.hidden_paths = hidden_paths
        self.store = Store(data_dir / "catty.db")
        self.environments.bind(self.store)
        # The runtime kernelspecs sit in a directory of their own (RUNTIME_KERNELS), so that
        # JupyterLab's launcher does not offer them; look there, also where pip put them
        # whatever JUPYTER_PATH says, and among ordinary kernelspecs (an administrator's own).
        kernel_dirs = [
            *jupyter_path("kernels"),
            *jupyter_path(*RUNTIME_KERNELS),
            str(Path(sys.prefix, "share", "jupyter", *RUNTIME_KERNELS)),
        ]
        self.spec_manager = KernelSpecManager(parent=self, kernel_dirs=kernel_dirs)
        self.runtimes: dict[str, RuntimeHandle] = {}
        self.sandboxes = SessionSandboxes(
            cache=EnvironmentCache(data_dir / "envcache", max_age=cache_max_age),
            setup_timeout=setup_timeout, egress_resolve=dict(egress_resolve or {}),
            hidden=self._hidden_paths(), readable=python_paths(), log=self.log,
            cgroup_parent=cgroup_parent, keep_out=data_dir,
        )  # fmt: skip
        """The host side of each session's sandbox: egress proxy, environment cache, limits."""
        self._end_reasons: dict[str, str] = {}
        """Why the server itself ended a runtime (over its memory limit), by session id."""
        self._disk_checked = 0.0
        self._snapshots_pruned = -SNAPSHOT_PRUNE_SECONDS  # so the first housekeeping round prunes
        self._launching: dict[str, asyncio.Task[Any]] = {}
        """Each session's launch while it runs (a setup script may take minutes): stopping or
        deleting the session cancels it."""
        self._subscribers: dict[str, set[Callable[[Event], None]]] = {}
        self._watchers: set[Callable[[str], None]] = set()
        self._ready: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.focus = FocusKeeper(self.store, focus_grace, self._record)
        """Who may steer each session."""
        self.review = SessionReview(
            self.store, lambda s: self.session_dir(s) / "workspace", self._hidden_paths, self.log,
            on_diffstat=lambda session_id: self._changed(session_id),
        )  # fmt: skip
        """Diffs, diffstats and queued line comments."""
        self.handoff = SessionHandoff(
            self.review, self.session_dir,
            lambda s, message, extra: self._record(s, "system", {"message": message, **extra}),
        )  # fmt: skip
        """Bundles of session branches, conversations, pushes (teleport, sync, export)."""
        self.portable = SessionPorter(self)
        """Exports of sessions to files, and imports of such files."""
        self._started: asyncio.Task[None] | None = None
        self._housekeeper: asyncio.Task[None] | None = None
        self.on_activity: Callable[[], None] | None = None
        """Called whenever a session does something (the server reports it as its activity)."""
        self.prepare_environment: Callable[[Environment], Awaitable[None]] | None = None
        """Called before a runtime launches in an environment (the demo model starts here)."""

    # -- paths --------------------------------------------------------------------------------

    def session_dir(self, session: Session) -> Path:
        """Where a session's workspace, home and state live."""
        return self.data_dir / "sessions" / session.id

    def runtime_dir(self, session: Session) -> Path:
        """A short path for the kernel's IPC sockets (unix socket paths are limited to 108 bytes)."""
        xdg = os.environ.get("XDG_RUNTIME_DIR")
        base = Path(xdg) / "catty" if xdg else Path(f"/tmp/catty-{os.getuid()}")
        base.mkdir(mode=0o700, exist_ok=True)
        if base.stat().st_uid != os.getuid():
            raise Unavailable(f"{base} belongs to another user; remove it or set XDG_RUNTIME_DIR")
        base.chmod(0o700)
        return base / session.id[:12]

    def journal(self, session: Session) -> Journal:
        """The session's transcript journal."""
        return Journal(self.session_dir(session) / "state" / "journal.jsonl")

    # -- queries ------------------------------------------------------------------------------

    def get(self, key: str, owner: str | None = None) -> Session:
        """The session with label or id KEY, or NotFound."""
        session = self.store.get_session(key)
        if session is None or (owner is not None and session.owner != owner):
            raise NotFound(f"no session {key!r}; `jupyter catty list` shows your sessions")
        return session

    def list_sessions(
        self, owner: str | None = None, include_archived: bool = False
    ) -> list[Session]:
        """Sessions, newest first."""
        return self.store.list_sessions(owner=owner, include_archived=include_archived)

    def transcript(
        self, session: Session, after: int = 0, limit: int | None = None,
        before: int | None = None, newest: bool = False,
    ) -> list[Event]:  # fmt: skip
        """Indexed transcript events between AFTER and BEFORE (see `Store.events`)."""
        return self.store.events(session.id, after=after, limit=limit, before=before, newest=newest)

    def environment(self, name: str) -> Environment:
        """The environment called NAME, or NotFound."""
        return self.environments.get(name)

    def environment_users(self, name: str) -> list[str]:
        """The labels of live (starting or running) sessions in environment NAME."""
        return [
            s.label for s in self.store.list_sessions(include_archived=True)
            if s.environment == name and s.state.is_live
        ]  # fmt: skip

    # -- creation -----------------------------------------------------------------------------

    async def create(
        self, *, owner: str, prompt: str | None, environment: str = "default",
        agent: str | None = None, repo: str | None = None, options: dict[str, Any] | None = None,
        client: str | None = None, archive: Upload | None = None,
    ) -> Session:  # fmt: skip
        """Make a session: check everything, copy the workspace (from REPO, an uploaded ARCHIVE,
        or empty), then launch its runtime."""
        env = self.environment(environment)
        agent_name = agent or env.agent
        if agent_name not in available_agents():
            raise CattyError(
                f"unknown agent {agent_name!r}; installed agents: {', '.join(available_agents())}",
                reason="unknown_agent",
            )
        if prompt is not None:
            self._check_message(prompt)
        sandboxed = self._check_runtime_kernel()
        session = Session(
            id=uuid.uuid4().hex, label=new_label(self.store.label_taken), owner=owner,
            agent=agent_name, environment=env.name, sandboxed=sandboxed,
            options={**env.options, **(options or {}), "network": env.network},
        )  # fmt: skip
        root = self.session_dir(session)
        try:
            ws = await asyncio.to_thread(self._make_workspace, session, root, repo, archive)
            session.workspace, session.branch = str(ws.path), ws.branch
            session.base_commit, session.source = ws.base_commit, ws.source
            session.origin = await asyncio.to_thread(_origin_of, repo, archive is not None)
            # Where the session's own work begins: the user's uncommitted work, when there was
            # some, is already in the snapshot commit above the base (sync-back compares there).
            session.origin["start_commit"] = ws.snapshot_commit or ws.base_commit
            for sub in ("home", "state"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            self.store.add_session(session)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        journal = self.journal(session)
        if not sandboxed:
            journal.append("system", {"message": UNSANDBOXED_WARNING.format(kernel=self.runtime_kernel),
                                      "unsandboxed": True})  # fmt: skip
        source = f"a copy of {ws.source}" if ws.source else "an empty workspace"
        journal.append(
            "system",
            {"message": f"session {session.label} created in environment {env.name!r} on "
             f"{source}, branch {ws.branch}", "branch": ws.branch, "base_commit": ws.base_commit,
             "snapshot_commit": ws.snapshot_commit, "network": env.network},
            client=client,
        )  # fmt: skip
        self.catch_up(session.id)
        if client is not None:
            self.focus.claim_if_free(session, client)
        self._ready[session.id] = asyncio.Event()
        self._launching[session.id] = self._spawn(self._launch(session, env, prompt, client))
        return session

    def _check_message(self, text: str) -> None:
        size = len(text.encode())
        if size > self.max_message_bytes:
            raise TooLarge(
                f"the message is {size} bytes, over the {self.max_message_bytes}-byte limit "
                "(CattyExtension.max_message_bytes); send a shorter message or attach a file"
            )

    @property
    def sandboxed_kernel(self) -> bool:
        """True when the runtime kernel's provisioner confines sessions with bubblewrap."""
        try:
            spec = self.spec_manager.get_kernel_spec(self.runtime_kernel)
        except NoSuchKernel:
            return False
        name = (spec.metadata.get("kernel_provisioner") or {}).get("provisioner_name")
        return bool(name == "catty-sandbox")

    def _check_runtime_kernel(self) -> bool:
        """Refuse early when the runtime cannot be launched; say whether it is sandboxed."""
        if self.runtime_kernel not in self.spec_manager.find_kernel_specs():
            raise Unavailable(
                f"the runtime kernel {self.runtime_kernel!r} is not installed; reinstall "
                "catty-jupyter (pip install catty-jupyter) so its kernelspecs are in place"
            )
        sandboxed = self.sandboxed_kernel
        if sandboxed:
            try:
                find_bwrap()
            except SandboxUnavailable as exc:
                raise Unavailable(str(exc), reason="no_sandbox") from None
        return sandboxed

    def _make_workspace(
        self, session: Session, root: Path, repo: str | None, archive: Upload | None = None
    ) -> Any:
        dest = root / "workspace"
        if repo is None and archive is None:
            return workspaces.create_empty(dest, session.label)
        try:
            if archive is not None:
                try:
                    return workspaces.create_from_archive(
                        archive.path, dest, session.label, name=archive.name,
                        max_bytes=self.max_workspace_bytes,
                    )  # fmt: skip
                finally:
                    archive.discard()  # an upload makes one session, or is refused for good
            assert repo is not None
            return workspaces.create_from_repo(
                Path(repo).expanduser(), dest, session.label, max_bytes=self.max_workspace_bytes
            )
        except workspaces.WorkspaceError as exc:
            status = 413 if exc.reason in ("too_large", "too_many_files") else 400
            raise CattyError(str(exc), reason=exc.reason, status=status) from None

    # -- runtime ------------------------------------------------------------------------------

    def _hidden_paths(self) -> list[Path]:
        hidden = [*self.hidden_paths, self.data_dir, Path(jupyter_runtime_dir())]
        return [p for p in hidden if str(p) not in ("/", "")]

    def _sandbox_spec(self, session: Session, runtime_dir: Path, prep: Preparation) -> SandboxSpec:
        root = self.session_dir(session)
        return SandboxSpec(
            workspace=root / "workspace", home=root / "home", state_dir=root / "state",
            runtime_dir=runtime_dir, network="none", hidden=self._hidden_paths(),
            readable=python_paths(),
            writable=[Path(layer.target) for layer in prep.plan.layers
                      if not layer.replace_host],
            env=prep.sandbox_env, hostname=f"catty-{session.label}",
            plan=prep.plan.to_json() if prep.plan else None,
        )  # fmt: skip

    def _blocked(self, session_id: str) -> Callable[[str], None]:
        """What the egress proxy calls when it refuses a host: a `system` event saying so."""

        def note(host: str) -> None:
            session = self.store.get_session(session_id)
            if session is not None and session.state.is_live:
                self._record(session, "system", {"message": f"blocked egress to {host}",
                                                 "blocked_host": host})  # fmt: skip

        return note

    async def _prepare(
        self, session: Session, env: Environment, runtime_dir: Path, resume: bool
    ) -> Preparation:
        """Everything the sandbox needs from the environment before the runtime launches:
        relays and the egress proxy, the environment snapshot (running the setup script on a
        cache miss, never on resume), the session's own layers over it, resource limits."""
        root = self.session_dir(session)
        prep = Preparation()
        prep.forwards, proxy_env = await self.sandboxes.start_network(
            session.id, env, runtime_dir, self._blocked(session.id)
        )
        prep.sandbox_env = {"CATTY_SESSION_LABEL": session.label, **proxy_env}
        # An imported session has no snapshot here yet: its first launch sets it up.
        setup = not resume or bool(session.runtime.get("setup_pending"))
        if self.sandboxed_kernel and env.setup_script and setup:

            async def record(kind: str, payload: dict[str, Any]) -> None:
                self._write(self.get(session.id), kind, payload)

            prep.snapshot = await self.sandboxes.snapshot(
                env=env, agent=session.agent, label=session.label, home=root / "home",
                runtime_dir=runtime_dir, forwards=prep.forwards, proxy_env=proxy_env,
                process_env={**inherited_env(), **env.env}, record=record,
            )  # fmt: skip
        elif env.setup_script and setup:
            # Unconfined, a setup script would change the host itself: it is not run.
            self._write(self.get(session.id), "system", {"message": (
                f"the setup script of environment {env.name!r} was not run: this server runs "
                f"sessions unsandboxed ({self.runtime_kernel}), and a setup script would change "
                "the host itself"), "setup_skipped": True})  # fmt: skip
        elif resume and session.runtime.get("snapshot"):
            saved = Snapshot.from_json(session.runtime["snapshot"])
            if saved.path.is_dir():
                prep.snapshot = saved
        if prep.snapshot is not None:
            layers = system_layers(root / "layer", prep.snapshot.path, home=root / "home",
                                   home_upper=root / "home", keep_out=self.data_dir)  # fmt: skip
            prepare_dirs(layers)
            prep.plan.layers = layers
        if self.sandboxed_kernel:
            prep.plan.enforcement = self.sandboxes.enforcement(session.id, env)
            prep.resources = env.resources
        return prep

    async def _launch(
        self, session: Session, env: Environment, prompt: str | None, client: str | None,
        resume: bool = False,
    ) -> None:  # fmt: skip
        root = self.session_dir(session)
        try:
            runtime_dir = self.runtime_dir(session)
            handle = RuntimeHandle(self.runtime_kernel, self.spec_manager, runtime_dir, self.log)
            self.runtimes[session.id] = handle
            if self.prepare_environment is not None:
                await self.prepare_environment(env)
            prep = await self._prepare(session, env, runtime_dir, resume)
            if handle.stopping:
                return  # stopped or deleted while the setup ran
            config = RuntimeConfig(
                label=session.label, agent=session.agent, workspace=str(root / "workspace"),
                home=str(root / "home"), state_dir=str(root / "state"), options=session.options,
                forwards=prep.forwards, resume=resume, idle_timeout=self._orphan_timeout,
                secret_names=sorted(env.secrets),
            )  # fmt: skip
            config_path = root / "state" / "runtime.json"
            config.write(config_path)
            await handle.start(
                self._sandbox_spec(session, runtime_dir, prep), dict(env.env), config_path,
                on_event=lambda e: self._on_event(session.id, e),
                on_exit=lambda code: self._on_runtime_exit(session.id, code),
            )  # fmt: skip
            session = self.get(session.id)
            session.runtime = {**await handle.info(), **prep.to_json()}
            self.store.save_session(session)
            handle.control({"type": "start"})
            await self._wait_ready(session)
        except SetupFailed as exc:
            await self._fail(session.id, exc.message)
            return
        except Exception as exc:
            self.log.exception("catty: session %s failed to start", session.label)
            tail = _tail(root / "state" / "runtime.log", 20)
            await self._fail(
                session.id,
                f"the session could not start: {exc}" + (f"\nruntime log:\n{tail}" if tail else ""),
            )
            return
        running = self.runtimes.get(session.id)
        if prompt and running is not None:
            running.send_message(prompt, client)

    async def _wait_ready(self, session: Session, timeout: float = 120) -> None:
        ready = self._ready.setdefault(session.id, asyncio.Event())
        try:
            await asyncio.wait_for(ready.wait(), timeout)
        except TimeoutError:
            raise Conflict(
                f"the {session.agent} agent did not get ready in {timeout:.0f} s",
                reason="not_ready",
            ) from None
        current = self.get(session.id)
        if current.state is not SessionState.RUNNING:
            raise Conflict(
                current.error or f"session {session.label} is {current.state.value}",
                reason="not_running",
            )

    def catch_up(self, session_id: str) -> list[Event]:
        """Index what the session's journal holds that the index lacks, update the session from
        it and fan it out (for a journal written outside a runtime: a new or imported session);
        return what was new."""
        return self._take_in(session_id, None)

    async def _on_event(self, session_id: str, event: Event) -> None:
        """Index an event published by a runtime and fan it out (catching up any gap)."""
        self._take_in(session_id, event)

    def _take_in(self, session_id: str, event: Event | None) -> list[Event]:
        """Index EVENT (or, without one or after a gap, what the journal has that the index
        lacks), update the session from it, fan it out; return what was new."""
        session = self.store.get_session(session_id)
        if session is None:
            return []
        if event is not None and event.seq == self.store.last_seq(session_id) + 1:
            new = self.store.add_events(session_id, [event])
        else:
            new = self._index_journal(session)
        for e in new:
            self._apply(session, e)
        self.store.save_session(session)
        for e in new:
            self._publish(session_id, e)
        if new and self.on_activity is not None:
            self.on_activity()
        return new

    def _apply(self, session: Session, event: Event) -> None:
        """Update the session's state from one of its events."""
        session.last_activity = max(session.last_activity, event.ts)
        if event.kind == "status" and event.payload.get("activity") in {a.value for a in Activity}:
            session.activity = Activity(event.payload["activity"])
            if event.payload.get("ready") and session.state is SessionState.STARTING:
                session.state = SessionState.RUNNING
                if session.id in self._ready:
                    self._ready[session.id].set()
        elif event.kind == "error" and event.payload.get("fatal"):
            session.error = str(event.payload.get("message"))
        if event.kind == "result" or (event.kind == "status" and event.payload.get("ready")):
            self.review.refresh_diffstat(session.id)  # a turn ended, or a runtime (re)started

    def _index_journal(self, session: Session) -> list[Event]:
        """Bring the indexed transcript up to date with the journal; return what was new."""
        last = self.store.last_seq(session.id)
        return self.store.add_events(session.id, list(self.journal(session).read(after=last)))

    async def _on_runtime_exit(self, session_id: str, code: int | None) -> None:
        reason = self._end_reasons.pop(session_id, None) or self._memory_verdict(session_id)
        if reason is not None:
            await self._fail(session_id, reason)
            return
        session = self.store.get_session(session_id)
        if session is not None and self._ended_idle(session):
            await self._release(session_id)
            self._end(session_id, SessionState.EXPIRED)
            return
        await self._fail(session_id, f"the runtime ended unexpectedly ({_describe_exit(code)}); "
                         "resume the session to go on with a fresh runtime")  # fmt: skip

    def _ended_idle(self, session: Session) -> bool:
        """True when the runtime's last word was that it ended itself after the idle TTL."""
        self.catch_up(session.id)
        last = self.store.events(session.id, newest=True, limit=1)
        return bool(last and last[0].payload.get("ended_idle"))

    async def _fail(self, session_id: str, message: str) -> None:
        """Mark a session failed, with the cause as an `error` event, and release its runtime."""
        await self._release(session_id)
        session = self.store.get_session(session_id)
        if session is None or not session.state.is_live:
            return  # stopped (or failed) meanwhile: that outcome stands
        self._end(session_id, SessionState.FAILED, "error", {"message": message, "fatal": True})

    def _end(
        self, session_id: str, state: SessionState, kind: str | None = None,
        payload: dict[str, Any] | None = None, client: str | None = None,
    ) -> None:  # fmt: skip
        """Move a session whose runtime is gone to STATE, noting why in its transcript."""
        session = self.store.get_session(session_id)
        if session is None:
            return
        session.state = state
        if state is SessionState.FAILED and payload is not None:
            session.error = str(payload.get("message"))
        if kind is not None:
            self._write(session, kind, payload or {}, client)
        else:
            self.store.save_session(session)
        if session_id in self._ready:
            self._ready[session_id].set()
        self.review.refresh_diffstat(session_id)

    def _write(
        self, session: Session, kind: str, payload: dict[str, Any], client: str | None = None
    ) -> None:
        """Append an event the manager writes itself (no runtime is writing the journal), save
        SESSION, and publish what was new: anything journaled meanwhile, then this event."""
        new = self._index_journal(session)
        event = self.journal(session).append(kind, payload, client=client)
        new += self.store.add_events(session.id, [event])
        self.store.save_session(session)
        for e in new:
            self._publish(session.id, e)

    async def _release(self, session_id: str, now: bool = False) -> None:
        launch = self._launching.pop(session_id, None)
        if launch is not None and launch is not asyncio.current_task() and not launch.done():
            launch.cancel()  # ends a running setup script with its sandbox
            await asyncio.gather(launch, return_exceptions=True)
        handle = self.runtimes.pop(session_id, None)
        if handle is not None:
            handle.stopping = True
            await handle.shutdown(now=now)
        session = self.store.get_session(session_id)
        await self.sandboxes.release(session_id, session.runtime if session else None)
        if session is not None:
            shutil.rmtree(self.runtime_dir(session), ignore_errors=True)

    # -- driving ------------------------------------------------------------------------------

    def _running(self, session: Session) -> RuntimeHandle:
        handle = self.runtimes.get(session.id)
        if session.state is not SessionState.RUNNING or handle is None:
            hint = {
                SessionState.STARTING: "; wait until it is ready",
                SessionState.STOPPED: f"; resume it first (jupyter catty resume {session.label})",
                SessionState.FAILED: f"; resume it first (jupyter catty resume {session.label})",
                SessionState.EXPIRED: f"; resume it first (jupyter catty resume {session.label})",
            }.get(session.state, "")
            raise Conflict(
                f"session {session.label} is {session.state.value}, not running{hint}",
                reason="not_running",
            )
        return handle

    async def send(self, session: Session, text: str, client: str | None) -> None:
        """Send a user message to the session's agent (CLIENT must be able to steer), with the
        review comments queued for it (then TEXT may be empty)."""
        self._check_message(text)
        if not text.strip() and not self.review.queued(session):
            raise CattyError("the message is empty", reason="empty_message")
        self.focus.steer(session, client)
        if session.state is SessionState.STARTING:
            await self._wait_ready(session)
            session = self.get(session.id)
        handle = self._running(session)
        # From here to the send nothing awaits: no other request can take these comments too.
        comments = self.review.queued(session)
        message = self.review.message(session, text, comments, self.max_message_bytes)
        for comment in comments:
            # Through the runtime, on the same channel as the message: they precede its `user`.
            self._record(session, "comment", comment.event_payload(), comment.client)
        self.review.mark_sent(session, comments)
        handle.send_message(message, client)

    async def interrupt(self, session: Session, client: str | None = None) -> None:
        """Interrupt the current turn."""
        handle = self._running(session)
        self.focus.steer(session, client)
        await handle.interrupt()

    def pending_permissions(self, session: Session) -> dict[str, Event]:
        """Permission requests that have not been answered yet, by request id."""
        pending: dict[str, Event] = {}
        asked = self.store.events(session.id, kinds=("permission_request", "permission_decision"))
        for event in asked:
            rid = str(event.payload.get("request_id", ""))
            if event.kind == "permission_request":
                pending[rid] = event
            elif event.kind == "permission_decision":
                pending.pop(rid, None)
        return pending

    async def answer_permission(
        self, session: Session, request_id: str, behavior: str, message: str, client: str | None
    ) -> None:
        """Answer a pending permission request (allow, or deny with a message)."""
        if behavior not in ("allow", "deny"):
            raise CattyError("behavior must be 'allow' or 'deny'", reason="bad_behavior")
        if request_id not in self.pending_permissions(session):
            raise NotFound(f"no pending permission request {request_id!r} in {session.label}")
        handle = self._running(session)
        self.focus.steer(session, client)
        handle.control(
            {"type": "permission_reply", "request_id": request_id, "behavior": behavior,
             "message": message, "client": client}
        )  # fmt: skip

    # -- recording events -----------------------------------------------------------------------

    def _record(
        self, session: Session, kind: str, payload: dict[str, Any], client: str | None = None
    ) -> None:
        """Add an event the server originates, keeping one writer per journal.

        While a runtime runs it writes the journal, so the event goes through it; otherwise the
        manager appends it itself.
        """
        handle = self.runtimes.get(session.id)
        if handle is not None and handle.client is not None and not handle.stopping:
            handle.control({"type": "event", "kind": kind, "payload": payload, "client": client})
        elif handle is not None:
            self._spawn(self._record_when_ready(session.id, kind, payload, client))
        else:
            current = self.store.get_session(session.id)
            if current is not None:
                self._write(current, kind, payload, client)

    async def _record_when_ready(
        self, session_id: str, kind: str, payload: dict[str, Any], client: str | None
    ) -> None:
        ready = self._ready.get(session_id)
        if ready is not None:
            await ready.wait()
        session = self.store.get_session(session_id)
        if session is not None:
            self._record(session, kind, payload, client)

    # -- lifecycle ------------------------------------------------------------------------------

    async def stop(
        self, session: Session, client: str | None = None, message: str = "session stopped"
    ) -> Session:
        """End the session's runtime; its workspace and transcript stay."""
        if not session.state.is_live:
            return session
        await self._release(session.id)
        self._end(session.id, SessionState.STOPPED, "system", {"message": message}, client)
        return self.get(session.id)

    async def resume(self, session: Session, client: str | None = None) -> Session:
        """Start a fresh runtime for a stopped, failed or expired session, its conversation
        restored.

        The environment's setup is not run again: the workspace already holds its result.
        """
        if session.state.is_live:
            raise Conflict(f"session {session.label} is already {session.state.value}",
                           reason="already_running")  # fmt: skip
        env = self.environment(session.environment)
        self._check_runtime_kernel()
        session.state, session.error = SessionState.STARTING, None
        self._write(session, "system", {"message": f"session resumed by {client or 'the server'}"},
                    client)  # fmt: skip
        if client is not None:
            self.focus.claim_if_free(session, client)
        self._ready[session.id] = asyncio.Event()
        self._launching[session.id] = self._spawn(
            self._launch(session, env, None, client, resume=True)
        )
        return session

    def set_archived(self, session: Session, archived: bool) -> Session:
        """Hide the session from the default list, or show it again."""
        session.archived = archived
        self.store.save_session(session)
        self._changed(session.id)
        return session

    async def delete(self, session: Session) -> None:
        """Remove the session and everything it left on disk."""
        await self._release(session.id, now=True)
        shutil.rmtree(self.session_dir(session), ignore_errors=True)
        shutil.rmtree(self.runtime_dir(session), ignore_errors=True)
        self.store.delete_session(session.id)
        self._ready.pop(session.id, None)
        self.focus.forget(session.id)
        self._changed(session.id)

    def download(
        self, session: Session, path: str | None = None
    ) -> tuple[str, AsyncIterator[bytes]]:
        """The archive's name, and a gzipped tar of the workspace (or a directory in it) in chunks.

        Works whether or not the session runs; refuses paths that leave the workspace and
        workspaces over `max_download_bytes`.
        """
        root = self.session_dir(session) / "workspace"
        target = archive.resolve_inside(root, path)
        size = archive.tree_size(target)
        if size > self.max_download_bytes:
            raise TooLarge(
                f"{session.label}'s workspace{' at ' + path if path else ''} holds {size} bytes, "
                f"over the {self.max_download_bytes}-byte download limit "
                "(CattyExtension.max_download_bytes); download a directory in it with ?path="
            )
        # Only safe characters: the name also goes into a Content-Disposition header.
        leaf = re.sub(r"[^A-Za-z0-9._-]", "_", target.name)
        name = session.label if not path else f"{session.label}-{leaf}"
        return name, archive.tar_gz_chunks(target, name)

    # -- subscribers --------------------------------------------------------------------------

    def subscribe(self, session_id: str, deliver: Callable[[Event], None]) -> None:
        """Call DELIVER with every event of the session indexed from now on, in order, as soon
        as it is in the index (so a subscriber that falls behind can read what it missed)."""
        self._subscribers.setdefault(session_id, set()).add(deliver)

    def unsubscribe(self, session_id: str, deliver: Callable[[Event], None]) -> None:
        """Stop calling DELIVER."""
        self._subscribers.get(session_id, set()).discard(deliver)

    def _publish(self, session_id: str, event: Event) -> None:
        for deliver in list(self._subscribers.get(session_id, ())):
            try:
                deliver(event)
            except Exception:  # one broken viewer must not stop the others or the indexing
                self.log.exception("catty: a viewer of session %s failed", session_id)
        self._changed(session_id)  # every state, activity or focus change is an event

    def watch(self, notify: Callable[[str], None]) -> None:
        """Call NOTIFY with a session's id whenever what a session list shows of it may have
        changed: an event (state, activity, focus), its diffstat, its archived flag, its
        creation or deletion."""
        self._watchers.add(notify)

    def unwatch(self, notify: Callable[[str], None]) -> None:
        """Stop calling NOTIFY."""
        self._watchers.discard(notify)

    def _changed(self, session_id: str) -> None:
        for notify in list(self._watchers):
            try:
                notify(session_id)
            except Exception:
                self.log.exception("catty: a session list watcher failed")

    # -- life of the manager --------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def _orphan_timeout(self) -> float:
        """How long a runtime waits without a server before ending itself."""
        return self.cull_idle_timeout if self.cull_idle_timeout > 0 else 7200.0

    async def start(self) -> None:
        """Re-attach runtimes a previous server left running, then start housekeeping.

        Safe to call many times and from many requests: the work happens once.
        """
        if self._started is None:
            self._started = asyncio.ensure_future(self._start())
        await asyncio.shield(self._started)

    async def _start(self) -> None:
        for session in self.store.list_sessions(include_archived=True):
            if session.state.is_live:
                try:
                    await self._recover(session)
                except Exception as exc:
                    self.log.exception("catty: could not re-attach %s", session.label)
                    _end_leftover_runtime(session.runtime.get("pids") or [])
                    await self._fail(session.id, f"the Jupyter server restarted and could not "
                                     f"re-attach the runtime: {exc}")  # fmt: skip
        self._housekeeper = asyncio.ensure_future(self._housekeeping())

    async def _recover(self, session: Session) -> None:
        """Re-attach a runtime that outlived its server, or record how the session ended."""
        info = session.runtime
        alive = bool(info.get("provisioner")) and any(
            runtime_alive(p) for p in info.get("pids") or []
        )
        if not alive:
            _end_leftover_runtime(info.get("pids") or [])
            if self._ended_idle(session):
                self._end(session.id, SessionState.EXPIRED)
            else:
                await self._fail(session.id, "the runtime ended while the Jupyter server was "
                                 "down; resume the session to go on")  # fmt: skip
            return
        env = self.environments.find(session.environment)
        if env is not None and self.prepare_environment is not None:
            await self.prepare_environment(env)
        handle = RuntimeHandle(
            self.runtime_kernel, self.spec_manager, Path(info["runtime_dir"]), self.log
        )
        self.runtimes[session.id] = handle
        await self.sandboxes.restore_network(
            session.id, env, info.get("forwards") or [], self._blocked(session.id)
        )
        self._ready.setdefault(session.id, asyncio.Event())
        await handle.attach(
            info, on_event=lambda e: self._on_event(session.id, e),
            on_exit=lambda code: self._on_runtime_exit(session.id, code),
        )  # fmt: skip
        # Whatever the runtime journaled while no server listened is indexed now; what it
        # publishes from here on arrives through IOPub.
        new = self._take_in(session.id, None)
        self.log.info("catty: re-attached %s (%d events caught up)", session.label, len(new))

    async def _housekeeping(self) -> None:
        """Once a second: lapse focus, keep runtimes told a server is here, cull idle sessions."""
        keepalive_every = min(max(self._orphan_timeout / 4, 0.25), 30)
        last_keepalive = last_cull = time.monotonic()
        while True:
            await asyncio.sleep(min(1.0, keepalive_every))
            now = time.monotonic()
            try:
                self.focus.lapse()
                if now - last_keepalive >= keepalive_every:
                    last_keepalive = now
                    for handle in list(self.runtimes.values()):
                        with contextlib.suppress(Exception):
                            handle.keepalive()
                self._watch_memory()
                if now - self._disk_checked >= DISK_CHECK_SECONDS:
                    self._disk_checked = now
                    await self._check_disk()
                if now - self._snapshots_pruned >= SNAPSHOT_PRUNE_SECONDS:
                    self._snapshots_pruned = now
                    await self.prune_snapshots()
                if self.cull_idle_timeout > 0 and now - last_cull >= self.cull_interval:
                    last_cull = now
                    await self.cull_idle()
                # A busy agent is activity, even between events (JupyterHub's culler must
                # not stop the server under it).
                busy = any(s.activity is not Activity.IDLE for s in self._live_sessions())
                if busy and self.on_activity is not None:
                    self.on_activity()
            except Exception:
                self.log.exception("catty: housekeeping failed")

    def _watch_memory(self) -> None:
        """End any session whose process tree went over its environment's memory limit."""
        for session in self._live_sessions():
            saved = session.runtime.get("enforcement")
            memory = _limit(session, "memory")
            if not saved or memory is None or session.id in self._end_reasons:
                continue
            root = self._sandbox_pid(session)
            if root is None:
                continue
            reading = limits.memory_reading(limits.Enforcement.from_json(saved), root, memory)
            if reading.over or reading.oom_killed:
                self._end_reasons[session.id] = _over_memory(memory, reading.used)
                limits.kill_tree(root)

    def _memory_verdict(self, session_id: str) -> str | None:
        """Why a runtime that just ended died, when the kernel ended it for memory (a cgroup v2
        group kill ends the whole tree before the watchdog sees anything)."""
        session = self.store.get_session(session_id)
        memory = _limit(session, "memory") if session is not None else None
        saved = session.runtime.get("enforcement") if session is not None else None
        if session is None or memory is None or not saved or not saved.get("cgroup"):
            return None
        reading = limits.memory_reading(limits.Enforcement.from_json(saved), 0, memory)
        return _over_memory(memory, reading.used) if reading.oom_killed else None

    def _sandbox_pid(self, session: Session) -> int | None:
        handle = self.runtimes.get(session.id)
        provisioner = handle.km.provisioner if handle is not None else None
        pid = getattr(provisioner, "sandbox_pid", None) or getattr(provisioner, "pid", None)
        return int(pid) if pid else None

    async def prune_snapshots(self) -> list[Path]:
        """Remove environment snapshots that no session, running or stopped, mounts and that a
        newer build replaced or that are too old to be used again; return what was removed."""
        if any(not launch.done() for launch in self._launching.values()):
            return []  # a launch may be about to record a snapshot it looked up: next time
        keep = {
            Path(s.runtime["snapshot"]["path"])
            for s in self.store.list_sessions(include_archived=True)
            if (s.runtime or {}).get("snapshot")
        }
        removed = await asyncio.to_thread(self.sandboxes.cache.prune, keep)
        if removed:
            self.log.info("catty: removed %d environment snapshot(s) no session uses: %s",
                          len(removed), ", ".join(str(p) for p in removed))  # fmt: skip
        return removed

    async def _check_disk(self) -> None:
        """Measure each live session's disk use (shown in the API), and stop a session that
        went over its environment's disk limit."""
        for session in self._live_sessions():
            root = self.session_dir(session)
            used = await asyncio.to_thread(limits.disk_usage, root / "workspace", root / "layer")
            current = self.store.get_session(session.id)
            if current is None:
                continue
            current.runtime["disk_used"] = used
            self.store.save_session(current)
            disk = _limit(current, "disk")
            if disk is not None and used > disk:
                await self._fail(session.id, (
                    f"the session's workspace and layers use {format_size(used)}, over the "
                    f"environment's disk limit of {format_size(disk)}, so it was stopped. "
                    "Download what you need, then delete files or raise the limit and resume"
                ))  # fmt: skip

    def _live_sessions(self) -> list[Session]:
        return [s for s in map(self.store.get_session, list(self.runtimes)) if s is not None]

    async def cull_idle(self) -> list[str]:
        """End the runtimes of running sessions idle for longer than `cull_idle_timeout`; those
        sessions are `expired` (resume brings them back); return their labels.

        Idle means no transcript event (agent output, a message, a focus change, a permission
        answer) for that long while the agent is not busy. Watching does not count.
        """
        culled = []
        now = time.time()
        for session in self._live_sessions():
            if session.state is not SessionState.RUNNING or session.activity is Activity.BUSY:
                continue
            idle = now - session.last_activity
            if idle >= self.cull_idle_timeout:
                await self._release(session.id)
                self._end(session.id, SessionState.EXPIRED, "system", {
                    "message": f"expired after {idle:.0f} s idle (the idle TTL is "
                    f"{self.cull_idle_timeout:.0f} s); resume it to go on with its conversation",
                    "expired": True,
                })  # fmt: skip
                culled.append(session.label)
        return culled

    async def shutdown(self) -> None:
        """The server is going away: leave runtimes running for the next one, or stop them."""
        if self._housekeeper is not None:
            self._housekeeper.cancel()
        # Launches still under way (a setup script running) end here; the next server finds
        # those sessions without a runtime and says so.
        for launch in list(self._launching.values()):
            launch.cancel()
        await asyncio.gather(*self._launching.values(), return_exceptions=True)
        self._launching.clear()
        if self.stop_sessions_on_exit:
            # All at once: one by one, many sessions outlast a shutdown's patience.
            await asyncio.gather(
                *(self.stop(self.get(sid), message="stopped with the server") for sid in
                  list(self.runtimes)),
                return_exceptions=True,
            )  # fmt: skip
        for session_id in list(self.runtimes):
            self.runtimes.pop(session_id).detach()
        await self.review.close()
        await self.sandboxes.close()
        self.store.close()


def _origin_of(repo: str | None, archive: bool = False) -> dict[str, Any]:
    """What the session remembers of its source (for teleport and push)."""
    if archive:
        return {"kind": "archive", "remotes": {}, "roots": []}
    if repo is None:
        return {"kind": "empty", "remotes": {}, "roots": []}
    return workspaces.describe_origin(Path(repo).expanduser())


def _limit(session: Session, resource: str) -> int | None:
    """The session's RESOURCE limit as it was launched with (bytes), or None."""
    value = (session.runtime.get("resources") or {}).get(resource)
    return int(value) if value else None


def _over_memory(limit: int, used: int) -> str:
    return (
        f"the session went over its memory limit ({format_size(limit)}: it used "
        f"{format_size(used)}), so its processes were ended; raise the environment's memory "
        "or do less at once, then resume the session"
    )


RUNTIME_KERNELS = ("catty", "runtime-kernels")
"""Where, under a Jupyter data directory, the runtime kernelspecs are installed."""
DISK_CHECK_SECONDS = 10.0
SNAPSHOT_PRUNE_SECONDS = 3600.0
"""How often housekeeping removes environment snapshots nobody needs (and once at start)."""
"""How often live sessions' disk use is measured."""


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0 or code > 128:
        number = -code if code < 0 else code - 128
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(number).name}"
    return f"exit status {code}"


def _end_leftover_runtime(pids: list[int]) -> None:
    """Kill a runtime a previous server left behind, so no two writers share a journal."""
    for pid in pids:
        if runtime_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _tail(path: Path, lines: int) -> str:
    """The last LINES lines of a log file, or '' when there is none."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
