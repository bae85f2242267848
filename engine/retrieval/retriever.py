"""Hybrid search: lexical (FTS5, BM25) and dense (chroma) candidates, fused by reciprocal rank.

Filters (collection, file glob, time range, level) apply before ranking on both sides: in SQL
for the lexical side, and as the allowed chunk ids for the dense side. Each hit is then
narrowed from its chunk to the one record that answers (the record holding most query terms,
inside the time range, of the wanted level), so a citation is as tight as a record.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import asdict, dataclass

import numpy as np

from engine.retrieval import lexical, query as query_mod
from engine.retrieval.embedder import Embedder
from engine.retrieval.indexer import glob_match
from engine.retrieval.logformat import LEVEL_RANK
from engine.retrieval.manifest import Manifest
from engine.retrieval.templates import template_of, text_hash
from engine.retrieval.vectorstore import VectorStore

log = logging.getLogger(__name__)

RRF_K = 60
CANDIDATES = 50
# The dense side gets the allowed ids when filters leave fewer chunks than this; beyond it,
# it over-fetches and drops what the filters exclude.
MAX_ID_FILTER = 20000
LEVEL_BOOST = 0.5 / (RRF_K + 1)


@dataclass
class Filters:
    collection: str = "default"
    file_glob: str = ""
    since: float | None = None
    until: float | None = None
    level: str = ""   # this level or worse

    @property
    def narrowing(self) -> bool:
        return bool(self.file_glob or self.since is not None or self.until is not None or self.level)


@dataclass
class Hit:
    path: str
    line_start: int
    line_end: int
    page: int | None
    score: float
    text: str
    chunk_id: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("chunk_id")
        return d


class Retriever:
    def __init__(self, manifest: Manifest, store: VectorStore, embedder: Embedder):
        self.manifest = manifest
        self.store = store
        self.embedder = embedder
        manifest.db.create_function("lantern_glob", 2, glob_match, deterministic=True)

    def search(self, question: str, k: int = 5, filters: Filters | None = None,
               understand: bool = True) -> list[Hit]:
        f = filters or Filters()
        intent = query_mod.parse(question) if understand else query_mod.Intent(question)
        if understand and f.since is None and f.until is None and intent.since is not None:
            # Time words in the question filter; if nothing is in that window, fall back to no window.
            timed = Filters(f.collection, f.file_glob, intent.since, intent.until, f.level)
            hits = self._search(intent.text or question, question, k, timed, intent.level_boost)
            if hits:
                return hits
        return self._search(intent.text or question, question, k, f, intent.level_boost)

    def _search(self, lexical_text: str, dense_text: str, k: int, f: Filters, boost: str | None) -> list[Hit]:
        where, args = self._where(f)
        lex = self._lexical(lexical_text, where, args)
        dense = self._dense(dense_text, where, args, f)
        scores: dict[int, float] = {}
        for ranked in (lex, dense):
            for rank, rowid in enumerate(ranked):
                scores[rowid] = scores.get(rowid, 0.0) + 1.0 / (RRF_K + rank + 1)
        if not scores:
            return []
        rows = self._rows(list(scores))
        if boost:
            for rowid, row in rows.items():
                if row["max_level"] >= LEVEL_RANK[boost]:
                    scores[rowid] += LEVEL_BOOST
        order = sorted(scores, key=lambda r: -scores[r])[:k]
        terms = lexical.query_terms(lexical_text)
        qvec = self._qvec
        return [self._narrow(rows[r], scores[r], terms, f, boost, qvec) for r in order if r in rows]

    # ------------------------------------------------------------------ candidates

    def _where(self, f: Filters) -> tuple[str, list]:
        where, args = ["c.collection = ?"], [f.collection]
        if f.since is not None:
            where.append("c.t_max >= ?")
            args.append(f.since)
        if f.until is not None:
            where.append("c.t_min < ?")
            args.append(f.until)
        if f.level:
            where.append("c.max_level >= ?")
            args.append(LEVEL_RANK[f.level])
        if f.file_glob:
            where.append("lantern_glob(c.path, ?)")
            args.append(f.file_glob)
        return " AND ".join(where), args

    def _lexical(self, text: str, where: str, args: list) -> list[int]:
        expr = lexical.match_query(text)
        if expr is None:
            return []
        try:
            rows = self.manifest.db.execute(
                f"SELECT c.rowid FROM chunks_fts JOIN chunks c ON c.rowid = chunks_fts.rowid "
                f"WHERE chunks_fts MATCH ? AND {where} ORDER BY bm25(chunks_fts) LIMIT ?",
                [expr, *args, CANDIDATES]).fetchall()
        except sqlite3.OperationalError as e:
            log.warning("lexical query %r failed: %s", expr, e)
            return []
        return [r[0] for r in rows]

    def _dense(self, text: str, where: str, args: list, f: Filters) -> list[int]:
        self._qvec = None
        embedded = self.manifest.db.execute(
            f"SELECT count(*) FROM chunks c WHERE {where} AND c.embedded = 1", args).fetchone()[0]
        if not embedded:
            return []
        self._qvec = qvec = self.embedder.embed_query(text)
        cfg = self.embedder.config
        ids = None
        n = CANDIDATES
        if f.narrowing:
            if embedded <= MAX_ID_FILTER:
                ids = [r[0] for r in self.manifest.db.execute(
                    f"SELECT c.id FROM chunks c WHERE {where} AND c.embedded = 1", args)]
            else:
                n = CANDIDATES * 20
        found = self.store.query(f.collection, cfg, qvec, n, ids)
        if not found:
            return []
        # Ids the manifest no longer has (a vector delete still pending) are dropped here.
        # The unary + keeps SQLite on the id index: left free, it picks chunks(collection, ...)
        # and scans the whole collection (250 ms at 200k chunks).
        placeholders = ",".join("?" * len(found))
        by_id = where.replace("c.collection = ?", "+c.collection = ?", 1)
        rowids = dict(self.manifest.db.execute(
            f"SELECT c.id, c.rowid FROM chunks c WHERE c.id IN ({placeholders}) AND {by_id}",
            [cid for cid, _ in found] + args).fetchall())
        return [rowids[cid] for cid, _ in found if cid in rowids][:CANDIDATES]

    def _rows(self, rowids: list[int]) -> dict[int, dict]:
        q = (f"SELECT rowid, id, path, line_start, line_end, page, text, records, max_level FROM chunks "
             f"WHERE rowid IN ({','.join('?' * len(rowids))})")
        out = {}
        for rowid, cid, path, ls, le, page, text, records, max_level in self.manifest.db.execute(q, rowids):
            out[rowid] = {"id": cid, "path": path, "line_start": ls, "line_end": le, "page": page, "text": text,
                          "records": json.loads(records or "[]"), "max_level": max_level if max_level is not None else -1}
        return out

    # ------------------------------------------------------------------ narrowing

    def _narrow(self, row: dict, score: float, terms: list[str], f: Filters, boost: str | None,
                qvec: np.ndarray | None) -> Hit:
        records = row["records"] or [[row["line_start"], row["line_end"], None, None, 0, len(row["text"])]]
        best, best_key = None, None
        texts, eligible = [], []
        for ls, le, epoch, level, a, b in records:
            text = row["text"][a:b]
            texts.append(text)
            in_time = epoch is None or ((f.since is None or epoch >= f.since) and (f.until is None or epoch < f.until))
            if epoch is None and (f.since is not None or f.until is not None):
                in_time = False
            lv = LEVEL_RANK.get(level, -1) if level else -1
            level_ok = not f.level or lv >= LEVEL_RANK[f.level]
            tokens = set(lexical.tokens(text))
            overlap = sum(1 for t in terms if t in tokens)
            boosted = bool(boost) and lv >= LEVEL_RANK[boost]
            key = (in_time and level_ok, overlap, boosted)
            eligible.append(in_time and level_ok)
            if best_key is None or key > best_key:
                best, best_key = (ls, le, text), key
        if best_key is not None and best_key[1] == 0 and qvec is not None and len(records) > 1:
            sims = self._similarities(texts, qvec)
            if sims is not None:
                if any(eligible):
                    sims = np.where(eligible, sims, -np.inf)
                i = int(np.argmax(sims))
                best = (records[i][0], records[i][1], texts[i])
        ls, le, text = best
        return Hit(row["path"], ls, le, row["page"], round(score, 6), text, row["id"])

    def _similarities(self, texts: list[str], qvec: np.ndarray) -> np.ndarray | None:
        """Cosine of the query with each record's template, from the embedding cache only."""
        name = self.embedder.config["name"]
        keys = [f"{name}|{text_hash(template_of(t))}" for t in texts]
        have = self.manifest.cached_vectors(list(set(keys)))
        if len(have) < len(set(keys)):
            return None
        return np.array([float(np.dot(np.frombuffer(have[k], dtype=np.float32), qvec)) for k in keys])
