"""Chunks: a handful of whole records, so a citation points at a few lines, never half a record.

A chunk ends at a record boundary when it holds MAX_RECORDS records or about MAX_CHARS of
text, or at a document heading. One log record larger than that (a long stack trace) is a
chunk of its own, whole: cutting it would separate "Caused by" from its exception. A document
block larger than that is cut (by lines, then sentences): the embedder reads only its start.

Chunk ids are deterministic: a hash of the stream identity, the line range and the text, so
re-indexing the same lines gives the same ids and an upsert changes nothing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace

from engine.retrieval.logformat import LEVEL_RANK, Record
from engine.retrieval.templates import template_of

MAX_RECORDS = 8
MAX_CHARS = 1200  # about 300 word pieces: tight for citation, enough context for an answer
MAX_GAP_S = 3600  # records more than an hour apart go to separate chunks


@dataclass
class Chunk:
    id: str
    line_start: int
    line_end: int
    text: str
    page: int | None = None
    # [line_start, line_end, epoch, level, char_start, char_end]: the record's place in ``text``
    records: list[list] = field(default_factory=list)
    t_min: float | None = None
    t_max: float | None = None
    levels: list[str] = field(default_factory=list)
    embed_texts: list[str] = field(default_factory=list)  # what the embedder sees (templates for logs)
    heading: str = ""
    toc: bool = False   # a table-of-contents or index page's text (record.source["toc"]): navigation, not content
    table_header: str = ""   # the header row of the table rows it holds ("Host | Role | Port")

    @property
    def max_level_rank(self) -> int:
        return max((LEVEL_RANK[lv] for lv in self.levels), default=-1)


def chunk_id(stream_id: str, line_start: int, line_end: int, text: str, page: int | None = None) -> str:
    h = hashlib.sha256()
    for part in (stream_id, str(line_start), str(line_end), str(page or 0), text):
        h.update(part.encode("utf-8", "replace"))
        h.update(b"\x00")
    return h.hexdigest()[:32]


_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


def _split_long(r: Record, max_chars: int) -> list[Record]:
    """A document block longer than the embedder reads (~256 word pieces, ~1,000 characters),
    cut into pieces it can read whole: by lines when the block has several (each piece keeps
    its own line range), else by sentences, then by words (the pieces share the block's lines).
    Logs are never cut: a stack trace stays one record."""
    if len(r.text) <= max_chars:
        return [r]
    lines = r.text.split("\n")
    if len(lines) > 1 and len(lines) == r.line_end - r.line_start + 1:
        out, cur, first = [], [], r.line_start
        for i, line in enumerate(lines):
            if cur and sum(len(x) + 1 for x in cur) + len(line) > max_chars:
                out.append(replace(r, line_start=first, line_end=r.line_start + i - 1, text="\n".join(cur),
                                   message="\n".join(cur)))
                cur, first = [], r.line_start + i
            cur.append(line)
        out.append(replace(r, line_start=first, line_end=r.line_end, text="\n".join(cur), message="\n".join(cur)))
        return [piece for part in out for piece in _split_long(part, max_chars)]
    pieces, cur = [], ""
    for sentence in _SENTENCE_END.split(r.text):
        words = [sentence] if len(sentence) <= max_chars else sentence.split(" ")
        # A "word" longer than a piece (a base64 blob, a minified line) is sliced.
        words = [w[i:i + max_chars] for w in words for i in range(0, max(len(w), 1), max_chars)]
        for w in words:
            if cur and len(cur) + 1 + len(w) > max_chars:
                pieces.append(cur)
                cur = ""
            cur = f"{cur} {w}" if cur else w
    if cur:
        pieces.append(cur)
    return [replace(r, text=t.strip(), message=t.strip()) for t in pieces if t.strip()]


def chunk_records(records: list[Record], stream_id: str, *, is_log: bool, page: int | None = None,
                  max_records: int = MAX_RECORDS, max_chars: int = MAX_CHARS) -> list[Chunk]:
    if not is_log:
        records = [piece for r in records for piece in _split_long(r, max_chars)]
    groups: list[list[Record]] = []
    cur: list[Record] = []
    size = 0
    last_epoch = None
    for r in records:
        new_section = not is_log and cur and (r.source.get("heading") != cur[0].source.get("heading")
                                              or r.source.get("toc") != cur[0].source.get("toc")
                                              or _other_table(r, cur))
        # A log chunk does not span a pause: a file written now and then over years would
        # otherwise make chunks whose time range covers every window a question names.
        gap = is_log and r.epoch is not None and last_epoch is not None and abs(r.epoch - last_epoch) > MAX_GAP_S
        if r.epoch is not None:
            last_epoch = r.epoch
        if cur and (len(cur) >= max_records or size + len(r.text) > max_chars or new_section or gap):
            groups.append(cur)
            cur, size = [], 0
        cur.append(r)
        size += len(r.text) + 1
    if cur:
        groups.append(cur)
    return [_make(g, stream_id, is_log, page) for g in groups]


def _make(group: list[Record], stream_id: str, is_log: bool, page: int | None) -> Chunk:
    text = "\n".join(r.text for r in group)
    spans, pos = [], 0
    for r in group:
        spans.append((pos, pos + len(r.text)))
        pos += len(r.text) + 1
    ls, le = group[0].line_start, group[-1].line_end
    epochs = [r.epoch for r in group if r.epoch is not None]
    levels = sorted({r.level for r in group if r.level}, key=lambda lv: LEVEL_RANK[lv])
    heading = group[0].source.get("heading", "") if not is_log else ""
    toc = not is_log and bool(group[0].source.get("toc"))
    table_header = "" if is_log else next((r.source["header"] for r in group if r.source.get("header")), "")
    if is_log:
        seen: dict[str, None] = {}
        for r in group:
            seen.setdefault(template_of(r.text), None)
        embed = list(seen)
    else:
        # A table row with a header reads to the embedder as "column: value" (its message).
        body = "\n".join(r.message if r.source.get("header") else r.text for r in group)
        # A contents or index page lists every topic's words: embedded whole, it sits near any
        # question and pushes the page that answers it down. The dense side sees its title
        # only; the lexical side still finds it by exact words.
        embed = [heading or "Table of contents"] if toc else [((heading + "\n") if heading else "") + body]
    return Chunk(
        id=chunk_id(stream_id, ls, le, text, page), line_start=ls, line_end=le, text=text, page=page,
        records=[[r.line_start, r.line_end, r.epoch, r.level, a, b] for r, (a, b) in zip(group, spans)],
        t_min=min(epochs) if epochs else None, t_max=max(epochs) if epochs else None,
        levels=levels, embed_texts=embed, heading=heading, toc=toc, table_header=table_header,
    )


def _other_table(r: Record, cur: list[Record]) -> bool:
    """``r`` is a row of another table than the rows in ``cur`` (a chunk holds one header)."""
    header = r.source.get("header")
    return bool(header) and any(x.source.get("header") not in (None, header) for x in cur)
