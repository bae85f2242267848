"""Indexing: walk the given paths, ask the manifest what is new, appended, rotated or gone, and
do only that.

- unchanged (same inode, size, mtime): nothing is read.
- appended (same inode, the stored head still matches, file grew): read from the stored
  offset; line numbers continue from the stored line.
- rotated (app.log became app.log.1 or app.log.2.gz, a new app.log appeared): the stored
  stream is found at its new name by inode or by its head hash; its chunks move with it (same
  ids, no re-embedding) and anything written before the rotation is read from the offset.
- deleted: chunks leave the lexical index and the vector store.
- a document that changed is redone alone.

Embedding runs after the lexical pass, from the chunks the manifest marks as not embedded, so
a killed run resumes where it stopped without duplicates.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from engine.retrieval import documents, loaders, logformat
from engine.retrieval.chunker import chunk_records
from engine.retrieval.embedder import Embedder, mean_vector
from engine.retrieval.manifest import Manifest, Source, kept_vectors
from engine.retrieval.templates import text_hash
from engine.retrieval.vectorstore import VectorStore

log = logging.getLogger(__name__)

HEAD_LEN = 4096
EMBED_SLICE = 64   # templates per embedder call between cancel checks (~0.3 s on one core)
# Folders that hold tools' state, not the user's documents.
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", ".tox", ".cache"}

Progress = Callable[[str, int, int, str], None]  # (phase, done, total, path)


@dataclass
class IndexReport:
    files: int = 0
    unchanged: int = 0
    appended: int = 0
    rotated: int = 0
    redone: int = 0
    deleted: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    embedded: int = 0
    templates_embedded: int = 0
    bytes_read: int = 0
    skipped: list[dict] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class _Seen:
    path: str
    st: os.stat_result
    head: bytes


def walk(paths: list[str], report: IndexReport, exclude: list[str] = ()) -> list[str]:
    """Files under ``paths`` (absolute, links not resolved so citations name what the user gave),
    less those under ``exclude`` (sources the person removed from a watched folder)."""
    out: list[str] = []
    for raw in paths:
        p = os.path.abspath(os.path.expanduser(raw))
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p, onerror=lambda e: report.skipped.append(
                    {"path": e.filename, "reason": f"cannot list the folder: {e.strerror}"})):
                dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
                out.extend(os.path.join(root, f) for f in sorted(files))
        elif os.path.lexists(p):
            out.append(p)
        else:
            report.skipped.append({"path": p, "reason": "no such file or folder"})
    return [f for f in out if not under(f, exclude)] if exclude else out


def _head_hash(head: bytes, n: int) -> str:
    return hashlib.sha1(head[:n]).hexdigest()


def _stream_id(collection: str, path: str, st: os.stat_result, head: bytes) -> str:
    key = f"{collection}\0{path}\0{st.st_dev}:{st.st_ino}\0{_head_hash(head, HEAD_LEN)}"
    return hashlib.sha1(key.encode("utf-8", "replace")).hexdigest()[:16]


class Indexer:
    def __init__(self, manifest: Manifest, store: VectorStore, embedder: Embedder,
                 progress: Progress | None = None, cancelled: Callable[[], bool] = lambda: False):
        self.manifest = manifest
        self.store = store
        self.embedder = embedder
        self._progress = progress or (lambda *a: None)
        self._cancelled = cancelled

    def index(self, paths: list[str], collection: str = "default", exclude: list[str] = ()) -> IndexReport:
        t0 = time.perf_counter()
        report = IndexReport()
        roots = [os.path.abspath(os.path.expanduser(p)) for p in paths]
        exclude = [os.path.abspath(os.path.expanduser(p)) for p in exclude]
        files = walk(paths, report, exclude)
        known = {p: s for p, s in self.manifest.sources(collection).items()
                 if under(p, roots) and not (exclude and under(p, exclude))}

        seen: dict[str, _Seen] = {}
        for i, path in enumerate(files):
            self._progress("scan", i, len(files), path)
            try:
                st = loaders.check_regular(path)
                seen[path] = _Seen(path, st, loaders.head_of(path))
            except loaders.SkipFile as e:
                self._skip(collection, path, e.reason, report, known)
        report.files = len(seen)

        matched, orphans = {}, []
        for path, src in known.items():
            s = seen.get(path)
            if src.status == "ok" and s is not None and self._same_stream(src, s):
                matched[path] = src
            elif src.status == "ok":
                orphans.append(src)
        new = [p for p in seen if p not in matched]

        # Rotation: an orphaned stream found under another name among the new files.
        for src in orphans:
            cand = self._find_moved(src, [seen[p] for p in new])
            with self.manifest:
                if cand is None:
                    report.chunks_removed += self.manifest.drop_source(collection, src.path)
                    if src.path in seen:
                        report.redone += 1  # replaced by other content: indexed below as new
                    else:
                        report.deleted += 1
                        log.info("%s is gone; its chunks left the index", src.path)
                    continue
                log.info("%s was rotated to %s", src.path, cand.path)
                self.manifest.drop_chunks(collection, cand.path)
                self.manifest.move_source(src, cand.path)
                self.manifest.put_source(src)
            new.remove(cand.path)
            matched[cand.path] = src
            report.rotated += 1

        work = [(p, matched.get(p)) for p in seen if p in matched or p in new]
        for i, (path, src) in enumerate(work):
            if self._cancelled():
                break
            self._progress("read", i, len(work), path)
            try:
                self._index_file(collection, seen[path], src, report)
            except loaders.SkipFile as e:
                self._skip(collection, path, e.reason, report, known)

        skipped = {s["path"] for s in report.skipped}
        report.files = sum(1 for p in seen if p not in skipped)
        self.flush_deletes(collection)
        self.embed_pending(collection, report)
        report.seconds = round(time.perf_counter() - t0, 3)
        return report

    # ------------------------------------------------------------------ decisions

    def _same_stream(self, src: Source, s: _Seen) -> bool:
        if not loaders.is_gzip(s.path) and (src.inode, src.dev) != (s.st.st_ino, s.st.st_dev):
            return False
        return len(s.head) >= src.head_len and _head_hash(s.head, src.head_len) == src.head_hash

    def _find_moved(self, src: Source, candidates: list[_Seen]) -> _Seen | None:
        if src.kind not in loaders.APPENDABLE:
            return None
        same_stream = loaders.stream_name(src.path)
        best = None
        for c in candidates:
            if len(c.head) < src.head_len or _head_hash(c.head, src.head_len) != src.head_hash:
                continue
            if (c.st.st_ino, c.st.st_dev) == (src.inode, src.dev) and not loaders.is_gzip(c.path):
                return c
            if loaders.stream_name(c.path) == same_stream and best is None:
                best = c
        return best

    def _skip(self, collection: str, path: str, reason: str, report: IndexReport, known: dict) -> None:
        log.info("skipped %s: %s", path, reason)
        report.skipped.append({"path": path, "reason": reason})
        with self.manifest:
            if path in known:
                report.chunks_removed += self.manifest.drop_chunks(collection, path)
            self.manifest.put_source(Source(collection, path, status="skipped", reason=reason))

    # ------------------------------------------------------------------ reading

    def _index_file(self, collection: str, s: _Seen, src: Source | None, report: IndexReport) -> None:
        st = s.st
        if src is not None and (src.size, src.mtime, src.inode) == (st.st_size, st.st_mtime, st.st_ino):
            report.unchanged += 1
            return
        appending = src is not None and src.kind in loaders.APPENDABLE and not src.encoding.startswith("utf-16")
        if src is not None and not appending:
            report.redone += 1
        if src is None or not appending:
            kind = loaders.classify(s.path, s.head)
            src = Source(collection, s.path, stream_id=_stream_id(collection, s.path, st, s.head), kind=kind)
            offset, first_line, encoding = 0, 1, None
        else:
            offset, first_line, encoding = src.offset, src.next_line, src.encoding or None

        if src.kind in loaders.DOCUMENT_KINDS:
            self._index_document(collection, s, src, report)
            return
        loaded = loaders.load_lines(s.path, offset, first_line, encoding)
        report.bytes_read += loaded.end_offset - offset
        if offset and loaded.lines:
            report.appended += 1
        elif offset and not loaded.lines and (src.size, src.mtime) == (st.st_size, st.st_mtime):
            report.unchanged += 1
        records = self._records(src.kind, loaded, st.st_mtime)
        chunks = chunk_records(records, src.stream_id, is_log=src.kind in loaders.APPENDABLE)

        src.size, src.mtime, src.inode, src.dev = st.st_size, st.st_mtime, st.st_ino, st.st_dev
        src.head_len = min(len(s.head), HEAD_LEN)
        src.head_hash = _head_hash(s.head, src.head_len)
        src.offset, src.next_line = loaded.end_offset, loaded.first_line + len(loaded.lines)
        src.encoding, src.status, src.reason = loaded.encoding, "ok", ""
        with self.manifest:
            if not offset:
                report.chunks_removed += self.manifest.drop_chunks(collection, s.path)
            report.chunks_added += self.manifest.add_chunks(collection, s.path, src.stream_id, chunks)
            self.manifest.put_source(src)

    def _index_document(self, collection: str, s: _Seen, src: Source, report: IndexReport) -> None:
        """A PDF (chunks per page, lines within the page) or a .docx (lines are body blocks)."""
        # Imported here: each pulls its parser at first use, and most folders hold neither.
        if src.kind == "pdf":
            from engine.retrieval import pdf
            chunks = [c for page, records in pdf.page_records(s.path)
                      for c in chunk_records(records, src.stream_id, is_log=False, page=page)]
        else:
            from engine.retrieval import word
            chunks = chunk_records(word.records(s.path), src.stream_id, is_log=False)
        st = s.st
        report.bytes_read += st.st_size
        src.size, src.mtime, src.inode, src.dev = st.st_size, st.st_mtime, st.st_ino, st.st_dev
        src.head_len = min(len(s.head), HEAD_LEN)
        src.head_hash = _head_hash(s.head, src.head_len)
        src.offset, src.next_line = st.st_size, 1 + max((c.line_end for c in chunks), default=0)
        src.encoding, src.status, src.reason = "", "ok", ""
        with self.manifest:
            report.chunks_removed += self.manifest.drop_chunks(collection, s.path)
            report.chunks_added += self.manifest.add_chunks(collection, s.path, src.stream_id, chunks)
            self.manifest.put_source(src)

    def _records(self, kind: str, loaded: loaders.Loaded, mtime: float) -> list[logformat.Record]:
        ctx = logformat.TimeContext(mtime)
        lines, first = loaded.lines, loaded.first_line
        if kind == "markdown":
            return documents.markdown_blocks(lines, first)
        if kind == "html":
            return documents.html_blocks("\n".join(lines))
        if kind == "csv":
            return documents.csv_rows(lines, first, ctx)
        if kind == "json":
            return documents.json_blocks(lines, first)
        if kind == "jsonl":
            return logformat.parse_records(lines, first, ctx=ctx, jsonl=True)
        return logformat.parse_records(lines, first, logformat.detect(lines), ctx)

    # ------------------------------------------------------------------ vectors

    def flush_deletes(self, collection: str) -> None:
        ids = self.manifest.vector_deletes(collection)
        if ids:
            self.store.delete(collection, self.embedder.config, ids)
            with self.manifest:
                self.manifest.clear_vector_deletes(collection, ids)

    def restore_vectors(self, collection: str, batch: int = 2048) -> int:
        """The vector store is a cache of the manifest: when it holds fewer vectors than the
        manifest says were stored (its folder was deleted, a Chroma server was switched or
        reset), put them back from the vectors the manifest keeps; chunks without a kept
        vector go back to be embedded (their templates are mostly in the embedding cache)."""
        cfg = self.embedder.config
        want = self.manifest.db.execute("SELECT count(*) FROM chunks WHERE collection=? AND embedded=1",
                                        (collection,)).fetchone()[0]
        if not want or self.store.count(collection, cfg) >= want:
            return 0
        log.warning("the vector store has fewer vectors than the index of %s; restoring them", collection)
        restored, last = 0, 0
        while not self._cancelled():
            rows = self.manifest.db.execute(
                "SELECT rowid, id, vec FROM chunks WHERE collection=? AND embedded=1 AND vec IS NOT NULL "
                "AND rowid > ? ORDER BY rowid LIMIT ?", (collection, last, batch)).fetchall()
            if not rows:
                break
            last = rows[-1][0]
            self.store.upsert(collection, cfg, [cid for _, cid, _ in rows], kept_vectors([v for _, _, v in rows]))
            restored += len(rows)
        with self.manifest:
            self.manifest.db.execute("UPDATE chunks SET embedded=0 WHERE collection=? AND embedded=1 AND vec IS NULL",
                                     (collection,))
        return restored

    def embed_pending(self, collection: str, report: IndexReport, batch: int = 256) -> None:
        """Embed chunks not yet in the vector store; each distinct template is encoded once."""
        self.restore_vectors(collection)
        cfg = self.embedder.config
        total = self.manifest.db.execute("SELECT count(*) FROM chunks WHERE collection=? AND embedded=0",
                                         (collection,)).fetchone()[0]
        done = 0
        while not self._cancelled():
            pending = self.manifest.pending(collection, batch)
            if not pending:
                break
            self._progress("embed", done, total, "")
            keys = {t: f"{cfg['name']}|{text_hash(t)}" for _, texts in pending for t in texts}
            have = self.manifest.cached_vectors(list(set(keys.values())))
            missing = [t for t, k in keys.items() if k not in have]
            if missing:
                fresh = {}
                # In slices, with a cancel check between them: one batch of chunks can hold
                # thousands of distinct templates, and Cancel must not wait for all of them.
                for i in range(0, len(missing), EMBED_SLICE):
                    if self._cancelled():
                        break
                    part = missing[i:i + EMBED_SLICE]
                    vecs = self.embedder.embed_documents(part)
                    fresh.update({keys[t]: v.astype(np.float32).tobytes() for t, v in zip(part, vecs)})
                with self.manifest:
                    self.manifest.cache_vectors(fresh)   # kept for the next run, even if cancelled
                have.update(fresh)
                report.templates_embedded += len(fresh)
                if len(fresh) < len(missing):
                    break
            ids, vectors = [], []
            for cid, texts in pending:
                vs = [np.frombuffer(have[keys[t]], dtype=np.float32) for t in texts] or \
                     [np.zeros(cfg["dim"], dtype=np.float32)]
                ids.append(cid)
                vectors.append(mean_vector(vs))
            matrix = np.stack(vectors)
            self.store.upsert(collection, cfg, ids, matrix)
            with self.manifest:
                self.manifest.mark_embedded(ids, matrix)
            done += len(ids)
            report.embedded += len(ids)
        self._progress("embed", done, total, "")


def under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def glob_match(path: str, pattern: str) -> bool:
    """A file filter: a pattern with a folder matches the full path, a bare one the name."""
    if os.sep in pattern or "/" in pattern:
        return fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, "*" + os.sep + pattern.lstrip("/"))
    return fnmatch.fnmatch(Path(path).name, pattern)
