"""Retrieval on real documents: manuals from Debian documentation packages, questions per page.

Prints one JSON object. The documents are fetched and unpacked by this script (``apt-get
download`` + ``dpkg-deb -x`` into the work folder; none is kept in the repository):

  r-doc-pdf                      R-admin, R-intro, R-exts (236 pages, the timed one), R-FAQ, R-data
  why3-doc-pdf                   the Why3 manual (184 pages)
  auto-multiple-choice-doc-pdf   the AMC manual (English)
  docbook-xsl-doc-pdf            the DocBook XSL reference (no outline; set with no word gaps)
  python-docx sdist              the real .docx files it ships (``make`` downloads it into .venv/fixtures)

Questions (bench/real_docs_questions.json): a reader's question written for a sampled page of
four of the manuals, each with a phrase of its answer that must stand on that page (checked
here on every run: a question whose answer is not where it says is reported, not scored), and
``pages``: every page that holds that phrase. A hit counts when its file and page match.

Sides, all on the same corpus, all with all-MiniLM-L6-v2 where they embed:

  lantern            the real Indexer on the folder, then Retriever.search (k=5)
  bm25_pdfium        plain BM25 over 512-character page-aware chunks of PDFium's text
  hybrid_pdfium      a GPT4All-style hybrid on those chunks: dense + BM25, reciprocal rank fusion
  bm25_pypdf, hybrid_pypdf   the same two on pypdf's text of the same pages

Also: extraction time per page, PDFium (the text Lantern indexes, cleaned) vs pypdf, and the
time a person waits from dropping the biggest PDF (R-exts) on a Lantern that has not embedded
anything yet until a question about it is answered: a fresh process (as a new engine), the
embedding model loaded cold, the PDF read, chunked and embedded, then one search (``index_one``).

Usage: python bench/real_docs.py [--work DIR] [--no-pypdf]
       python bench/real_docs.py --work DIR --drop-only    # the R-exts drop alone (a minute)
"""

from __future__ import annotations

import argparse
import gzip
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.anchors import BM25, rrf  # noqa: E402
from bench.real_logs import _paired_interval  # noqa: E402
from bench.retrieval_quality import recall  # noqa: E402

K = 5
CHUNK = 512
QUESTIONS = ROOT / "bench" / "real_docs_questions.json"
BIGGEST = "r-doc-pdf/R-exts.pdf"

# (package, path inside it, name in the corpus folder); a .gz is unpacked.
DOCUMENTS = [
    ("r-doc-pdf", "usr/share/R/doc/manual/R-admin.pdf", "R-admin.pdf"),
    ("r-doc-pdf", "usr/share/R/doc/manual/R-intro.pdf", "R-intro.pdf"),
    ("r-doc-pdf", "usr/share/R/doc/manual/R-exts.pdf", "R-exts.pdf"),
    ("r-doc-pdf", "usr/share/R/doc/manual/R-FAQ.pdf", "R-FAQ.pdf"),
    ("r-doc-pdf", "usr/share/R/doc/manual/R-data.pdf", "R-data.pdf"),
    ("why3-doc-pdf", "usr/share/doc/why3-doc-pdf/manual.pdf", "manual.pdf"),
    ("auto-multiple-choice-doc-pdf", "usr/share/doc/auto-multiple-choice/auto-multiple-choice.en.pdf",
     "auto-multiple-choice.en.pdf"),
    ("docbook-xsl-doc-pdf", "usr/share/doc/docbook-xsl-doc-pdf/doc/reference.pdf.gz", "reference.pdf"),
]
SDIST_GLOB = str(ROOT / ".venv" / "fixtures" / "python_docx-*.tar.gz")


# ---------------------------------------------------------------------------- corpus

