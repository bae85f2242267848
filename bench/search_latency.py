"""Search latency of a warm Lantern index (no LLM): p50/p95 over ~200 queries, at two sizes.

Prints one JSON object. The index is Lantern's own (manifest + FTS5 + chroma) opened once in
this process, embedder loaded and warmed first, then each query timed around
Retriever.search(query, k=5) — what the engine runs for `lantern search` and for a chat's
sources, less the protocol hop.

Indexes: either given (--index DIR, repeatable; e.g. the dirs `bench/indexing.py --keep-index`
leaves, each with the corpus's queries.json), or built here: a corpus of --mb from
bench/corpus.py indexed file by file for at most --budget-s, with a latency pass at the first
file boundary past --first-lines lines and another at the end, so the same run shows how
latency grows with size.

Queries: half identifiers seen in ordinary lines of the corpus (UUIDs, IPs, SKUs), half
natural-language questions (some with time words, which become filters).

Usage: python bench/search_latency.py [--index DIR ...] [--mb 145] [--budget-s 840]
                                      [--first-lines 250000] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import corpus as corpus_mod  # noqa: E402

NATURAL = [
    "why did the payment service time out",
    "errors talking to the bank gateway",
    "which process was killed for running out of memory",
    "failed ssh logins",
    "database connection pool exhausted",
    "slow requests in the payment api",
    "checkout returned bad gateway",
    "deadlock in the order database",
    "stock reconciliation failed",
    "disk full on the log server",
    "pricing lookup timed out",
    "connection reset by peer when authorizing a charge",
    "refund failed with a KeyError",
    "shipment sync from the carrier",
    "who was locked out of the inventory api",
    "errors on 2024-03-01 between 10:00 and 10:05",
    "what happened on March 2nd around 03:12",
    "warnings in the order service yesterday",
    "null pointer exception while rendering an invoice",
    "certificate expired",
    "firewall blocked connections to port 3389",
    "cron job rotate metrics",
    "mail delivery status sent",
    "requests that returned 500",
    "settlement batch rejected",
]


def queries(idents: list[str], n: int, seed: int = 11) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    ids = list(idents)
    rng.shuffle(ids)
    half = n // 2
    out = [("identifier", q) for q in ids[:half]]
    out += [("natural", NATURAL[i % len(NATURAL)] + ("" if i < len(NATURAL) else f" {['please', 'today', 'again', 'details', 'cause', 'why', 'when'][i % 7]}"))
            for i in range(n - len(out))]
    rng.shuffle(out)
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))], 2)


def measure(retriever, qs: list[tuple[str, str]], warmup: int = 10) -> dict:
    for _, q in qs[:warmup]:
        retriever.search(q, 5)
    times: dict[str, list[float]] = {"identifier": [], "natural": []}
    for kind, q in qs:
        t0 = time.perf_counter()
        retriever.search(q, 5)
        times[kind].append((time.perf_counter() - t0) * 1000)
    every = times["identifier"] + times["natural"]
    out = {"queries": len(every), "p50_ms": pct(every, 50), "p95_ms": pct(every, 95), "p99_ms": pct(every, 99),
           "mean_ms": round(statistics.mean(every), 2), "max_ms": round(max(every), 2)}
    for kind, xs in times.items():
        if xs:
            out[kind] = {"n": len(xs), "p50_ms": pct(xs, 50), "p95_ms": pct(xs, 95)}
    return out


def size_of(idx) -> dict:
    db = idx.manifest.db
    chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
    lines = db.execute("SELECT coalesce(sum(next_line - 1), 0) FROM sources WHERE status='ok'").fetchone()[0]
    return {"log_lines": lines, "chunks": chunks}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--index", action="append", default=[], help="an existing Lantern data dir (repeatable)")
    ap.add_argument("--mb", type=float, default=145, help="corpus size to build when no --index (~1M lines)")
    ap.add_argument("--budget-s", type=float, default=840)
    ap.add_argument("--first-lines", type=int, default=250000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--work", default="")
    args = ap.parse_args()

    from engine.retrieval.embedder import MiniLMEmbedder
    from engine.retrieval.indexer import Indexer
    from engine.retrieval.session import RetrievalIndex

    t_start = time.perf_counter()
    emb = MiniLMEmbedder()
    emb.embed_query("warm up")
    results = []
    if args.index:
        for d in args.index:
            qs = queries(json.load(open(os.path.join(d, "queries.json"))), args.queries)
            idx = RetrievalIndex(Path(d), embedder=emb)
            results.append({"index": d, **size_of(idx), **measure(idx.retriever, qs)})
            idx.close()
        built = None
    else:
        work = args.work or tempfile.mkdtemp(prefix="lantern-bench-latency-")
        cdir, data = os.path.join(work, "corpus"), os.path.join(work, "lantern")
        for d in (cdir, data):
            shutil.rmtree(d, ignore_errors=True)
        gen = corpus_mod.generate(cdir, args.mb)
        qs = queries(json.load(open(os.path.join(cdir, "queries.json"))), args.queries)
        idx = RetrievalIndex(Path(data), embedder=emb)
        indexer = Indexer(idx.manifest, idx.store, emb)
        files = corpus_mod.log_files(cdir)
        t0, index_s, checked = time.perf_counter(), 0.0, False
        for i, f in enumerate(files):
            if index_s > args.budget_s:
                break
            t = time.perf_counter()
            indexer.index([f])
            index_s += time.perf_counter() - t
            size = size_of(idx)
            if not checked and size["log_lines"] >= args.first_lines and i < len(files) - 1:
                results.append({"files": i + 1, **size, "index_seconds": round(index_s, 1),
                                **measure(idx.retriever, qs)})
                checked = True
        results.append({"files": i + 1, "files_in_corpus": len(files), **size_of(idx),
                        "index_seconds": round(index_s, 1), **measure(idx.retriever, qs)})
        idx.close()
        built = gen
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    results.sort(key=lambda r: r["log_lines"])
    big = results[-1]
    out = {"bench": "search_latency", "k": 5, "corpus": built, "sizes": results,
           "largest_log_lines": big["log_lines"],
           "target": {"log_lines": 1_000_000, "p95_ms_max": 100.0},
           "met": {"p95_under_100ms": big["p95_ms"] < 100.0, "reached_1m_lines": big["log_lines"] >= 1_000_000}}
    if len(results) > 1:
        a = results[0]
        out["scaling"] = {"lines_ratio": round(big["log_lines"] / max(a["log_lines"], 1), 2),
                          "p50_ratio": round(big["p50_ms"] / a["p50_ms"], 2),
                          "p95_ratio": round(big["p95_ms"] / a["p95_ms"], 2)}
    out["total_seconds"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
