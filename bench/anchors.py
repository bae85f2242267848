"""The pipelines a person could assemble from common parts, run beside Lantern in the same bench.

  bm25      plain Okapi BM25 (k1 1.2, b 0.75) over 512-character chunks cut at line ends,
            words as ``\\w+``, lowercased: what a search box over the files would do
  hybrid    the desktop-RAG recipe: the same 512-character chunks, all-MiniLM-L6-v2 vectors of
            every chunk (exact cosine, no approximate index), BM25 beside them, fused by
            reciprocal rank (k = 60)
  dense     1,000-character windows with 20 characters of overlap, dense only: the default of
            the common RAG tutorials

Every anchor ranks chunks; a chunk is reported as the line range it covers, so a hit counts
when that range overlaps an answering line: the anchors get the benefit of their larger
units, Lantern is scored on the one record it cites.
"""

from __future__ import annotations

import gzip
import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

RRF_K = 60
_WORD = re.compile(r"\w+")


@dataclass
class Chunk:
    path: str
    line_start: int
    line_end: int
    text: str


def read_text(path: str) -> str:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def line_chunks(path: str, text: str, size: int = 512) -> list[Chunk]:
    """Lines gathered until the next would pass ``size`` characters; a longer line is cut."""
    out: list[Chunk] = []
    cur: list[tuple[int, str]] = []
    for n, line in enumerate(text.split("\n"), 1):
        for i in range(0, max(len(line), 1), size):
            piece = line[i:i + size]
            if cur and sum(len(x) + 1 for _, x in cur) + len(piece) > size:
                out.append(Chunk(path, cur[0][0], cur[-1][0], "\n".join(x for _, x in cur)))
                cur = []
            cur.append((n, piece))
    if cur:
        out.append(Chunk(path, cur[0][0], cur[-1][0], "\n".join(x for _, x in cur)))
    return [c for c in out if c.text.strip()]


def char_windows(path: str, text: str, size: int = 1000, overlap: int = 20) -> list[Chunk]:
    starts = [0]
    for m in re.finditer("\n", text):
        starts.append(m.end())
    out = []
    pos = 0
    while pos < len(text):
        end = min(len(text), pos + size)
        ls = _line_of(starts, pos)
        le = _line_of(starts, max(pos, end - 1))
        out.append(Chunk(path, ls, le, text[pos:end]))
        if end == len(text):
            break
        pos = end - overlap
    return [c for c in out if c.text.strip()]


def _line_of(starts: list[int], pos: int) -> int:
    import bisect
    return bisect.bisect_right(starts, pos)


class BM25:
    K1, B = 1.2, 0.75

    def __init__(self, texts: list[str]):
        self.docs = [Counter(_WORD.findall(t.lower())) for t in texts]
        self.lengths = np.array([sum(d.values()) for d in self.docs], dtype=np.float32)
        self.avg = float(self.lengths.mean()) if len(self.docs) else 1.0
        self.postings: dict[str, list[tuple[int, int]]] = {}
        for i, d in enumerate(self.docs):
            for w, tf in d.items():
                self.postings.setdefault(w, []).append((i, tf))
        n = len(self.docs)
        self.idf = {w: math.log(1 + (n - len(p) + 0.5) / (len(p) + 0.5)) for w, p in self.postings.items()}

    def rank(self, query: str, k: int) -> list[int]:
        scores: dict[int, float] = {}
        for w in set(_WORD.findall(query.lower())):
            for i, tf in self.postings.get(w, ()):
                norm = self.K1 * (1 - self.B + self.B * self.lengths[i] / self.avg)
                scores[i] = scores.get(i, 0.0) + self.idf[w] * tf * (self.K1 + 1) / (tf + norm)
        return sorted(scores, key=lambda i: -scores[i])[:k]


def rrf(*ranked: list[int], k: int = RRF_K) -> list[int]:
    scores: dict[int, float] = {}
    for lst in ranked:
        for r, i in enumerate(lst):
            scores[i] = scores.get(i, 0.0) + 1.0 / (k + r + 1)
    return sorted(scores, key=lambda i: -scores[i])


class Anchors:
    """The three anchors over the same files, built once, queried per question."""

    def __init__(self, files: list[str], embedder, dense: bool = True):
        self.small: list[Chunk] = []
        self.large: list[Chunk] = []
        for path in files:
            text = read_text(path)
            self.small += line_chunks(path, text)
            self.large += char_windows(path, text)
        self.bm25 = BM25([c.text for c in self.small])
        self.embedder = embedder
        self.small_vecs = self._embed([c.text for c in self.small]) if dense else None
        self.large_vecs = self._embed([c.text for c in self.large]) if dense else None

    def _embed(self, texts: list[str]) -> np.ndarray:
        parts = [self.embedder.embed_documents(texts[i:i + 256]) for i in range(0, len(texts), 256)]
        return np.vstack(parts) if parts else np.zeros((0, 384), dtype=np.float32)

    def rank(self, question: str, k: int, qvec: np.ndarray | None = None) -> dict[str, list[Chunk]]:
        out = {"bm25_512": [self.small[i] for i in self.bm25.rank(question, k)]}
        if self.small_vecs is not None:
            qvec = self.embedder.embed_query(question) if qvec is None else qvec
            dense_small = list(np.argsort(-(self.small_vecs @ qvec))[:50])
            fused = rrf(self.bm25.rank(question, 50), [int(i) for i in dense_small])
            out["hybrid_512_rrf"] = [self.small[i] for i in fused[:k]]
            out["dense_1000_20"] = [self.large[int(i)] for i in np.argsort(-(self.large_vecs @ qvec))[:k]]
        return out
