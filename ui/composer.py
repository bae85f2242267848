"""Composer: where the person writes. Enter sends, Shift+Enter starts a new line.

One button does two jobs: Send while idle, Stop while a reply is being written, so the way
to stop is always where the eye already is. An empty or whitespace-only prompt cannot be sent.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QSizePolicy, QToolButton, QVBoxLayout,
    QWidget,
)

log = logging.getLogger(__name__)

MIN_LINES = 2
MAX_LINES = 10


class PromptEdit(QPlainTextEdit):
    submitted = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("promptEdit")
        self.setPlaceholderText("Message Lantern…  (Enter to send, Shift+Enter for a new line)")
        self.setTabChangesFocus(True)
        self.setFrameShape(QFrame.NoFrame)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)
        self._fit_height()

    def keyPressEvent(self, event):
        if event.key() in (Qt.Key_Return, Qt.Key_Enter):
            mods = event.modifiers()
            if mods & Qt.ShiftModifier:
                self.insertPlainText("\n")
            elif not (mods & (Qt.ControlModifier | Qt.AltModifier | Qt.MetaModifier)):
                self.submitted.emit()
            return
        super().keyPressEvent(event)

    def _fit_height(self, *_):
        # Grow with the text up to MAX_LINES, then scroll; never shrink below MIN_LINES.
        line = self.fontMetrics().lineSpacing()
        lines = max(MIN_LINES, min(MAX_LINES, int(self.document().size().height())))
        margins = self.contentsMargins().top() + self.contentsMargins().bottom()
        self.setFixedHeight(lines * line + 2 * int(self.document().documentMargin()) + margins)


class Composer(QFrame):
    send_requested = Signal(str)
    stop_requested = Signal()
    edit_cancelled = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("composer")
        self.busy = False
        self.blocked_reason = ""
        self.editing_message_id: int | None = None

        outer = QVBoxLayout(self)
        outer.setContentsMargins(14, 8, 10, 8)
        outer.setSpacing(6)

        self.edit_bar = QWidget()
        self.edit_bar.setObjectName("editBar")
        bar = QHBoxLayout(self.edit_bar)
        bar.setContentsMargins(0, 0, 0, 0)
        self.edit_label = QLabel("Editing your last message: sending replaces it and the reply after it.")
        self.edit_label.setObjectName("editLabel")
        cancel = QToolButton()
        cancel.setText("Cancel edit")
        cancel.setObjectName("cardAction")
        cancel.clicked.connect(self.cancel_edit)
        bar.addWidget(self.edit_label, 1)
        bar.addWidget(cancel)
        self.edit_bar.hide()
        outer.addWidget(self.edit_bar)

        row = QHBoxLayout()
        row.setSpacing(10)
        self.editor = PromptEdit()
        self.editor.submitted.connect(self.submit)
        self.editor.textChanged.connect(self._update_button)
        self.send_button = QPushButton("Send")
        self.send_button.setObjectName("sendButton")
        self.send_button.setCursor(Qt.PointingHandCursor)
        self.send_button.clicked.connect(self._on_button)
        row.addWidget(self.editor, 1)
        row.addWidget(self.send_button, 0, Qt.AlignBottom)
        outer.addLayout(row)
        self._update_button()

    # ------------------------------------------------------------------ state

    def text(self) -> str:
        return self.editor.toPlainText()

    def set_text(self, text: str) -> None:
        self.editor.setPlainText(text)
        cursor = self.editor.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        self.editor.setTextCursor(cursor)

    def can_send(self) -> bool:
        return not self.busy and not self.blocked_reason and bool(self.text().strip())

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self._update_button()

    def set_blocked(self, reason: str) -> None:
        """Sending is not possible for now (a reply is being written in another conversation)."""
        self.blocked_reason = reason
        self._update_button()

    def _update_button(self) -> None:
        b = self.send_button
        if self.busy:
            b.setText("Stop")
            b.setProperty("mode", "stop")
            b.setEnabled(True)
            b.setToolTip("Stop the reply (Esc)")
        else:
            b.setText("Send")
            b.setProperty("mode", "send")
            b.setEnabled(self.can_send())
            b.setToolTip(self.blocked_reason or "Send (Enter)")
        b.style().unpolish(b)
        b.style().polish(b)

    # ------------------------------------------------------------------ actions

    def _on_button(self) -> None:
        if self.busy:
            self.stop_requested.emit()
        else:
            self.submit()

    def submit(self) -> None:
        if not self.can_send():
            return
        text = self.text().strip()
        self.send_requested.emit(text)

    def clear_after_send(self) -> None:
        self.editor.clear()
        self._end_edit()

    def begin_edit(self, message_id: int, text: str) -> None:
        self.editing_message_id = message_id
        self.edit_bar.show()
        self.set_text(text)
        self.editor.setFocus()

    def cancel_edit(self) -> None:
        if self.editing_message_id is None:
            return
        self._end_edit()
        self.editor.clear()
        self.edit_cancelled.emit()

    def _end_edit(self) -> None:
        self.editing_message_id = None
        self.edit_bar.hide()
