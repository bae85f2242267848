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
HEADING_DEPTH = 3  # titles kept in a section's path ("Guide > Install > Linux"), as for PDF outlines


def heading_path(stack: list[str], level: int, title: str) -> list[str]:
    """The section titles after a heading of ``level`` (1 = top) titled ``title``."""
    return stack[:max(level - 1, 0)] + [title]


def path_text(stack: list[str]) -> str:
    return " > ".join(t for t in stack[-HEADING_DEPTH:] if t)


def markdown_blocks(lines: list[str], first_line: int = 1) -> list[Record]:
    """Paragraphs, list runs and fenced code, split at blank lines and headings; each block
    knows its section's title path (``source["heading"]``)."""
    out: list[Record] = []
    cur: list[str] = []
    start = first_line
    heading = ""
    stack: list[str] = []
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
                hashes = len(line) - len(line.lstrip("#"))
                stack = heading_path(stack, hashes, line.lstrip("#").strip())
                heading = path_text(stack)
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


_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_CELLS = {"td", "th"}


class _VisibleText(HTMLParser):
    """Visible text as blocks (first line, last line, text, section title path, table header).

    A table row is one block, its cells joined with `` | ``; a row of header cells (``th``, or
    a table's first row inside ``thead``) becomes the header of the rows below it, so each row
    can be read with its column names. Nested tables are read as text of their cell."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[int, int, str, str, str]] = []
        self._parts: list[str] = []
        self._lines: list[int] = []
        self._hidden = 0
        self._title = False
        self._stack: list[str] = []          # section titles
        self._heading: tuple[int, list[str]] | None = None   # (level, words) of an open h1-h6
        self._tables: list[dict] = []        # open tables: header, cells of the open row
        self._cell: list[str] | None = None

    @property
    def _section(self) -> str:
        return path_text(self._stack)

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self._title = True  # the title is visible (tab, window) and names the page
        elif tag in _HIDDEN_TAGS:
            self._hidden += 1
        table = self._tables[-1] if self._tables else None
        if tag == "table":
            self._flush()
            self._tables.append({"header": [], "row": None, "head_row": False, "in_thead": False, "lines": []})
            return
        if table is not None:
            if tag == "thead":
                table["in_thead"] = True
            elif tag == "tr":
                self._end_row(table)
                table["row"], table["head_row"], table["lines"] = [], True, []
            elif tag in _CELLS:
                self._end_cell(table)
                if table["row"] is None:
                    table["row"], table["head_row"], table["lines"] = [], True, []
                if tag == "td" and not table["in_thead"]:
                    table["head_row"] = False
                self._cell = []
            return
        if tag in _HEADINGS:
            self._flush()
            self._heading = (_HEADINGS[tag], [])
        if tag in _BLOCK_TAGS:
            self._flush()

    def handle_endtag(self, tag):
        if tag == "title":
            self._title = False
        elif tag in _HIDDEN_TAGS and self._hidden:
            self._hidden -= 1
        table = self._tables[-1] if self._tables else None
        if table is not None:
            if tag == "table":
                self._end_row(table)
                self._tables.pop()
            elif tag == "thead":
                table["in_thead"] = False
            elif tag == "tr":
                self._end_row(table)
            elif tag in _CELLS:
                self._end_cell(table)
            return
        if tag in _HEADINGS and self._heading is not None:
            level, words = self._heading
            self._heading = None
            title = " ".join(" ".join(words).split())
            if title:
                self._stack = heading_path(self._stack, level, title)
        if tag in _BLOCK_TAGS:
            self._flush()

    def handle_data(self, data):
        if (self._hidden and not self._title) or not data.strip():
            return
        line = self.getpos()[0]
        text = " ".join(data.split())
        if self._tables:
            if self._cell is None:       # text between cells: a caption or stray text
                self._cell = []
            self._cell.append(text)
            self._tables[-1]["lines"].extend([line, line + data.count("\n")])
            return
        if self._heading is not None:
            self._heading[1].append(text)
        self._parts.append(text)
        self._lines.extend([line, line + data.count("\n")])

    def _end_cell(self, table: dict) -> None:
        if self._cell is not None:
            if table["row"] is None:
                table["row"], table["head_row"] = [], False
            table["row"].append(" ".join(self._cell))
            self._cell = None

    def _end_row(self, table: dict) -> None:
        self._end_cell(table)
        row, table["row"] = table["row"], None
        if not row or not any(c.strip() for c in row):
            return
        if table["head_row"] and not table["header"]:
            table["header"] = row
            header = ""
        else:
            header = " | ".join(table["header"])
        lines = table["lines"] or [self.getpos()[0]]
        self.blocks.append((min(lines), max(lines), " | ".join(row), self._section, header))

    def _flush(self):
        if self._parts:
            self.blocks.append((min(self._lines), max(self._lines), " ".join(self._parts), self._section, ""))
        self._parts, self._lines = [], []

    def close(self):
        super().close()
        for table in reversed(self._tables):
            self._end_row(table)
        self._flush()


def html_blocks(text: str) -> list[Record]:
    """Visible text in blocks; ``source["heading"]`` is the section's title path (h1-h6), and a
    table row below a header row has ``source["header"]`` and reads as "column: value" to
    the embedder."""
    parser = _VisibleText()
    parser.feed(text)
    parser.close()
    return [block_record(a, b, t, heading, header) for a, b, t, heading, header in parser.blocks]


def block_record(a: int, b: int, text: str, heading: str, header: str) -> Record:
    """A document block as a record: its section, and for a table row its header, so the
    embedder reads the row as "column: value; ..." (HTML and Word tables alike)."""
    message = text
    if header:
        names, values = header.split(" | "), text.split(" | ")
        message = "; ".join(f"{h}: {v}" if h else v for h, v in zip(names + [""] * len(values), values))
    r = Record(a, b, text, message=message)
    r.source = {"heading": heading} if heading else {}
    if header:
        r.source["header"] = header
    return r


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
