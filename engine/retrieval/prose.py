"""Ranking for prose: chunks of documents (PDF, Word, HTML, markdown) rather than log records.

A log record is short and says one thing, in the words a question quotes; a paragraph of a
manual answers a question asked in other words ("lengths" for "length", "added" for "adds"),
and its evidence is spread over the lines around it and the title of its section. So a
document chunk is scored on:

  words    the share of the question's IDF the chunk holds (with the section title), words
           matched on their stems as well as whole; blended with the share its best block holds,
           which also names the lines the hit cites (a table row counts its column names)
  meaning  the chunk's cosine with the question, weighted as on logs (a heavier weight, 0.8 or
           1.0, did no better on the real manuals of ``bench/real_docs.py``)
  toc      a contents or index page lists every topic's words: it stays searchable, ranked low

and a page that already has a hit does not get a second one (the next slot goes to another
page). Logs keep ``ranking.Features`` as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.retrieval import ranking

# Kinds of source read as prose (loaders.KINDS); csv and json are data, text and jsonl are logs.
PROSE_KINDS = frozenset({"pdf", "docx", "markdown", "html"})

W_MEANING = 0.5        # meaning's weight for prose (logs: ranking.W_MEANING, the same today)
CHUNK_WORDS = 0.5      # the chunk's share of the words, against its best block's
TOC_FACTOR = 0.5       # a contents or index page's score is scaled by this

_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_STEMS: dict[str, str] = {}     # word -> stem, shared by every question (prose repeats its words)


def stem(word: str) -> str:
    """A light English stem: plural, past and gerund endings off, a final e or y evened out
    ("lengths" -> "length", "added" -> "add", "libraries" and "library" -> "librari",
    "values" and "value" -> "valu"). Enough to match a question's word to the form a manual
    uses; both sides go through it."""
    w = word.lower()
    if len(w) <= 3 or not w.isalpha():
        return w
    for suffix, keep in (("sses", "ss"), ("ies", "i"), ("ied", "i"), ("ing", ""), ("ed", ""), ("es", "e"), ("s", "")):
        if w.endswith(suffix) and len(w) - len(suffix) + len(keep) >= 3:
            if suffix == "s" and w.endswith(("ss", "us", "is")):
                break
            w = w[: len(w) - len(suffix)] + keep
            if suffix in ("ing", "ed") and len(w) >= 4 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]                             # "stopped" -> "stop"
            elif suffix == "es" and w[:-1].endswith(("ss", "x", "z", "ch", "sh")):
                w = w[:-1]                             # "boxes" -> "box"
            break
    if len(w) > 3 and w[-1] in "ey":
        w = w[:-1] + ("i" if w[-1] == "y" else "")
    return w


class ProseWords:
    """The question's words (``ranking.Words``: IDF from the index) matched in prose: as the
    index spells them, or on their stems."""

    def __init__(self, words: ranking.Words):
        self.words = words
        self.stems: dict[str, str] = {}
        for term in words.idf:
            if term.isalpha() and len(term) > 3:
                self.stems.setdefault(stem(term), term)

    def found(self, text: str) -> set[str]:
        w = self.words
        low = text.lower()
        out = set(w._pattern.findall(low)) if w._pattern is not None else set()
        out.update(t for t, p in w.prefixes.items() if p.search(low))
        if self.stems:
            for tok in set(_TOKEN.findall(low)):
                s = _STEMS.get(tok)
                if s is None:
                    if len(_STEMS) > 200_000:
                        _STEMS.clear()
                    s = _STEMS[tok] = stem(tok)
                term = self.stems.get(s)
                if term is not None:
                    out.add(term)
        return out

    def weight(self, found: set[str]) -> float:
        return sum(self.words.idf[t] for t in found) / self.words.total if self.words.total else 0.0

    def share(self, text: str) -> float:
        return self.weight(self.found(text))


@dataclass
class ProseFeatures(ranking.Features):
    toc: bool = False

    @property
    def score(self) -> float:
        s = ranking.W_WORDS * self.words + W_MEANING * self.meaning + ranking.W_FIELD * self.field
        return s * TOC_FACTOR if self.toc else s


def is_prose(row: dict) -> bool:
    return row.get("kind") in PROSE_KINDS


def best_block(row: dict, words: ProseWords, meaning: float, field: float) -> tuple[int, ProseFeatures]:
    """The index of the chunk's record (block) to cite, and the chunk's evidence."""
    heading = row.get("heading") or ""
    text = row["text"]
    records = row["records"] or [[row["line_start"], row["line_end"], None, None, 0, len(text)]]
    titled = words.found(heading) if heading else set()
    header = row.get("table_header") or ""
    columns = words.found(header) if header else set()
    chunk: set[str] = set(titled)
    best, best_share = 0, -1.0
    for i, (*_, a, b) in enumerate(records):
        found = words.found(text[a:b])
        chunk |= found
        if columns and text[a:b].count(" | ") == header.count(" | "):
            found |= columns                           # a table row is read with its column names
        share = words.weight(found | titled)
        if share > best_share:
            best, best_share = i, share
    blended = CHUNK_WORDS * words.weight(chunk) + (1 - CHUNK_WORDS) * best_share
    return best, ProseFeatures(words=blended, meaning=meaning, time=0.0, field=field, level=0.0,
                               toc=bool(row.get("toc")))


def one_per_page(scored: list, rows: dict[int, dict]) -> list:
    """``scored`` ((score, rowid, hit, features), best first) less the later hits on a page
    of a document that already has one: five hits are five places to look."""
    seen: set[tuple[str, int]] = set()
    out = []
    for item in scored:
        row = rows[item[1]]
        if is_prose(row) and row["page"] is not None:
            key = (row["path"], row["page"])
            if key in seen:
                continue
            seen.add(key)
        out.append(item)
    return out