def fetch(work: str) -> tuple[str, dict]:
    """The corpus folder (one sub-folder per package) and the package versions used."""
    debs, unpacked, corpus = (os.path.join(work, d) for d in ("debs", "unpacked", "corpus"))
    for d in (debs, unpacked, corpus):
        os.makedirs(d, exist_ok=True)
    versions = {}
    for pkg in sorted({p for p, _, _ in DOCUMENTS}):
        have = glob.glob(os.path.join(debs, f"{pkg}_*.deb"))
        if not have:
            subprocess.run(["apt-get", "download", pkg], cwd=debs, check=True, capture_output=True, timeout=600)
            have = glob.glob(os.path.join(debs, f"{pkg}_*.deb"))
        deb = sorted(have)[-1]
        versions[pkg] = os.path.basename(deb).split("_")[1]
        target = os.path.join(unpacked, pkg)
        if not os.path.isdir(target):
            subprocess.run(["dpkg-deb", "-x", deb, target], check=True, timeout=300)
    for pkg, inner, name in DOCUMENTS:
        src, dst = os.path.join(unpacked, pkg, inner), os.path.join(corpus, pkg, name)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if not os.path.exists(dst):
            if src.endswith(".gz"):
                with gzip.open(src) as f, open(dst, "wb") as out:
                    shutil.copyfileobj(f, out)
            else:
                shutil.copyfile(src, dst)
    sdists = sorted(glob.glob(SDIST_GLOB))
    if sdists:
        versions["python-docx"] = os.path.basename(sdists[-1])
        out = os.path.join(corpus, "python-docx")
        os.makedirs(out, exist_ok=True)
        with tarfile.open(sdists[-1]) as t:
            for m in t.getmembers():
                if m.isfile() and m.name.endswith(".docx") and "/test_files/" in m.name:
                    Path(out, os.path.basename(m.name)).write_bytes(t.extractfile(m).read())
    return corpus, versions


def pdf_files(corpus: str) -> list[str]:
    return sorted(glob.glob(os.path.join(corpus, "*", "*.pdf")))


def docx_files(corpus: str) -> list[str]:
    return sorted(glob.glob(os.path.join(corpus, "*", "*.docx")))


def _norm(s: str) -> str:
    return " ".join(s.split())


def load_questions(corpus: str, pdfium_pages: dict) -> tuple[list[dict], list[dict]]:
    """The questions whose answer phrase stands on their labelled page (PDFium's text), and
    the ones whose does not (a new package version moved it)."""
    ok, bad = [], []
    for i, q in enumerate(json.load(open(QUESTIONS, encoding="utf-8"))):
        q = {**q, "id": i, "path": os.path.join(corpus, q["package"], os.path.basename(q["file"]))}
        q["pages"] = q.get("pages") or [q["page"]]
        text = pdfium_pages.get(q["path"], {}).get(q["page"], "")
        (ok if _norm(q["answer"]) in _norm(text) else bad).append(q)
    return ok, bad


# ---------------------------------------------------------------------------- extraction

def extract_pdfium(path: str) -> dict[int, str]:
    from engine.retrieval import pdf
    return {n: "\n".join(lines) for n, lines in pdf.pages(path)}


def extract_pypdf(path: str) -> dict[int, str]:
    import logging

    from pypdf import PdfReader
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    reader = PdfReader(path, strict=False)
    out = {}
    for i, page in enumerate(reader.pages):
        text = page.extract_text() or ""
        if text.strip():
            out[i + 1] = text
    return out


def docx_text(path: str) -> str:
    from engine.retrieval import word
    try:
        return "\n".join(t for t, _ in word.blocks(path))
    except Exception:       # a fixture made to be unreadable: every side skips it alike
        return ""


# ---------------------------------------------------------------------------- anchors

def split(text: str, size: int = CHUNK) -> list[str]:
    """Chunks of at most ``size`` characters, cut at paragraph, line, then word boundaries
    (what a recursive character splitter does), no overlap."""
    out: list[str] = []
    cur = ""
    for word in re.split(r"(\s+)", text):
        if len(cur) + len(word) > size and cur.strip():
            out.append(cur.strip())
            cur = ""
        cur += word
        while len(cur) > size:      # one "word" longer than a chunk
            out.append(cur[:size])
            cur = cur[size:]
    if cur.strip():
        out.append(cur.strip())
    return out


def anchor_chunks(pages_of: dict[str, dict[int, str]], docx_texts: dict[str, str]) -> list[tuple[str, int | None, str]]:
    chunks = []
    for path, pages in pages_of.items():
        for n, text in sorted(pages.items()):       # page-aware: a chunk never spans two pages
            chunks.extend((path, n, c) for c in split(text))
    for path, text in docx_texts.items():
        chunks.extend((path, None, c) for c in split(text))
    return chunks


