"""The in-app viewer of a cited source: the cited lines highlighted, with lines around them.

It reads the file itself, so the person sees the lines as they are on disk, numbered as in the
citation. If the file moved, shrank or cannot be read, it shows the text the engine quoted in
the citation instead, and says so: a citation must never open onto the wrong lines silently.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFontDatabase, QTextCharFormat, QTextCursor, QTextFormat
from PySide6.QtWidgets import (
    QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QTextEdit, QVBoxLayout, QWidget,
)

log = logging.getLogger(__name__)

CONTEXT_LINES = 10
MAX_READ_BYTES = 64 * 1024 * 1024   # beyond this, a log is read only up to the cited lines
HIGHLIGHT = QColor("#fff1b8")


def location(c: dict) -> str:
    """Where a citation points: "manual.pdf:7-12, page 8 · Installation" (the section's own
    title; ``section`` gives its whole path)."""
    ls, le = int(c.get("line_start") or 0), int(c.get("line_end") or 0)
    lines = f"{ls}" if le == ls else f"{ls}-{le}"
    page = f", page {c['page']}" if c.get("page") else ""
    title = section(c).rsplit(" > ", 1)[-1]
    return f"{Path(str(c.get('path', ''))).name}:{lines}{page}" + (f" · {title}" if title else "")


def section(c: dict) -> str:
    """The document section a citation sits in, as a title path ("2 Installing R > Installation");
    '' for log records and for documents without headings."""
    return " ".join(str(c.get("heading") or "").split())


# Files whose lines are extracted text, not lines of the file on disk.
BINARY_DOCUMENTS = (".pdf", ".docx", ".docm")


def read_window(path: str, line_start: int, line_end: int, context: int = CONTEXT_LINES) -> list[tuple[int, str]] | None:
    """Lines ``line_start - context`` .. ``line_end + context`` of ``path`` as (number, text);
    None if the file cannot be read or is shorter than the citation."""
    first = max(1, line_start - context)
    last = line_end + context
    out = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                if number > last:
                    break
                if number >= first:
                    out.append((number, line.rstrip("\r\n")))
    except OSError as e:
        log.info("cannot read %s for the viewer: %s", path, e)
        return None
    if not out or out[-1][0] < line_end:
        return None
    return out


def page_window(c: dict) -> list[tuple[int, str]] | None:
    """The cited page's lines as the engine indexed them (a PDF citation carries them), numbered
    as the citation numbers them; None when the citation has none or they do not hold the cited
    lines as quoted (then the quote itself is shown)."""
    lines = [str(x) for x in (c.get("page_lines") or [])]
    ls, le = int(c.get("line_start") or 1), int(c.get("line_end") or 1)
    if not lines or le > len(lines):
        return None
    quoted = " ".join(str(c.get("text", "")).split())
    if quoted and " ".join(" ".join(lines[ls - 1:le]).split()).find(quoted[:200]) < 0:
        return None
    return [(i + 1, t) for i, t in enumerate(lines)]


def quoted_window(c: dict) -> list[tuple[int, str]]:
    start = int(c.get("line_start") or 1)
    return [(start + i, line) for i, line in enumerate(str(c.get("text", "")).splitlines())]


class SourceViewer(QDialog):
    """Shows one citation; ``cited_lines`` and ``highlighted`` are for tests and screen readers."""

    def __init__(self, citation: dict, parent: QWidget | None = None):
        super().__init__(parent)
        self.citation = dict(citation)
        self.setObjectName("sourceViewer")
        self.setWindowTitle(f"[{citation.get('n', '?')}] {location(citation)}")
        self.resize(900, 560)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(16, 14, 16, 12)
        lay.setSpacing(8)

        self.title = QLabel(f"<b>[{html.escape(str(citation.get('n', '?')))}] {html.escape(location(citation))}</b>")
        self.title.setObjectName("viewerTitle")
        self.path_label = QLabel(str(citation.get("path", "")))
        self.path_label.setObjectName("viewerPath")
        self.path_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.path_label.setWordWrap(True)
        self.section_label = QLabel(f"Section: {section(citation)}")
        self.section_label.setObjectName("viewerSection")
        self.section_label.setTextFormat(Qt.PlainText)    # a document's title is its text, never markup
        self.section_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.section_label.setWordWrap(True)
        self.section_label.setVisible(bool(section(citation)))
        self.note = QLabel()
        self.note.setObjectName("viewerNote")
        self.note.setWordWrap(True)
        self.note.hide()
        lay.addWidget(self.title)
        lay.addWidget(self.path_label)
        lay.addWidget(self.section_label)
        lay.addWidget(self.note)

        self.text = QPlainTextEdit()
        self.text.setObjectName("viewerText")
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.NoWrap)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        lay.addWidget(self.text, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

        ls, le = int(citation.get("line_start") or 1), int(citation.get("line_end") or 1)
        path = str(citation.get("path", ""))
        # PDF and Word files are parsed in the engine (a damaged one must not reach the window);
        # their quoted text is the page's or block's text as extracted there.
        binary_doc = Path(path).suffix.lower() in BINARY_DOCUMENTS
        lines = None if binary_doc else read_window(path, ls, le)
        self.from_file = lines is not None
        self.whole_page = False
        if binary_doc:
            page = page_window(citation)
            self.whole_page = page is not None
            lines = page or quoted_window(citation)
            where = f"page {citation['page']} of the PDF" if citation.get("page") else "the document"
            self.note.setText(f"The text of {where} as Lantern extracted it, the cited lines highlighted; open "
                              f"the file itself to see the layout." if self.whole_page else
                              f"The text quoted from {where}, as Lantern extracted it; open the file "
                              f"itself to see the layout.")
            self.note.show()
        elif lines is None:
            lines = quoted_window(citation)
            self.note.setText("The file could not be read at this path (moved, deleted or changed), so this "
                              "shows the text that was quoted when the answer was written.")
            self.note.show()
        elif not self._matches(lines, ls, le):
            self.note.setText("The file has changed since it was indexed: these lines may differ from what "
                              "the answer quoted. Re-index the folder to refresh it.")
            self.note.show()
        self.lines = lines
        self.cited_lines = [(n, t) for n, t in lines if ls <= n <= le]
        self._show(lines, ls, le)

    def _matches(self, lines, ls, le) -> bool:
        quoted = str(self.citation.get("text", "")).splitlines()
        on_disk = [t for n, t in lines if ls <= n <= le]
        return not quoted or [q.rstrip() for q in quoted] == [t.rstrip() for t in on_disk]

    def _show(self, lines: list[tuple[int, str]], ls: int, le: int) -> None:
        width = len(str(lines[-1][0])) if lines else 1
        self.text.setPlainText("\n".join(f"{n:>{width}}  {t}" for n, t in lines))
        doc = self.text.document()
        fmt = QTextCharFormat()
        fmt.setBackground(HIGHLIGHT)
        fmt.setProperty(QTextFormat.FullWidthSelection, True)
        selections, first_block = [], None
        for i, (n, _) in enumerate(lines):
            if ls <= n <= le:
                sel = QTextEdit.ExtraSelection()
                sel.format = fmt
                sel.cursor = QTextCursor(doc.findBlockByNumber(i))
                selections.append(sel)
                first_block = i if first_block is None else first_block
        self.text.setExtraSelections(selections)
        self.highlighted = [lines[i][0] for i in range(len(lines)) if ls <= lines[i][0] <= le]
        if first_block is not None:
            # Show the cited lines with a few lines of context above them, not the file's top.
            cursor = QTextCursor(doc.findBlockByNumber(max(0, first_block - 3)))
            self.text.setTextCursor(cursor)
            self.text.centerCursor()
            self.text.setTextCursor(QTextCursor(doc.findBlockByNumber(first_block)))
