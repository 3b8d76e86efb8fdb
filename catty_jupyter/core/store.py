"""The SQLite store (WAL): sessions, the indexed copy of every transcript, environments, and
queued review comments."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .comments import Comment
from .models import Activity, Event, Session, SessionState

SCHEMA_VERSION = 4

_V1 = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    label TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    agent TEXT NOT NULL,
    environment TEXT NOT NULL,
    state TEXT NOT NULL,
    activity TEXT NOT NULL,
    created REAL NOT NULL,
    last_activity REAL NOT NULL,
    workspace TEXT NOT NULL,
    branch TEXT NOT NULL,
    base_commit TEXT,
    source TEXT,
    archived INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    sandboxed INTEGER NOT NULL DEFAULT 1,
    runtime TEXT NOT NULL DEFAULT '{}',
    options TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE events (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    client TEXT,
    payload TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
"""

_V2 = """
CREATE TABLE environments (
    name TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    created REAL,
    updated REAL
);
CREATE INDEX IF NOT EXISTS events_kind ON events (session_id, kind);
"""

_V3 = """
CREATE TABLE comments (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    line INTEGER NOT NULL,
    side TEXT NOT NULL,
    text TEXT NOT NULL,
    line_text TEXT,
    client TEXT,
    created REAL NOT NULL,
    sent REAL
);
CREATE INDEX comments_queued ON comments (session_id, sent);
"""

_V4 = """
ALTER TABLE sessions ADD COLUMN origin TEXT NOT NULL DEFAULT '{}';
"""

_MIGRATIONS = {1: _V1, 2: _V2, 3: _V3, 4: _V4}
"""The script that brings a database from the version before to each version."""

_SESSION_COLUMNS = (
    "id", "label", "owner", "agent", "environment", "state", "activity", "created",
    "last_activity", "workspace", "branch", "base_commit", "source", "archived", "error",
    "sandboxed", "runtime", "options", "origin",
)  # fmt: skip


class StoreError(Exception):
    """The store cannot be used (for example, it was written by a newer catty-jupyter)."""


