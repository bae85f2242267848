"""One message on screen: a card with the rendered text, its status and its actions.

The text sits in a QTextBrowser that is exactly as tall as its document, so the chat scrolls
as one page (the browser never shows a scroll bar of its own, and passes wheel events up).
A streaming reply is re-rendered at most once per event-loop turn: several token batches
that arrive together cost one render, and only its unfinished tail is rendered again.
"""

from __future__ import annotations

import logging
import math
import re
import time

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QCursor, QDesktopServices, QGuiApplication, QTextDocument
from PySide6.QtWidgets import (
    QFrame, QGraphicsOpacityEffect, QHBoxLayout, QLabel, QMessageBox, QPushButton, QSizePolicy, QTextBrowser,
    QToolButton, QToolTip, QVBoxLayout, QWidget,
)

from app import conversations as conv
from ui.markdown import COPY_SCHEME, DOCUMENT_CSS, last_block_start, plain_html, render_markdown
from ui.session import stats_line

log = logging.getLogger(__name__)

LEFT_OUT_LABEL = "not sent: outside the context window"
INTERRUPTED_LABEL = "Interrupted — the engine stopped"
STOPPED_LABEL = "Stopped"
LEFT_OUT_OPACITY = 0.5
# A streaming reply is shown in segments: finished markdown blocks are rendered once into a
# segment and left alone, and only the last few KB are re-rendered per batch. Rebuilding a
# rich-text document costs ~1.5 ms per KB (more with coloured code), so without this a long
# reply would stall the window more with every token.
SEGMENT_CHARS = 2000
CITE_SCHEME = "cite"
# Links a reply may open, after the person has seen the target and confirmed.
OPENABLE_SCHEMES = ("http", "https", "mailto")
_MARKER = re.compile(r"\[(\d{1,3})\](?![^<>]*>)")   # a [n] in text, not inside a tag


def link_markers(html_text: str, numbers: set[int]) -> str:
    """Turn the reply's [n] markers for cited sources into links the card handles."""
    if not numbers:
        return html_text
    return _MARKER.sub(lambda m: (f'<a href="{CITE_SCHEME}:{m.group(1)}" class="cite">[{m.group(1)}]</a>'
                                  if int(m.group(1)) in numbers else m.group(0)), html_text)


FALLBACK_NOTES = {
    "retry": "the first answer stated nothing from the sources; asked again with one source alone",
    "record": "the model stated nothing from the sources; showing the best-matching source",
}


def unsourced_text(flags: list[dict]) -> str:
    """The warning under a reply that names values found in none of its sources."""
    if not flags:
        return ""
    lines = [f"⚠ {f.get('message') or str(f.get('value', '')) + ' is not in any source'}" for f in flags]
    return "\n".join(lines) + "\nCheck it against your files before relying on it."


def _citation_label(c: dict) -> str:
    from ui.source_viewer import location
    # The fusion score is a rank measure (tiny numbers); similarity reads better as a percentage.
    return f"[{c.get('n')}]  {location(c)}    ·  {float(c.get('similarity', 0)) * 100:.0f}% match"


class NoResourceDocument(QTextDocument):
    """A document that loads no resource. QTextDocument's own loadResource reads any local
    file an <img> or style sheet names when its view returns nothing, so refusing in the view
    alone is not enough: this override is what every image lookup reaches."""

    def loadResource(self, kind: int, url: QUrl):
        log.debug("not loading %s named in a message", url.toString()[:200])
        return None