def run_anchors(name: str, chunks: list, questions: list[dict], emb) -> dict:
    import numpy as np

    t0 = time.perf_counter()
    bm = BM25([c[2] for c in chunks])   # the same Okapi BM25 as the log benches' anchor
    bm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    vecs = np.concatenate([emb.embed_documents([c[2] for c in chunks[i:i + 256]]) for i in range(0, len(chunks), 256)])
    vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-9)
    embed_s = time.perf_counter() - t0
    ranks: dict[str, list] = {"bm25": [], "hybrid": []}
    for q in questions:
        lexical = bm.rank(q["question"], 50)
        qv = emb.embed_query(q["question"])
        qv = qv / max(float(np.linalg.norm(qv)), 1e-9)
        dense = list(np.argsort(-(vecs @ qv))[:50])
        hybrid = rrf(lexical, [int(i) for i in dense])
        for side, lst in (("bm25", lexical), ("hybrid", hybrid)):
            ranks[side].append(_rank([(chunks[i][0], chunks[i][1]) for i in lst[:K]], q))
    return {f"{side}_{name}": {**_summary(questions, r), "chunks": len(chunks),
                               "index_seconds": round(bm_s + (embed_s if side == "hybrid" else 0), 1)}
            for side, r in ranks.items()}


def _rank(hits: list[tuple[str, int | None]], q: dict) -> int | None:
    return next((i for i, (path, page) in enumerate(hits) if path == q["path"] and page in q["pages"]), None)


def _summary(questions: list[dict], ranks: list) -> dict:
    by_doc = {}
    for doc in sorted({os.path.basename(q["path"]) for q in questions}):
        rs = [r for q, r in zip(questions, ranks) if os.path.basename(q["path"]) == doc]
        by_doc[doc] = {"n": len(rs), "recall@1": recall(rs, 1), "recall@5": recall(rs, 5)}
    return {"recall@1": recall(ranks, 1), "recall@5": recall(ranks, 5), "by_document": by_doc,
            "missed_at_5": [q["id"] for q, r in zip(questions, ranks) if r is None or r >= K],
            "ranks": [r for r in ranks]}


# ---------------------------------------------------------------------------- drop a PDF

