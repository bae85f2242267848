"""Documents (markdown, HTML, CSV, JSON) as blocks with the line ranges they came from.

Blocks are ``Record`` objects like log records, so one chunker serves both; a block never
spans two headings, table rows or paragraphs, which keeps citations tight.
"""

from __future__ import annotations

import csv
import re
from html.parser import HTMLParser

from engine.retrieval.logformat import Record, TimeContext, _guess

JSON_WINDOW = 15  # lines per block of a JSON document; pretty JSON has no better boundary


def markdown_blocks(lines: list[str], first_line: int = 1) -> list[Record]:
    """Paragraphs, list runs and fenced code, split at blank lines and headings."""
    out: list[Record] = []
    cur: list[str] = []
    start = first_line
    heading = ""
    fence = False

    def flush():
        if any(ln.strip() for ln in cur):
            r = Record(start, start + len(cur) - 1, "\n".join(cur), message=cur[0])
            r.source = {"heading": heading} if heading else {}
            out.append(r)

    for i, line in enumerate(lines):
        n = first_line + i
        if line.lstrip().startswith(("```", "~~~")):
            if not fence:
                flush()
                cur, start = [], n
            fence = not fence
            cur.append(line)
            if not fence:
                flush()
                cur, start = [], n + 1
            continue
        if fence:
            cur.append(line)
            continue
        if not line.strip() or re.match(r"#{1,6}\s", line):
            flush()
            cur, start = ([line], n) if line.strip() else ([], n + 1)
            if line.strip():
                heading = line.lstrip("#").strip()
            continue
        if not cur:
            start = n
        cur.append(line)
    flush()
    return out


_BLOCK_TAGS = {"p", "div", "li", "tr", "td", "th", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "br",
               "section", "article", "table", "ul", "ol", "blockquote", "dd", "dt", "header", "footer",
               "title", "main", "nav", "form", "hr"}
_HIDDEN_TAGS = {"script", "style", "noscript", "template", "svg", "head"}


class _VisibleText(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[int, int, str]] = []
        self._parts: list[str] = []
        self._lines: list[int] = []
        self._hidden = 0
        self._title = False

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._title = True  # the title is visible (tab, window) and names the page
        elif tag in _HIDDEN_TAGS:
            self._hidden += 1
        if tag in _BLOCK_TAGS:
            self._flush()

    def handle_endtag(self, tag):
        if tag == "title":
            self._title = False
        elif tag in _HIDDEN_TAGS and self._hidden:
            self._hidden -= 1
        if tag in _BLOCK_TAGS:
            self._flush()

    def handle_data(self, data):
        if (self._hidden and not self._title) or not data.strip():
            return
        line = self.getpos()[0]
        self._parts.append(" ".join(data.split()))
        self._lines.extend([line, line + data.count("\n")])

    def _flush(self):
        if self._parts:
            self.blocks.append((min(self._lines), max(self._lines), " ".join(self._parts)))
        self._parts, self._lines = [], []

    def close(self):
        super().close()
        self._flush()


def html_blocks(text: str) -> list[Record]:
    parser = _VisibleText()
    parser.feed(text)
    parser.close()
    return [Record(a, b, t, message=t) for a, b, t in parser.blocks]


def csv_rows(lines: list[str], first_line: int = 1, ctx: TimeContext | None = None) -> list[Record]:
    """One record per row, with its (possibly multi-line, quoted) line range; the header row
    is kept on each record so a chunk reads as a table."""
    ctx = ctx or TimeContext()
    sample = "\n".join(lines[:20])
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader((ln + "\n" for ln in lines), dialect)
    out: list[Record] = []
    header: list[str] | None = None
    prev = 0
    for row in reader:
        ls, le = first_line + prev, first_line + reader.line_num - 1
        prev = reader.line_num
        if not any(c.strip() for c in row):
            continue
        if header is None:
            header = row
            continue
        text = "\n".join(lines[ls - first_line:le - first_line + 1])
        info = _guess(text, ctx)
        r = Record(ls, le, text, message=", ".join(f"{h}: {v}" for h, v in zip(header, row)))
        t = info.get("t")
        if t:
            r.ts, r.epoch = t
        r.level = info.get("level")
        r.source = {"header": ",".join(header)}
        out.append(r)
    return out


def json_blocks(lines: list[str], first_line: int = 1) -> list[Record]:
    out = []
    for i in range(0, len(lines), JSON_WINDOW):
        part = lines[i:i + JSON_WINDOW]
        if any(ln.strip() for ln in part):
            out.append(Record(first_line + i, first_line + i + len(part) - 1, "\n".join(part),
                              message="\n".join(part)))
    return out


def text_blocks(lines: list[str], first_line: int = 1, max_lines: int = 6) -> list[Record]:
    """Paragraphs of extracted text (PDF pages), split at blank lines and every ``max_lines``:
    extraction often loses the blank lines, and a whole page in one block would cite too much."""
    out: list[Record] = []
    cur: list[str] = []
    start = first_line

    def flush():
        if cur:
            out.append(Record(start, start + len(cur) - 1, "\n".join(cur), message=cur[0]))

    for i, line in enumerate(lines):
        n = first_line + i
        if not line.strip():
            flush()
            cur, start = [], n + 1
            continue
        if len(cur) >= max_lines:
            flush()
            cur, start = [], n
        cur.append(line)
    flush()
    return out
