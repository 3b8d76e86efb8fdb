"""REST handlers under {base_url}catty/v1/: thin translations of HTTP into manager calls."""

from __future__ import annotations

import base64
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..agents import available_agents
from ..core.comments import BadComment
from ..core.environments import BadEnvironment
from ..core.errors import CattyError
from .manager import SessionManager
from .stream import StreamHandler
from .updates import UpdatesHandler

AUTH_RESOURCE = "catty"
MAX_BODY_BYTES = 1 << 20


class CattyHandler(APIHandler):
    """Shared plumbing: the manager, the caller's identity, JSON bodies, error mapping."""

    auth_resource = AUTH_RESOURCE

    @property
    def manager(self) -> SessionManager:
        """The session manager."""
        return self.settings["catty_manager"]  # type: ignore[no-any-return]

    async def prepare(self) -> None:  # type: ignore[override]
        """Before the first request is served, runtimes left by a previous server re-attach."""
        await super().prepare()
        await self.manager.start()

    @property
    def owner(self) -> str:
        """The acting user's name, recorded on what they create.

        Sessions belong to the Jupyter server (one per user, as on JupyterHub), so anyone the
        server's authorizer lets in sees them all; a token login without a user name gets a new
        anonymous name on every request, so names cannot be used to filter.
        """
        user = self.current_user
        return str(getattr(user, "name", None) or getattr(user, "username", None) or user)

    def client_id(self, body: dict[str, Any] | None = None) -> str:
        """Who is acting: a client-chosen identity (a device, a tab, a terminal), else the user.

        Focus is held by client identities, so an unnamed client must be the same one from
        request to request: jupyter_server names each token-only request a new random
        "Anonymous …" user, and all of those count as the one client `anonymous`.
        """
        chosen = (body or {}).get("client") or self.request.headers.get("X-Catty-Client")
        if chosen is not None and not isinstance(chosen, str):
            raise CattyError("client must be a string naming this device or tab",
                             reason="bad_client")  # fmt: skip
        if chosen:
            return _check_text(chosen[:100], "client")
        return "anonymous" if self.owner.startswith("Anonymous ") else self.owner

    def body(self) -> dict[str, Any]:
        """The request's JSON object, or a 400/413 saying what is wrong with it."""
        raw = self.request.body or b"{}"
        if len(raw) > MAX_BODY_BYTES:
            raise CattyError(f"the request body is over {MAX_BODY_BYTES} bytes", status=413,
                             reason="too_large")  # fmt: skip
        try:
            data = json.loads(raw)
        except RecursionError:
            raise CattyError("the request body is nested too deeply", reason="bad_json") from None
        except ValueError as exc:
            raise CattyError(
                f"the request body is not valid JSON: {exc}", reason="bad_json"
            ) from None
        if not isinstance(data, dict):
            raise CattyError("the request body must be a JSON object", reason="bad_json")
        return data

    def session(self, key: str) -> Any:
        """The session KEY (label or id), or 404."""
        return self.manager.get(key)

    def reply(self, data: Any, status: int = 200) -> None:
        """Finish with a JSON body."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Errors are JSON `{"message", "reason"}`."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, CattyError):
            body = {"message": exc.message, "reason": exc.reason}
            if isinstance(exc, BadEnvironment | BadComment):
                body.update(exc.details())  # the field (and .env line) an editor can point at
            self.set_status(exc.status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(body))
            return
        super().write_error(status_code, **kwargs)

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, CattyError):
            self.log.info("catty: %s %s -> %s %s", self.request.method, self.request.path,
                          e.status, e.message)  # fmt: skip
            self.send_error(e.status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)


MAX_SEQ = 2**62
"""Larger cursors than any transcript will reach; SQLite integers stop at 2**63."""


def _check_text(value: str, name: str) -> str:
    """VALUE, refused when it is not valid Unicode (JSON allows lone surrogates)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise CattyError(f"{name} is not valid Unicode text", reason="bad_text") from None
    return value


