"""PDF files: text page by page, so a citation names the page and the lines within it.

pypdf is pure Python (no native crash can take the engine down with it) and is imported at
first use, so an engine that never meets a PDF never pays for it. Every way a PDF can be
unreadable (encrypted, scanned images only, damaged) becomes ``SkipFile`` with a reason.
"""

from __future__ import annotations

import logging

from engine.retrieval.documents import text_blocks
from engine.retrieval.loaders import SkipFile
from engine.retrieval.logformat import Record

log = logging.getLogger(__name__)

# Pages beyond this wait for a split file: a 5,000-page export is a data dump, not a document.
MAX_PAGES = 2000


def pages(path: str) -> list[tuple[int, list[str]]]:
    """(1-based page number, lines of its text) for each page with text."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError
    except ImportError:
        raise SkipFile("PDF support is not installed; install Lantern's retrieval extra (pypdf)") from None

    # pypdf logs every repaired cross-reference at WARNING; one damaged file is one skip line, not fifty.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError) as e:
                raise SkipFile(f"encrypted with a method this install cannot open ({e}); "
                               f"save an unprotected copy to index it") from None
            if not opened:
                raise SkipFile("password-protected PDF; save a copy without a password to index it")
        n = len(reader.pages)
        out = []
        for i in range(min(n, MAX_PAGES)):
            text = reader.pages[i].extract_text() or ""
            lines = [ln.rstrip() for ln in text.splitlines()]
            if any(ln.strip() for ln in lines):
                out.append((i + 1, lines))
    except SkipFile:
        raise
    except FileNotDecryptedError:
        raise SkipFile("password-protected PDF; save a copy without a password to index it") from None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError,
            OSError, AssertionError, ZeroDivisionError) as e:
        # A damaged PDF can fail anywhere in the parser; none of it may stop the run.
        raise SkipFile(f"the PDF is damaged or not a PDF ({type(e).__name__}: {e}); "
                       f"re-export or re-download it") from None
    if not out:
        raise SkipFile(f"no extractable text in its {n} page(s): it is probably scanned images; "
                       f"run it through OCR and add the result")
    if n > MAX_PAGES:
        log.info("%s: only the first %d of %d pages are indexed", path, MAX_PAGES, n)
    return out


def page_records(path: str) -> list[tuple[int, list[Record]]]:
    """Blocks of each page; line numbers count from 1 on each page."""
    return [(page, text_blocks(lines, 1)) for page, lines in pages(path)]
