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

from engine.protocol import EngineError, ErrorKind
from engine.retrieval import documents, loaders, logformat
from engine.retrieval.chunker import chunk_records
from engine.retrieval.embedder import Embedder, mean_vector
from engine.retrieval.manifest import Manifest, Source, disk_full, disk_full_message, kept_vectors
from engine.retrieval.templates import text_hash
from engine.retrieval.vectorstore import VectorStore

log = logging.getLogger(__name__)

HEAD_LEN = 4096
EMBED_SLICE = 64   # templates per embedder call between cancel checks (~0.3 s on one core)
EMBED_SLICE_CHARS = 16_000   # ...and characters: ~20 document chunks, about a second on two cores
# Folders that hold tools' state, not the user's documents.
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", ".tox", ".cache"}
MAX_DEPTH = 64     # folders below an added one; deeper trees are generated, not written by a person

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


def walk(paths: list[str], report: IndexReport, exclude: list[str] = (), follow_links: bool = False) -> list[str]:
    """Files under ``paths`` (absolute, links not resolved so citations name what the user gave),
    less those under ``exclude`` (sources the person removed from a watched folder).

    Files stay inside what the person chose: a symbolic link whose target lies outside the
    folder it was found in is skipped with that reason (``follow_links`` lets a file link out;
    folder links are never descended, so a loop such as ``a -> .`` or ``z -> /`` cannot make a
    walk endless). The walk keeps its own stack, so a very deep tree ends like any other, and
    stops descending at MAX_DEPTH with a reason."""
    out: list[str] = []
    for raw in paths:
        p = os.path.abspath(os.path.expanduser(raw))
        if os.path.isdir(p):
            out.extend(_walk_folder(p, report, follow_links, exclude))
        elif os.path.lexists(p):
            out.append(p)
        else:
            report.skipped.append({"path": p, "reason": "no such file or folder"})
    return [f for f in out if not under(f, exclude)] if exclude else out


