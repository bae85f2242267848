"""The window's sources features in one place: the Sources panel and its header button, the
per-conversation "Use my sources" switch, dropped folders, and the viewers a citation opens.

Kept out of MainWindow so the window stays a layout and a router; the window hands this its
header row and splitter and forwards drops and conversation changes.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QMenu, QToolButton

from ui.sent_report import SentReport
from ui.source_viewer import SourceViewer
from ui.sources_panel import SourcesPanel, plural

log = logging.getLogger(__name__)

USE_SOURCES_TIP = ("Answer from your indexed files and cite them. Each answer lists the lines it was given; "
                   "click a [n] or a source card to open them.")


def _header_button(text: str, name: str, tip: str) -> QToolButton:
    b = QToolButton()
    b.setObjectName(name)
    b.setText(text)
    b.setToolTip(tip)
    b.setCheckable(True)
    b.setCursor(Qt.PointingHandCursor)
    return b


class SourcesController(QObject):
    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.viewer: SourceViewer | None = None
        self.report: SentReport | None = None
        settings = window.settings
        self.panel = SourcesPanel(window.client, str(window.paths.data_dir),
                                  str(settings.get("sources", "collection") or "default"))
        self.panel.set_watched(self.panel.collection not in self._unwatched())
        self.panel.hide()
        window.splitter.addWidget(self.panel)
        window.splitter.setCollapsible(window.splitter.indexOf(self.panel), True)

        self.use_button = _header_button("Use my sources", "useSourcesButton", USE_SOURCES_TIP)
        # The arrow beside the switch chooses the collections this conversation answers from.
        self.use_button.setPopupMode(QToolButton.MenuButtonPopup)
        self.collections_menu = QMenu(self.use_button)
        self.collections_menu.aboutToShow.connect(self._fill_collections_menu)
        self.use_button.setMenu(self.collections_menu)
        self.panel_button = _header_button("Sources", "sourcesButton", "Show the indexed files and add more")
        row = window.header_row
        row.insertWidget(row.count() - 1, self.use_button)
        row.insertWidget(row.count() - 1, self.panel_button)

        self.use_button.toggled.connect(self._on_use_toggled)
        self.panel_button.toggled.connect(self.show_panel)
        self.panel.index_requested.connect(self.add_sources)
        window.chat_view.source_requested.connect(self.open_source)
        window.chat_view.sent_report_requested.connect(self.show_sent)
        window.session.citations_received.connect(self._on_citations)
        # The engine learns the data dir from commands; this one makes it watch (and catch up
        # on) what was indexed in earlier runs as soon as it starts, and again after a restart.
        window.client.engine_started.connect(self._on_engine_started)
        self.panel.collection_changed.connect(self._on_panel_collection)
        self.panel.collections_changed.connect(lambda _names: self._update_use_tip())
        self.panel.watch_toggled.connect(self._on_watch_toggled)

    def _unwatched(self) -> list[str]:
        return [str(x) for x in (self.window.settings.get("sources", "unwatched") or [])]

    def _on_engine_started(self, _pid: int) -> None:
        client, data_dir = self.window.client, self.panel.data_dir
        client.watch_sources(self.panel.collection, data_dir, enabled=self.panel.collection not in self._unwatched())
        for name in self._unwatched():
            if name != self.panel.collection:
                client.watch_sources(name, data_dir, enabled=False)
        self.panel.refresh_collections()

    def _on_watch_toggled(self, collection: str, on: bool) -> None:
        names = [n for n in self._unwatched() if n != collection] + ([] if on else [collection])
        self.window.settings.set("sources", "unwatched", names)

    def _on_panel_collection(self, name: str) -> None:
        # Also what conversations that chose no collection answer from (ChatSession.collections_of).
        self.window.settings.set("sources", "collection", name)
        self.panel.set_watched(name not in self._unwatched())
        self._update_use_tip()

    # ------------------------------------------------------------------ collections of a conversation

    def conversation_collections(self) -> list[str]:
        return self.window.session.collections_of(self.window.current_id)

    def _fill_collections_menu(self) -> None:
        menu = self.collections_menu
        menu.clear()
        title = menu.addAction("Answer from these collections:")
        title.setEnabled(False)
        chosen = set(self.conversation_collections())
        for name in self.panel.collections:
            info = self.panel.collection_info.get(name) or {}
            n = int(info.get("files", 0))
            label = f"{name}  ({plural(n, 'file')})" if n else f"{name}  (empty)"
            act = menu.addAction(label)
            act.setCheckable(True)
            act.setChecked(name in chosen)
            act.setData(name)
            act.toggled.connect(lambda on, n=name: self.choose_collection(n, on))

    def choose_collection(self, name: str, on: bool) -> None:
        """Add ``name`` to (or take it from) the open conversation's collections. The last one
        cannot be taken away: turn "Use my sources" off for that."""
        cid = self.window.current_id
        if cid is None:
            return
        names = self.conversation_collections()
        names = (names + [name]) if on and name not in names else [n for n in names if n != name or on]
        if not names:
            return
        self.window.session.set_collections(cid, names)
        if on:
            self.set_use_sources(True)
        log.info("conversation %d answers from %s", cid, names)
        self._update_use_tip()

    def _update_use_tip(self) -> None:
        names = self.conversation_collections()
        self.use_button.setToolTip(f"{USE_SOURCES_TIP}\nCollections: {', '.join(names)} "
                                   "(the arrow chooses others)")

    # ------------------------------------------------------------------ panel and switch

    def show_panel(self, visible: bool = True) -> None:
        if self.panel_button.isChecked() != visible:
            self.panel_button.setChecked(visible)   # calls back here once
            return
        self.panel.setVisible(visible)
        if visible:
            sizes = self.window.splitter.sizes()
            if len(sizes) == 3 and sizes[2] < 400:
                self.window.splitter.setSizes([sizes[0], max(400, sizes[1] - 420), 420])
            self.panel.refresh()

    def add_sources(self, paths: list[str]) -> str:
        """Index ``paths`` in the background and show the panel following the job.

        Adding sources switches "Use my sources" on in the open conversation: a person who just
        dropped their logs means to ask about them, and the switch shows it can be turned off."""
        self.show_panel(True)
        rid = self.panel.start([str(p) for p in paths])
        cid = self.window.current_id
        if cid is not None:
            # The conversation answers from what was just added, as well as what it used before;
            # written down, so switching the panel to another collection later does not change it.
            names = self.conversation_collections()
            self.window.session.set_collections(cid, names + [self.panel.collection])
            self.set_use_sources(True)
            self._update_use_tip()
        return rid

    def conversation_opened(self, cid: int | None) -> None:
        self.use_button.blockSignals(True)
        self.use_button.setChecked(self.window.session.uses_sources(cid))
        self.use_button.blockSignals(False)
        self._update_use_tip()

    def _on_use_toggled(self, on: bool) -> None:
        cid = self.window.current_id
        if cid is not None:
            self.window.session.set_use_sources(cid, on)
            log.info("conversation %d: use sources %s", cid, on)

    def set_use_sources(self, on: bool) -> None:
        self.use_button.setChecked(on)

    # ------------------------------------------------------------------ citations

    def _on_citations(self, cid: int, rid: str, fields: dict) -> None:
        if cid == self.window.current_id:
            card = self.window.chat_view.streaming_card(rid)
            if card is not None:
                card.set_citations(fields.get("citations") or [])

    def open_source(self, citation: dict) -> SourceViewer:
        if self.viewer is not None:
            self.viewer.close()
        self.viewer = SourceViewer(citation, self.window)
        self.viewer.setAttribute(Qt.WA_DeleteOnClose)
        self.viewer.destroyed.connect(lambda *_: setattr(self, "viewer", None))
        self.viewer.show()
        return self.viewer

    def show_sent(self, meta: dict) -> SentReport:
        if self.report is not None:
            self.report.close()
        self.report = SentReport(meta, self.window)
        self.report.setAttribute(Qt.WA_DeleteOnClose)
        self.report.destroyed.connect(lambda *_: setattr(self, "report", None))
        self.report.show()
        return self.report
