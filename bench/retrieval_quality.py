"""Retrieval quality on the labelled questions of bench/corpus.py: Lantern vs the naive pipeline.

Prints one JSON object. One corpus (--mb, default 3 MB; same generator and seed as the other
benches), both sides in this process with the same embedder (all-MiniLM-L6-v2):

  lantern  hybrid search (Retriever.search, what `lantern search --queries` runs, k=5). A hit
           counts when its path is the labelled file and its line range overlaps the labelled
           line range.
  naive    fixed 1,000-character windows, 20 characters of overlap, chroma, dense only, k=5.
           A hit counts when the window is in the labelled file and its character span
           overlaps the labelled lines' span ("overlap"); "strict" asks that the window hold
           the whole first labelled line (the record's header: timestamp and message).

Real logs: on Debian-family machines, the host's dpkg.log, apt history and alternatives.log are
added with questions labelled by construction (bench/real_logs.py, kind "real"), in their own
collection and naive store, reported apart under "real_logs"; --no-real leaves them out.

recall@k: the share of questions with a counting hit among the first k. Also per question
kind (identifier, time, paraphrase, document) and the ids of the questions each side missed.

With --index DIR --corpus DIR: Lantern alone on an index built before (search_latency.py --work
keeps one of ~1M lines), over the questions whose files it holds.

Usage: python bench/retrieval_quality.py [--mb 3] [--work DIR]
       python bench/retrieval_quality.py --index DATA_DIR --corpus CORPUS_DIR
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import corpus as corpus_mod  # noqa: E402
from bench import real_logs  # noqa: E402
from bench.indexing import build_naive, corpus_files  # noqa: E402

K = 5


def line_spans(path: str) -> list[tuple[int, int]]:
    """Character span of each line (1-based index - 1), in the text as the naive side reads it."""
    text = open(path, encoding="utf-8", errors="replace").read()
    spans, pos = [], 0
    for line in text.split("\n"):
        spans.append((pos, pos + len(line)))
        pos += len(line) + 1
    return spans


def recall(ranks: list[int | None], k: int) -> float:
    return round(sum(1 for r in ranks if r is not None and r < k) / len(ranks), 3) if ranks else 0.0


def summarize(questions: list[dict], ranks: list[int | None]) -> dict:
    out = {"recall@1": recall(ranks, 1), "recall@5": recall(ranks, 5), "by_kind": {}}
    for kind in sorted({q["kind"] for q in questions}):
        rs = [r for q, r in zip(questions, ranks) if q["kind"] == kind]
        out["by_kind"][kind] = {"n": len(rs), "recall@1": recall(rs, 1), "recall@5": recall(rs, 5)}
    out["missed_at_5"] = [q["id"] for q, r in zip(questions, ranks) if r is None or r >= 5]
    return out


def accepted(q: dict) -> list[tuple[int, int]]:
    """The line ranges that answer ``q`` (several for real logs, where more than one line can)."""
    return [tuple(r) for r in q.get("accept") or [[q["line_start"], q["line_end"]]]]


def rank_lantern(idx, cdir: str, questions: list[dict], collection: str = "default") -> tuple[list, dict]:
    from engine.retrieval.retriever import Filters

    ranks, top = [], {}
    for q in questions:
        want = os.path.abspath(os.path.join(cdir, q["path"]))
        hits = idx.retriever.search(q["question"], K, Filters(collection))
        rank = next((i for i, h in enumerate(hits) if h.path == want and any(
            h.line_start <= b and h.line_end >= a for a, b in accepted(q))), None)
        ranks.append(rank)
        if rank is None:
            top[q["id"]] = [f"{os.path.relpath(h.path, cdir)}:{h.line_start}-{h.line_end}" for h in hits[:2]]
    return ranks, top


def existing_index(index_dir: str, cdir: str) -> dict:
    """Lantern alone on an index built before (e.g. by search_latency.py --work), over the
    questions whose file that index holds: recall at a size the naive side cannot reach here."""
    from engine.retrieval.embedder import MiniLMEmbedder
    from engine.retrieval.session import RetrievalIndex

    idx = RetrievalIndex(Path(index_dir), embedder=MiniLMEmbedder())
    held = set(idx.manifest.sources("default"))
    questions = [q for q in json.load(open(os.path.join(cdir, "questions.json"), encoding="utf-8"))
                 if os.path.abspath(os.path.join(cdir, q["path"])) in held]
    lines = idx.manifest.db.execute("SELECT coalesce(sum(next_line - 1), 0) FROM sources WHERE status='ok'").fetchone()[0]
    ranks, top = rank_lantern(idx, cdir, questions)
    idx.close()
    return {"bench": "retrieval_quality", "index": index_dir, "log_lines": lines, "k": K, "questions": len(questions),
            "lantern": {**summarize(questions, ranks), "missed_top2": {str(k): v for k, v in top.items()}}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=3)
    ap.add_argument("--work", default="")
    ap.add_argument("--no-real", action="store_true", help="leave out this machine's package logs")
    ap.add_argument("--index", default="", help="an existing Lantern data dir: Lantern alone, no naive side")
    ap.add_argument("--corpus", default="", help="with --index: the corpus folder it was built from")
    args = ap.parse_args()

    if args.index:
        print(json.dumps(existing_index(args.index, args.corpus), indent=2))
        return 0

    from engine.retrieval.embedder import MiniLMEmbedder
    from engine.retrieval.indexer import Indexer
    from engine.retrieval.session import RetrievalIndex

    t_start = time.perf_counter()
    work = args.work or tempfile.mkdtemp(prefix="lantern-bench-quality-")
    cdir = os.path.join(work, "corpus")
    shutil.rmtree(cdir, ignore_errors=True)
    gen = corpus_mod.generate(cdir, args.mb)
    questions = json.load(open(os.path.join(cdir, "questions.json"), encoding="utf-8"))
    # The host's logs are another corpus (another year, other programs): their own folder, their
    # own collection and naive store, so neither set's questions are answered from the other.
    rdir = os.path.join(work, "real-corpus")
    shutil.rmtree(rdir, ignore_errors=True)
    real = [] if args.no_real else real_logs.add(rdir)
    emb = MiniLMEmbedder()
    sets = [("generated", cdir, questions, "default", [os.path.join(cdir, "logs"), os.path.join(cdir, "docs")])]
    if real:
        sets.append(("real", rdir, real, "real", [os.path.join(rdir, "real")]))

    # Lantern
    data = os.path.join(work, "lantern")
    shutil.rmtree(data, ignore_errors=True)
    idx = RetrievalIndex(Path(data), embedder=emb)
    lantern: dict = {}
    for name, root, qs, collection, paths in sets:
        t0 = time.perf_counter()
        # logs/ and docs/ only: questions.json beside them would answer its own questions.
        Indexer(idx.manifest, idx.store, emb).index(paths, collection)
        secs = time.perf_counter() - t0
        ranks, top = rank_lantern(idx, root, qs, collection)
        lantern[name] = {**summarize(qs, ranks), "index_seconds": round(secs, 1),
                         "missed_top2": {str(k): v for k, v in top.items()}}
    idx.close()

    # Naive
    naive: dict = {}
    for name, root, qs, _collection, _paths in sets:
        t0 = time.perf_counter()
        store = build_naive(root, os.path.join(work, f"naive-chroma-{name}"), emb)
        secs = time.perf_counter() - t0
        spans_of: dict[str, list] = {}
        naive_ranks, strict_ranks = [], []
        for q in qs:
            want = os.path.abspath(os.path.join(root, q["path"]))
            if want not in spans_of:
                spans_of[want] = line_spans(want)
            spans = spans_of[want]
            chars = [(spans[a - 1][0], spans[b - 1][1]) for a, b in accepted(q)]
            firsts = [spans[a - 1] for a, _ in accepted(q)]
            res = store["col"].query(query_embeddings=[emb.embed_query(q["question"]).tolist()], n_results=K,
                                     include=["metadatas"])
            metas = res["metadatas"][0]
            naive_ranks.append(next((i for i, m in enumerate(metas) if m["path"] == want and any(
                m["start"] < b and m["end"] > a for a, b in chars)), None))
            strict_ranks.append(next((i for i, m in enumerate(metas) if m["path"] == want and any(
                m["start"] <= f[0] and m["end"] >= f[1] for f in firsts)), None))
        naive[name] = {**summarize(qs, naive_ranks),
                       "strict": {k: v for k, v in summarize(qs, strict_ranks).items() if k != "missed_at_5"},
                       "chunks": store["chunks"], "index_seconds": round(secs, 1)}

    lan, nv = lantern["generated"], naive["generated"]
    out = {
        "bench": "retrieval_quality", "corpus": gen, "k": K, "questions": len(questions),
        "lantern": lan, "naive_1000char_dense": nv,
        "delta_recall@1": round(lan["recall@1"] - nv["recall@1"], 3),
        "delta_recall@5": round(lan["recall@5"] - nv["recall@5"], 3),
        "files": len(corpus_files(cdir)),
        "real_logs": {"questions": len(real), "files": sorted(os.listdir(os.path.join(rdir, "real"))) if real else [],
                      "lines": sum(1 for f in corpus_files(rdir) for _ in open(f, "rb")) if real else 0,
                      "note": "this machine's package logs (bench/real_logs.py), their own collection",
                      "lantern": lantern.get("real"), "naive_1000char_dense": naive.get("real")},
        "total_seconds": round(time.perf_counter() - t_start, 1),
    }
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
