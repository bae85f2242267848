"""The manifest (``data_dir/manifest.sqlite``): the truth about what is indexed.

One row per source file (size, mtime, inode, head hash, offset reached, status and skip
reason), one row per chunk (path, line range, text, per-record times and levels), the FTS5
lexical index over the chunks, and the embedding cache by template hash. The vector store
is a cache that can be rebuilt from this file.

Crash safety: a file's chunks and its source row change in one transaction, with chunks
marked not yet embedded; the embedding pass marks them after the vector store has them. A
run killed at any point leaves either the old or the new state of each file, and the next
run embeds whatever is still marked, with the same deterministic ids (upserts, no duplicates).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from engine.protocol import EngineError, ErrorKind
from engine.retrieval import lexical
from engine.retrieval.chunker import Chunk

log = logging.getLogger(__name__)

_OPEN_LOCK = threading.Lock()

SCHEMA_VERSION = 1

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS sources (
    collection TEXT NOT NULL, path TEXT NOT NULL, stream_id TEXT, kind TEXT,
    size INTEGER, mtime REAL, inode INTEGER, dev INTEGER, head_hash TEXT, head_len INTEGER,
    offset INTEGER DEFAULT 0, next_line INTEGER DEFAULT 1, encoding TEXT,
    status TEXT NOT NULL, reason TEXT DEFAULT '', indexed_at REAL,
    PRIMARY KEY (collection, path));
CREATE TABLE IF NOT EXISTS chunks (
    rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, collection TEXT NOT NULL, path TEXT NOT NULL,
    stream_id TEXT NOT NULL, line_start INTEGER, line_end INTEGER, page INTEGER, text TEXT,
    records TEXT, t_min REAL, t_max REAL, levels TEXT, max_level INTEGER, embed_texts TEXT,
    embedded INTEGER DEFAULT 0);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(collection, path);
CREATE INDEX IF NOT EXISTS chunks_pending ON chunks(collection, embedded);
-- Time filters ("on March 1st around 10:00") read this instead of every chunk: 260 ms -> 20 ms
-- at 140k chunks. An index built before it existed gets it at the next open (well under a second).
CREATE INDEX IF NOT EXISTS chunks_time ON chunks(collection, t_max, t_min);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(tokens, tokenize="{lexical.FTS_TOKENIZE}");
CREATE TABLE IF NOT EXISTS embed_cache (key TEXT PRIMARY KEY, vector BLOB);
CREATE TABLE IF NOT EXISTS vector_deletes (collection TEXT, id TEXT, PRIMARY KEY (collection, id));
CREATE TABLE IF NOT EXISTS roots (collection TEXT NOT NULL, path TEXT NOT NULL, exclude TEXT DEFAULT '[]',
    PRIMARY KEY (collection, path));
-- The file being read now, written (committed) before its reader starts and deleted with its
-- result: a row left over means the engine died while reading that file.
CREATE TABLE IF NOT EXISTS reading (collection TEXT NOT NULL, path TEXT NOT NULL, size INTEGER, mtime REAL,
    inode INTEGER, dev INTEGER, started REAL, PRIMARY KEY (collection, path));
"""


