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
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from engine.retrieval import lexical, query as query_mod
from engine.retrieval.embedder import Embedder
from engine.retrieval.indexer import glob_match
from engine.retrieval.logformat import LEVEL_RANK
from engine.retrieval.manifest import Manifest, kept_vectors
from engine.retrieval.templates import template_of, text_hash
from engine.retrieval.vectorstore import VectorStore

log = logging.getLogger(__name__)

RRF_K = 60
CANDIDATES = 50
# The dense side gets the allowed ids when filters leave fewer chunks than this; beyond it,
# it over-fetches and drops what the filters exclude. Reading 20k ids and handing them to
# chroma cost ~110 ms; past a few thousand, the filtered chunks are a big enough share that
# the global top 1,000 holds plenty of them.
MAX_ID_FILTER = 5000
LEVEL_BOOST = 0.5 / (RRF_K + 1)
# Document frequencies of terms in at least DF_CACHE_MIN chunks are kept DF_CACHE_S seconds.
DF_CACHE_S = 300.0
DF_CACHE_MIN = 1000
# Every query word common: the chunks holding all of them are candidates when at most this many.
ALL_COMMON_MAX = 200
# A date without a year ("March 1st") is looked for this many years back, nearest first.
YEARS_BACK = 10


def _nearest(rows: list[tuple[int, str, bytes]], qvec: np.ndarray, k: int) -> list[int]:
    """Rowids of the ``k`` rows (rowid, id, kept vector) nearest to ``qvec``, nearest first."""
    sims = kept_vectors([v for _, _, v in rows]) @ qvec
    top = np.argsort(-sims)[:k] if len(rows) <= k else np.argpartition(-sims, k)[:k]
    top = top[np.argsort(-sims[top])]
    return [rows[i][0] for i in top]


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _query_pool() -> ThreadPoolExecutor:
    """One thread for query vectors, shared by every retriever in the process."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(1, thread_name_prefix="lantern-query-vector")
        return _pool


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
        # How many chunks hold a term, read from the FTS index itself (per connection, not stored).
        manifest.db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunks_vocab USING fts5vocab(main, chunks_fts, row)")

        self._df_cache: dict[str, int] = {}
        self._df_cache_at = time.monotonic()
        self._n_docs_cached: int | None = None
        self._n_docs_at = 0.0

    def doc_freq(self, terms: list[str]) -> dict[str, int]:
        """Chunks holding each term. Counting walks the term's postings (7 ms for a term in 100k
        chunks), so the counts of common terms are kept for a few minutes: for planning a query
        an old count of a common word is as good as a new one. Rare counts are cheap and always
        fresh, so a line appended a second ago is found."""
        if time.monotonic() - self._df_cache_at > DF_CACHE_S:
            self._df_cache.clear()
            self._df_cache_at = time.monotonic()
        out = {t: self._df_cache[t] for t in terms if t in self._df_cache}
        missing = [t for t in terms if t not in out]
        if missing:
            rows = self.manifest.db.execute(
                f"SELECT term, doc FROM temp.chunks_vocab WHERE term IN ({','.join('?' * len(missing))})", missing)
            for term, n in rows.fetchall():
                out[term] = n
                if n >= DF_CACHE_MIN:
                    self._df_cache[term] = n
        return out

    def search(self, question: str, k: int = 5, filters: Filters | None = None,
               understand: bool = True) -> list[Hit]:
        f = filters or Filters()
        intent = query_mod.parse(question) if understand else query_mod.Intent(question)
        # The question's vector is computed on another thread while SQLite does the lexical side
        # (torch and SQLite both release the GIL), once even when the search runs twice below.
        # Not at all when the collection has no vectors: that would load the model for nothing.
        qvec = None
        if self.manifest.db.execute("SELECT 1 FROM chunks WHERE collection = ? AND embedded = 1 LIMIT 1",
                                    (f.collection,)).fetchone():
            qvec = _query_pool().submit(self.embedder.embed_query, question)
        if understand and f.since is None and f.until is None and intent.since is not None:
            # Time words in the question filter; if nothing is in that window, fall back to no window.
            windows = [(intent.since, intent.until)]
            if intent.yearless:
                windows += [w for back in range(1, YEARS_BACK + 1)
                            if (w := query_mod.earlier_years(intent.since, intent.until, back))]
            for since, until in windows:
                timed = Filters(f.collection, f.file_glob, since, until, f.level)
                if not self._has_records(timed):
                    continue   # "March 1st" on which the sources have nothing: try the year before
                hits = self._search(intent.text or question, qvec, k, timed, intent.level_boost)
                if hits:
                    return hits
                break
        return self._search(intent.text or question, qvec, k, f, intent.level_boost)

    def _has_records(self, f: Filters) -> bool:
        where, args = self._where(f)
        return self.manifest.db.execute(f"SELECT 1 FROM chunks c WHERE {where} LIMIT 1", args).fetchone() is not None

    def _search(self, lexical_text: str, qvec_future: Future | None, k: int, f: Filters,
                boost: str | None) -> list[Hit]:
        where, args = self._where(f)
        lex, pending = self._lexical(lexical_text, where, args)
        # Waited for here, after the lexical side: by now the other thread has usually finished.
        qvec = qvec_future.result() if qvec_future is not None else None
        dense = self._dense(qvec, where, args, f)
        if pending is not None:
            lex = self._rescore(pending, list(dict.fromkeys(lex + dense)))[:CANDIDATES]
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
            if f.since is not None:
                # Redundant, but it gives chunks_time an upper end: a chunk that ends after
                # until + the longest span cannot start before until.
                where.append("c.t_max <= ?")
                args.append(f.until + self.manifest.max_span(f.collection))
        if f.level:
            where.append("c.max_level >= ?")
            args.append(LEVEL_RANK[f.level])
        if f.file_glob:
            where.append("lantern_glob(c.path, ?)")
            args.append(f.file_glob)
        return " AND ".join(where), args

    def _lexical(self, text: str, where: str, args: list) -> tuple[list[int], lexical.Scorer | None]:
        """Lexical candidates, best first. FTS5 ranks the rare words' chunks; the common words
        then re-rank those in Python (``lexical.Scorer``). When every word is common, the
        candidates are the few chunks holding them all plus, later, the dense side's; the
        returned scorer says that ranking is still to do (``_rescore`` after the dense side)."""
        terms = lexical.match_terms(text)
        df = self.doc_freq(terms)
        rare, common = lexical.split_rare(terms, df)
        if not rare and not common:
            return [], None
        db = self.manifest.db
        scorer = lexical.Scorer(rare + common, df, self._n_docs())
        # CROSS JOIN keeps FTS5 first: left free, SQLite may walk the collection's chunks and run
        # the MATCH once per chunk (36 s for two common words at 140k chunks).
        try:
            if rare:
                rows = db.execute(
                    f"SELECT c.rowid FROM chunks_fts CROSS JOIN chunks c ON c.rowid = chunks_fts.rowid "
                    f"WHERE chunks_fts MATCH ? AND {where} ORDER BY bm25(chunks_fts) LIMIT ?",
                    [lexical.any_of(rare), *args, CANDIDATES * (2 if common else 1)]).fetchall()
                found = [r[0] for r in rows]
                return (self._rescore(scorer, found) if common else found)[:CANDIDATES], None
            # The chunks holding every word, if they are few (counted before any filter, so a
            # filter that rejects them all cannot make this walk the whole intersection).
            both = [r[0] for r in db.execute("SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT ?",
                                             [lexical.all_of(common), ALL_COMMON_MAX + 1])]
            if not both or len(both) > ALL_COMMON_MAX:
                return [], scorer
            rows = db.execute(f"SELECT c.rowid FROM chunks c WHERE c.rowid IN ({','.join('?' * len(both))}) "
                              f"AND {where}", [*both, *args]).fetchall()
        except sqlite3.OperationalError as e:
            log.warning("lexical query for %r failed: %s", text, e)
            return [], None
        return [r[0] for r in rows], scorer

    def _rescore(self, scorer: lexical.Scorer, rowids: list[int]) -> list[int]:
        """``rowids`` that hold a query word, by BM25 over all the query's words."""
        if not rowids:
            return []
        texts = dict(self.manifest.db.execute(
            f"SELECT rowid, text FROM chunks WHERE rowid IN ({','.join('?' * len(rowids))})", rowids).fetchall())
        have = [r for r in rowids if r in texts]
        scored = [(sc, r) for sc, r in zip(scorer.scores([texts[r] for r in have]), have) if sc > 0]
        return [r for _, r in sorted(scored, key=lambda x: -x[0])]

    def _n_docs(self) -> int:
        if self._n_docs_cached is None or time.monotonic() - self._n_docs_at > DF_CACHE_S:
            self._n_docs_cached = self.manifest.db.execute("SELECT count(*) FROM chunks").fetchone()[0]
            self._n_docs_at = time.monotonic()
        return self._n_docs_cached

    def _dense(self, qvec: np.ndarray | None, where: str, args: list, f: Filters) -> list[int]:
        if qvec is None:
            return []
        ids = None
        n = CANDIDATES
        if f.narrowing:
            # One read: the allowed chunks if they are few, else proof that there are many.
            allowed = self.manifest.db.execute(
                f"SELECT c.rowid, c.id, c.vec FROM chunks c WHERE {where} AND c.embedded = 1 LIMIT ?",
                [*args, MAX_ID_FILTER + 1]).fetchall()
            if not allowed:
                return []
            if len(allowed) <= MAX_ID_FILTER:
                if all(v is not None for _, _, v in allowed):
                    return _nearest(allowed, qvec, CANDIDATES)
                ids = [cid for _, cid, _ in allowed]   # an index from before chunk vectors were kept
            else:
                n = CANDIDATES * 20
        cfg = self.embedder.config
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
