"""PDF files: text page by page as a person reads it, so a citation names the page and the lines.

PDFium (pypdfium2) extracts the text: it keeps word spacing and reading order where a
pure-Python parser merges words ("Removethisspecial"), and it is an order of magnitude faster.
It is native code; it is the PDF engine of a major browser, fuzzed against hostile files, and
is imported at first use, so an engine that never meets a PDF never loads it. Calls into it
are serialised (one lock): the library is not thread-safe.

What a reader skips is kept out of the text, and what a reader uses to find their way is kept:

* running headers and footers (a line repeated at the top or bottom of many pages, modulo
  its digits: "Chapter 2: Installing R 7", "Manual 21 / 92") and bare page numbers are dropped;
* a word hyphenated at a line end is joined ("infor-" + "mation" -> "information"); a real
  compound keeps its hyphen ("well-" + "known" when the document writes "well-known");
* table-of-contents and index pages (dot leaders, lines ending in page numbers) are marked:
  their records carry ``source["toc"] = True`` so ranking can place them low;
* each record knows its section: ``source["heading"]`` from the PDF outline (bookmarks), as a
  path of titles ("2 Installing R under Unix-alikes > Installation"), as markdown sections do.

Every way a PDF can be unreadable (encrypted, scanned images only, damaged) becomes
``SkipFile`` with a reason.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from dataclasses import dataclass, field

from engine.retrieval.loaders import SkipFile
from engine.retrieval.logformat import Record

log = logging.getLogger(__name__)

# Pages beyond this wait for a split file: a 5,000-page export is a data dump, not a document.
MAX_PAGES = 2000
MAX_PAGE_CHARS = 200_000    # a page holding more is a data dump drawn as text; the rest is dropped
EDGE_LINES = 2              # lines at the top and at the bottom of a page that may be header/footer
REPEATS = 3                 # pages an edge line must recur on (modulo digits) to be a running header
BLOCK_LINES = 6             # lines per record at most: a citation points at a few lines
HEADING_DEPTH = 3           # outline levels kept in a heading path

_LOCK = threading.Lock()


@dataclass
class Page:
    number: int                                   # 1-based
    lines: list[str]
    toc: bool = False
    headings: list[tuple[int, str]] = field(default_factory=list)   # (line index, heading from there on)
    heading_before: str = ""                      # the section the page starts in


# ---------------------------------------------------------------------------- reading

def _pdfium():
    try:
        import pypdfium2 as pdfium
        import pypdfium2.raw as pdfium_c
    except ImportError:
        raise SkipFile("PDF support is not installed; install Lantern's retrieval extra (pypdfium2)") from None
    return pdfium, pdfium_c


def _open(pdfium, pdfium_c, path: str):
    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as e:
        code = getattr(e, "err_code", None)
        if code == pdfium_c.FPDF_ERR_PASSWORD or "password" in str(e).lower():
            raise SkipFile("password-protected PDF; save a copy without a password to index it") from None
        if code == pdfium_c.FPDF_ERR_SECURITY:
            raise SkipFile("encrypted with a method this install cannot open; "
                           "save an unprotected copy to index it") from None
        raise SkipFile(f"the PDF is damaged or not a PDF ({e}); re-export or re-download it") from None
    except OSError as e:
        raise SkipFile(f"the PDF cannot be read ({e})") from None


def _outline(doc) -> list[tuple[int, int, str]]:
    """(0-based page index, level, title) of each bookmark with a page, in outline order."""
    out = []
    try:
        for b in doc.get_toc(max_depth=HEADING_DEPTH + 2):
            dest = b.get_dest()
            index = dest.get_index() if dest is not None else None
            title = " ".join((b.get_title() or "").split())
            if index is not None and title:
                out.append((index, b.level, title))
    except Exception as e:  # a damaged outline costs the headings, never the text
        log.debug("outline unreadable: %s", e)
    return out


def _raw_pages(path: str) -> tuple[int, list[tuple[int, str]], list[tuple[int, int, str]]]:
    pdfium, pdfium_c = _pdfium()
    with _LOCK:
        doc = _open(pdfium, pdfium_c, path)
        try:
            n = len(doc)
            texts = []
            for i in range(min(n, MAX_PAGES)):
                page = doc[i]
                try:
                    tp = page.get_textpage()
                    try:
                        text = tp.get_text_range()
                    finally:
                        tp.close()
                finally:
                    page.close()
                texts.append((i + 1, text[:MAX_PAGE_CHARS]))
            outline = _outline(doc)
        except SkipFile:
            raise
        except Exception as e:  # PdfiumError and friends: one damaged page stops this file only
            raise SkipFile(f"the PDF is damaged ({type(e).__name__}: {e}); re-export or re-download it") from None
        finally:
            doc.close()
    return n, texts, outline


# ---------------------------------------------------------------------------- cleaning

_ROMAN = r"[ivxlcdm]+"
_PAGE_NUMBER = re.compile(rf"^\s*(?:page\s+)?(?:\d+|{_ROMAN})(?:\s*(?:/|of)\s*\d+)?\s*$", re.I)


def _shape(line: str) -> str:
    """A line modulo its numbers: what a running header keeps from page to page."""
    s = " ".join(line.lower().split())
    s = re.sub(r"\d+", "#", s)
    return re.sub(rf"(^{_ROMAN}\b|\b{_ROMAN}$)", "#", s)


def _edges(lines: list[str]) -> list[int]:
    idx = [i for i, ln in enumerate(lines) if ln.strip()]
    return sorted(set(idx[:EDGE_LINES] + idx[-EDGE_LINES:]))


def _running_lines(pages: list[list[str]]) -> set[str]:
    """Shapes of lines that recur at the edges of many pages: running headers and footers."""
    counts: Counter[str] = Counter()
    for lines in pages:
        counts.update({_shape(lines[i]) for i in _edges(lines)})
    if len(pages) < REPEATS:
        return set()                              # two pages that start alike are not a pattern
    need = REPEATS if len(pages) >= 2 * REPEATS else len(pages)
    return {s for s, c in counts.items() if c >= need and s.strip("# ")}


_DOTS = re.compile(r"(?:\.\s?){4,}\s*(?:\d+|[ivxlc]+)\s*$", re.I)
_ENDS_IN_PAGE = re.compile(r"(?:[\s,]|^)(?:\d{1,4}|[ivxlc]{1,6})(?:\s*[,–-]\s*\d{1,4})*\s*$", re.I)


_FOLIO = re.compile(r"^\s*(?:\d+|[ivxlc]+)\s+(.+?)\s*$|^\s*(.+?)\s+(?:\d+|[ivxlc]+)\s*$", re.I)


def _titled_folio(line: str, titles: set[str], headings: frozenset[str] = frozenset()) -> bool:
    """A section title with the page number beside it, at a page's edge: the running header of
    a chapter too short to repeat it on many pages ("Chapter 4: Installing R under macOS 21").
    A line that is an outline title as written, number and all ("3 Cartridges" opening its
    section), is the heading itself and stays."""
    m = _FOLIO.match(line)
    if not (m and titles) or " ".join(line.lower().split()) in headings:
        return False
    return _norm(m.group(1) or m.group(2)) in titles


def is_toc_page(lines: list[str], titled: bool = False) -> bool:
    """A table of contents or an index: dot leaders, or most lines ending in page numbers
    (many fewer when the page sits in a section titled Contents or Index: ``titled``)."""
    body = [ln for ln in lines if ln.strip()]
    if len(body) < 4:
        return False
    ends = [ln.rstrip() for ln in body]
    ends = [ln for ln in ends if ln and (ln[-1].isdigit() or ln[-1] in "ivxlcIVXLC")]   # the cheap test first
    dots = sum(1 for ln in ends if (". ." in ln or "..." in ln) and _DOTS.search(ln[-200:]))
    refs = sum(1 for ln in ends if _ENDS_IN_PAGE.search(ln[-60:]) and _LETTER.search(ln))
    entries = sum(1 for ln in ends if len(ln) < 200 and "," in ln and _INDEX_ENTRY.search(ln))   # "term, 12, 40"
    return ((dots >= 3 and dots >= 0.3 * len(body))
            or (len(body) >= 8 and (refs >= (0.4 if titled else 0.6) * len(body) or entries >= 0.3 * len(body))))


_LETTER = re.compile(r"[A-Za-z]")
_INDEX_ENTRY = re.compile(r"[^\W\d_].*,\s*\d{1,4}(?:\s*[,–-]\s*\d{1,4})*\s*$")
_TOC_TITLE = re.compile(r"^\s*(?:(?:table of )?contents|index|[\w ]{0,30} index)\s*$", re.I)

_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


def _vocabulary(texts: list[str]) -> set[str]:
    return {w.lower() for t in texts for w in _WORD.findall(t.replace("\ufffe", " "))}


def _join(left: str, right: str, vocab: set[str]) -> str:
    """A word cut at a line end with a hyphen: joined, unless it is a real compound."""
    if not left or not right:
        return left + "-" + right
    if "-" in left or not right[0].islower() or not left[-1].isalpha():
        return left + "-" + right                 # a compound, a name, an option: keep it whole
    word = _WORD.match(right)
    head = word.group(0) if word else right
    if (left + head).lower() in vocab:
        return left + right
    if f"{left}-{head}".lower() in vocab:
        return left + "-" + right
    return left + right                           # typesetters hyphenate words, rarely compounds


_SOFT = re.compile(r"(\S*)\ufffe(\S*)")
_LINE_END_HYPHEN = re.compile(r"\S*[^\W\d_]-")


def _dehyphenate(lines: list[str], vocab: set[str]) -> list[str]:
    # PDFium marks a hyphen it took for a line-end hyphenation with U+FFFE (and joins the lines).
    lines = [_SOFT.sub(lambda m: _join(m.group(1), m.group(2), vocab), ln) if "\ufffe" in ln else ln
             for ln in lines]
    # A hyphen it left at a line end, before a line starting with a lower-case word: the word's
    # tail moves up to the first line, so both lines keep their numbers.
    for i in range(len(lines) - 1):
        line, nxt = lines[i], lines[i + 1].lstrip()
        if not line.endswith("-") or not nxt or not nxt[0].islower():
            continue
        head, _, last = line.rpartition(" ")
        if not _LINE_END_HYPHEN.fullmatch(last):
            continue
        tail, _, rest = nxt.partition(" ")
        lines[i] = (head + " " if head else "") + _join(last[:-1], tail, vocab)
        lines[i + 1] = rest
    return lines


def _split_lines(text: str) -> list[str]:
    # PDFium ends lines with CRLF; a lone CR is a glyph it could not map (a symbol font's ©).
    text = text.replace("\r\n", "\n").replace("\r", " ").replace("\x00", "")
    return [" ".join(ln.split()) if "\t" in ln or "  " in ln else ln.rstrip() for ln in text.split("\n")]


# ---------------------------------------------------------------------------- headings

def _norm(s: str) -> str:
    """A title as compared: no "Chapter 2:" or section number ("2.4.1", "a.3"), words only."""
    s = re.sub(r"^(?:chapter|section|part|appendix)\s+[\da-z]+(?:\.\d+)*\s*:?\s+", "", s.lower())
    s = re.sub(r"^(?:\d+|[a-z](?=\.\d))(?:\.\d+)*\.?\s+", "", s)
    return re.sub(r"\W+", " ", s).strip()


def _place_headings(pages: list[Page], outline: list[tuple[int, int, str]]) -> None:
    """Each outline title is placed at the line of its page that carries it (or at the page's
    top when none does); from there on, the records of the section carry its title path."""
    by_page: dict[int, list[tuple[int, str]]] = {}
    path: list[str] = []
    for index, level, title in outline:
        path = path[:level] + [title]
        by_page.setdefault(index + 1, []).append((level, " > ".join(path[-HEADING_DEPTH:])))
    current = ""
    for page in pages:
        page.heading_before = current
        start = 0
        for _level, heading in by_page.get(page.number, []):
            title = _norm(heading.rsplit(" > ", 1)[-1])
            at = next((i for i in range(start, len(page.lines))
                       if title and _norm(page.lines[i]) == title), None)
            if at is None:      # a long title wrapped onto a second line
                at = next((i for i in range(start, len(page.lines) - 1)
                           if title and len(title) > 12 and title.startswith(_norm(page.lines[i]))
                           and _norm(page.lines[i] + " " + page.lines[i + 1]) == title), None)
            if at is None:
                at = next((i for i in range(start, len(page.lines))
                           if title and len(title) > 12 and _norm(page.lines[i]).startswith(title)), start)
            page.headings.append((at, heading))
            start = at
            current = heading


# ---------------------------------------------------------------------------- pages

def read(path: str) -> list[Page]:
    """The pages with text, cleaned; raises SkipFile for a PDF that cannot be indexed."""
    n, texts, outline = _raw_pages(path)
    raw = [_split_lines(t) for _, t in texts]
    running = _running_lines(raw)
    titles = {_norm(t) for _, _, t in outline}
    headings = frozenset(" ".join(t.lower().split()) for _, _, t in outline)
    vocab = _vocabulary([t for _, t in texts])
    pages = []
    for (number, _), lines in zip(texts, raw):
        edges = set(_edges(lines))
        kept = [ln for i, ln in enumerate(lines)
                if not (i in edges and (_shape(ln) in running or _PAGE_NUMBER.match(ln) or _titled_folio(ln, titles, headings)))]
        kept = _dehyphenate(kept, vocab)
        if any(ln.strip() for ln in kept):
            pages.append(Page(number, kept))
    if not pages:
        raise SkipFile(f"no extractable text in its {n} page(s): it is probably scanned images; "
                       f"run it through OCR and add the result")
    if n > MAX_PAGES:
        log.info("%s: only the first %d of %d pages are indexed", path, MAX_PAGES, n)
    _place_headings(pages, outline)
    for p in pages:
        cues = [p.heading_before] + [h for _, h in p.headings] + p.lines[:2]
        p.toc = is_toc_page(p.lines, titled=any(_TOC_TITLE.search(t.rsplit(" > ", 1)[-1]) for t in cues))
    return pages


def pages(path: str) -> list[tuple[int, list[str]]]:
    """(1-based page number, lines of its text) for each page with text."""
    return [(p.number, p.lines) for p in read(path)]


def _blocks(page: Page) -> list[Record]:
    """Paragraph-sized records of a page, lines numbered from 1 on the page: a block ends at a
    blank line, at a heading, after a short line that ends a sentence, or at BLOCK_LINES."""
    starts = dict(page.headings)
    lengths = sorted(len(ln) for ln in page.lines if ln.strip())
    full = lengths[int(len(lengths) * 0.8)] if lengths else 0
    out: list[Record] = []
    cur: list[str] = []
    start, heading = 1, page.heading_before

    def flush():
        if cur:
            r = Record(start, start + len(cur) - 1, "\n".join(cur), message=cur[0])
            r.source = {"heading": heading} if heading else {}
            if page.toc:
                r.source["toc"] = True
            out.append(r)

    for i, line in enumerate(page.lines):
        n = i + 1
        if i in starts:
            flush()
            cur, start, heading = [], n, starts[i]
        if not line.strip():
            flush()
            cur, start = [], n + 1
            continue
        if len(cur) >= BLOCK_LINES:
            flush()
            cur, start = [], n
        if not cur:
            start = n
        cur.append(line)
        if full and len(line) < 0.7 * full and line.rstrip().endswith((".", ":", "!", "?")):
            flush()
            cur, start = [], n + 1
    flush()
    return out


def page_records(path: str) -> list[tuple[int, list[Record]]]:
    """Blocks of each page; line numbers count from 1 on each page. ``source["heading"]`` is the
    section's title path, ``source["toc"]`` is True on table-of-contents and index pages."""
    return [(p.number, _blocks(p)) for p in read(path)]
