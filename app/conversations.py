"""ConversationStore: conversations and their messages in SQLite.

One row per message, written as it happens: the user's message before generation starts,
the assistant's row as soon as its first token arrives and again when it ends. WAL mode and
``synchronous=NORMAL`` keep those writes cheap and durable across an app crash. A reply still
marked ``streaming`` when the app starts again was cut off by a crash: it becomes
``interrupted``, with the text it had.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

SCHEMA_VERSION = 1

# Message statuses. "complete" replies are what the model finished; the others are kept and
# shown, marked, because a person may still want to read a half answer.
COMPLETE = "complete"
STREAMING = "streaming"
STOPPED = "stopped"          # the person pressed Stop
INTERRUPTED = "interrupted"  # the engine or the app died mid-reply
FAILED = "failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    settings TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'complete',
    created REAL NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages(conversation_id, id);
CREATE INDEX IF NOT EXISTS conversations_by_updated ON conversations(updated DESC);
"""


@dataclass
class Conversation:
    id: int
    title: str
    created: float
    updated: float
    settings: dict = field(default_factory=dict)


@dataclass
class Message:
    id: int
    conversation_id: int
    role: str
    content: str
    status: str
    created: float
    meta: dict = field(default_factory=dict)


class ConversationStore:
    def __init__(self, path: Path | str):
        self.path = str(path)
        self.db = sqlite3.connect(self.path, isolation_level=None)  # autocommit; explicit txns below
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} was written by a newer Lantern (schema {version}); update Lantern to open it."
            )
        self.db.executescript(_SCHEMA)
        self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self.recovered_interrupted = self._recover_interrupted()

    def close(self) -> None:
        self.db.close()

    def _recover_interrupted(self) -> int:
        cur = self.db.execute("UPDATE messages SET status=? WHERE status=?", (INTERRUPTED, STREAMING))
        return cur.rowcount

    # ------------------------------------------------------------------ conversations

    def create_conversation(self, title: str = "New chat", settings: dict | None = None) -> Conversation:
        now = time.time()
        cur = self.db.execute(
            "INSERT INTO conversations(title, created, updated, settings) VALUES (?, ?, ?, ?)",
            (title, now, now, json.dumps(settings or {})),
        )
        return Conversation(cur.lastrowid, title, now, now, dict(settings or {}))

    def conversations(self, title_filter: str = "") -> list[Conversation]:
        """Newest (most recently active) first, optionally only titles containing the filter."""
        sql = "SELECT * FROM conversations"
        args: tuple = ()
        if title_filter:
            sql += " WHERE title LIKE ? ESCAPE '\\'"
            escaped = title_filter.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args = (f"%{escaped}%",)
        sql += " ORDER BY updated DESC, id DESC"
        return [self._conv(r) for r in self.db.execute(sql, args)]

    def conversation(self, cid: int) -> Conversation | None:
        row = self.db.execute("SELECT * FROM conversations WHERE id=?", (cid,)).fetchone()
        return self._conv(row) if row else None

    def rename(self, cid: int, title: str) -> None:
        title = title.strip() or "Untitled"
        self.db.execute("UPDATE conversations SET title=? WHERE id=?", (title, cid))

    def delete_conversation(self, cid: int) -> None:
        self.db.execute("DELETE FROM conversations WHERE id=?", (cid,))

    def set_settings(self, cid: int, settings: dict) -> None:
        self.db.execute("UPDATE conversations SET settings=? WHERE id=?", (json.dumps(settings), cid))

    def touch(self, cid: int) -> None:
        self.db.execute("UPDATE conversations SET updated=? WHERE id=?", (time.time(), cid))

    # ------------------------------------------------------------------ messages

    def add_message(self, cid: int, role: str, content: str, status: str = COMPLETE, meta: dict | None = None) -> Message:
        now = time.time()
        with self.db:  # one transaction: the message and the conversation's activity time
            self.db.execute("BEGIN")
            cur = self.db.execute(
                "INSERT INTO messages(conversation_id, role, content, status, created, meta) VALUES (?, ?, ?, ?, ?, ?)",
                (cid, role, content, status, now, json.dumps(meta or {})),
            )
            self.db.execute("UPDATE conversations SET updated=? WHERE id=?", (now, cid))
        return Message(cur.lastrowid, cid, role, content, status, now, dict(meta or {}))

    def update_message(self, mid: int, *, content: str | None = None, status: str | None = None,
                       meta: dict | None = None) -> None:
        sets, args = [], []
        if content is not None:
            sets.append("content=?")
            args.append(content)
        if status is not None:
            sets.append("status=?")
            args.append(status)
        if meta is not None:
            sets.append("meta=?")
            args.append(json.dumps(meta))
        if sets:
            self.db.execute(f"UPDATE messages SET {', '.join(sets)} WHERE id=?", (*args, mid))

    def delete_messages_from(self, cid: int, mid: int) -> None:
        """Delete message ``mid`` and everything after it (regenerate, edit-and-resend)."""
        self.db.execute("DELETE FROM messages WHERE conversation_id=? AND id>=?", (cid, mid))

    def messages(self, cid: int) -> list[Message]:
        rows = self.db.execute("SELECT * FROM messages WHERE conversation_id=? ORDER BY id", (cid,))
        return [self._msg(r) for r in rows]

    def message(self, mid: int) -> Message | None:
        row = self.db.execute("SELECT * FROM messages WHERE id=?", (mid,)).fetchone()
        return self._msg(row) if row else None

    # ------------------------------------------------------------------ rows

    @staticmethod
    def _conv(r: sqlite3.Row) -> Conversation:
        return Conversation(r["id"], r["title"], r["created"], r["updated"], json.loads(r["settings"] or "{}"))

    @staticmethod
    def _msg(r: sqlite3.Row) -> Message:
        return Message(r["id"], r["conversation_id"], r["role"], r["content"], r["status"], r["created"],
                       json.loads(r["meta"] or "{}"))


def title_from(text: str, limit: int = 48) -> str:
    """A conversation title from its first message: the first line, cut at a word."""
    line = " ".join(text.strip().split("\n", 1)[0].split())
    if len(line) <= limit:
        return line or "New chat"
    cut = line[:limit].rsplit(" ", 1)[0]
    return (cut or line[:limit]) + "…"
