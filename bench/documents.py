"""Indexing throughput on a document set: Lantern vs the raw embedder vs the pipeline people build.

Prints one JSON object. The documents are real prose: the reference text of Python standard
library modules (what ``pydoc`` prints: module, class and function docs), one module per file,
written round-robin as PDF (fpdf2, pages), Word (python-docx: headings and paragraphs), HTML
(pydoc's own HTML pages), markdown and plain text, until --mb of source text.

Sides, each in a child process, all with all-MiniLM-L6-v2 loaded the way Lantern loads it:

  lantern   Indexer.index() on the folder: format detection, text per PDF page / Word block /
            HTML visible text / markdown section, block chunks, lexical index, vectors, chroma.
  raw       (a) the embedder alone on the text of every chunk Lantern made: the ceiling.
  naive     (b) the usual loader-then-splitter pipeline: the text of each file (PDFium per page,
            python-docx paragraphs, the HTML's visible text, the file itself for md/txt), fixed
            1,000-character windows with 20 characters of overlap, every window embedded, chroma.

Documents do not repeat themselves the way logs do, so there is no template reuse to win here;
this bench shows what Lantern's document path costs against the usual one, with the same text.

Usage: python bench/documents.py [--mb 3] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import pkgutil
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import indexing  # noqa: E402
from bench.indexing import OVERLAP, WINDOW, _embedder, _maxrss_mb, windows  # noqa: E402

FORMATS = ("pdf", "docx", "html", "md", "txt")
# Modules whose import has side effects (opens a browser, a GUI, prints) are left out.
SKIP = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "pydoc_data", "lib2to3", "ensurepip",
        "venv", "__main__", "__phello__", "__hello__", "_pydecimal"}


def module_docs(limit_bytes: int) -> list[tuple[str, str, str]]:
    """(name, plain text, html) for standard library modules, in name order, up to limit_bytes."""
    import importlib
    import io
    import pydoc
    import warnings
    from contextlib import redirect_stderr, redirect_stdout

    stdlib = sorted(m.name for m in pkgutil.iter_modules() if m.name in sys.stdlib_module_names)
    out, total = [], 0
    for name in stdlib:
        if name in SKIP or name.startswith("_"):
            continue
        try:
            with warnings.catch_warnings(), redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                mod = importlib.import_module(name)
                text = pydoc.plain(pydoc.render_doc(mod, renderer=pydoc.plaintext))
                html = pydoc.html.page(name, pydoc.html.document(mod, name))
        except Exception:
            continue
        if len(text) < 2000:
            continue
        out.append((name, text, html))
        total += len(text.encode())
        if total >= limit_bytes:
            break
    return out


def _latin1(s: str) -> str:
    return s.encode("latin-1", "replace").decode("latin-1")


def write_pdf(path: str, name: str, text: str) -> None:
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(0, 10, _latin1(f"Module {name}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Courier", size=8)
    for line in text.splitlines():
        pdf.multi_cell(0, 3.6, _latin1(line.rstrip()) or " ", new_x="LMARGIN", new_y="NEXT")
    pdf.output(path)


def write_docx(path: str, name: str, text: str) -> None:
    import docx

    d = docx.Document()
    d.add_heading(f"Module {name}", 0)
    para: list[str] = []
    for line in text.splitlines() + [""]:
        if line.strip():
            if not line.startswith(" ") and line.isupper():
                d.add_heading(line.strip().title(), 1)
            else:
                para.append(line.strip())
            continue
        if para:
            d.add_paragraph(" ".join(para))
            para = []
    d.save(path)


def write_md(path: str, name: str, text: str) -> None:
    lines = [f"# Module {name}", ""]
    for line in text.splitlines():
        lines.append(f"## {line.strip().title()}" if line and not line.startswith(" ") and line.isupper() else line)
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def generate(out: str, mb: float) -> dict:
    os.makedirs(out, exist_ok=True)
    docs = module_docs(int(mb * 1048576))
    counts = dict.fromkeys(FORMATS, 0)
    for i, (name, text, html) in enumerate(docs):
        fmt = FORMATS[i % len(FORMATS)]
        path = os.path.join(out, f"{name}.{fmt}")
        if fmt == "pdf":
            write_pdf(path, name, text)
        elif fmt == "docx":
            write_docx(path, name, text)
        elif fmt == "html":
            Path(path).write_text(html, encoding="utf-8")
        elif fmt == "md":
            write_md(path, name, text)
        else:
            Path(path).write_text(text, encoding="utf-8")
        counts[fmt] += 1
    return {"files": len(docs), "by_format": counts, "text_bytes": sum(len(t.encode()) for _, t, _ in docs),
            "file_bytes": sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))}


def extract_text(path: str) -> str:
    """What a loader-then-splitter pipeline feeds its splitter."""
    from engine.retrieval import documents, pdf, word

    if path.endswith(".pdf"):
        return "\n".join("\n".join(lines) for _, lines in pdf.pages(path))
    if path.endswith(".docx"):
        return "\n".join(t for t, _ in word.blocks(path))
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    if path.endswith(".html"):
        return "\n".join(r.text for r in documents.html_blocks(text))
    return text


# ---------------------------------------------------------------------------- workers

def worker_lantern(corpus: str, data_dir: str) -> dict:
    from engine.retrieval.indexer import Indexer
    from engine.retrieval.session import RetrievalIndex

    shutil.rmtree(data_dir, ignore_errors=True)
    emb, load_s, threads = _embedder()
    idx = RetrievalIndex(Path(data_dir), embedder=emb)
    t0 = time.perf_counter()
    r = Indexer(idx.manifest, idx.store, idx.embedder).index([corpus])
    secs = time.perf_counter() - t0
    chunks = idx.manifest.chunk_count("default")
    idx.close()
    return {"side": "lantern", "files": r.files, "skipped": r.skipped, "chunks": chunks, "embedded": r.embedded,
            "seconds": round(secs, 2), "model_load_s": round(load_s, 2), "threads": threads,
            "peak_rss_mb": _maxrss_mb()}


def worker_raw(data_dir: str) -> dict:
    import sqlite3
    emb, load_s, threads = _embedder()
    db = sqlite3.connect(os.path.join(data_dir, "manifest.sqlite"))
    texts = [r[0] for r in db.execute("SELECT text FROM chunks ORDER BY rowid")]
    db.close()
    t0 = time.perf_counter()
    for i in range(0, len(texts), 256):
        emb.embed_documents(texts[i:i + 256])
    secs = time.perf_counter() - t0
    return {"side": "raw_embedder", "chunks": len(texts), "seconds": round(secs, 2),
            "model_load_s": round(load_s, 2), "threads": threads, "peak_rss_mb": _maxrss_mb()}


def worker_naive(corpus: str, chroma_dir: str) -> dict:
    import chromadb
    from chromadb.config import Settings

    emb, load_s, threads = _embedder()
    shutil.rmtree(chroma_dir, ignore_errors=True)
    t0 = time.perf_counter()
    client = chromadb.PersistentClient(path=chroma_dir, settings=Settings(anonymized_telemetry=False))
    col = client.get_or_create_collection("naive", metadata={"hnsw:space": "cosine"})
    n = 0
    for f in sorted(str(p) for p in Path(corpus).iterdir()):
        text = extract_text(f)
        spans = windows(text, WINDOW, OVERLAP)
        for i in range(0, len(spans), 256):
            part = spans[i:i + 256]
            docs = [text[a:b] for a, b in part]
            col.add(ids=[f"{f}:{a}" for a, _ in part], embeddings=emb.embed_documents(docs), documents=docs,
                    metadatas=[{"path": f, "start": a, "end": b} for a, b in part])
            n += len(part)
    secs = time.perf_counter() - t0
    return {"side": "naive_1000char_chroma", "chunks": n, "seconds": round(secs, 2), "model_load_s": round(load_s, 2),
            "threads": threads, "peak_rss_mb": _maxrss_mb()}


def run_child(args: list[str], timeout: float) -> dict:
    return indexing.run_child(args, timeout, script=__file__)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=3, help="source text to write as documents")
    ap.add_argument("--work", default="")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, *rest = args.worker
        res = (worker_lantern(*rest) if kind == "lantern" else worker_raw(*rest) if kind == "raw"
               else worker_naive(*rest))
        print(json.dumps(res))
        return 0

    t_start = time.perf_counter()
    work = args.work or tempfile.mkdtemp(prefix="lantern-bench-docs-")
    corpus, data = os.path.join(work, "docs"), os.path.join(work, "lantern")
    shutil.rmtree(corpus, ignore_errors=True)
    t = time.perf_counter()
    gen = generate(corpus, args.mb)
    gen["generate_seconds"] = round(time.perf_counter() - t, 1)
    sides = {
        "lantern": run_child(["lantern", corpus, data], 3600),
        "raw_embedder": run_child(["raw", data], 3600),
        "naive_1000char_chroma": run_child(["naive", corpus, os.path.join(work, "naive-chroma")], 3600),
    }
    mb = gen["text_bytes"] / 1048576
    for s in sides.values():
        if "seconds" in s:
            s["text_mb_per_s"] = round(mb / s["seconds"], 3)

    def ratio(a: str, b: str):
        try:
            return round(sides[b]["seconds"] / sides[a]["seconds"], 2)
        except (KeyError, ZeroDivisionError):
            return None

    out = {"bench": "documents", "corpus": gen, "sides": sides,
           "speed_ratios": {"lantern_over_naive": ratio("lantern", "naive_1000char_chroma"),
                            "lantern_over_raw_embedder": ratio("lantern", "raw_embedder")},
           "total_seconds": round(time.perf_counter() - t_start, 1)}
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