class RichText(QTextBrowser):
    """Read-only rich text that grows to fit its content instead of scrolling.

    A reply is untrusted text: this browser loads no resource it names (``loadResource``), and
    a link shows its target on hover and opens only after the person confirms it."""

    copy_block_requested = Signal(int)
    citation_clicked = Signal(int)    # the n of a [n] marker
    link_opened = Signal(QUrl)        # a link the person confirmed, handed to the desktop

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setDocument(NoResourceDocument(self))
        self.setFrameShape(QFrame.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setOpenLinks(False)
        self.setTextInteractionFlags(Qt.TextBrowserInteraction)
        self.viewport().setAutoFillBackground(False)
        self.setAutoFillBackground(False)
        doc = self.document()
        doc.setDocumentMargin(0)
        doc.setDefaultStyleSheet(DOCUMENT_CSS)
        doc.documentLayout().documentSizeChanged.connect(self._fit_height)
        self.anchorClicked.connect(self._on_anchor)
        self.highlighted.connect(self._show_target)
        self.link_box: QMessageBox | None = None   # the open "Open this link?" question, if any
        self.natural_width = 0        # >0: prefer this width (a short bubble hugs its text)
        self.setFixedHeight(24)

    def sizeHint(self):
        hint = super().sizeHint()
        if self.natural_width:
            hint.setWidth(self.natural_width)
        return hint

    def _fit_height(self, *_):
        h = math.ceil(self.document().size().height()) + 2
        if h != self.height():
            self.setFixedHeight(h)

    def resizeEvent(self, event):
        super().resizeEvent(event)
        self._fit_height()

    def wheelEvent(self, event):
        event.ignore()  # the chat page scrolls, not the message

    def _on_anchor(self, url: QUrl) -> None:
        if url.scheme() == COPY_SCHEME:
            try:
                self.copy_block_requested.emit(int(url.path()))
            except ValueError:
                log.debug("bad copy link %s", url.toString())
        elif url.scheme() == CITE_SCHEME:
            try:
                self.citation_clicked.emit(int(url.path()))
            except ValueError:
                log.debug("bad citation link %s", url.toString())
        else:
            self.confirm_link(url)

    # ------------------------------------------------------------------ untrusted content

    def loadResource(self, kind: int, url: QUrl):
        """Refuse every resource. Qt would otherwise read an image (or style sheet) named by
        the reply from disk, on the UI thread: /dev/zero, a FIFO, a huge file. Lantern's own
        rich text needs none; a document that did would add it with addResource, which is
        answered before this is asked. (The document refuses too: NoResourceDocument.)"""
        log.debug("not loading %s named in a message", url.toString()[:200])
        return None

    @staticmethod
    def link_target(url: QUrl) -> str:
        # Fully encoded: nothing hidden by the link's text, a look-alike host shows its
        # punycode, and no character of the target can be read as markup.
        return url.toString(QUrl.FullyEncoded)

    def _show_target(self, url: QUrl) -> None:
        target = "" if url.isEmpty() or url.scheme() in (COPY_SCHEME, CITE_SCHEME) else self.link_target(url)
        self.setToolTip(target)
        if target:
            QToolTip.showText(QCursor.pos(), target, self)

    def confirm_link(self, url: QUrl) -> QMessageBox:
        """Ask before opening ``url``, showing its whole target; a kind of link Lantern does
        not open (a local file, anything but web and mail) is shown and not opened."""
        if self.link_box is not None:
            self.link_box.close()
        target = self.link_target(url)
        box = QMessageBox(self.window())
        box.setObjectName("linkConfirm")
        box.setTextFormat(Qt.PlainText)
        box.setWindowTitle("Open link")
        openable = url.scheme().lower() in OPENABLE_SCHEMES and url.isValid()
        if openable:
            box.setIcon(QMessageBox.Question)
            box.setText(f"Open this link from the reply?\n\n{target}")
            open_button = box.addButton("Open link", QMessageBox.AcceptRole)
            box.addButton(QMessageBox.Cancel)
            box.setDefaultButton(QMessageBox.Cancel)
        else:
            box.setIcon(QMessageBox.Information)
            box.setText(f"Lantern opens only web and mail links from a reply. This one was not opened:\n\n{target}")
            open_button = None
            box.addButton(QMessageBox.Close)
        copy_button = box.addButton("Copy link", QMessageBox.ActionRole)

        def answered(button) -> None:
            if button is copy_button:
                QGuiApplication.clipboard().setText(target)
            elif open_button is not None and button is open_button:
                log.info("opening a link from a reply: %s", target[:200])
                QDesktopServices.openUrl(url)
                self.link_opened.emit(url)

        box.buttonClicked.connect(answered)
        box.finished.connect(lambda _=0: setattr(self, "link_box", None))
        self.link_box = box
        box.open()
        return box


def _small_button(text: str, tip: str) -> QToolButton:
    b = QToolButton()
    b.setText(text)
    b.setToolTip(tip)
    b.setObjectName("cardAction")
    b.setCursor(Qt.PointingHandCursor)
    b.setAutoRaise(True)
    return b


class MessageCard(QFrame):
    """A message bubble (the person's) or card (the assistant's)."""

    regenerate_requested = Signal()
    edit_requested = Signal(int)      # message id
    source_requested = Signal(dict)   # a citation to open in the viewer
    sent_report_requested = Signal(dict)  # this reply's meta, for "Show what was sent"

    def __init__(self, role: str, message_id: int | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.role = role
        self.message_id = message_id
        self.request_id = ""
        self.status = conv.COMPLETE
        self.meta: dict = {}
        self.left_out = False
        self.renders = 0
        self.last_render_ms = 0.0
        self._text = ""
        self._streaming = False
        self._render_queued = False
        self.setObjectName("userCard" if role == "user" else "assistantCard")
        self.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Minimum)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(16, 10, 16, 8)
        outer.setSpacing(4)

        head = QHBoxLayout()
        head.setSpacing(8)
        self.role_label = QLabel("You" if role == "user" else "Assistant")
        self.role_label.setObjectName("roleLabel")
        self.role_label.setTextFormat(Qt.PlainText)
        self.left_out_label = QLabel(LEFT_OUT_LABEL)
        self.left_out_label.setObjectName("leftOutLabel")
        self.left_out_label.hide()
        head.addWidget(self.role_label)
        head.addWidget(self.left_out_label)
        head.addStretch(1)
        outer.addLayout(head)

        self._segments: list[RichText] = []
        self._segment_code: list[list[str]] = []
        self._frozen = 0                 # characters of the text in finished segments
        self._frozen_text = ""
        self._body = QVBoxLayout()
        self._body.setSpacing(0)
        outer.addLayout(self._body)
        self.body = self._add_segment()
        # Values in the answer that no source sent to the model holds (the engine checks).
        self.unsourced_label = QLabel()
        self.unsourced_label.setObjectName("unsourcedWarning")
        self.unsourced_label.setTextFormat(Qt.PlainText)   # engine text: never markup
        self.unsourced_label.setWordWrap(True)
        self.unsourced_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.unsourced_label.hide()
        outer.addWidget(self.unsourced_label)
        self.citations: list[dict] = []
        self.citation_buttons: list[QPushButton] = []
        self.sources_box = QFrame()
        self.sources_box.setObjectName("sourcesBox")
        self._sources_layout = QVBoxLayout(self.sources_box)
        self._sources_layout.setContentsMargins(0, 6, 0, 0)
        self._sources_layout.setSpacing(3)
        self.sources_box.hide()
        outer.addWidget(self.sources_box)

        foot = QHBoxLayout()
        foot.setSpacing(6)
        self.marker = QLabel()
        self.marker.setObjectName("statusMarker")
        self.marker.setTextFormat(Qt.PlainText)            # error messages name files: never markup
        self.marker.setWordWrap(True)
        self.marker.hide()
        self.stats = QLabel()
        self.stats.setObjectName("statsLabel")
        self.stats.setTextFormat(Qt.PlainText)
        self.copy_button = _small_button("Copy", "Copy this message")
        self.copy_button.clicked.connect(self.copy_text)
        self.regenerate_button = _small_button("Regenerate", "Write this reply again (Ctrl+Shift+R)")
        self.regenerate_button.clicked.connect(self.regenerate_requested)
        self.regenerate_button.hide()
        self.edit_button = _small_button("Edit", "Edit this message and send it again")
        self.edit_button.clicked.connect(lambda: self.edit_requested.emit(self.message_id or 0))
        self.edit_button.hide()
        self.sent_button = _small_button("What was sent", "Show the sources, scores and token counts sent with "
                                         "the question")
        self.sent_button.clicked.connect(lambda: self.sent_report_requested.emit(dict(self.meta)))
        self.sent_button.hide()
        foot.addWidget(self.marker, 1 if role == "assistant" else 0)
        foot.addWidget(self.stats)
        foot.addStretch(1)
        foot.addWidget(self.edit_button)
        foot.addWidget(self.sent_button)
        foot.addWidget(self.regenerate_button)
        foot.addWidget(self.copy_button)
        outer.addLayout(foot)

    # ------------------------------------------------------------------ content

    def text(self) -> str:
        return self._text

    def set_text(self, text: str, streaming: bool = False) -> None:
        self._text = text
        self._streaming = streaming
        if streaming:
            # Coalesce: batches arriving in the same event-loop turn cost a single render.
            if not self._render_queued:
                self._render_queued = True
                QTimer.singleShot(0, self, self._render)
        else:
            self._render()

    @property
    def code_blocks(self) -> list[str]:
        return [code for blocks in self._segment_code for code in blocks]

    def segments(self) -> list[RichText]:
        return list(self._segments)

    def _add_segment(self) -> RichText:
        seg = RichText(self)
        index = len(self._segments)
        seg.copy_block_requested.connect(lambda i, s=index: self._copy_block(s, i))
        seg.citation_clicked.connect(self.open_citation)
        self._segments.append(seg)
        self._segment_code.append([])
        self._body.addWidget(seg)
        return seg

    def _reset_segments(self) -> None:
        for seg in self._segments[1:]:
            seg.hide()
            self._body.removeWidget(seg)
            seg.deleteLater()
        del self._segments[1:]
        del self._segment_code[1:]
        self._frozen, self._frozen_text = 0, ""

    def _render_last(self, text: str, streaming: bool) -> None:
        rendered = render_markdown(text, streaming=streaming)
        self._segment_code[-1] = rendered.code_blocks
        numbers = {int(c.get("n", 0)) for c in self.citations}
        self._segments[-1].setHtml(link_markers(rendered.html, numbers))

    def _render_assistant(self) -> None:
        if not self._text.startswith(self._frozen_text):
            self._reset_segments()      # the text was replaced, not extended
        live = self._text[self._frozen:]
        if self._streaming and len(live) > SEGMENT_CHARS:
            cut = last_block_start(live)
            if cut:
                self._render_last(live[:cut], streaming=False)
                self._frozen += cut
                self._frozen_text = self._text[:self._frozen]
                self._add_segment()
                live = live[cut:]
        self._render_last(live, self._streaming)

    def _render(self) -> None:
        self._render_queued = False
        start = time.perf_counter()
        if self.role == "assistant":
            self._render_assistant()
        else:
            self.body.setHtml(plain_html(self._text))
            fm = self.body.fontMetrics()
            widest = max((fm.horizontalAdvance(line) for line in self._text.splitlines()), default=0)
            self.body.natural_width = max(120, widest + 12)
            self.body.updateGeometry()
        self.renders += 1
        self.last_render_ms = (time.perf_counter() - start) * 1000

    def set_status(self, status: str, meta: dict | None = None) -> None:
        self.status = status
        self.meta = dict(meta or {})
        self.setProperty("status", status)
        marker, tip = "", ""
        if status == conv.STREAMING:
            marker = "Generating…"
        elif status == conv.STOPPED:
            marker = STOPPED_LABEL
        elif status == conv.INTERRUPTED:
            marker = INTERRUPTED_LABEL
            tip = self.meta.get("error", "")
        elif status == conv.FAILED:
            marker = f"Failed: {self.meta.get('error') or 'the engine could not answer'}"
        self.marker.setText(marker)
        self.marker.setToolTip(tip)
        self.marker.setVisible(bool(marker))
        stats = stats_line(self.meta) if self.role == "assistant" else ""
        if stats and self.meta.get("finish_reason") == "length":
            stats += " · reached the max-tokens limit"
        if stats and self.meta.get("fallback") in FALLBACK_NOTES:
            stats += " · " + FALLBACK_NOTES[self.meta["fallback"]]
        flags = [f for f in (self.meta.get("unsourced") or []) if isinstance(f, dict)]
        self.unsourced_label.setText(unsourced_text(flags))
        self.unsourced_label.setVisible(bool(flags) and self.role == "assistant")
        self.stats.setText(stats)
        self.stats.setToolTip(self.meta.get("model", ""))
        self.stats.setVisible(bool(stats))
        self.copy_button.setVisible(status != conv.STREAMING)
        if self.role == "assistant":
            self.sent_button.setVisible("citations" in self.meta and status != conv.STREAMING)
            cites = list(self.meta.get("citations") or [])
            if cites != self.citations:
                self.set_citations(cites)
        # Re-polish so the stylesheet's [status="…"] rules see the new value.
        for w in (self, self.marker):
            w.style().unpolish(w)
            w.style().polish(w)

    # ------------------------------------------------------------------ sources

    def set_citations(self, citations: list[dict]) -> None:
        """Source cards under the answer, and [n] markers in it as links."""
        self.citations = list(citations)
        for b in self.citation_buttons:
            b.hide()
            self._sources_layout.removeWidget(b)
            b.deleteLater()
        self.citation_buttons = []
        for c in self.citations:
            b = QPushButton(_citation_label(c))
            b.setObjectName("sourceCard")
            b.setToolTip(f"{c.get('path', '')}\nscore {float(c.get('score', 0)):.4f} · {c.get('tokens', 0)} tokens"
                         "\nClick to open the cited lines")
            b.setCursor(Qt.PointingHandCursor)
            b.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
            b.clicked.connect(lambda _=False, c=c: self.source_requested.emit(dict(c)))
            self._sources_layout.addWidget(b)
            self.citation_buttons.append(b)
        self.sources_box.setVisible(bool(self.citations))
        if self._text and not self._streaming:
            self._reset_segments()
            self._render()

    def open_citation(self, n: int) -> None:
        c = next((c for c in self.citations if int(c.get("n", 0)) == n), None)
        if c is not None:
            self.source_requested.emit(dict(c))

    def set_left_out(self, left_out: bool) -> None:
        if left_out == self.left_out:
            return
        self.left_out = left_out
        self.left_out_label.setVisible(left_out)
        if left_out:
            effect = QGraphicsOpacityEffect(self)
            effect.setOpacity(LEFT_OUT_OPACITY)
            self.setGraphicsEffect(effect)
        else:
            self.setGraphicsEffect(None)

    def set_actions(self, regenerate: bool = False, edit: bool = False) -> None:
        self.regenerate_button.setVisible(regenerate and self.role == "assistant")
        self.edit_button.setVisible(edit and self.role == "user")

    # ------------------------------------------------------------------ clipboard

    def copy_text(self) -> None:
        QGuiApplication.clipboard().setText(self._text)
        self._flash(self.copy_button, "Copied")

    def _copy_block(self, segment: int, index: int) -> None:
        blocks = self._segment_code[segment] if 0 <= segment < len(self._segment_code) else []
        if 0 <= index < len(blocks):
            QGuiApplication.clipboard().setText(blocks[index])
            self._flash(self.copy_button, "Code copied")

    @staticmethod
    def _flash(button: QToolButton, text: str) -> None:
        old = "Copy"
        button.setText(text)
        # The button is the timer's context: if the card is gone by then, nothing runs.
        QTimer.singleShot(1200, button, lambda: button.setText(old))


class Notice(QLabel):
    """An inline note in the chat (context trimmed, model notes); not a message."""

    def __init__(self, text: str, kind: str = "info", parent: QWidget | None = None):
        super().__init__(text, parent)
        self.kind = kind
        self.setObjectName("inlineNotice")
        self.setTextFormat(Qt.PlainText)
        self.setProperty("kind", kind)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextSelectableByMouse)
