"""The one Python client of the catty REST/WebSocket API (the CLI, magics and widgets use it)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

API = "catty/v1"

Progress = Callable[[int], None]
"""Told the bytes moved so far during a long transfer."""


class ClientError(Exception):
    """The server refused a request, or could not be reached; the message says why."""

    def __init__(
        self, message: str, status: int | None = None, reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.details = details or {}
        """What else the error body says (for a bad environment: `field`, and `line`)."""


@dataclass(frozen=True)
class ServerInfo:
    """Where a Jupyter server is and how to authenticate to it."""

    url: str
    token: str = ""

    @property
    def base(self) -> str:
        """The server's base URL, with a trailing slash."""
        return self.url if self.url.endswith("/") else self.url + "/"


def find_server(cwd: Path | None = None) -> ServerInfo:
    """The running Jupyter server to talk to: $CATTY_URL/$CATTY_TOKEN, else one that is running.

    Among running servers (as `jupyter server list` finds them), prefer the one whose root
    directory contains the current directory.
    """
    if os.environ.get("CATTY_URL"):
        return ServerInfo(os.environ["CATTY_URL"], os.environ.get("CATTY_TOKEN", ""))
    from jupyter_server.serverapp import list_running_servers

    servers = list(list_running_servers())
    if not servers:
        raise ClientError(
            "no running Jupyter server found; start one with `make lab` or `jupyter lab`, or "
            "point at one with --url URL --token TOKEN (or $CATTY_URL and $CATTY_TOKEN)"
        )
    here = (cwd or Path.cwd()).resolve()

    def depth(info: dict[str, Any]) -> int:
        root = Path(str(info.get("root_dir") or "/")).resolve()
        return len(root.parts) if here == root or root in here.parents else -1

    best = max(servers, key=depth)
    return ServerInfo(str(best["url"]), str(best.get("token") or ""))