class Store:
    """Sessions and transcripts in one SQLite database file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The manager calls in from its event loop and from worker threads; one connection
        # guarded by a lock keeps SQLite's threading rules simple.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._migrate()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    @property
    def schema_version(self) -> int:
        """The schema version stored in the database file."""
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        """Bring the file to SCHEMA_VERSION, one version at a time, in one transaction."""
        with self._lock:
            # IMMEDIATE: a second server opening the same file waits rather than migrating too.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                version = self.schema_version
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} was written by a newer catty-jupyter (schema {version}, "
                        f"this one knows {SCHEMA_VERSION}); upgrade catty-jupyter or point "
                        "data_dir elsewhere"
                    )
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[step].split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- sessions ---------------------------------------------------------------------------

    def add_session(self, session: Session) -> None:
        """Insert a new session."""
        row = self._session_row(session)
        with self._lock:
            self._db.execute(
                f"INSERT INTO sessions ({', '.join(_SESSION_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in _SESSION_COLUMNS)})",
                row,
            )

    def save_session(self, session: Session) -> None:
        """Write every field of an existing session."""
        row = self._session_row(session)
        assignments = ", ".join(f"{c} = ?" for c in _SESSION_COLUMNS[1:])
        with self._lock:
            self._db.execute(f"UPDATE sessions SET {assignments} WHERE id = ?", (*row[1:], row[0]))

    def get_session(self, key: str) -> Session | None:
        """The session whose label or id is KEY."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(_SESSION_COLUMNS)} FROM sessions WHERE label = ? OR id = ?",
                (key, key),
            ).fetchone()
        return self._session_from_row(row) if row else None

    def list_sessions(
        self, owner: str | None = None, include_archived: bool = False
    ) -> list[Session]:
        """Sessions, newest first."""
        query = f"SELECT {', '.join(_SESSION_COLUMNS)} FROM sessions WHERE 1=1"
        args: list[Any] = []
        if owner is not None:
            query += " AND owner = ?"
            args.append(owner)
        if not include_archived:
            query += " AND archived = 0"
        with self._lock:
            rows = self._db.execute(query + " ORDER BY created DESC", args).fetchall()
        return [self._session_from_row(r) for r in rows]

    def label_taken(self, label: str) -> bool:
        """True when a session already has LABEL."""
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM sessions WHERE label = ?", (label,)).fetchone()
                is not None
            )

    def delete_session(self, session_id: str) -> None:
        """Remove a session and its indexed transcript."""
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    # -- transcript ---------------------------------------------------------------------------

    def add_events(self, session_id: str, events: Iterable[Event]) -> list[Event]:
        """Index events; return those that were new (a seq already present is skipped)."""
        added: list[Event] = []
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for e in events:
                    cur = self._db.execute(
                        "INSERT OR IGNORE INTO events (session_id, seq, ts, kind, client, payload)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (session_id, e.seq, e.ts, e.kind, e.client, json.dumps(e.payload)),
                    )
                    if cur.rowcount:
                        added.append(e)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return added

    def events(
        self, session_id: str, after: int = 0, limit: int | None = None,
        before: int | None = None, newest: bool = False, kinds: tuple[str, ...] = (),
    ) -> list[Event]:  # fmt: skip
        """Events with `after < seq < before`, oldest first, at most LIMIT of them.

        With NEWEST the page is the last LIMIT events of that range rather than the first
        (still returned oldest first): a late viewer's first screen, or the page above one.
        KINDS, when given, keeps only events of those kinds.
        """
        query = "SELECT seq, ts, kind, client, payload FROM events WHERE session_id = ? AND seq > ?"
        args: list[Any] = [session_id, after]
        if before is not None:
            query += " AND seq < ?"
            args.append(before)
        if kinds:
            query += f" AND kind IN ({', '.join('?' for _ in kinds)})"
            args.extend(kinds)
        query += " ORDER BY seq DESC" if newest else " ORDER BY seq"
        if limit is not None:
            query += " LIMIT ?"
            args.append(limit)
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        if newest:
            rows.reverse()
        return [
            Event(seq=r[0], ts=r[1], kind=r[2], client=r[3], payload=json.loads(r[4])) for r in rows
        ]

    def last_seq(self, session_id: str) -> int:
        """The newest indexed seq of a session, 0 when none."""
        with self._lock:
            row = self._db.execute(
                "SELECT MAX(seq) FROM events WHERE session_id = ?", (session_id,)
            ).fetchone()
        return int(row[0] or 0)

    # -- environments ---------------------------------------------------------------------------

    def put_environment(self, name: str, record: dict[str, Any]) -> None:
        """Add or replace a user-defined environment (an `Environment.to_record()`).

        Records hold secret values: they go no further than this database.
        """
        now = time.time()
        updated = record.get("updated") or now
        with self._lock:
            self._db.execute(
                "INSERT INTO environments (name, data, created, updated) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET data = excluded.data, updated = excluded.updated",
                (name, json.dumps(record), now, updated),
            )

    def get_environment(self, name: str) -> dict[str, Any] | None:
        """The record of environment NAME, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM environments WHERE name = ?", (name,)
            ).fetchone()
        return json.loads(row[0]) if row else None  # type: ignore[no-any-return]

    def list_environments(self) -> list[dict[str, Any]]:
        """Every stored environment record, by name."""
        with self._lock:
            rows = self._db.execute("SELECT data FROM environments ORDER BY name").fetchall()
        return [json.loads(r[0]) for r in rows]

    def delete_environment(self, name: str) -> None:
        """Remove environment NAME (nothing happens when there is none)."""
        with self._lock:
            self._db.execute("DELETE FROM environments WHERE name = ?", (name,))

    # -- review comments ------------------------------------------------------------------------

    def add_comment(self, session_id: str, comment: Comment) -> None:
        """Queue a comment for the session's next message."""
        with self._lock:
            self._db.execute(
                "INSERT INTO comments (id, session_id, path, line, side, text, line_text, client, "
                "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (comment.id, session_id, comment.path, comment.line, comment.side, comment.text,
                 comment.line_text, comment.client, comment.created),
            )  # fmt: skip

    def queued_comments(self, session_id: str) -> list[Comment]:
        """The session's comments not sent yet, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, path, line, side, text, line_text, client, created FROM comments "
                "WHERE session_id = ? AND sent IS NULL ORDER BY created, rowid",
                (session_id,),
            ).fetchall()
        return [Comment(id=r[0], path=r[1], line=r[2], side=r[3], text=r[4], line_text=r[5],
                        client=r[6], created=r[7]) for r in rows]  # fmt: skip

    def withdraw_comment(self, session_id: str, comment_id: str) -> bool:
        """Remove a queued comment; False when there is none (or it was sent already)."""
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM comments WHERE session_id = ? AND id = ? AND sent IS NULL",
                (session_id, comment_id),
            )
        return cur.rowcount > 0

    def mark_comments_sent(self, session_id: str, ids: Iterable[str]) -> None:
        """Record that a message took these comments to the agent."""
        now = time.time()
        with self._lock:
            self._db.executemany(
                "UPDATE comments SET sent = ? WHERE session_id = ? AND id = ?",
                [(now, session_id, i) for i in ids],
            )

    # -- rows ---------------------------------------------------------------------------------

    @staticmethod
    def _session_row(s: Session) -> tuple[Any, ...]:
        return (
            s.id, s.label, s.owner, s.agent, s.environment, s.state.value, s.activity.value,
            s.created, s.last_activity, s.workspace, s.branch, s.base_commit, s.source,
            int(s.archived), s.error, int(s.sandboxed), json.dumps(s.runtime), json.dumps(s.options),
            json.dumps(s.origin),
        )  # fmt: skip

    @staticmethod
    def _session_from_row(row: tuple[Any, ...]) -> Session:
        d = dict(zip(_SESSION_COLUMNS, row, strict=True))
        return Session(
            id=d["id"], label=d["label"], owner=d["owner"], agent=d["agent"],
            environment=d["environment"], state=SessionState(d["state"]),
            activity=Activity(d["activity"]), created=d["created"],
            last_activity=d["last_activity"], workspace=d["workspace"], branch=d["branch"],
            base_commit=d["base_commit"], source=d["source"], archived=bool(d["archived"]),
            error=d["error"], sandboxed=bool(d["sandboxed"]), runtime=json.loads(d["runtime"]),
            options=json.loads(d["options"]), origin=json.loads(d["origin"]),
        )  # fmt: skip