def index_one(path: str, data: str, question: str) -> dict:
    """In a fresh process, as a new engine would: the clock runs from the drop (the indexer
    asked to index ``path``) until the first search over it returns; the embedding model, the
    vector store and their libraries load inside that time, as they do on a first drop."""
    code = (
        "import json, os, sys, time\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from pathlib import Path\n"
        "from engine.retrieval.embedder import MiniLMEmbedder, embed_threads\n"
        "from engine.retrieval.indexer import Indexer\n"
        "from engine.retrieval.retriever import Filters\n"
        "from engine.retrieval.session import RetrievalIndex\n"
        "path, data, question = sys.argv[1:4]\n"
        "load = os.getloadavg()[0]\n"
        "t0, c0 = time.perf_counter(), time.process_time()\n"
        "emb = MiniLMEmbedder()\n"
        "spent = [0.0, 0]\n"
        "inner = emb.embed_documents\n"
        "def timed(texts):\n"
        "    t = time.perf_counter(); v = inner(texts); spent[0] += time.perf_counter() - t; spent[1] += len(texts)\n"
        "    return v\n"
        "emb.embed_documents = timed\n"
        "idx = RetrievalIndex(Path(data), embedder=emb)\n"
        "rep = Indexer(idx.manifest, idx.store, emb).index([path])\n"
        "t_indexed = time.perf_counter() - t0\n"
        "hits = idx.retriever.search(question, 5, Filters('default'))\n"
        "t_searched, cpu = time.perf_counter() - t0, time.process_time() - c0\n"
        "out = {'seconds': t_searched, 'cpu_seconds': cpu, 'index_seconds': t_indexed, 'embedder_load_seconds': emb.load_s,\n"
        "       'embedding_seconds': spent[0] - emb.load_s, 'texts_embedded': spent[1],\n"
        "       'chunks': idx.manifest.chunk_count('default'), 'hits': len(hits), 'skipped': rep.skipped,\n"
        "       'embedder': getattr(emb, 'backend', '') or 'torch', 'threads': embed_threads(), 'load_average_before': load}\n"
        "idx.close()\n"
        "print(json.dumps(out))\n")
    done = subprocess.run([sys.executable, "-c", code, path, data, question], capture_output=True, text=True,
                          timeout=3600)
    if done.returncode:
        raise RuntimeError(f"indexing {path} in a fresh process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="", help="keep downloads and indexes here (reused by the next run)")
    ap.add_argument("--no-pypdf", action="store_true", help="leave out the anchors on pypdf's text")
    ap.add_argument("--drop-only", action="store_true",
                    help="only drop R-exts on a new engine and time it until it is searchable (index_one)")
    args = ap.parse_args()
    t_start = time.perf_counter()
    work = args.work or tempfile.mkdtemp(prefix="lantern-bench-realdocs-")
    corpus, versions = fetch(work)
    if args.drop_only:
        data = os.path.join(work, "lantern-drop")
        shutil.rmtree(data, ignore_errors=True)
        import pypdfium2
        big = os.path.join(corpus, BIGGEST)
        n = len(pypdfium2.PdfDocument(big))
        drop = index_one(big, data, "How do I register native routines in a package?")
        shutil.rmtree(data, ignore_errors=True)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps({"bench": "real_docs --drop-only", "versions": versions, "file": BIGGEST, "pages": n,
                          "measured": "drop on a new engine -> first search answered",
                          **{k: round(v, 2) if isinstance(v, float) else v for k, v in drop.items()},
                          "seconds_per_250_pages": round(drop["seconds"] * 250 / n, 1), "cpus": os.cpu_count(),
                          "index_250_pages_30s": drop["seconds"] * 250 / n <= 30}, indent=2))
        return 0
    pdfs, docxs = pdf_files(corpus), docx_files(corpus)
    try:
        import pypdf  # noqa: F401
        use_pypdf = not args.no_pypdf
    except ImportError:
        use_pypdf = False

    # Extraction, timed per page.
    extraction: dict = {"pages": 0, "pdfium_seconds": 0.0, "pypdf_seconds": 0.0 if use_pypdf else None, "files": {}}
    pdfium_pages, pypdf_pages = {}, {}
    for path in pdfs:
        t0 = time.perf_counter()
        pdfium_pages[path] = extract_pdfium(path)
        a = time.perf_counter() - t0
        import pypdfium2
        n = len(pypdfium2.PdfDocument(path))
        row = {"pages": n, "pdfium_ms_per_page": round(1000 * a / n, 2)}
        extraction["pdfium_seconds"] += a
        if use_pypdf:
            t0 = time.perf_counter()
            pypdf_pages[path] = extract_pypdf(path)
            b = time.perf_counter() - t0
            extraction["pypdf_seconds"] += b
            row.update(pypdf_ms_per_page=round(1000 * b / n, 2), speedup=round(b / a, 1))
        extraction["pages"] += n
        extraction["files"][os.path.relpath(path, corpus)] = row
    extraction["pdfium_seconds"] = round(extraction["pdfium_seconds"], 2)
    if use_pypdf:
        extraction["pypdf_seconds"] = round(extraction["pypdf_seconds"], 2)
        extraction["speedup"] = round(extraction["pypdf_seconds"] / extraction["pdfium_seconds"], 1)

    questions, bad = load_questions(corpus, pdfium_pages)

    from engine.retrieval.embedder import MiniLMEmbedder
    from engine.retrieval.indexer import Indexer
    from engine.retrieval.retriever import Filters
    from engine.retrieval.session import RetrievalIndex

    # Lantern: the biggest PDF alone first, dropped on a new engine (timed), then the whole folder.
    data = os.path.join(work, "lantern")
    shutil.rmtree(data, ignore_errors=True)
    big = os.path.join(corpus, BIGGEST)
    from engine.retrieval import pdf
    from engine.retrieval.chunker import chunk_records
    t0 = time.perf_counter()
    n_text_chunks = sum(len(chunk_records(recs, "s", is_log=False, page=n)) for n, recs in pdf.page_records(big))
    big_text_s = time.perf_counter() - t0
    big_question = next((q["question"] for q in questions if q["path"] == big), "How do I register native routines?")
    drop = index_one(big, data, big_question)
    big_s = drop["seconds"]
    big_chunks = drop["chunks"]

    emb = MiniLMEmbedder()
    emb.embed_documents(["warm up"])
    idx = RetrievalIndex(Path(data), embedder=emb)
    t0 = time.perf_counter()
    rep = Indexer(idx.manifest, idx.store, emb).index([corpus])
    all_s = time.perf_counter() - t0
    ranks, misses = [], {}
    for q in questions:
        hits = idx.retriever.search(q["question"], K, Filters("default"))
        r = _rank([(h.path, h.page) for h in hits], q)
        ranks.append(r)
        if r is None or r > 0:
            misses[q["id"]] = [f"{os.path.relpath(h.path, corpus)}#{h.page}" for h in hits[:3]]
    lantern = {**_summary(questions, ranks), "chunks": idx.manifest.chunk_count("default"),
               "index_seconds": round(big_s + all_s, 1), "skipped": rep.skipped + drop["skipped"],
               "top3_when_not_first": {str(k): v for k, v in misses.items()}}
    idx.close()

    docx_texts = {p: docx_text(p) for p in docxs}
    sides = {"lantern": lantern}
    sides.update(run_anchors("pdfium", anchor_chunks(pdfium_pages, docx_texts), questions, emb))
    if use_pypdf:
        sides.update(run_anchors("pypdf", anchor_chunks(pypdf_pages, docx_texts), questions, emb))

    anchors = {k: v for k, v in sides.items() if k != "lantern"}
    best = max(anchors, key=lambda k: (anchors[k]["recall@1"], anchors[k]["recall@5"]))
    n_big = extraction["files"][BIGGEST]["pages"]
    out = {
        "bench": "real_docs", "k": K, "versions": versions,
        "corpus": {"pdfs": len(pdfs), "docx": len(docxs), "pdf_pages": extraction["pages"],
                   "documents_with_questions": sorted({os.path.relpath(q["path"], corpus) for q in questions})},
        "questions": len(questions),
        "questions_not_on_their_page": [{"id": q["id"], "page": q["page"], "answer": q["answer"]} for q in bad],
        "sides": {k: {kk: vv for kk, vv in v.items() if kk != "ranks"} for k, v in sides.items()},
        "best_anchor": best,
        "lantern_minus_best_anchor": {m: round(lantern[m] - anchors[best][m], 3) for m in ("recall@1", "recall@5")},
        # What question sampling alone could make of the margin (paired bootstrap, 95%).
        "lantern_minus_best_anchor_interval": {f"recall@{k}": _paired_interval(lantern["ranks"], anchors[best]["ranks"], k)
                                               for k in (1, K)},
        "extraction": extraction,
        "index_biggest_pdf": {"file": BIGGEST, "pages": n_big, "measured": "drop on a new engine -> first search answered",
                              "seconds": round(big_s, 1), "chunks": big_chunks,
                              # CPU time of that process, all its threads: what the run cost whatever
                              # else the machine was doing (on idle cores the wait is about this / cores).
                              "cpu_seconds": round(drop["cpu_seconds"], 1),
                              "seconds_per_250_pages": round(big_s * 250 / n_big, 1),
                              "index_seconds": round(drop["index_seconds"], 1),
                              "embedder_load_seconds": round(drop["embedder_load_seconds"], 1),
                              "embedding_seconds": round(drop["embedding_seconds"], 1),
                              "texts_embedded": drop["texts_embedded"],
                              "text_and_chunks_seconds": round(big_text_s, 2), "text_chunks": n_text_chunks,
                              "embedder": drop["embedder"], "threads": drop["threads"],
                              "load_average_before": round(drop["load_average_before"], 2), "cpus": os.cpu_count()},
        "targets": {"recall@1>=0.72": lantern["recall@1"] >= 0.72, "recall@5>=0.90": lantern["recall@5"] >= 0.90,
                    "above_best_anchor": lantern["recall@1"] > anchors[best]["recall@1"]
                    and lantern["recall@5"] > anchors[best]["recall@5"],
                    "extraction_10x": bool(extraction.get("speedup") and extraction["speedup"] >= 10),
                    "index_250_pages_30s": big_s * 250 / n_big <= 30},
        "total_seconds": round(time.perf_counter() - t_start, 1),
    }
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
