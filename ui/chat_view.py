"""ChatView: the scrolling page of one conversation's messages.

Messages sit in a centred column of readable width. The view follows the bottom while a
reply streams, unless the person has scrolled up to read something: then it stays put until
they scroll back down (or send a new message).
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame, QHBoxLayout, QLabel, QPushButton, QScrollArea, QSizePolicy, QVBoxLayout, QWidget,
)

from app import conversations as conv
from app.conversations import Message
from ui.message_view import MessageCard, Notice

log = logging.getLogger(__name__)

COLUMN_MAX_WIDTH = 860
USER_BUBBLE_SHARE = 0.8       # the person's bubble hugs its text, up to this much of the column
FOLLOW_SLACK_PX = 48          # "at the bottom" allows for a line's worth of rounding

EXAMPLE_PROMPTS = (
    "Explain what a context window is, in two sentences.",
    "Write a Python function that checks whether a string is a palindrome.",
    "Give me three ideas for a relaxing weekend at home.",
)


def trimmed_notice(count: int, n_ctx: int) -> str:
    noun = "message was" if count == 1 else "messages were"
    return (f"{count} older {noun} left out to fit the {n_ctx}-token context window; "
            "they are dimmed above. Raise “Context length” in the conversation settings to include them.")


class EmptyState(QFrame):
    example_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("emptyState")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(24, 48, 24, 24)
        lay.setSpacing(10)
        title = QLabel("What can I help you with?")
        title.setObjectName("emptyTitle")
        title.setAlignment(Qt.AlignCenter)
        sub = QLabel("Lantern runs the model on this computer; nothing you type leaves it.")
        sub.setObjectName("emptySubtitle")
        sub.setAlignment(Qt.AlignCenter)
        sub.setWordWrap(True)
        lay.addWidget(title)
        lay.addWidget(sub)
        lay.addSpacing(12)
        self.example_buttons: list[QPushButton] = []
        for prompt in EXAMPLE_PROMPTS:
            b = QPushButton(prompt)
            b.setObjectName("examplePrompt")
            b.setCursor(Qt.PointingHandCursor)
            b.clicked.connect(lambda _=False, p=prompt: self.example_chosen.emit(p))
            lay.addWidget(b, 0, Qt.AlignHCenter)
            self.example_buttons.append(b)
        lay.addStretch(1)


class ChatView(QScrollArea):
    example_chosen = Signal(str)
    regenerate_requested = Signal()
    edit_requested = Signal(int)
    source_requested = Signal(dict)       # a citation to open
    sent_report_requested = Signal(dict)  # a reply's meta

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("chatView")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        page = QWidget()
        page.setObjectName("chatPage")
        row = QHBoxLayout(page)
        row.setContentsMargins(24, 16, 24, 16)
        self.column = QWidget()
        self.column.setObjectName("chatColumn")
        self.column.setMaximumWidth(COLUMN_MAX_WIDTH)
        self.column.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        row.addStretch(0)
        row.addWidget(self.column, 1)
        row.addStretch(0)
        self._layout = QVBoxLayout(self.column)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(14)
        self.empty_state = EmptyState()
        self.empty_state.example_chosen.connect(self.example_chosen)
        self._layout.addWidget(self.empty_state)
        self._layout.addStretch(1)
        self.setWidget(page)

        self._cards: list[MessageCard] = []
        self._notices: list[Notice] = []
        self._streaming: dict[str, MessageCard] = {}
        self.follow = True
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._on_scrolled)
        bar.rangeChanged.connect(self._on_range)

    # ------------------------------------------------------------------ scrolling

    def _on_scrolled(self, value: int) -> None:
        self.follow = value >= self.verticalScrollBar().maximum() - FOLLOW_SLACK_PX

    def _on_range(self, _min: int, maximum: int) -> None:
        if self.follow:
            self.verticalScrollBar().setValue(maximum)

    def _bubble_width(self) -> int:
        column = min(COLUMN_MAX_WIDTH, max(self.column.width(), self.viewport().width() - 48))
        return max(240, int(column * USER_BUBBLE_SHARE))

    def resizeEvent(self, event):
        super().resizeEvent(event)
        width = self._bubble_width()
        for card in self._cards:
            if card.role == "user":
                card.setMaximumWidth(width)

    def scroll_to_bottom(self) -> None:
        self.follow = True
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    # ------------------------------------------------------------------ content

    def cards(self) -> list[MessageCard]:
        return list(self._cards)

    def notices(self) -> list[Notice]:
        return list(self._notices)

    def clear(self) -> None:
        for w in self._cards + self._notices:
            # Hidden now: deletion waits for the event loop, and until then the old card
            # would still paint over the new page.
            w.hide()
            self._layout.removeWidget(w)
            w.deleteLater()
        self._cards.clear()
        self._notices.clear()
        self._streaming.clear()
        self._update_empty()

    def show_messages(self, messages: list[Message]) -> None:
        """Replace the page with ``messages`` (as stored), marking what the last reply left out."""
        self.setUpdatesEnabled(False)
        try:
            self.clear()
            for m in messages:
                if m.role == "system":
                    continue
                if m.role == "assistant" and m.meta.get("left_out"):
                    self.add_notice(trimmed_notice(len(m.meta["left_out"]), m.meta.get("context_n_ctx", 0)))
                self.add_message(m)
            last_reply = next((m for m in reversed(messages) if m.role == "assistant"), None)
            self.mark_left_out(set(last_reply.meta.get("left_out", [])) if last_reply else set())
        finally:
            self.setUpdatesEnabled(True)
        self.scroll_to_bottom()

    def add_message(self, m: Message) -> MessageCard:
        card = self._new_card(m.role, m.id)
        card.set_text(m.content)
        card.set_status(m.status, m.meta)
        return card

    def _new_card(self, role: str, message_id: int | None) -> MessageCard:
        card = MessageCard(role, message_id)
        card.regenerate_requested.connect(self.regenerate_requested)
        card.edit_requested.connect(self.edit_requested)
        card.source_requested.connect(self.source_requested)
        card.sent_report_requested.connect(self.sent_report_requested)
        self._insert(card, align_right=(role == "user"))
        self._cards.append(card)
        if role == "user":
            card.setMaximumWidth(self._bubble_width())
        self._update_empty()
        return card

    def _insert(self, widget: QWidget, align_right: bool = False) -> None:
        # Before the trailing stretch, so the column fills from the top.
        index = self._layout.count() - 1
        if align_right:
            self._layout.insertWidget(index, widget, 0, Qt.AlignRight)
        else:
            self._layout.insertWidget(index, widget)
        widget.show()   # the layout would only show it on the next event-loop turn

    def add_notice(self, text: str, kind: str = "info") -> Notice:
        notice = Notice(text, kind)
        self._insert(notice)
        self._notices.append(notice)
        return notice

    def remove_message(self, message_id: int) -> None:
        for card in [c for c in self._cards if c.message_id == message_id]:
            self._cards.remove(card)
            card.hide()
            self._layout.removeWidget(card)
            card.deleteLater()
        self._update_empty()

    def _update_empty(self) -> None:
        self.empty_state.setVisible(not self._cards)

    # ------------------------------------------------------------------ streaming

    def begin_reply(self, request_id: str, text: str = "") -> MessageCard:
        card = self._new_card("assistant", None)
        card.request_id = request_id
        card.set_status(conv.STREAMING)
        card.set_text(text, streaming=True)
        self._streaming[request_id] = card
        return card

    def update_reply(self, request_id: str, text: str) -> None:
        card = self._streaming.get(request_id)
        if card is not None:
            card.set_text(text, streaming=True)

    def end_reply(self, request_id: str, m: Message) -> None:
        card = self._streaming.pop(request_id, None)
        if card is None:
            return
        card.message_id = m.id
        card.set_text(m.content)
        card.set_status(m.status, m.meta)

    def streaming_card(self, request_id: str) -> MessageCard | None:
        return self._streaming.get(request_id)

    def show_trimmed(self, request_id: str, left_out: list[int], n_ctx: int) -> None:
        """The engine left out the oldest messages: say so above the reply, dim them."""
        notice = self.add_notice(trimmed_notice(len(left_out), n_ctx))
        card = self._streaming.get(request_id)
        if card is not None:
            # Keep the notice above the reply it explains.
            self._layout.removeWidget(notice)
            self._layout.insertWidget(self._layout.indexOf(card), notice)
        self.mark_left_out(set(left_out))

    def mark_left_out(self, ids: set[int]) -> None:
        for card in self._cards:
            card.set_left_out(card.message_id in ids)

    def update_actions(self, busy: bool) -> None:
        """Offer Regenerate on the last reply and Edit on the last message the person sent."""
        last_assistant = next((c for c in reversed(self._cards) if c.role == "assistant"), None)
        last_user = next((c for c in reversed(self._cards) if c.role == "user"), None)
        for card in self._cards:
            card.set_actions(
                regenerate=not busy and card is last_assistant and card is self._cards[-1],
                edit=not busy and card is last_user and card.message_id is not None,
            )
