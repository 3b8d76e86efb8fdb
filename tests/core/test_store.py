"""The SQLite store: a database from an older version migrates; environments are kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from catty_jupyter.core.comments import Comment
from catty_jupyter.core.models import Session
from catty_jupyter.core.store import _V1, _V2, SCHEMA_VERSION, Store, StoreError


def _v1_database(path: Path) -> None:
    """A database as catty-jupyter wrote it at schema 1, with one session and its events."""
    db = sqlite3.connect(path)
    db.executescript(_V1 + "PRAGMA user_version=1;")
    db.execute(
        "INSERT INTO sessions (id, label, owner, agent, environment, state, activity, created, "
        "last_activity, workspace, branch) VALUES ('a' || hex(randomblob(15)), 'old-cat-0001', "
        "'me', 'shell', 'default', 'stopped', 'idle', 1, 2, '/w', 'catty/old-cat-0001')"
    )
    db.execute(
        "INSERT INTO events SELECT id, 1, 1.0, 'user', NULL, '{\"text\": \"hi\"}' FROM sessions"
    )
    db.commit()
    db.close()


def test_a_v1_database_migrates_and_keeps_its_sessions(tmp_path: Path) -> None:
    path = tmp_path / "catty.db"
    _v1_database(path)
    store = Store(path)
    assert store.schema_version == SCHEMA_VERSION == 4
    session = store.get_session("old-cat-0001")
    assert session is not None and session.agent == "shell"
    assert [e.payload for e in store.events(session.id, kinds=("user",))] == [{"text": "hi"}]
    indexes = store._db.execute("PRAGMA index_list(events)").fetchall()
    assert "events_kind" in [row[1] for row in indexes]
    store.put_environment("team", {"name": "team", "env": "A=1\n", "updated": 5.0})
    store.close()
    # Opening it again migrates nothing and loses nothing.
    store = Store(path)
    assert store.get_environment("team") == {"name": "team", "env": "A=1\n", "updated": 5.0}
    assert store.get_session("old-cat-0001") is not None
    store.close()


def test_environments_are_added_replaced_listed_and_deleted(tmp_path: Path) -> None:
    store = Store(tmp_path / "catty.db")
    assert store.list_environments() == [] and store.get_environment("x") is None
    store.put_environment("zeta", {"name": "zeta", "env": "K=secret\n"})
    store.put_environment("alpha", {"name": "alpha"})
    store.put_environment("zeta", {"name": "zeta", "env": "K=new\n"})
    assert [r["name"] for r in store.list_environments()] == ["alpha", "zeta"]
    assert store.get_environment("zeta") == {"name": "zeta", "env": "K=new\n"}
    store.delete_environment("zeta")
    store.delete_environment("never-there")
    assert [r["name"] for r in store.list_environments()] == ["alpha"]
    # Sessions still work beside them.
    store.add_session(Session(id="b" * 32, label="new-dog-0002", owner="me", agent="shell",
                              environment="alpha"))  # fmt: skip
    assert store.get_session("new-dog-0002") is not None
    store.close()


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "catty.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer catty-jupyter"):
        Store(path)


def test_a_v2_database_migrates_and_queues_comments(tmp_path: Path) -> None:
    path = tmp_path / "catty.db"
    _v1_database(path)
    db = sqlite3.connect(path)
    db.executescript(_V2 + "PRAGMA user_version=2;")
    db.close()
    store = Store(path)
    assert store.schema_version == 4
    session = store.get_session("old-cat-0001")
    assert session is not None
    assert session.origin == {}  # v4: sessions made before it know nothing of their origin
    session.origin = {"kind": "repo", "remotes": {"origin": "https://example.com/r.git"}}
    store.save_session(session)
    assert store.get_session(session.id).origin["remotes"]["origin"].endswith("r.git")
    first = Comment(path="a.py", line=3, text="why?", line_text="x = 1", client="phone", created=1)
    second = Comment(path="b.py", line=1, side="old", text="keep", created=2)
    store.add_comment(session.id, second)
    store.add_comment(session.id, first)
    assert store.queued_comments(session.id) == [first, second]
    store.mark_comments_sent(session.id, [first.id])
    assert store.queued_comments(session.id) == [second]
    assert not store.withdraw_comment(session.id, first.id)  # sent: no longer withdrawable
    assert store.withdraw_comment(session.id, second.id)
    assert not store.withdraw_comment(session.id, second.id)
    store.add_comment(session.id, Comment(path="c.py", line=1, text="x"))
    store.delete_session(session.id)
    assert store._db.execute("SELECT COUNT(*) FROM comments").fetchone()[0] == 0
    store.close()
