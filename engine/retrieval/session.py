"""The engine side of IndexPaths and Search: one open index per data dir, kept for the life of
the engine process so the embedding model and the vector store load once."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from engine import protocol as p
from engine.retrieval import lexical, query as query_mod
from engine.retrieval.embedder import MiniLMEmbedder
from engine.retrieval.indexer import Indexer, under
from engine.retrieval.loaders import APPENDABLE
from engine.retrieval.logformat import LEVELS, normalize_level
from engine.retrieval.manifest import Manifest
from engine.retrieval.retriever import Filters, Retriever
from engine.retrieval.vectorstore import VectorStore

log = logging.getLogger(__name__)


PROGRESS_EVERY_S = 0.25  # progress events are for a person's eyes; more would flood the channel
# A cited PDF page travels with its citation (and is kept with the conversation) up to this size;
# a bigger one is a data dump drawn as text, and its citation shows the quoted lines only.
PAGE_LINES_MAX_CHARS = 40_000


class RetrievalIndex:
    """Manifest, vector store and embedder of one data dir."""

    def __init__(self, data_dir: Path, chroma_url: str = "", embedder=None):
        self.data_dir = data_dir
        self.manifest = Manifest(data_dir / "manifest.sqlite")
        self.embedder = embedder or MiniLMEmbedder()
        # The store is a cache: damaged, it is set aside and refilled from the manifest.
        self.store = VectorStore(data_dir / "chroma", url=chroma_url,
                                 refill=lambda store: Indexer(self.manifest, store, self.embedder).restore_all())
        self.retriever = Retriever(self.manifest, self.store, self.embedder)

    def close(self) -> None:
        self.manifest.close()


class RetrievalSessions:
    """Open indexes of one thread. The service keeps one of these per thread that touches
    retrieval (the worker, the indexer), sharing the embedder: each thread then has its own
    SQLite connection and store handle, and a chat can search while an index job writes."""

    def __init__(self, embedder=None, paused: threading.Event | None = None):
        self._open: dict[tuple[str, str], RetrievalIndex] = {}
        self.paused = paused or threading.Event()
        # Shared: one model in memory whatever the data dir; its load is locked.
        self.embedder = embedder or MiniLMEmbedder()
        self._embedder = self.embedder

    def index_for(self, data_dir: str, chroma_url: str) -> RetrievalIndex:
        if not data_dir:
            raise p.EngineError(p.ErrorKind.BAD_INPUT,
                                "The request names no data folder; the app must pass its data dir.")
        key = (str(Path(data_dir).resolve()), chroma_url)
        if key not in self._open:
            self._open[key] = RetrievalIndex(Path(key[0]), chroma_url, self._embedder)
        return self._open[key]

    def close(self) -> None:
        for idx in self._open.values():
            idx.close()
        self._open.clear()

    def handle(self, cmd: p.Command, emit: Callable[[p.Event], None], cancel: threading.Event) -> None:
        idx = self.index_for(cmd.data_dir, cmd.chroma_url)
        if isinstance(cmd, p.IndexPaths):
            self._index(idx, cmd, emit, cancel)
        elif isinstance(cmd, p.ListSources):
            self._list(idx, cmd, emit)
        elif isinstance(cmd, p.ListCollections):
            self._collections(idx, cmd, emit)
        elif isinstance(cmd, p.RemoveSources):
            self._remove(idx, cmd, emit)
        else:
            self._search(idx, cmd, emit)

    def _list(self, idx: RetrievalIndex, cmd: p.ListSources, emit) -> None:
        collection = cmd.collection or "default"
        counts = dict(idx.manifest.db.execute(
            "SELECT path, count(*) FROM chunks WHERE collection = ? GROUP BY path", (collection,)).fetchall())
        out = []
        for path, src in sorted(idx.manifest.sources(collection).items()):
            status = "indexed" if src.status == "ok" else src.status
            try:
                size = os.stat(path).st_size
            except OSError:
                size, status = src.size, ("missing" if src.status == "ok" else status)
            if status == "indexed" and src.kind in APPENDABLE and size > src.offset:
                status = "appending"   # lines were written since; the watcher (or next run) reads them
            out.append({"path": path, "status": status, "reason": src.reason, "size": size,
                        "chunks": counts.get(path, 0), "indexed_at": src.indexed_at})
        emit(p.SourceList(id=cmd.id, collection=collection, sources=out))

    def _collections(self, idx: RetrievalIndex, cmd: p.ListCollections, emit) -> None:
        db = idx.manifest.db
        out: dict[str, dict] = {}

        def entry(name: str) -> dict:
            return out.setdefault(name, {"name": name, "files": 0, "chunks": 0, "size": 0})

        for name, files, size in db.execute(
                "SELECT collection, sum(status = 'ok'), sum(CASE WHEN status = 'ok' THEN size ELSE 0 END) "
                "FROM sources GROUP BY collection"):
            entry(name).update(files=int(files or 0), size=int(size or 0))
        for name, chunks in db.execute("SELECT collection, count(*) FROM chunks GROUP BY collection"):
            entry(name)["chunks"] = chunks
        for name, _path, _exclude in idx.manifest.roots():
            entry(name)
        emit(p.CollectionList(id=cmd.id, collections=[out[k] for k in sorted(out)]))

    def _remove(self, idx: RetrievalIndex, cmd: p.RemoveSources, emit) -> None:
        if not cmd.paths:
            raise p.EngineError(p.ErrorKind.BAD_INPUT, "Nothing to remove: pass at least one file or folder.")
        collection = cmd.collection or "default"
        roots = [os.path.abspath(os.path.expanduser(str(x))) for x in cmd.paths]
        gone = [path for path in idx.manifest.sources(collection) if under(path, roots)]
        removed = 0
        with idx.manifest:
            for path in gone:
                removed += idx.manifest.drop_source(collection, path)
            idx.manifest.remove_roots(collection, roots)
        # Vectors go now, not at the next index run: search must stop finding them at once.
        Indexer(idx.manifest, idx.store, idx.embedder).flush_deletes(collection)
        log.info("removed %d file(s), %d chunk(s) from %s", len(gone), removed, collection)
        emit(p.SourcesRemoved(id=cmd.id, collection=collection, paths=sorted(gone), chunks_removed=removed))

    def chat_sources(self, cmd: p.Chat) -> tuple[list, int]:
        """Relevant chunks for the last user message of ``cmd``, best first, and how many hits
        the retriever returned before the relevance check."""
        from engine.grounding import SourceChunk, relevant

        question = next((str(m.get("content", "")) for m in reversed(cmd.messages)
                         if isinstance(m, dict) and m.get("role") == "user"), "")
        if not question.strip():
            return [], 0
        idx = self.index_for(cmd.data_dir, cmd.chroma_url)
        k = max(1, min(int(cmd.sources_k or 6), 50))
        hits = []
        for collection in [str(c) for c in cmd.collections] or ["default"]:
            hits += idx.retriever.search(question, k, Filters(collection))
        hits.sort(key=lambda h: -h.score)
        chunks = [SourceChunk(h.path, h.line_start, h.line_end, h.page, h.score, h.text, heading=h.heading)
                  for h in hits[:k]]
        for c in chunks:
            if c.page is not None:
                # The window opens a citation onto its whole page, the cited lines highlighted.
                lines = idx.manifest.page_lines(c.path, c.page)
                c.page_lines = lines if sum(len(x) + 1 for x in lines) <= PAGE_LINES_MAX_CHARS else []
        if not chunks:
            return [], 0
        qvec = self.embedder.embed_query(question)
        sims = self.embedder.embed_documents([c.text for c in chunks]) @ qvec
        terms = lexical.query_terms(question)   # time words included: they match lines too
        return relevant(chunks, terms, [float(x) for x in sims]), len(chunks)

    def _index(self, idx: RetrievalIndex, cmd: p.IndexPaths, emit, cancel: threading.Event) -> None:
        if not cmd.paths:
            raise p.EngineError(p.ErrorKind.BAD_INPUT, "Nothing to index: pass at least one file or folder.")
        last = [0.0]
        read: dict[str, int] = {}   # files reached in the read phase, with their sizes
        phases = [""]

        def progress(phase: str, done: int, total: int, path: str) -> None:
            if phase == "read" and path not in read:
                try:
                    read[path] = os.path.getsize(path)
                except OSError:
                    read[path] = 0
            now = time.monotonic()
            # A new phase is always shown, so a quick read of small files still says "Reading".
            if now - last[0] >= PROGRESS_EVERY_S or done == total or phase != phases[-1]:
                last[0] = now
                phases.append(phase)
                emit(p.Progress(id=cmd.id, phase=phase, done=done, total=total, path=path,
                                bytes_done=sum(read.values())))

        if not cmd.id.startswith(p.WATCH_ID_PREFIX):
            # Remembered so the next engine run watches (and catches up on) the same roots.
            with idx.manifest:
                for raw in cmd.paths:
                    idx.manifest.put_root(cmd.collection or "default", os.path.abspath(os.path.expanduser(str(raw))),
                                          [str(x) for x in cmd.exclude])
        def stop() -> bool:
            # A pause holds the job here, between two files or two embedding batches, with
            # everything so far committed; a cancel (or shutdown) still ends it at once.
            if self.paused.is_set() and not cancel.is_set():
                emit(p.Progress(id=cmd.id, phase="paused", done=0, total=0, bytes_done=sum(read.values())))
                while self.paused.is_set() and not cancel.is_set():
                    cancel.wait(0.2)
            return cancel.is_set()

        indexer = Indexer(idx.manifest, idx.store, idx.embedder, progress, stop)
        report = indexer.index([str(x) for x in cmd.paths], cmd.collection or "default",
                               exclude=[str(x) for x in cmd.exclude])
        if cancel.is_set():
            emit(p.Cancelled(id=cmd.id))
            return
        summary = asdict(report)
        summary["notices"] = idx.store.take_notices()
        summary["chunks"] = idx.manifest.chunk_count(cmd.collection or "default")
        summary["collection"] = cmd.collection or "default"
        emit(p.IndexDone(id=cmd.id, summary=summary))

    def _search(self, idx: RetrievalIndex, cmd: p.Search, emit) -> None:
        t0 = time.perf_counter()
        level = ""
        if cmd.level:
            level = normalize_level(cmd.level) or ""
            if not level:
                raise p.EngineError(p.ErrorKind.BAD_INPUT,
                                    f"Unknown level '{cmd.level}'; use one of {', '.join(LEVELS).lower()}.")
        try:
            since = query_mod.parse_bound(cmd.since) if cmd.since else None
            until = query_mod.parse_bound(cmd.until) if cmd.until else None
        except ValueError as e:
            raise p.EngineError(p.ErrorKind.BAD_INPUT, f"--since/--until: {e}") from None
        if not 1 <= cmd.k <= 1000:
            raise p.EngineError(p.ErrorKind.BAD_INPUT, "k (the number of hits) must be between 1 and 1000.")
        filters = Filters(cmd.collection or "default", cmd.file_glob, since, until, level)
        for q in cmd.queries:
            hits = idx.retriever.search(str(q), cmd.k, filters)
            emit(p.SearchResult(id=cmd.id, query=str(q), hits=[h.to_dict() for h in hits]))
        emit(p.SearchDone(id=cmd.id, queries=len(cmd.queries), seconds=round(time.perf_counter() - t0, 3)))
