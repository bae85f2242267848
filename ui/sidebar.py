"""Sidebar: the conversations, newest first, with a title filter, rename and delete.

The list is rebuilt from the store on every change; it is a few hundred rows at most and a
rebuild is far simpler than keeping a second copy of the truth in sync.
"""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView, QFrame, QLineEdit, QListWidget, QListWidgetItem, QMenu, QPushButton,
    QVBoxLayout, QWidget,
)

from app.conversations import ConversationStore

log = logging.getLogger(__name__)

ID_ROLE = Qt.UserRole


def _when(ts: float) -> str:
    """A short, human time for the tooltip of a conversation."""
    lt = time.localtime(ts)
    if time.strftime("%Y-%m-%d", lt) == time.strftime("%Y-%m-%d"):
        return "today " + time.strftime("%H:%M", lt)
    return time.strftime("%d %b %Y, %H:%M", lt)


class Sidebar(QFrame):
    conversation_selected = Signal(int)
    new_chat_requested = Signal()
    renamed = Signal(int, str)
    delete_requested = Signal(int)

    def __init__(self, store: ConversationStore, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("sidebar")
        self.store = store
        self.current_id: int | None = None
        self._rebuilding = False

        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 12, 12, 12)
        lay.setSpacing(10)
        self.new_button = QPushButton("+  New chat")
        self.new_button.setObjectName("newChatButton")
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.new_button.setCursor(Qt.PointingHandCursor)
        self.new_button.clicked.connect(self.new_chat_requested)
        self.filter_edit = QLineEdit()
        self.filter_edit.setObjectName("filterEdit")
        self.filter_edit.setPlaceholderText("Filter by title")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(lambda _: self.refresh())
        self.list = QListWidget()
        self.list.setObjectName("conversationList")
        self.list.setSelectionMode(QAbstractItemView.SingleSelection)
        self.list.setEditTriggers(QAbstractItemView.DoubleClicked | QAbstractItemView.EditKeyPressed)
        self.list.setContextMenuPolicy(Qt.CustomContextMenu)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.ElideRight)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.list.currentItemChanged.connect(self._on_current)
        self.list.itemChanged.connect(self._on_item_changed)
        self.empty_hint = QPushButton("No conversations match")
        self.empty_hint.setObjectName("emptyHint")
        self.empty_hint.setFlat(True)
        self.empty_hint.setEnabled(False)
        self.empty_hint.hide()
        lay.addWidget(self.new_button)
        lay.addWidget(self.filter_edit)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.empty_hint)

        # F2 renames and Delete deletes, but only while the list has the focus: elsewhere
        # those keys belong to the text the person is editing.
        rename = QAction("Rename", self.list)
        rename.setShortcut(QKeySequence(Qt.Key_F2))
        rename.setShortcutContext(Qt.WidgetShortcut)
        rename.triggered.connect(self.rename_current)
        delete = QAction("Delete", self.list)
        delete.setShortcut(QKeySequence.Delete)
        delete.setShortcutContext(Qt.WidgetShortcut)
        delete.triggered.connect(self._delete_current)
        self.list.addAction(rename)
        self.list.addAction(delete)

    # ------------------------------------------------------------------ list

    def refresh(self, current_id: int | None = None) -> None:
        if current_id is not None:
            self.current_id = current_id
        self._rebuilding = True
        try:
            self.list.clear()
            chosen = None
            for c in self.store.conversations(self.filter_edit.text().strip()):
                item = QListWidgetItem(c.title)
                item.setData(ID_ROLE, c.id)
                item.setToolTip(f"{c.title}\nLast active {_when(c.updated)}")
                item.setFlags(item.flags() | Qt.ItemIsEditable)
                self.list.addItem(item)
                if c.id == self.current_id:
                    chosen = item
            if chosen is not None:
                self.list.setCurrentItem(chosen)
        finally:
            self._rebuilding = False
        self.empty_hint.setVisible(self.list.count() == 0 and bool(self.filter_edit.text().strip()))

    def titles(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def ids(self) -> list[int]:
        return [self.list.item(i).data(ID_ROLE) for i in range(self.list.count())]

    def select(self, cid: int) -> None:
        for i in range(self.list.count()):
            if self.list.item(i).data(ID_ROLE) == cid:
                self.list.setCurrentRow(i)
                return

    def _on_current(self, item: QListWidgetItem | None, _previous) -> None:
        if self._rebuilding or item is None:
            return
        cid = item.data(ID_ROLE)
        if cid != self.current_id:
            self.current_id = cid
            self.conversation_selected.emit(cid)

    # ------------------------------------------------------------------ rename / delete

    def rename_current(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.list.editItem(item)

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._rebuilding:
            return
        title = item.text().strip()
        cid = item.data(ID_ROLE)
        if title:
            self.renamed.emit(cid, title)
        else:
            self.refresh()  # an empty title is not a rename; put the old one back

    def _delete_current(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.delete_requested.emit(item.data(ID_ROLE))

    def _context_menu(self, pos) -> None:
        item = self.list.itemAt(pos)
        if item is None:
            return
        cid = item.data(ID_ROLE)
        menu = QMenu(self)
        menu.addAction("Rename", lambda: self.list.editItem(item))
        menu.addAction("Delete…", lambda: self.delete_requested.emit(cid))
        menu.exec(self.list.viewport().mapToGlobal(pos))
