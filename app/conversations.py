"""ConversationStore: conversations and their messages in SQLite.

One row per message, written as it happens: the user's message before generation starts,
the assistant's row as soon as its first token arrives and again when it ends. WAL mode and
``synchronous=NORMAL`` keep those writes cheap and durable across an app crash. A reply still
marked ``streaming`` when the app starts again was cut off by a crash: it becomes
``interrupted``, with the text it had.

Opening never stops the window (``open_store``): a damaged row is read as far as it can be
(bad JSON as empty, undecodable text with replacement characters) and left as it is on disk; a
damaged file is set aside, kept, and what can still be read from it is copied into a fresh one;
a file written by a newer Lantern is left untouched and this version keeps its conversations in
a file of its own beside it. ``store.problem`` says which happened, for the window to show.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

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


class NewerStoreError(RuntimeError):
    """The file was written by a newer Lantern (a higher schema version)."""

    def __init__(self, path: str, version: int):
        super().__init__(f"{path} was written by a newer Lantern (schema {version}); update Lantern to open it.")
        self.version = version


class ConversationStore:
    def __init__(self, path: Path | str):
        self.path = str(path)
        self.problem = ""    # set by open_store when the file had to be set aside or left alone
        self.db = sqlite3.connect(self.path, isolation_level=None)  # autocommit; explicit txns below
        self.db.row_factory = sqlite3.Row
        # A row written by another tool may hold bytes that are not UTF-8: read them, marked.
        self.db.text_factory = lambda b: b.decode("utf-8", errors="replace")
        # The version first: nothing, not even the journal mode, is written into a newer file.
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            self.db.close()
            raise NewerStoreError(self.path, version)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
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

    # A row is read as far as it can be: one damaged field (JSON another tool wrote, a time
    # stored as text) shows as empty rather than stopping the window. The row on disk is left.

    @staticmethod
    def _conv(r: sqlite3.Row) -> Conversation:
        return Conversation(r["id"], _text(r["title"]) or "Untitled", _number(r["created"]), _number(r["updated"]),
                            _json_dict(r["settings"], f"conversation {r['id']}"))

    @staticmethod
    def _msg(r: sqlite3.Row) -> Message:
        return Message(r["id"], r["conversation_id"], _text(r["role"]), _text(r["content"]), _text(r["status"]),
                       _number(r["created"]), _json_dict(r["meta"], f"message {r['id']}"))


def _text(v) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return "" if v is None else str(v)


def _number(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def _json_dict(raw, what: str) -> dict:
    try:
        value = json.loads(_text(raw) or "{}")
    except ValueError:
        log.warning("%s has unreadable details (%.80r); shown without them", what, raw)
        return {}
    if not isinstance(value, dict):
        log.warning("%s has details that are not a mapping; shown without them", what)
        return {}
    return value


# ---------------------------------------------------------------------------- opening, whatever the file

def open_store(path: Path | str) -> ConversationStore:
    """The store at ``path``, or, when that file cannot be used, a working store and a
    ``problem`` that says what was done. Never raises for the file's content."""
    path = Path(path)
    try:
        store = ConversationStore(path)
        store.db.execute("SELECT id, title, created, updated, settings FROM conversations LIMIT 1").fetchall()
        store.db.execute("SELECT id, role, content, status, created, meta FROM messages LIMIT 1").fetchall()
        check = store.db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            store.close()
            raise sqlite3.DatabaseError(f"integrity check: {check}")
        return store
    except NewerStoreError as e:
        # Never write into a newer file: its next version may not survive what we would do.
        side = path.with_name(f"{path.stem}.schema{SCHEMA_VERSION}{path.suffix}")
        store = ConversationStore(side)   # a newer side file too would raise: no third choice
        store.problem = (f"{path} was written by a newer version of Lantern (schema {e.version}; this one "
                         f"reads {SCHEMA_VERSION}). It was left untouched. Until you update Lantern, this "
                         f"version keeps its conversations in {side}.")
        log.warning(store.problem)
        return store
    except sqlite3.DatabaseError as e:
        if not _damaged(e):
            raise     # locked by another process, unreadable, a full disk: not the file's fault
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(path) + suffix)
            if src.exists():
                os.replace(src, Path(str(aside) + suffix))
        store = ConversationStore(path)
        saved = _salvage(aside, store)
        store.problem = (f"The conversations file {path} is damaged ({e}). It was kept as {aside}"
                         + (f", and {saved} conversation{'s' if saved != 1 else ''} could be read back from it"
                            if saved else ", and nothing could be read back from it")
                         + ". New conversations are saved normally.")
        log.warning(store.problem)
        return store


def _damaged(e: sqlite3.DatabaseError) -> bool:
    """Whether the error is the file's content (corrupt, not a database, not our tables)."""
    if getattr(e, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
        return True
    text = str(e).lower()
    return any(s in text for s in ("malformed", "not a database", "integrity check", "no such column",
                                   "no such table"))


def _salvage(damaged: Path, into: ConversationStore) -> int:
    """Copy what can still be read from a damaged file: each conversation with its messages,
    as far as they can be read (table scans only: a damaged index must not hide rows).
    Returns how many conversations came back."""

    def rows(db, sql: str) -> list:
        out = []
        try:
            for r in db.execute(sql):
                out.append(r)
        except sqlite3.Error as e:     # keep the rows before the damage
            log.warning("reading back %s stopped: %s", damaged, e)
        return out

    try:
        old = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True)
        old.text_factory = lambda b: b.decode("utf-8", errors="replace")
        old.row_factory = sqlite3.Row
    except sqlite3.Error:
        return 0
    convs = rows(old, "SELECT * FROM conversations NOT INDEXED ORDER BY rowid")
    by_conv: dict[int, list] = {}
    for m in rows(old, "SELECT * FROM messages NOT INDEXED ORDER BY rowid"):
        by_conv.setdefault(m["conversation_id"], []).append(m)
    old.close()
    saved = 0
    for c in convs:
        try:
            conv = ConversationStore._conv(c)
            new = into.create_conversation(conv.title, conv.settings)
            for m in by_conv.get(c["id"], []):
                msg = ConversationStore._msg(m)
                if msg.role in ("system", "user", "assistant"):
                    into.add_message(new.id, msg.role, msg.content, msg.status, msg.meta)
            into.db.execute("UPDATE conversations SET created=?, updated=? WHERE id=?",
                            (conv.created, conv.updated, new.id))
            saved += 1
        except (sqlite3.Error, KeyError, IndexError) as e:
            log.warning("could not read back a conversation from %s: %s", damaged, e)
    return saved


def title_from(text: str, limit: int = 48) -> str:
    """A conversation title from its first message: the first line, cut at a word."""
    line = " ".join(text.strip().split("\n", 1)[0].split())
    if len(line) <= limit:
        return line or "New chat"
    cut = line[:limit].rsplit(" ", 1)[0]
    return (cut or line[:limit]) + "…"