class CattyClient:
    """Calls the catty API of one Jupyter server."""

    def __init__(self, server: ServerInfo, client_id: str | None = None, timeout: float = 60):
        self.server = server
        self.client_id = client_id
        self.timeout = timeout

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.server.token:
            headers["Authorization"] = f"token {self.server.token}"
        if self.client_id:
            headers["X-Catty-Client"] = self.client_id
        return headers

    def url(self, route: str, /, **query: Any) -> str:
        """The full URL of an API route, with QUERY's non-None values as its query string."""
        args = {k: v for k, v in query.items() if v is not None}
        suffix = f"?{urllib.parse.urlencode(args)}" if args else ""
        return f"{self.server.base}{API}/{route}{suffix}"

    def request(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        """Call the API; return the decoded JSON answer or raise ClientError with its message."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url(path, **query), data=data, method=method,
                                     headers=self._headers())  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise self._error(exc) from None
        except urllib.error.URLError as exc:
            raise ClientError(
                f"cannot reach the Jupyter server at {self.server.url}: {exc.reason}"
            ) from None
        except OSError as exc:  # a timeout, or the connection dropped mid-answer
            raise ClientError(
                f"no answer from the Jupyter server at {self.server.url}: {exc}"
            ) from None
        return json.loads(raw) if raw else None

    def _error(self, exc: urllib.error.HTTPError) -> ClientError:
        """The server's JSON error as a ClientError."""
        raw = exc.read()
        details: dict[str, Any] = {}
        try:
            err = json.loads(raw)
            message, reason = err.get("message") or exc.reason, err.get("reason")
            details = {k: v for k, v in err.items() if k not in ("message", "reason")}
        except (ValueError, AttributeError):
            message, reason = f"{exc.code} {exc.reason}", None
        if exc.code == 403 and reason is None and not self.server.token:
            message += " (no token given: pass --token or set $CATTY_TOKEN)"
        return ClientError(str(message), status=exc.code, reason=reason, details=details)

    # -- sessions ---------------------------------------------------------------------------

    def new(self, prompt: str | None, *, environment: str | None = None, agent: str | None = None,
            repo: str | None = None, options: dict[str, Any] | None = None,
            archive: str | None = None) -> dict[str, Any]:  # fmt: skip
        """Create a session (from REPO, the upload ARCHIVE, or empty); returns it (its `label`
        names it from now on)."""
        body = {"prompt": prompt, "environment": environment, "agent": agent, "repo": repo,
                "archive": archive, "options": options or {}}  # fmt: skip
        return self.request("POST", "sessions", {k: v for k, v in body.items() if v is not None})  # type: ignore[no-any-return]

    def upload(self, path: Path) -> dict[str, Any]:
        """Upload the archive at PATH, streamed from disk; returns `{"upload": ID, "name",
        "size", "format"}`, and `new(..., archive=ID)` makes a session from it."""
        return self._post_file("uploads", Path(path))

    def _post_file(
        self, route: str, path: Path, progress: Progress | None = None
    ) -> dict[str, Any]:
        """POST the file at PATH (streamed from disk, `?name=` its name) to ROUTE; the JSON
        answer, or ClientError saying how far it got."""
        try:
            f = path.open("rb")
        except OSError as exc:
            raise ClientError(f"cannot read {path}: {exc.strerror}") from None
        with f:
            size = os.fstat(f.fileno()).st_size
            headers = {**self._headers(), "Content-Type": "application/octet-stream",
                       "Content-Length": str(size)}  # fmt: skip
            body = _Counting(f, progress)
            req = urllib.request.Request(self.url(route, name=path.name), data=body,
                                         method="POST", headers=headers)  # fmt: skip
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read())  # type: ignore[no-any-return]
            except urllib.error.HTTPError as exc:
                raise self._error(exc) from None
            except urllib.error.URLError as exc:
                raise ClientError(
                    f"cannot reach the Jupyter server at {self.server.url}: {exc.reason}"
                ) from None
            except OSError as exc:  # refused mid-way (far over a cap), or the connection dropped
                raise ClientError(f"sending {path.name} to {self.server.url} broke off after "
                                  f"{body.sent} of {size} bytes: {exc}") from None  # fmt: skip

    def list_sessions(self, include_archived: bool = False) -> list[dict[str, Any]]:
        """The caller's sessions, newest first."""
        data = self.request("GET", "sessions", all=1 if include_archived else None)
        return list(data["sessions"])

    def get(self, label: str) -> dict[str, Any]:
        """One session."""
        return self.request("GET", f"sessions/{label}")  # type: ignore[no-any-return]

    def send(self, label: str, text: str) -> None:
        """Send a message to the session's agent, with its queued comments (TEXT may then be
        empty)."""
        self.request("POST", f"sessions/{label}/messages", {"text": text})

    def interrupt(self, label: str) -> None:
        """Interrupt the agent's current turn."""
        self.request("POST", f"sessions/{label}/interrupt", {})

    def stop(self, label: str) -> dict[str, Any]:
        """Stop the session."""
        return self.request("POST", f"sessions/{label}/stop", {})  # type: ignore[no-any-return]

    def resume(self, label: str) -> dict[str, Any]:
        """Start a stopped or failed session again, its conversation restored."""
        return self.request("POST", f"sessions/{label}/resume", {})  # type: ignore[no-any-return]

    def archive(self, label: str, archived: bool = True) -> dict[str, Any]:
        """Hide the session from the default list (or show it again)."""
        return self.request("PATCH", f"sessions/{label}", {"archived": archived})  # type: ignore[no-any-return]

    def delete(self, label: str) -> None:
        """Delete the session and everything it left on disk."""
        self.request("DELETE", f"sessions/{label}", confirm=label)

    def take_focus(self, label: str) -> dict[str, Any]:
        """Take input focus on the session for this client."""
        return self.request("POST", f"sessions/{label}/focus", {})  # type: ignore[no-any-return]

    def download(self, label: str, dest: Path, path: str | None = None) -> int:
        """Save the workspace (or PATH in it) as a .tar.gz at DEST; return its size in bytes."""
        req = urllib.request.Request(self.url(f"sessions/{label}/download", path=path),
                                     headers=self._headers())  # fmt: skip
        size, _headers = self._save(req, dest)
        return size

    def _save(
        self, req: urllib.request.Request, dest: Path, progress: Progress | None = None
    ) -> tuple[int, dict[str, str]]:
        """Stream REQ's answer into DEST; its size and headers (DEST removed on failure)."""
        size = 0
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp, dest.open("wb") as out:
                while chunk := resp.read(1 << 16):
                    out.write(chunk)
                    size += len(chunk)
                    if progress is not None:
                        progress(size)
                headers = dict(resp.headers.items())
        except urllib.error.HTTPError as exc:
            dest.unlink(missing_ok=True)
            raise self._error(exc) from None
        except urllib.error.URLError as exc:
            dest.unlink(missing_ok=True)
            raise ClientError(
                f"cannot reach the Jupyter server at {self.server.url}: {exc.reason}"
            ) from None
        except OSError as exc:
            dest.unlink(missing_ok=True)
            raise ClientError(f"the download from {self.server.url} broke off: {exc}") from None
        return size, headers

    def answer(self, label: str, request_id: str, behavior: str, message: str = "") -> None:
        """Answer a permission request."""
        self.request("POST", f"sessions/{label}/permissions/{request_id}",
                     {"behavior": behavior, "message": message})  # fmt: skip

    def transcript(
        self, label: str, after: int = 0, limit: int | None = None, newest: bool = False
    ) -> list[dict[str, Any]]:
        """Transcript events after AFTER (with NEWEST, the last LIMIT of them)."""
        data = self.request("GET", f"sessions/{label}/transcript", after=after, limit=limit,
                            tail=1 if newest else None)  # fmt: skip
        return list(data["events"])

    # -- review -----------------------------------------------------------------------------

    def diff(self, label: str, stat: bool = False) -> dict[str, Any]:
        """The session's changes against its base commit (with STAT, counts only)."""
        return self.request("GET", f"sessions/{label}/diff", stat=1 if stat else None)  # type: ignore[no-any-return]

    def comments(self, label: str) -> list[dict[str, Any]]:
        """The line comments waiting for the session's next message."""
        return list(self.request("GET", f"sessions/{label}/comments")["comments"])

    def add_comment(
        self, label: str, path: str, line: int, text: str, side: str = "new"
    ) -> dict[str, Any]:
        """Comment on LINE of PATH (SIDE `new`, or `old` for the base); the next message
        (`send`, even with empty text) takes it to the agent."""
        body = {"path": path, "line": line, "side": side, "text": text}
        return self.request("POST", f"sessions/{label}/comments", body)  # type: ignore[no-any-return]

    def withdraw_comment(self, label: str, comment_id: str) -> None:
        """Withdraw a queued comment."""
        self.request("DELETE", f"sessions/{label}/comments/{comment_id}")

    # -- hand-over ----------------------------------------------------------------------------

    def teleport_info(self, label: str) -> dict[str, Any]:
        """What taking the session's branch needs: branch, base commit, origin, conversation."""
        return self.request("GET", f"sessions/{label}/teleport")  # type: ignore[no-any-return]

    def bundle(
        self, label: str, dest: Path, have: list[str] | None = None, record: bool = True
    ) -> dict[str, Any]:
        """Save the session's branch as a git bundle at DEST (uncommitted work committed onto
        it first, unless RECORD is false); HAVE: commits already here. Returns `branch`,
        `commit`, `uncommitted` and `size`."""
        body = json.dumps({"have": list(have or []), "record": record}).encode()
        req = urllib.request.Request(self.url(f"sessions/{label}/bundle"), data=body,
                                     method="POST", headers=self._headers())  # fmt: skip
        size, headers = self._save(req, dest)
        lower = {k.lower(): v for k, v in headers.items()}
        return {"branch": lower.get("x-catty-branch", ""), "commit": lower.get("x-catty-commit", ""),
                "uncommitted": lower.get("x-catty-uncommitted") == "1", "size": size}  # fmt: skip

    def conversation(self, label: str) -> dict[str, Any]:
        """The agent's own files of the session's conversation (`session_id`, `cwd`, `files`)."""
        return self.request("GET", f"sessions/{label}/conversation")  # type: ignore[no-any-return]

    def push(self, label: str, remote: str = "origin") -> dict[str, Any]:
        """Push the session's branch to REMOTE of its source repository."""
        return self.request("POST", f"sessions/{label}/push", {"remote": remote})  # type: ignore[no-any-return]

    def export(self, label: str, dest: Path, progress: Progress | None = None) -> int:
        """Save the session as one file at DEST (workspace bundle, transcript, the agent's
        conversation, environment without secret values) for `import_session` on another
        server; return its size. DEST is only replaced once the whole file is in."""
        req = urllib.request.Request(self.url(f"sessions/{label}/export"),
                                     headers=self._headers())  # fmt: skip
        part = dest.with_name(f".{dest.name}.part")
        size, _headers = self._save(req, part, progress)
        os.replace(part, dest)
        return size

    def import_session(self, path: Path, progress: Progress | None = None) -> dict[str, Any]:
        """Make a stopped session on this server of the file PATH (from `export`); returns it
        (its label is kept unless taken here)."""
        return self._post_file("sessions/import", Path(path), progress)

    # -- environments -----------------------------------------------------------------------

    def list_environments(self) -> list[dict[str, Any]]:
        """Every environment, `default` first (secret values masked)."""
        return list(self.request("GET", "environments")["environments"])

    def get_environment(self, name: str) -> dict[str, Any]:
        """One environment (secret values masked)."""
        return self.request("GET", _environment_path(name))  # type: ignore[no-any-return]

    def create_environment(self, name: str, **fields: Any) -> dict[str, Any]:
        """Create environment NAME from FIELDS (agent, network, env, secrets, …); returns it."""
        return self.request("POST", "environments", {"name": name, **fields})  # type: ignore[no-any-return]

    def update_environment(self, name: str, **fields: Any) -> dict[str, Any]:
        """Change the FIELDS given of environment NAME; returns it as it is now."""
        return self.request("PATCH", _environment_path(name), fields)  # type: ignore[no-any-return]

    def delete_environment(self, name: str) -> None:
        """Delete environment NAME (refused while live sessions use it)."""
        self.request("DELETE", _environment_path(name))

    async def follow(
        self, label: str, after: int = 0, present: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """Every event after AFTER, then live ones as they happen, over the WebSocket.

        PRESENT marks this client as connected while it follows, so input focus it holds does
        not lapse.
        """
        client = self.client_id if present else None
        async for event in self._socket(
            f"sessions/{label}/stream", f"cannot follow {label}", after=after, client=client
        ):
            yield event

    async def changes(self) -> AsyncIterator[list[str]]:
        """The ids of sessions whose listing may have changed, as the server names them (see
        `catty/v1/updates`); first an empty list once connected, when a list should look again
        for what changed before."""
        yield []
        async for message in self._socket("updates", "cannot follow the session list"):
            yield [str(i) for i in message.get("changed") or []]

    async def _socket(self, path: str, what: str, **params: Any) -> AsyncIterator[Any]:
        """Each JSON message of the WebSocket at PATH, until the server closes it."""
        from tornado.httpclient import HTTPRequest
        from tornado.websocket import websocket_connect

        url = self.url(path, **params).replace("http", "ws", 1)
        headers = {k: v for k, v in self._headers().items() if k != "Content-Type"}
        try:
            conn = await websocket_connect(HTTPRequest(url, headers=headers))
        except Exception as exc:
            raise ClientError(f"{what}: {exc}") from None
        try:
            while (raw := await conn.read_message()) is not None:
                yield json.loads(raw)
        finally:
            conn.close()


class _Counting:
    """A file being sent, counting (and reporting) the bytes read from it."""

    def __init__(self, f: BinaryIO, progress: Progress | None) -> None:
        self.f = f
        self.progress = progress
        self.sent = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.f.read(size)
        self.sent += len(chunk)
        if self.progress is not None:
            self.progress(self.sent)
        return chunk


def _environment_path(name: str) -> str:
    return f"environments/{urllib.parse.quote(name, safe='')}"