def _string(body: dict[str, Any], name: str) -> str | None:
    """BODY[NAME] when it is a string (None when absent or empty), else a 400."""
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise CattyError(f"{name} must be a string", reason=f"bad_{name}")
    return _check_text(value, name)


def _repo(handler: CattyHandler, body: dict[str, Any]) -> str | None:
    """BODY's `repo` as a path on the server: a relative one names a folder under the server's
    root folder ("" and "." the root itself), as the file browser's paths do."""
    value = body.get("repo")
    if value is None:
        return None
    if not isinstance(value, str):
        raise CattyError("repo must be a string", reason="bad_repo")
    _check_text(value, "repo")
    # The CLI and kernels send absolute paths; `~` is the server user's home, as before.
    if value.startswith("~"):
        try:
            return str(Path(value).expanduser())
        except RuntimeError:  # `~name` of a user this machine does not have
            raise CattyError(
                f"repo {value!r}: no such user's home on the server; give a full path",
                reason="bad_repo",
            ) from None
    if os.path.isabs(value) or handler.serverapp is None:
        return value
    return str(Path(handler.serverapp.root_dir, value))


def _int_arg(handler: CattyHandler, name: str, default: int | None) -> int | None:
    value = handler.get_argument(name, None)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise CattyError(
            f"{name} must be a whole number, not {value!r}", reason="bad_argument"
        ) from None
    if number < 0:
        raise CattyError(f"{name} must not be negative", reason="bad_argument")
    return min(number, MAX_SEQ)