def _walk_folder(top: str, report: IndexReport, follow_links: bool, exclude: list[str]) -> list[str]:
    real_top = os.path.realpath(top)
    out: list[str] = []
    stack = [(top, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            report.skipped.append({"path": folder, "reason": f"cannot list the folder: {e.strerror or e}"})
            continue
        subdirs = []
        for e in entries:
            try:
                is_link = e.is_symlink()
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                is_link, is_dir = False, False
            if is_link:
                why = _link_outside(e.path, real_top)
                if why:
                    if follow_links and not os.path.isdir(e.path):
                        out.append(e.path)
                    else:
                        report.skipped.append({"path": e.path, "reason": why})
                elif not os.path.isdir(e.path):
                    out.append(e.path)   # a link to a file inside the folder (or a broken one: said later)
                # A link to a folder inside is not descended: its files are found at their own path.
            elif is_dir:
                if e.name in SKIP_DIRS or (exclude and under(e.path, exclude)):
                    continue
                if depth + 1 > MAX_DEPTH:
                    report.skipped.append({"path": e.path, "reason": f"more than {MAX_DEPTH} folders deep; "
                                           f"add this folder on its own to index it"})
                    continue
                subdirs.append(e.path)
            else:
                out.append(e.path)
        # Popped in name order: files come out sorted as os.walk gave them.
        stack.extend((d, depth + 1) for d in reversed(subdirs))
    return out


def _link_outside(path: str, real_top: str) -> str:
    """Why the link at ``path`` is not followed ('' when its target is inside ``real_top``)."""
    try:
        target = os.path.realpath(path)
    except (OSError, RuntimeError):
        return "a symbolic link that cannot be resolved; fix or remove the link"
    if target == real_top or target.startswith(real_top.rstrip(os.sep) + os.sep):
        return ""
    return (f"a symbolic link to {target}, outside the folder you added; links out of an added folder "
            f"are not followed (add {target} itself to index it)")


def _head_hash(head: bytes, n: int) -> str:
    return hashlib.sha1(head[:n]).hexdigest()


def _stream_id(collection: str, path: str, st: os.stat_result, head: bytes) -> str:
    key = f"{collection}\0{path}\0{st.st_dev}:{st.st_ino}\0{_head_hash(head, HEAD_LEN)}"
    return hashlib.sha1(key.encode("utf-8", "replace")).hexdigest()[:16]


class Indexer:
    def __init__(self, manifest: Manifest, store: VectorStore, embedder: Embedder,
                 progress: Progress | None = None, cancelled: Callable[[], bool] = lambda: False,
                 follow_links: bool = False):
        self.manifest = manifest
        self.store = store
        self.embedder = embedder
        self._progress = progress or (lambda *a: None)
        self._cancelled = cancelled
        self.follow_links = follow_links
        self._suspects: dict[str, tuple] = {}
        # Kinds whose (native) parser was seen crashing in this run: their other files are read
        # in a child first too, so a folder of such files costs one engine restart, not one each.
        self._crashing_kinds: set[str] = set()

    def index(self, paths: list[str], collection: str = "default", exclude: list[str] = ()) -> IndexReport:
        """Index ``paths``. A file that cannot be read or parsed is skipped with a reason and the
        run goes on; a write that fails because the disk is full ends the run with that error
        (each file's chunks are written in one transaction, so nothing is half-written)."""
        try:
            return self._index(paths, collection, exclude)
        except EngineError:
            raise   # already said in words (a full disk under the vector store among them)
        except Exception as e:
            if disk_full(e):
                raise EngineError(ErrorKind.INDEX_IO, disk_full_message(self.manifest.path.parent, e)) from None
            raise

    def _index(self, paths: list[str], collection: str, exclude: list[str]) -> IndexReport:
        t0 = time.perf_counter()
        report = IndexReport()
        roots = [os.path.abspath(os.path.expanduser(p)) for p in paths]
        exclude = [os.path.abspath(os.path.expanduser(p)) for p in exclude]
        files = walk(paths, report, exclude, self.follow_links)
        known = {p: s for p, s in self.manifest.sources(collection).items()
                 if under(p, roots) and not (exclude and under(p, exclude))}
        # The files the last engine was reading when it died (see Manifest.reading).
        self._suspects = self.manifest.reading(collection)

        # What the walk left out (links out of the folder, folders it cannot list) is recorded
        # like any skipped file, so the sources list says why; an earlier index of such a link
        # leaves the index.
        walked, report.skipped = report.skipped, []
        for s in walked:
            if under(s["path"], roots) and os.path.lexists(s["path"]):
                self._skip(collection, s["path"], s["reason"], report, known)
            else:
                report.skipped.append(s)
        listed = set(files) | {s["path"] for s in report.skipped}
        with self.manifest:
            for path, src in known.items():
                if src.status != "ok" and path not in listed:
                    self.manifest.drop_source(collection, path)   # a skipped file that is gone

        seen: dict[str, _Seen] = {}
        for i, path in enumerate(files):
            self._progress("scan", i, len(files), path)
            try:
                st = loaders.check_regular(path)
                seen[path] = _Seen(path, st, loaders.head_of(path))
            except loaders.SkipFile as e:
                self._skip(collection, path, e.reason, report, known)
            except Exception as e:
                if disk_full(e):
                    raise
                log.warning("cannot look at %s", path, exc_info=True)
                self._skip(collection, path, failure_reason(e, ""), report, known)
        report.files = len(seen)

        matched, orphans, remembered = {}, [], {}
        for path, src in known.items():
            s = seen.get(path)
            if src.status == "ok" and s is not None and self._same_stream(src, s):
                matched[path] = src
            elif src.status == "ok":
                orphans.append(src)
            elif s is not None and src.head_hash and _stat_key(s.st) == (src.size, src.mtime, src.inode, src.dev):
                # Skipped when read before and unchanged since: not read again (a watched
                # folder must not redo a failure at every change of a neighbouring log).
                remembered[path] = src
                report.skipped.append({"path": path, "reason": src.reason})
        new = [p for p in seen if p not in matched and p not in remembered]

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
                self._skip(collection, path, e.reason, report, known, seen[path])

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

    def _skip(self, collection: str, path: str, reason: str, report: IndexReport, known: dict,
              seen: _Seen | None = None) -> None:
        """Leave ``path`` out with ``reason``. ``seen``: the file was read and its content was the
        trouble; its size, mtime and inode are kept so it is not read again until it changes."""
        log.info("skipped %s: %s", path, reason)
        report.skipped.append({"path": path, "reason": reason})
        src = Source(collection, path, status="skipped", reason=reason)
        if seen is not None:
            st = seen.st
            src.size, src.mtime, src.inode, src.dev = st.st_size, st.st_mtime, st.st_ino, st.st_dev
            src.head_len = min(len(seen.head), HEAD_LEN)
            src.head_hash = _head_hash(seen.head, src.head_len)
        with self.manifest:
            if path in known:
                report.chunks_removed += self.manifest.drop_chunks(collection, path)
            self.manifest.put_source(src)
            self.manifest.done_reading(collection, path)
        # Handled: not an indexed file that went missing (which would drop this row again).
        known.pop(path, None)

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

        args = (src.kind, s.path, src.stream_id, st.st_mtime, offset, first_line, encoding)
        self._start_reading(collection, s, args)
        chunks, loaded = _guarded_read(*args)
        if src.kind in loaders.DOCUMENT_KINDS:
            report.bytes_read += st.st_size
            end_offset, next_line = st.st_size, 1 + max((c.line_end for c in chunks), default=0)
            encoding = ""
        else:
            report.bytes_read += loaded.end_offset - offset
            if offset and loaded.lines:
                report.appended += 1
            elif offset and not loaded.lines and (src.size, src.mtime) == (st.st_size, st.st_mtime):
                report.unchanged += 1
            end_offset, next_line = loaded.end_offset, loaded.first_line + len(loaded.lines)
            encoding = loaded.encoding

        src.size, src.mtime, src.inode, src.dev = st.st_size, st.st_mtime, st.st_ino, st.st_dev
        src.head_len = min(len(s.head), HEAD_LEN)
        src.head_hash = _head_hash(s.head, src.head_len)
        src.offset, src.next_line = end_offset, next_line
        src.encoding, src.status, src.reason = encoding, "ok", ""
        with self.manifest:
            if not offset:
                report.chunks_removed += self.manifest.drop_chunks(collection, s.path)
            report.chunks_added += self.manifest.add_chunks(collection, s.path, src.stream_id, chunks)
            self.manifest.put_source(src)
            self.manifest.done_reading(collection, s.path)

    def _start_reading(self, collection: str, s: _Seen, args: tuple) -> None:
        """Note durably that ``s`` is being read, so that if a parser takes the engine down with
        it (a native crash, memory), the next run knows which file did it. A file the last
        engine died reading, unchanged since, is first read in a child process: if that dies
        too, the file is skipped (until it changes) instead of taking this engine down; if not,
        the engine died of something else (killed, shut down) and the file is read as usual."""
        key = _stat_key(s.st)
        suspect = self._suspects.get(s.path) == key
        if suspect or args[0] in self._crashing_kinds:
            why = probe(args, suspect)
            if why:
                if args[0] in loaders.DOCUMENT_KINDS:
                    self._crashing_kinds.add(args[0])
                raise loaders.SkipFile(why)
        with self.manifest:
            self.manifest.start_reading(collection, s.path, key)

    def _records(self, kind: str, loaded: loaders.Loaded, mtime: float) -> list[logformat.Record]:
        return records_of(kind, loaded, mtime)

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

    def restore_all(self) -> int:
        """Refill an empty vector store (one just set aside as damaged) from the kept vectors of
        every collection of the manifest."""
        names = [r[0] for r in self.manifest.db.execute("SELECT DISTINCT collection FROM chunks WHERE embedded=1")]
        return sum(self.restore_vectors(name) for name in names)

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
                for part in embed_slices(missing):
                    if self._cancelled():
                        break
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


def embed_slices(texts: list[str]) -> list[list[str]]:
    """``texts`` shortest first, in slices of at most EMBED_SLICE texts and EMBED_SLICE_CHARS
    characters: texts of like length share a slice (the embedder pads a batch to its longest),
    and a slice of long document chunks still ends within a second or so for a cancel check."""
    out: list[list[str]] = []
    cur: list[str] = []
    size = 0
    for t in sorted(texts, key=len):
        if cur and (len(cur) >= EMBED_SLICE or size + len(t) > EMBED_SLICE_CHARS):
            out.append(cur)
            cur, size = [], 0
        cur.append(t)
        size += len(t)
    if cur:
        out.append(cur)
    return out


def under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def glob_match(path: str, pattern: str) -> bool:
    """A file filter: a pattern with a folder matches the full path, a bare one the name."""
    if os.sep in pattern or "/" in pattern:
        return fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, "*" + os.sep + pattern.lstrip("/"))
    return fnmatch.fnmatch(Path(path).name, pattern)


# ---------------------------------------------------------------------- reading one file

def _stat_key(st: os.stat_result) -> tuple:
    return (st.st_size, st.st_mtime, st.st_ino, st.st_dev)


def records_of(kind: str, loaded: loaders.Loaded, mtime: float) -> list[logformat.Record]:
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


def read_chunks(kind: str, path: str, stream_id: str, mtime: float, offset: int = 0, first_line: int = 1,
                encoding: str | None = None) -> tuple[list, loaders.Loaded | None]:
    """The chunks of one file (of its tail from ``offset`` for an appended log), and the lines
    read (None for a document: PDF pages or Word blocks, always read whole)."""
    # Imported here: each pulls its parser at first use, and most folders hold neither.
    if kind == "pdf":
        from engine.retrieval import pdf
        return [c for page, records in pdf.page_records(path)
                for c in chunk_records(records, stream_id, is_log=False, page=page)], None
    if kind == "docx":
        from engine.retrieval import word
        return chunk_records(word.records(path), stream_id, is_log=False), None
    loaded = loaders.load_lines(path, offset, first_line, encoding)
    chunks = chunk_records(records_of(kind, loaded, mtime), stream_id, is_log=kind in loaders.APPENDABLE)
    return chunks, loaded


def _guarded_read(*args) -> tuple[list, loaders.Loaded | None]:
    """read_chunks, with any failure of a reader on this file's content turned into SkipFile:
    one file Lantern cannot parse must never end the run for all the others."""
    try:
        return read_chunks(*args)
    except loaders.SkipFile:
        raise
    except Exception as e:
        if disk_full(e):
            raise
        log.warning("the %s reader failed on %s", args[0], args[1], exc_info=True)
        raise loaders.SkipFile(failure_reason(e, args[0])) from None


_KIND_NAMES = {"text": "log/text", "markdown": "Markdown", "html": "HTML", "csv": "CSV", "json": "JSON",
               "jsonl": "JSON-lines", "pdf": "PDF", "docx": "Word"}
_RETRY = "it is left out until the file changes"


def failure_reason(e: BaseException, kind: str) -> str:
    """Why a file was left out when a reader raised ``e``, in words a person can act on."""
    import csv

    text = str(e) or type(e).__name__
    if isinstance(e, csv.Error) and "field limit" in text:
        return ("a CSV field is larger than the field limit, most likely a quote that is never closed; "
                f"fix the quoting, or rename the file to .txt to index it as plain text ({_RETRY})")
    if isinstance(e, MemoryError):
        return f"too large to read into memory; split the file ({_RETRY})"
    if isinstance(e, RecursionError):
        return f"nested too deeply to read ({_RETRY})"
    if isinstance(e, (OverflowError, ValueError)) and any(w in text for w in ("out of range", "year", "timestamp",
                                                                               "invalid literal", "too large")):
        return (f"a date, time or number in it cannot be read ({text}); Lantern's "
                f"{_KIND_NAMES.get(kind, kind or 'file')} reader gave up on the file ({_RETRY})")
    what = f"Lantern's {_KIND_NAMES[kind]} reader" if kind in _KIND_NAMES else "Lantern"
    return f"{what} could not read it ({type(e).__name__}: {text[:200]}); {_RETRY}"


PROBE_TIMEOUT_S = 300   # a suspect file read in a child: longer than any real file takes to parse


def probe(args: tuple, died_reading: bool = True) -> str:
    """Read one file as ``read_chunks(*args)`` would, in a child process. '' when the child
    read it; otherwise why the file is skipped (the child died or hung). ``died_reading``: the
    engine died reading this file before (else: its parser crashed on another file)."""
    import json
    import signal
    import subprocess
    import sys

    kind, path = args[0], args[1]
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH", "")]))
    log.warning("%s; reading %s in a separate process first", "the engine stopped while reading it" if died_reading
                else f"the {kind} reader crashed on another file", path)
    try:
        done = subprocess.run([sys.executable, "-m", "engine.retrieval.indexer", json.dumps(list(args))],
                              env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return (f"Lantern's {_KIND_NAMES.get(kind, kind)} reader did not finish this file in {PROBE_TIMEOUT_S} s"
                + (" and the engine stopped while reading it before" if died_reading else "") + f"; {_RETRY}")
    except OSError as e:
        log.warning("cannot start a process to read %s (%s); reading it here", path, e)
        return ""
    if done.returncode > 0:
        # Failed with an error the engine's own read reports as data (or the child could not
        # start Lantern's reader at all: then this engine reads it, as before the crash).
        log.info("reading %s in a separate process failed: %s", path,
                 done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or done.returncode)
    if done.returncode >= 0:
        return ""
    try:
        sig = signal.Signals(-done.returncode).name
    except ValueError:
        sig = f"signal {-done.returncode}"
    log.warning("reading %s in a separate process ended with %s", path, sig)
    if not died_reading:
        return f"Lantern's {_KIND_NAMES.get(kind, kind)} reader crashes on this file ({sig}); {_RETRY}"
    return (f"Lantern's {_KIND_NAMES.get(kind, kind)} reader crashes on this file ({sig}): the engine "
            f"stopped while reading it, and so did a second try in a separate process; {_RETRY}")


def _probe_main(argv: list[str]) -> int:
    import json
    args = json.loads(argv[0])
    try:
        read_chunks(*args)
    except Exception as e:   # an error as data: the engine's own read says why
        print(f"{type(e).__name__}: {e}", file=__import__("sys").stderr)
        return 1
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(_probe_main(sys.argv[1:]))
