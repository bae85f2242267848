"""Word (.docx) files: paragraphs and table rows in document order.

A .docx has no lines, so a "line" here is a block of the body in reading order: each
paragraph, and each table row (cells joined with `` | ``). Citations then say "lines 12-15",
which the source viewer can show from the same numbering.

The zip is checked before python-docx opens it: a .docx is untrusted input, and a few KB of
zip can declare gigabytes of XML (a zip bomb) that lxml would try to hold in memory.
"""

from __future__ import annotations

import logging
import zipfile

from engine.retrieval.documents import block_record, heading_path, path_text
from engine.retrieval.loaders import SkipFile
from engine.retrieval.logformat import Record

log = logging.getLogger(__name__)

MAX_ENTRY_BYTES = 200 << 20     # one part of a real document is far below this
MAX_TOTAL_BYTES = 500 << 20
MAX_RATIO = 100                 # XML compresses ~10x; 100x and more is a bomb's signature
RATIO_FLOOR = 1 << 20           # small parts may compress well without harm


def check_zip(path: str) -> None:
    """Refuse a file that is not a Word zip, or that would inflate beyond reason."""
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as e:
        raise SkipFile(f"not a valid .docx (damaged zip: {e}); re-save it from Word or LibreOffice") from None
    names = {i.filename for i in infos}
    if "word/document.xml" not in names:
        raise SkipFile("a zip file without a Word document inside (no word/document.xml); "
                       "re-save it as .docx from Word or LibreOffice")
    total = 0
    for i in infos:
        total += i.file_size
        if i.file_size > MAX_ENTRY_BYTES:
            raise SkipFile(f"refused: its part {i.filename} declares {i.file_size >> 20} MB uncompressed "
                           f"(limit {MAX_ENTRY_BYTES >> 20} MB), which looks like a zip bomb")
        if i.file_size > RATIO_FLOOR and i.file_size > MAX_RATIO * max(i.compress_size, 1):
            raise SkipFile(f"refused: its part {i.filename} inflates {i.file_size // max(i.compress_size, 1)}x "
                           f"(limit {MAX_RATIO}x), which looks like a zip bomb")
    if total > MAX_TOTAL_BYTES:
        raise SkipFile(f"refused: its parts declare {total >> 20} MB uncompressed "
                       f"(limit {MAX_TOTAL_BYTES >> 20} MB)")


def blocks(path: str) -> list[tuple[str, str]]:
    """(text, heading it sits under) for each paragraph and table row, in reading order."""
    return [(text, heading) for text, heading, _ in items(path)]


def items(path: str) -> list[tuple[str, str, str]]:
    """(text, section title path, table header) for each paragraph and table row, in reading
    order. Headings are paragraphs styled "Heading N" (or "Title"); a table's first row is its
    header, given with each row below it ('' for paragraphs and header rows)."""
    check_zip(path)
    try:
        import docx
        from docx.table import Table
    except ImportError:
        raise SkipFile("Word support is not installed; install Lantern's retrieval extra (python-docx)") from None
    try:
        document = docx.Document(path)
        out: list[tuple[str, str, str]] = []
        heading, stack = "", []
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                header = ""
                for row in item.rows:
                    cells = _row_cells(row)
                    if any(cells):
                        out.append((" | ".join(cells), heading, header))
                        header = header or " | ".join(cells)
                continue
            text = item.text.strip()
            style = (item.style.name if item.style is not None else "") or ""
            level = _heading_level(style)
            if level is not None and text:
                stack = heading_path(stack, level, text)
                heading = path_text(stack)
            out.append((text, heading, ""))
    except SkipFile:
        raise
    except Exception as e:  # python-docx and lxml raise many types for a damaged part
        raise SkipFile(f"the .docx cannot be read ({type(e).__name__}: {e}); "
                       f"re-save it from Word or LibreOffice") from None
    if not any(t for t, _, _ in out):
        raise SkipFile("the document has no text")
    return out


def _row_cells(row) -> list[str]:
    # A merged cell appears once per grid column it spans; repeating it would only add noise.
    cells: list[str] = []
    seen: set[int] = set()
    for cell in row.cells:
        if id(cell._tc) in seen:
            continue
        seen.add(id(cell._tc))
        cells.append(" ".join(cell.text.split()))
    return cells


def _heading_level(style: str) -> int | None:
    """1 for "Heading 1" (and a bare "Heading"), 2 for "Heading 2"...; 0 for "Title" (above
    every heading); None for any other style."""
    if style == "Title":
        return 0
    if style.startswith("Heading"):
        digits = style[len("Heading"):].strip()
        return int(digits) if digits.isdigit() else 1
    return None


def records(path: str) -> list[Record]:
    """One record per non-empty block; line numbers are block numbers (1-based). A table row
    below the header row keeps the header (``source["header"]``) and reads to the embedder as
    "column: value; ..." (its message)."""
    out = []
    for n, (text, heading, header) in enumerate(items(path), start=1):
        if text:
            out.append(block_record(n, n, text, heading, header))
    return out