class SessionsHandler(CattyHandler):
    """List and create sessions."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """List the server's sessions (`?all=1` includes archived ones)."""
        include = self.get_argument("all", "0") in ("1", "true", "yes")
        sessions = self.manager.list_sessions(include_archived=include)
        focus = self.manager.focus
        self.reply({"sessions": [{**s.to_json(), "focus": focus.to_json(s)} for s in sessions]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Create a session: workspace from `repo`, an uploaded `archive` (or empty), then the
        agent gets `prompt`."""
        body = self.body()
        options = body.get("options") or {}
        if not isinstance(options, dict):
            raise CattyError("options must be an object", reason="bad_options")
        repo, archive = _repo(self, body), _string(body, "archive")
        if repo and archive:
            raise CattyError("give repo or archive, not both", reason="bad_source")
        uploads = self.settings["catty_uploads"]
        with uploads.claim(archive) if archive else contextlib.nullcontext() as upload:
            session = await self.manager.create(
                owner=self.owner, prompt=_string(body, "prompt"),
                environment=_string(body, "environment") or "default",
                agent=_string(body, "agent"), repo=repo, archive=upload,
                options=options, client=self.client_id(body),
            )  # fmt: skip
        self.reply(session.to_json(), status=201)


class SessionHandler(CattyHandler):
    """One session."""

    @web.authenticated
    @authorized
    async def get(self, key: str) -> None:
        """The session's state."""
        session = self.session(key)
        data = session.to_json()
        data["pending_permissions"] = [
            e.payload for e in self.manager.pending_permissions(session).values()
        ]
        data["focus"] = self.manager.focus.to_json(session)
        self.reply(data)

    @web.authenticated
    @authorized
    async def patch(self, key: str) -> None:
        """Change what may change: `archived`."""
        session = self.session(key)
        body = self.body()
        if "archived" in body:
            session = self.manager.set_archived(session, bool(body["archived"]))
        self.reply(session.to_json())

    @web.authenticated
    @authorized
    async def delete(self, key: str) -> None:
        """Delete the session and everything on disk; needs `?confirm=LABEL`."""
        session = self.session(key)
        if self.get_argument("confirm", "") != session.label:
            raise CattyError(
                f"deleting removes the workspace and transcript for good; repeat the request "
                f"with ?confirm={session.label}", reason="confirm_required",
            )  # fmt: skip
        await self.manager.delete(session)
        self.set_status(204)
        self.finish()


class MessagesHandler(CattyHandler):
    """Send a message to the agent."""

    @web.authenticated
    @authorized
    async def post(self, key: str) -> None:
        """Queue `text` for the agent; the transcript shows it when the runtime takes it."""
        session = self.session(key)
        raw = self.request.body or b""
        if len(raw) > self.manager.max_message_bytes + 4096:
            raise CattyError(
                f"the message is over the {self.manager.max_message_bytes}-byte limit",
                status=413, reason="too_large",
            )  # fmt: skip
        body = self.body()
        text = body.get("text")
        if not isinstance(text, str):
            raise CattyError('the body must be {"text": "..."}', reason="bad_message")
        _check_text(text, "text")
        await self.manager.send(session, text, self.client_id(body))
        self.reply({"status": "sent"}, status=202)


class ActionHandler(CattyHandler):
    """`interrupt`, `stop` and `resume`."""

    @web.authenticated
    @authorized
    async def post(self, key: str, action: str) -> None:
        """Interrupt the turn (needs focus), stop the session, or resume a stopped one."""
        session = self.session(key)
        client = self.client_id(self.body())
        if action == "interrupt":
            await self.manager.interrupt(session, client)
            self.reply({"status": "interrupted"})
        elif action == "stop":
            session = await self.manager.stop(session, client=client)
            self.reply(session.to_json())
        else:
            session = await self.manager.resume(session, client=client)
            self.reply(session.to_json(), status=202)


class FocusHandler(CattyHandler):
    """Input focus: who may steer the session."""

    @web.authenticated
    @authorized
    async def get(self, key: str) -> None:
        """Who holds focus."""
        self.reply(self.manager.focus.to_json(self.session(key)))

    @web.authenticated
    @authorized
    async def post(self, key: str) -> None:
        """The calling client takes focus (the previous holder is told in the transcript)."""
        session = self.session(key)
        self.reply(self.manager.focus.take(session, self.client_id(self.body())))

    @web.authenticated
    @authorized
    async def delete(self, key: str) -> None:
        """The holder lets go of focus (`?client=`, or the X-Catty-Client header)."""
        session = self.session(key)
        client = self.get_argument("client", None)
        self.reply(self.manager.focus.release(session, client or self.client_id()))


class DownloadHandler(CattyHandler):
    """The workspace as a streamed .tar.gz."""

    @web.authenticated
    @authorized
    async def get(self, key: str) -> None:
        """`?path=DIR` narrows it to a directory inside the workspace."""
        session = self.session(key)
        path = self.get_argument("path", None)
        name, chunks = self.manager.download(session, path)
        self.set_header("Content-Type", "application/gzip")
        self.set_header("Content-Disposition", f'attachment; filename="{name}.tar.gz"')
        async for chunk in chunks:
            self.write(chunk)
            await self.flush()
        self.finish()


class PermissionHandler(CattyHandler):
    """Answer a permission request."""

    @web.authenticated
    @authorized
    async def post(self, key: str, request_id: str) -> None:
        """Allow, or deny with a message the agent will read."""
        session = self.session(key)
        body = self.body()
        await self.manager.answer_permission(
            session, request_id, str(body.get("behavior", "")), str(body.get("message") or ""),
            self.client_id(body),
        )  # fmt: skip
        self.reply({"status": "answered"})


class TranscriptHandler(CattyHandler):
    """Pages of the transcript."""

    @web.authenticated
    @authorized
    async def get(self, key: str) -> None:
        """Events with `after` < seq < `before`, at most `limit` (default 500, max 5000).

        `tail=1` gives the newest `limit` events of that range instead of the oldest.
        """
        session = self.session(key)
        after = _int_arg(self, "after", 0) or 0
        before = _int_arg(self, "before", None)
        limit = min(_int_arg(self, "limit", 500) or 500, 5000)
        newest = self.get_argument("tail", "0") in ("1", "true", "yes")
        events = self.manager.transcript(
            session, after=after, limit=limit, before=before, newest=newest
        )
        self.reply({"events": [e.to_json() for e in events],
                    "last_seq": self.manager.store.last_seq(session.id)})  # fmt: skip


class DiffHandler(CattyHandler):
    """The session's changes against its base commit."""

    @web.authenticated
    @authorized
    async def get(self, key: str) -> None:
        """Per file and in total, with patches and notebook diffs (`stat=1`: counts only)."""
        session = self.session(key)
        stat = self.get_argument("stat", "0") in ("1", "true", "yes")
        self.reply(await self.manager.review.diff(session, stat_only=stat))


class CommentsHandler(CattyHandler):
    """Line comments waiting for the session's next message."""

    @web.authenticated
    @authorized
    async def get(self, key: str) -> None:
        """The queued comments, oldest first."""
        session = self.session(key)
        self.reply({"comments": [c.to_json() for c in self.manager.review.queued(session)]})

    @web.authenticated
    @authorized
    async def post(self, key: str) -> None:
        """Queue `{path, line, side, text}`; the next message takes it to the agent."""
        session = self.session(key)
        body = self.body()
        comment = await self.manager.review.add_comment(session, body, self.client_id(body))
        self.reply(comment.to_json(), status=201)


class CommentHandler(CattyHandler):
    """One queued comment."""

    @web.authenticated
    @authorized
    async def delete(self, key: str, comment_id: str) -> None:
        """Withdraw it before it is sent."""
        self.manager.review.withdraw(self.session(key), comment_id)
        self.set_status(204)
        self.finish()


class TeleportHandler(CattyHandler):
    """What a local checkout needs to know before it takes a session's branch."""

    @web.authenticated
    @authorized
    async def get(self, key: str) -> None:
        """Branch, base commit, origin (remotes, root commits) and the agent's conversation."""
        self.reply(self.manager.handoff.teleport_info(self.session(key)))


class BundleHandler(CattyHandler):
    """The session's branch as a git bundle."""

    @web.authenticated
    @authorized
    async def post(self, key: str) -> None:
        """`{"have": [commits], "record": true}`: the agent's uncommitted work is committed onto
        the branch first (unless `record` is false: then only the bundle holds that commit)."""
        session = self.session(key)
        body = self.body()
        record = body.get("record", True)
        if not isinstance(record, bool):
            raise CattyError("record must be true or false", reason="bad_record")
        bundle = await self.manager.handoff.bundle(session, body.get("have") or [], record=record)
        try:
            info = bundle.info
            self.set_header("Content-Type", "application/x-git-bundle")
            self.set_header("Content-Disposition",
                            f'attachment; filename="{session.label}.bundle"')  # fmt: skip
            self.set_header("X-Catty-Branch", str(info["branch"]))
            self.set_header("X-Catty-Commit", str(info["commit"]))
            self.set_header("X-Catty-Uncommitted", "1" if info.get("uncommitted") else "0")
            with bundle.path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    self.write(chunk)
                    await self.flush()
            self.finish()
        finally:
            bundle.discard()


class ConversationHandler(CattyHandler):
    """The agent's own files of the session's conversation (for `claude --resume` elsewhere)."""

    @web.authenticated
    @authorized
    async def get(self, key: str) -> None:
        """`{"agent", "session_id", "cwd", "files": [{"path", "text" | "base64"}]}`."""
        session = self.session(key)
        sid, cwd, files = self.manager.handoff.conversation(session)
        self.reply({"agent": session.agent, "session_id": sid, "cwd": cwd,
                    "files": [_file_json(f.path, f.data) for f in files]})  # fmt: skip


class PushHandler(CattyHandler):
    """Push the session's branch to a remote of its source repository."""

    @web.authenticated
    @authorized
    async def post(self, key: str) -> None:
        """`{"remote": "origin"}`."""
        session = self.session(key)
        remote = _string(self.body(), "remote") or "origin"
        self.reply(await self.manager.handoff.push(session, remote))


def _file_json(path: str, data: bytes) -> dict[str, str]:
    try:
        return {"path": path, "text": data.decode()}
    except UnicodeDecodeError:
        return {"path": path, "base64": base64.b64encode(data).decode()}


class AgentsHandler(CattyHandler):
    """The agents this server can run."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Every installed agent adapter, by name."""
        self.reply({"agents": [{"name": name} for name in available_agents()]})


class EnvironmentsHandler(CattyHandler):
    """List and create the environments sessions start in."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Every environment, `default` first; secret values masked."""
        envs = self.manager.environments.list()
        self.reply({"environments": [e.to_json() for e in envs]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Create an environment from `{name, ...fields}`."""
        body = _environment_body(self)
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise BadEnvironment('the body must name the environment: {"name": "...", ...}',
                                 field="name")  # fmt: skip
        env = self.manager.environments.create(name, body)
        self.reply(env.to_json(), status=201)


class EnvironmentHandler(CattyHandler):
    """One environment."""

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        """The environment; secret values masked."""
        self.reply(self.manager.environments.get(name).to_json())

    @web.authenticated
    @authorized
    async def patch(self, name: str) -> None:
        """Change the fields the body gives; a secret sent back masked keeps its value."""
        env = self.manager.environments.update(name, _environment_body(self))
        self.reply(env.to_json())

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        """Delete a user's environment that no live session runs in."""
        self.manager.environments.delete(name, self.manager.environment_users(name))
        self.set_status(204)
        self.finish()


def _environment_body(handler: CattyHandler) -> dict[str, Any]:
    """The request's environment fields, refused when they are not valid Unicode text."""
    body = handler.body()
    try:
        # JSON may carry lone surrogates, which no variable or script can hold.
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise CattyError("the environment is not valid Unicode text", reason="bad_text") from None
    return body


_KEY = r"(?P<key>[A-Za-z0-9_-]+)"

default_handlers = [
    (r"/catty/v1/sessions", SessionsHandler),
    (rf"/catty/v1/sessions/{_KEY}", SessionHandler),
    (rf"/catty/v1/sessions/{_KEY}/messages", MessagesHandler),
    (rf"/catty/v1/sessions/{_KEY}/(?P<action>interrupt|stop|resume)", ActionHandler),
    (rf"/catty/v1/sessions/{_KEY}/focus", FocusHandler),
    (rf"/catty/v1/sessions/{_KEY}/download", DownloadHandler),
    (rf"/catty/v1/sessions/{_KEY}/permissions/(?P<request_id>[A-Za-z0-9_-]+)", PermissionHandler),
    (rf"/catty/v1/sessions/{_KEY}/transcript", TranscriptHandler),
    (rf"/catty/v1/sessions/{_KEY}/stream", StreamHandler),
    (rf"/catty/v1/sessions/{_KEY}/diff", DiffHandler),
    (rf"/catty/v1/sessions/{_KEY}/comments", CommentsHandler),
    (rf"/catty/v1/sessions/{_KEY}/comments/(?P<comment_id>[A-Za-z0-9_-]+)", CommentHandler),
    (rf"/catty/v1/sessions/{_KEY}/teleport", TeleportHandler),
    (rf"/catty/v1/sessions/{_KEY}/bundle", BundleHandler),
    (rf"/catty/v1/sessions/{_KEY}/conversation", ConversationHandler),
    (rf"/catty/v1/sessions/{_KEY}/push", PushHandler),
    (r"/catty/v1/updates", UpdatesHandler),
    (r"/catty/v1/agents", AgentsHandler),
    (r"/catty/v1/environments", EnvironmentsHandler),
    (r"/catty/v1/environments/(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)", EnvironmentHandler),
]