def disk_full(e: BaseException) -> bool:
    """A write failed because the disk (or the user's quota) is full."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return True
    text = str(e).lower()
    return "database or disk is full" in text or "no space left on device" in text or "disk quota" in text


def disk_full_message(data_dir, e: BaseException) -> str:
    return (f"The disk holding the index ({data_dir}) is full ({e}). Indexing stopped: files read before "
            f"are indexed and nothing was half-written. Free some space, then add the folder again "
            f"(watched folders are tried again a few minutes later).")


def kept_vectors(blobs: list[bytes]):
    """The float32 matrix of vectors kept by ``mark_embedded``, one row per blob."""
    import numpy as np
    return np.frombuffer(b"".join(blobs), dtype=np.float16).reshape(len(blobs), -1).astype(np.float32)


def _check_schema(db: sqlite3.Connection, path: Path) -> None:
    """Refuse, before writing anything, an index written by a newer Lantern: this version
    would misread it, and adding its own tables to it could spoil it for the newer one."""
    has_meta = db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'").fetchone()
    row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() if has_meta else None
    if row is None:
        return
    try:
        version = int(row[0])
    except (TypeError, ValueError):
        version = None
    if version is None or version > SCHEMA_VERSION:
        raise EngineError(
            ErrorKind.INDEX_IO,
            f"The index in {path.parent} was written by a newer Lantern (index schema {row[0]}; this "
            f"version reads schema {SCHEMA_VERSION}) and was left as it is. Update Lantern, or start it "
            f"with --data-dir pointing at another folder.")


@dataclass
class Source:
    collection: str
    path: str
    stream_id: str = ""
    kind: str = ""
    size: int = 0
    mtime: float = 0.0
    inode: int = 0
    dev: int = 0
    head_hash: str = ""
    head_len: int = 0
    offset: int = 0
    next_line: int = 1
    encoding: str = ""
    status: str = "ok"
    reason: str = ""
    indexed_at: float = 0.0


_SOURCE_COLS = [f for f in Source.__dataclass_fields__]


class Manifest:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._spans: dict[str, tuple[float, float]] = {}
        # The engine's worker and indexer threads may open it at once: switching a new file to
        # WAL and making its tables and columns is done by one at a time ("database is locked").
        with _OPEN_LOCK:
            self._open()

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The engine worker thread owns this connection; the check is relaxed so tests and
            # the service can open it on one thread and use it on the worker.
            self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            _check_schema(self.db, self.path)
            self.db.executescript(_SCHEMA)
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            if "vec" not in {r[1] for r in self.db.execute("PRAGMA table_info(chunks)")}:
                # Each chunk's vector (float16), beside chroma's copy: a filtered search ranks the
                # few chunks the filter allows with one matrix product (chroma's id-filtered query
                # took ~55 ms for 300 ids), and the vector store can be rebuilt without embedding.
                self._add_column("vec BLOB")
        except sqlite3.Error as e:
            raise EngineError(ErrorKind.INDEX_IO,
                              f"The index file {self.path} cannot be opened ({e}). Check that the data folder "
                              f"is writable, or move the file away to rebuild the index.") from None
        self._document_columns()

    def _document_columns(self) -> None:
        """What a document chunk knows beyond its text: the title path of its section
        (``heading``), whether it is a contents or index page (``toc``: navigation, searchable
        but ranked low), and the header row of the table rows it holds (``table_header``). Added in place to an index from before they were kept; its chunks read
        as '' and 0 until their files are indexed again."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(chunks)")}
        try:
            if "heading" not in have:
                self._add_column("heading TEXT DEFAULT ''")
            if "toc" not in have:
                self._add_column("toc INTEGER DEFAULT 0")
            if "table_header" not in have:
                self._add_column("table_header TEXT DEFAULT ''")
        except sqlite3.Error as e:
            raise EngineError(ErrorKind.INDEX_IO,
                              f"The index file {self.path} cannot be updated ({e}). Check that the data folder "
                              f"is writable, or move the file away to rebuild the index.") from None

    def _add_column(self, decl: str) -> None:
        """ALTER TABLE chunks ADD COLUMN ``decl``, for an index from before the column. The
        engine's two threads open the manifest at once: the other may have added it between our
        look and this, which is no error."""
        try:
            self.db.execute(f"ALTER TABLE chunks ADD COLUMN {decl}")
        except sqlite3.OperationalError as e:
            if "duplicate column name" not in str(e):
                raise

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ transactions

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, exc_type, *_):
        if not exc_type:
            self.db.execute("COMMIT")
        elif self.db.in_transaction:
            # SQLite may have rolled back already (a full disk does): the first error is the story.
            try:
                self.db.execute("ROLLBACK")
            except sqlite3.Error:
                log.warning("rollback failed after %s", exc_type.__name__, exc_info=True)

    # ------------------------------------------------------------------ sources

    def sources(self, collection: str) -> dict[str, Source]:
        rows = self.db.execute(f"SELECT {','.join(_SOURCE_COLS)} FROM sources WHERE collection=?", (collection,))
        return {r[1]: Source(*r) for r in rows}

    def put_source(self, s: Source) -> None:
        s.indexed_at = time.time()
        self.db.execute(f"INSERT OR REPLACE INTO sources ({','.join(_SOURCE_COLS)}) VALUES "
                        f"({','.join('?' * len(_SOURCE_COLS))})", [getattr(s, c) for c in _SOURCE_COLS])

    def move_source(self, s: Source, new_path: str) -> None:
        """A rotated file: same stream, new name. Its chunks follow it; ids do not change."""
        self.db.execute("DELETE FROM sources WHERE collection=? AND path=?", (s.collection, new_path))
        self.db.execute("UPDATE sources SET path=? WHERE collection=? AND path=?", (new_path, s.collection, s.path))
        self.db.execute("UPDATE chunks SET path=? WHERE collection=? AND stream_id=?",
                        (new_path, s.collection, s.stream_id))
        s.path = new_path

    def drop_source(self, collection: str, path: str) -> int:
        """Forget a file and its chunks; their vectors are queued for deletion."""
        n = self.drop_chunks(collection, path)
        self.db.execute("DELETE FROM sources WHERE collection=? AND path=?", (collection, path))
        return n

    def drop_chunks(self, collection: str, path: str) -> int:
        rows = self.db.execute("SELECT rowid, id, embedded FROM chunks WHERE collection=? AND path=?",
                               (collection, path)).fetchall()
        for rowid, cid, embedded in rows:
            self.db.execute("DELETE FROM chunks_fts WHERE rowid=?", (rowid,))
            if embedded:
                self.db.execute("INSERT OR IGNORE INTO vector_deletes VALUES (?,?)", (collection, cid))
        self.db.execute("DELETE FROM chunks WHERE collection=? AND path=?", (collection, path))
        return len(rows)

    # ------------------------------------------------------------------ reading now

    def start_reading(self, collection: str, path: str, key: tuple) -> None:
        """``path`` (size, mtime, inode, dev = ``key``) is about to be read; commit this first."""
        self.db.execute("INSERT OR REPLACE INTO reading VALUES (?,?,?,?,?,?,?)",
                        (collection, path, *key, time.time()))

    def done_reading(self, collection: str, path: str) -> None:
        self.db.execute("DELETE FROM reading WHERE collection=? AND path=?", (collection, path))

    def reading(self, collection: str) -> dict[str, tuple]:
        """Files an engine started reading and never finished: path -> (size, mtime, inode, dev)."""
        return {r[0]: tuple(r[1:]) for r in self.db.execute(
            "SELECT path, size, mtime, inode, dev FROM reading WHERE collection=?", (collection,))}

    # ------------------------------------------------------------------ roots (what the person added)

    def put_root(self, collection: str, path: str, exclude: list[str]) -> None:
        """A file or folder the person indexed: watched again when the engine starts."""
        self.db.execute("INSERT OR REPLACE INTO roots VALUES (?,?,?)", (collection, path, json.dumps(sorted(exclude))))

    def roots(self) -> list[tuple[str, str, list[str]]]:
        return [(c, path, json.loads(x or "[]"))
                for c, path, x in self.db.execute("SELECT collection, path, exclude FROM roots ORDER BY 1, 2")]

    def remove_roots(self, collection: str, gone: list[str]) -> None:
        """Removed paths: a root under one goes; a root around one leaves it out from now on."""
        for c, root, exclude in self.roots():
            if c != collection:
                continue
            if any(_inside(root, g) for g in gone):
                self.db.execute("DELETE FROM roots WHERE collection=? AND path=?", (c, root))
                continue
            inner = [g for g in gone if _inside(g, root)]
            if inner:
                self.put_root(c, root, sorted(set(exclude) | set(inner)))

    # ------------------------------------------------------------------ chunks

    def add_chunks(self, collection: str, path: str, stream_id: str, chunks: list[Chunk]) -> int:
        """Insert chunks not already present (same id means same lines and text). Returns new ones."""
        added = 0
        for c in chunks:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO chunks (id, collection, path, stream_id, line_start, line_end, page, text, "
                "records, t_min, t_max, levels, max_level, embed_texts, heading, toc, table_header) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (c.id, collection, path, stream_id, c.line_start, c.line_end, c.page, c.text,
                 json.dumps(c.records), c.t_min, c.t_max, "," + ",".join(c.levels) + ",", c.max_level_rank,
                 json.dumps(c.embed_texts), c.heading, int(c.toc), c.table_header))
            if cur.rowcount:
                self.db.execute("INSERT INTO chunks_fts (rowid, tokens) VALUES (?, ?)",
                                (cur.lastrowid, lexical.index_text(c.text)))
                added += 1
        spans = [c.t_max - c.t_min for c in chunks if c.t_min is not None and c.t_max is not None]
        if spans and max(spans) > self.max_span(collection, write=True):
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"max_span:{collection}", str(max(spans))))
        return added

    def max_span(self, collection: str, write: bool = False) -> float:
        """The longest time any chunk of the collection spans (seconds; never shrinks on delete):
        a time filter can then bound t_max on both sides and read a short stretch of chunks_time.
        Kept in meta by add_chunks. An index from before that has none: it is worked out here,
        stored by the writer (``write``), and only held in memory for a while by a reader, which
        must not take the write lock an index job may hold."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (f"max_span:{collection}",)).fetchone()
        if row is not None:
            return float(row[0])
        held = self._spans.get(collection)
        if held is not None and not write and time.monotonic() - held[1] < 60:
            return held[0]
        span = float(self.db.execute("SELECT coalesce(max(t_max - t_min), 0) FROM chunks WHERE collection = ?",
                                     (collection,)).fetchone()[0])
        if write:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"max_span:{collection}", str(span)))
        else:
            self._spans[collection] = (span, time.monotonic())
        return span

    def pending(self, collection: str, limit: int = 256) -> list[tuple[str, list[str]]]:
        rows = self.db.execute("SELECT id, embed_texts FROM chunks WHERE collection=? AND embedded=0 LIMIT ?",
                               (collection, limit)).fetchall()
        return [(cid, json.loads(t)) for cid, t in rows]

    def mark_embedded(self, ids: list[str], vectors) -> None:
        """``vectors``: the chunks' vectors (rows of a float array), kept as float16."""
        import numpy as np
        half = np.asarray(vectors, dtype=np.float16)
        self.db.executemany("UPDATE chunks SET embedded=1, vec=? WHERE id=?",
                            [(half[k].tobytes(), i) for k, i in enumerate(ids)])

    def vector_deletes(self, collection: str) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM vector_deletes WHERE collection=?", (collection,))]

    def clear_vector_deletes(self, collection: str, ids: list[str]) -> None:
        self.db.executemany("DELETE FROM vector_deletes WHERE collection=? AND id=?", [(collection, i) for i in ids])

    def chunk_count(self, collection: str | None = None) -> int:
        if collection is None:
            return self.db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        return self.db.execute("SELECT count(*) FROM chunks WHERE collection=?", (collection,)).fetchone()[0]

    def page_lines(self, path: str, page: int, collection: str | None = None) -> list[str]:
        """The lines of a document's page as indexed (numbered from 1, as citations number them;
        a line no block holds, a blank one, is ''), from its chunks: the page a citation points
        into, without reading the document again."""
        where, args = "path = ? AND page = ?", [path, page]
        if collection is not None:
            where, args = where + " AND collection = ?", args + [collection]
        else:   # the same file in several collections: one copy of its lines
            where += " AND collection = (SELECT collection FROM chunks WHERE path = ? AND page = ? LIMIT 1)"
            args += [path, page]
        lines: dict[int, str] = {}
        for text, records in self.db.execute(f"SELECT text, records FROM chunks WHERE {where} ORDER BY line_start", args):
            for ls, le, _, _, a, b in json.loads(records or "[]"):
                part = text[a:b].split("\n")
                if len(part) != le - ls + 1:        # a long block cut in pieces that share its lines
                    part = [" ".join(part)] + [None] * (le - ls)
                for n, line in zip(range(ls, le + 1), part):
                    if line is not None:
                        lines[n] = f"{lines[n]} {line}" if n in lines else line
        return [lines.get(n, "") for n in range(1, max(lines, default=0) + 1)]

    def chunk_ids(self, collection: str, path: str) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT id FROM chunks WHERE collection=? AND path=? ORDER BY line_start", (collection, path))]

    # ------------------------------------------------------------------ embedding cache

    def cached_vectors(self, keys: list[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            q = f"SELECT key, vector FROM embed_cache WHERE key IN ({','.join('?' * len(part))})"
            out.update(self.db.execute(q, part).fetchall())
        return out

    def cache_vectors(self, items: dict[str, bytes]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO embed_cache VALUES (?, ?)", list(items.items()))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
