"""Hybrid search: candidates from the lexical index (FTS5, BM25), the vector store (chroma or
the kept vectors), the time and the files a question names; each candidate chunk is narrowed to
the record that answers best, and records are ranked on the question's evidence (``ranking``).

Filters (collection, file glob, time range, level) apply before ranking on every side: in SQL
for the lexical side, and as the allowed chunk ids for the dense side. Time words in the
question are not filters: they are evidence (``query.When``), so a misread or unmatched time
never confines the results to unrelated records.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np

from engine.retrieval import lexical, prose, query as query_mod, ranking
from engine.retrieval.embedder import Embedder
from engine.retrieval.indexer import glob_match
from engine.retrieval.logformat import LEVEL_RANK
from engine.retrieval.manifest import Manifest, kept_vectors
from engine.retrieval.templates import template_of, text_hash
from engine.retrieval.vectorstore import VectorStore

log = logging.getLogger(__name__)

CANDIDATES = 50
# The dense side gets the allowed ids when filters leave fewer chunks than this; beyond it,
# it over-fetches and drops what the filters exclude. Reading 20k ids and handing them to
# chroma cost ~110 ms; past a few thousand, the filtered chunks are a big enough share that
# the global top 1,000 holds plenty of them.
MAX_ID_FILTER = 5000
# Document frequencies of terms in at least DF_CACHE_MIN chunks are kept DF_CACHE_S seconds.
DF_CACHE_S = 300.0
DF_CACHE_MIN = 1000
# Every query word common: the chunks holding all of them are candidates when at most this many.
ALL_COMMON_MAX = 200
# The chunks in the time a question names are all candidates when at most this many; up to
# the larger number, the best of them by meaning and by words are.
TIME_CANDIDATES_ALL = 60
TIME_CANDIDATES_MAX = 1000
# Chunks whose records are scored one by one, besides those in the time the question names.
RECORD_SCORED = 40
PATHS_CACHE_S = 60.0


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
    spans: tuple[tuple[float, float], ...] = ()   # records in any of these [since, until) only

    @property
    def narrowing(self) -> bool:
        return bool(self.file_glob or self.since is not None or self.until is not None or self.level or self.spans)


@dataclass
class Hit:
    path: str
    line_start: int
    line_end: int
    page: int | None
    score: float
    text: str
    chunk_id: str = ""
    epoch: float | None = None   # the record's time, when it has one
    heading: str = ""            # a document's section, as a title path ("2 Installing R > Installation")

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("chunk_id")
        d.pop("epoch")
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
        self._path_cache: dict[str, tuple[float, list[str], dict[str, int]]] = {}
        self._years_cache: dict[str, tuple[float, range]] = {}

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
        if intent.relation is not None and f.since is None and f.until is None:
            hits = self._related(intent, k, f)
            if hits:
                return hits
        return self._search(intent, self._query_vector(question, f), k, f)

    def _query_vector(self, text: str, f: Filters) -> Future | None:
        """The question's vector, computed on another thread while SQLite does the lexical
        side (torch and SQLite both release the GIL). None when the collection has no
        vectors: that would load the model for nothing."""
        if self.manifest.db.execute("SELECT 1 FROM chunks WHERE collection = ? AND embedded = 1 LIMIT 1",
                                    (f.collection,)).fetchone():
            return _query_pool().submit(self.embedder.embed_query, text)
        return None

    def _related(self, intent: query_mod.Intent, k: int, f: Filters) -> list[Hit]:
        """"X just after Y": find Y, then X with Y's time as the evidence."""
        rel = intent.relation
        anchor_intent = query_mod.parse(rel.anchor)
        anchors = [h for h in self._search(anchor_intent, self._query_vector(rel.anchor, f), 3, f)
                   if h.epoch is not None]
        if not anchors:
            return []
        a = anchors[0]
        target = query_mod.parse(rel.target)
        target.when = query_mod.When(near=(a.epoch, rel.after))
        # "Just after Y" says where to look: the records in that half hour, nearest first. (The
        # caller falls back to the whole question when nothing there is found.)
        if query_mod.states_year(a.text):
            (since, until), = target.when.windows(range(0))
            near = Filters(f.collection, f.file_glob, since, until, f.level)
        else:
            # Y's year was inferred and may be wrong (a rotated syslog file written now and then
            # over years): the half hour after Y's date and clock in every year the sources hold.
            target.when.near_yearless = True
            near = Filters(f.collection, f.file_glob, None, None, f.level,
                           spans=tuple(target.when.windows(self._years(f.collection))))
        hits = self._search(target, self._query_vector(rel.target, f), k + 1, near)
        return [h for h in hits if (h.path, h.line_start) != (a.path, a.line_start)][:k]

    def _years(self, collection: str) -> range:
        """The years the collection holds records in (for a date without a year), kept a minute:
        the oldest time is a walk over the collection's part of the time index."""
        held = self._years_cache.get(collection)
        if held is not None and time.monotonic() - held[0] < PATHS_CACHE_S:
            return held[1]
        row = self.manifest.db.execute("SELECT min(t_min), max(t_max) FROM chunks WHERE collection = ?",
                                       (collection,)).fetchone()
        years = range(0) if not row or row[0] is None else \
            range(datetime.fromtimestamp(row[0]).year, datetime.fromtimestamp(row[1]).year + 1)
        self._years_cache[collection] = (time.monotonic(), years)
        return years

    def _search(self, intent: query_mod.Intent, qvec_future: Future | None, k: int, f: Filters) -> list[Hit]:
        text = intent.text
        where, args = self._where(f)
        lex, pending = self._lexical(text, where, args)
        # Waited for here, after the lexical side: by now the other thread has usually finished.
        qvec = qvec_future.result() if qvec_future is not None else None
        dense = self._dense(qvec, where, args, f)
        if pending is not None:
            lex = self._rescore(pending, list(dict.fromkeys(lex + dense)))[:CANDIDATES]
        candidates = list(dict.fromkeys(lex[:CANDIDATES] + dense[:CANDIDATES]))
        when = intent.when
        timed = self._in_time(when, text, qvec, f) if when is not None else []
        fields = self._fields(text, f.collection)
        if fields.path_names:
            candidates += self._in_files(fields, text, qvec, f)
        candidates = list(dict.fromkeys(candidates))
        if not candidates and not timed:
            return []
        rows = self._rows(list(dict.fromkeys(candidates + timed)))
        words = ranking.Words(text, self.doc_freq(lexical.match_terms(text)), self._n_docs(), self._prefix_freq)
        prose_words = prose.ProseWords(words)
        meaning = self._meanings(rows, qvec, f.collection)
        # Records are scored in the chunks that can win: those in the time the question names,
        # and the best of the rest by their chunk's words, meaning and field (scoring every
        # record of 200 chunks cost ~100 ms a question).
        pre = sorted((r for r in candidates if r in rows), key=lambda r: -(
            words.share(rows[r]["text"]) + ranking.W_MEANING * meaning.get(r, 0.0)
            + ranking.W_FIELD * fields.match(rows[r]["path"], rows[r]["text"])))
        scored = []
        for rowid in dict.fromkeys([r for r in timed if r in rows] + pre[:RECORD_SCORED]):
            row = rows[rowid]
            if prose.is_prose(row):
                hit, feats = self._best_block(row, prose_words, meaning.get(rowid, 0.0), fields, f)
            else:
                hit, feats = self._best_record(row, words, meaning.get(rowid, 0.0), when, fields, intent.level_boost, f,
                                               intent.asks)
            if hit is not None:
                scored.append((feats.score, rowid, hit, feats))
        scored.sort(key=lambda x: (-x[0], x[1]))
        scored = prose.one_per_page(scored, rows)
        out = []
        for score, rowid, hit, feats in scored[:k]:
            hit.score = round(score, 6)
            if feats.words == 0 and feats.time == 0 and qvec is not None:
                self._nearest_record(hit, rows[rowid], qvec, f)
            out.append(hit)
        return out

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
        if f.spans:
            where.append("(" + " OR ".join(["(c.t_max >= ? AND c.t_min < ?)"] * len(f.spans)) + ")")
            args += [x for span in f.spans for x in span]
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

    def _prefix_freq(self, term: str) -> int:
        """Chunks holding a word that starts with ``term`` (summed over the words: an upper bound)."""
        row = self.manifest.db.execute("SELECT coalesce(sum(doc), 0) FROM temp.chunks_vocab WHERE term > ? AND term < ?",
                                       (term, term + "\uffff")).fetchone()
        return int(row[0])

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

    # ------------------------------------------------------------------ evidence

    def _in_time(self, when: query_mod.When, text: str, qvec: np.ndarray | None, f: Filters) -> list[int]:
        """Candidates among the chunks in the time the question names: all of them when few,
        else the best by meaning and by words."""
        spans = when.windows(self._years(f.collection))
        if not spans:
            return []
        rows: list[tuple[int, str, bytes]] = []
        for since, until in spans:
            timed = Filters(f.collection, f.file_glob, since if f.since is None else max(since, f.since),
                            until if f.until is None else min(until, f.until), f.level)
            where, args = self._where(timed)
            found = self.manifest.db.execute(
                f"SELECT c.rowid, c.id, c.vec, c.t_min, c.t_max, c.records FROM chunks c WHERE {where} LIMIT ?",
                [*args, TIME_CANDIDATES_MAX + 1 - len(rows)]).fetchall()
            # A chunk whose first or last record is in the window is a candidate. One that
            # straddles the window can hold no record in it (records far apart): its records
            # are read to tell (only then: parsing them all cost ~100 ms at 1M lines).
            rows += [(rowid, cid, vec) for rowid, cid, vec, t_min, t_max, records in found
                     if timed.since <= t_min < timed.until or timed.since <= t_max < timed.until
                     or any(e is not None and timed.since <= e < timed.until
                            for _, _, e, *_ in json.loads(records or "[]"))]
            if len(rows) > TIME_CANDIDATES_MAX:
                break
        return self._best_of(rows, text, qvec)

    def _in_files(self, fields: ranking.Fields, text: str, qvec: np.ndarray | None, f: Filters) -> list[int]:
        """Candidates among the files the question names ("postfix", "nginx", "mx1")."""
        paths = fields.paths_named(self._paths(f.collection)[0])
        if not paths:
            return []
        where, args = self._where(f)
        marks = ",".join("?" * len(paths))
        lex, _ = self._lexical(text, f"{where} AND c.path IN ({marks})", [*args, *paths])
        out = lex[:CANDIDATES // 2]
        if qvec is not None:
            rows = self.manifest.db.execute(
                f"SELECT c.rowid, c.id, c.vec FROM chunks c WHERE {where} AND c.path IN ({marks}) "
                f"AND c.vec IS NOT NULL LIMIT ?", [*args, *paths, MAX_ID_FILTER]).fetchall()
            if rows:
                out += _nearest(rows, qvec, CANDIDATES // 2)
        return out

    def _best_of(self, rows: list[tuple[int, str, bytes]], text: str, qvec: np.ndarray | None) -> list[int]:
        if len(rows) <= TIME_CANDIDATES_ALL:
            return [r[0] for r in rows]
        out = []
        with_vec = [r for r in rows if r[2] is not None]
        if qvec is not None and with_vec:
            out += _nearest(with_vec, qvec, CANDIDATES // 2)
        # Rare words only: FTS5 walks every posting of a common one ("errors") whatever the
        # rowid filter (0.2 s at 1M lines); meaning and the words' share rank the rest.
        terms = lexical.match_terms(text)
        terms, _ = lexical.split_rare(terms, self.doc_freq(terms))
        if terms:
            ids = [r[0] for r in rows]
            found = self.manifest.db.execute(
                f"SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid IN ({','.join('?' * len(ids))}) "
                f"ORDER BY bm25(chunks_fts) LIMIT ?", [lexical.any_of(terms), *ids, CANDIDATES // 2]).fetchall()
            out += [r[0] for r in found]
        return out

    def _paths(self, collection: str) -> tuple[list[str], dict[str, int]]:
        """The collection's file paths and, per word of a path, how many paths hold it; kept a
        minute (a question names files by words: "nginx", "mail", the host folder "mx1")."""
        held = self._path_cache.get(collection)
        if held is not None and time.monotonic() - held[0] < PATHS_CACHE_S:
            return held[1], held[2]
        paths = [r[0] for r in self.manifest.db.execute(
            "SELECT path FROM sources WHERE collection = ? AND status = 'ok'", (collection,))]
        counts: dict[str, int] = {}
        for path in paths:
            for w in set(ranking.path_words(path)):
                counts[w] = counts.get(w, 0) + 1
        self._path_cache[collection] = (time.monotonic(), paths, counts)
        return paths, counts

    def _fields(self, text: str, collection: str) -> ranking.Fields:
        paths, counts = self._paths(collection)
        return ranking.Fields(text, counts, len(paths))

    def _meanings(self, rows: dict[int, dict], qvec: np.ndarray | None, collection: str) -> dict[int, float]:
        """Cosine of the question with each chunk's vector (stored normalized): the one the
        manifest keeps, else (an index from before vectors were kept) the vector store's."""
        if qvec is None:
            return {}
        out = {}
        have = [(rowid, row["vec"]) for rowid, row in rows.items() if row["vec"] is not None]
        if have:
            sims = kept_vectors([v for _, v in have]) @ qvec
            out = {rowid: float(x) for (rowid, _), x in zip(have, sims)}
        missing = {row["id"]: rowid for rowid, row in rows.items() if row["vec"] is None}
        if missing:
            for cid, vec in self.store.vectors(collection, self.embedder.config, list(missing)).items():
                out[missing[cid]] = float(vec @ qvec)
        return out

    def _rows(self, rowids: list[int]) -> dict[int, dict]:
        # The source's kind tells prose from log records (``prose.is_prose``).
        q = (f"SELECT c.rowid, c.id, c.path, c.line_start, c.line_end, c.page, c.text, c.records, c.max_level, c.vec, "
             f"c.heading, c.toc, c.table_header, s.kind FROM chunks c LEFT JOIN sources s ON s.collection = c.collection "
             f"AND s.path = c.path WHERE c.rowid IN ({','.join('?' * len(rowids))})")
        out = {}
        for (rowid, cid, path, ls, le, page, text, records, max_level, vec,
             heading, toc, table_header, kind) in self.manifest.db.execute(q, rowids):
            out[rowid] = {"id": cid, "path": path, "line_start": ls, "line_end": le, "page": page, "text": text,
                          "records": json.loads(records or "[]"), "vec": vec,
                          "max_level": max_level if max_level is not None else -1,
                          "heading": heading or "", "toc": bool(toc), "table_header": table_header or "",
                          "kind": kind or ""}
        return out

    # ------------------------------------------------------------------ narrowing

    def _best_record(self, row: dict, words: ranking.Words, meaning: float, when: query_mod.When | None,
                     fields: ranking.Fields, boost: str | None, f: Filters,
                     asks: str | None = None) -> tuple[Hit | None, ranking.Features]:
        """The chunk's record that answers best, and its evidence. Records outside an explicit
        filter (time range, level) are not eligible; a chunk with none eligible is no hit."""
        records = row["records"] or [[row["line_start"], row["line_end"], None, None, 0, len(row["text"])]]
        best, best_feats = None, None
        for i, (ls, le, epoch, level, a, b) in enumerate(records):
            if not self._eligible(epoch, level, f):
                continue
            text = row["text"][a:b]
            feats = ranking.Features(
                words=words.share(text), meaning=meaning,
                time=when.grade(epoch, text) if when is not None else 0.0,
                field=fields.match(row["path"], text),
                level=ranking.level_match(boost, level),
                answer=ranking.states(asks, text))
            if best_feats is None or feats.score > best_feats.score:
                best, best_feats = i, feats
        if best is None:
            return None, ranking.Features(0, 0, 0, 0, 0)
        ls, le, epoch, _, a, b = records[best]
        return Hit(row["path"], ls, le, row["page"], 0.0, row["text"][a:b], row["id"], epoch), best_feats

    @staticmethod
    def _best_block(row: dict, words: prose.ProseWords, meaning: float, fields: ranking.Fields,
                    f: Filters) -> tuple[Hit | None, ranking.Features]:
        """A document chunk: scored whole (``prose``), citing its best block. Prose has no time
        or level, so an explicit time or level filter leaves it out."""
        if not Retriever._eligible(None, None, f):
            return None, ranking.Features(0, 0, 0, 0, 0)
        i, feats = prose.best_block(row, words, meaning, fields.match(row["path"], ""))
        records = row["records"] or [[row["line_start"], row["line_end"], None, None, 0, len(row["text"])]]
        ls, le, _, _, a, b = records[i]
        return Hit(row["path"], ls, le, row["page"], 0.0, row["text"][a:b], row["id"], None, row["heading"]), feats

    @staticmethod
    def _eligible(epoch: float | None, level: str | None, f: Filters) -> bool:
        if (f.since is not None or f.until is not None) and (
                epoch is None or (f.since is not None and epoch < f.since) or (f.until is not None and epoch >= f.until)):
            return False
        if f.spans and (epoch is None or not any(a <= epoch < b for a, b in f.spans)):
            return False
        return not f.level or LEVEL_RANK.get(level or "", -1) >= LEVEL_RANK[f.level]

    def _nearest_record(self, hit: Hit, row: dict, qvec: np.ndarray, f: Filters) -> None:
        """Nothing but meaning tells the chunk's records apart: the hit becomes the record whose
        template is nearest to the question."""
        records = [r for r in row["records"] if self._eligible(r[2], r[3], f)]
        if len(records) < 2:
            return
        texts = [row["text"][a:b] for _, _, _, _, a, b in records]
        sims = self._similarities(texts, qvec)
        if sims is not None:
            i = int(np.argmax(sims))
            hit.line_start, hit.line_end, hit.epoch, hit.text = records[i][0], records[i][1], records[i][2], texts[i]

    def _similarities(self, texts: list[str], qvec: np.ndarray) -> np.ndarray | None:
        """Cosine of the query with each record's template, from the embedding cache only."""
        name = self.embedder.config["name"]
        keys = [f"{name}|{text_hash(template_of(t))}" for t in texts]
        have = self.manifest.cached_vectors(list(set(keys)))
        if len(have) < len(set(keys)):
            return None
        return np.array([float(np.dot(np.frombuffer(have[k], dtype=np.float32), qvec)) for k in keys])
