"""Banners: notices above the chat that never block the window.

Errors the person should see (a model that would not load, an engine crash) appear here
instead of in modal dialogs: the window stays usable, and several can be shown at once.
Each banner has a key; showing a banner with a key already on screen replaces it, so a
repeated problem does not stack up.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QToolButton, QVBoxLayout, QWidget,
)

log = logging.getLogger(__name__)

DETAIL_LINES = 8


class Banner(QFrame):
    dismissed = Signal(str)

    def __init__(self, key: str, kind: str, title: str, text: str = "", details: str = "",
                 actions: list[tuple[str, object]] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.key = key
        self.kind = kind
        self.setObjectName("banner")
        self.setProperty("kind", kind)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(14, 10, 10, 10)
        lay.setSpacing(6)

        top = QHBoxLayout()
        self.title_label = QLabel(title)
        self.title_label.setObjectName("bannerTitle")
        self.title_label.setTextFormat(Qt.PlainText)   # titles and texts name files and quote errors
        self.title_label.setWordWrap(True)
        close = QToolButton()
        close.setObjectName("bannerClose")
        close.setText("✕")
        close.setToolTip("Dismiss")
        close.setAutoRaise(True)
        close.clicked.connect(self.dismiss)
        top.addWidget(self.title_label, 1)
        top.addWidget(close, 0, Qt.AlignTop)
        lay.addLayout(top)

        self.text_label = QLabel(text)
        self.text_label.setObjectName("bannerText")
        self.text_label.setTextFormat(Qt.PlainText)
        self.text_label.setWordWrap(True)
        self.text_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.text_label.setVisible(bool(text))
        lay.addWidget(self.text_label)

        self.details = QPlainTextEdit()
        self.details.setObjectName("bannerDetails")
        self.details.setReadOnly(True)
        self.details.setLineWrapMode(QPlainTextEdit.NoWrap)
        self.details.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.details.setPlainText(details)
        line = self.details.fontMetrics().lineSpacing()
        shown = min(DETAIL_LINES, max(1, details.count("\n") + 1))
        # Lines, plus the document margins, the stylesheet padding and a little air.
        chrome = 2 * int(self.details.document().documentMargin()) + 16
        self.details.setFixedHeight(shown * line + chrome)
        self.details.setVisible(bool(details))
        if details:
            self.details.verticalScrollBar().setValue(self.details.verticalScrollBar().maximum())
        lay.addWidget(self.details)

        if actions:
            row = QHBoxLayout()
            row.addStretch(1)
            for label, callback in actions:
                b = QPushButton(label)
                b.setObjectName("bannerAction")
                b.clicked.connect(callback)
                row.addWidget(b)
            lay.addLayout(row)

    def set_title(self, title: str) -> None:
        self.title_label.setText(title)

    def set_text(self, text: str) -> None:
        self.text_label.setText(text)
        self.text_label.setVisible(bool(text))

    def all_text(self) -> str:
        return "\n".join(t for t in (self.title_label.text(), self.text_label.text(),
                                     self.details.toPlainText()) if t)

    def dismiss(self) -> None:
        self.hide()
        self.dismissed.emit(self.key)


class BannerArea(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("bannerArea")
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(16, 8, 16, 0)
        self._layout.setSpacing(8)
        self._banners: dict[str, Banner] = {}
        self.hide()

    def show_banner(self, key: str, kind: str, title: str, text: str = "", details: str = "",
                    actions: list[tuple[str, object]] | None = None) -> Banner:
        self.dismiss(key)
        banner = Banner(key, kind, title, text, details, actions)
        banner.dismissed.connect(self.dismiss)
        self._layout.addWidget(banner)
        self._banners[key] = banner
        self.show()
        log.info("banner %s: %s %s", key, title, text)
        return banner

    def banner(self, key: str) -> Banner | None:
        return self._banners.get(key)

    def banners(self) -> list[Banner]:
        return list(self._banners.values())

    def texts(self) -> list[str]:
        return [b.all_text() for b in self._banners.values()]

    def dismiss(self, key: str) -> None:
        banner = self._banners.pop(key, None)
        if banner is not None:
            self._layout.removeWidget(banner)
            banner.deleteLater()
        self.setVisible(bool(self._banners))
