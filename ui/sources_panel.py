"""The Sources panel: what is indexed, file by file, and the index job that is running.

Indexing runs in the engine on a thread of its own, so the person keeps chatting while a
folder is read; this panel shows how far it got (files, megabytes, an ETA from the rate so
far) and can cancel it. The list comes from the engine's manifest (ListSources), refreshed
when a job ends, so it shows what search will really find, not what was asked for. The
engine watches indexed folders and re-indexes what changed on its own ("watch-" jobs); the
list refreshes after those too. A file or folder can be removed from the index here.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QFileDialog, QFrame, QHBoxLayout, QHeaderView, QInputDialog, QLabel,
    QMenu, QMessageBox, QProgressBar, QPushButton, QTableView, QToolButton, QVBoxLayout, QWidget,
)

from engine.protocol import WATCH_ID_PREFIX
from ui.client import EngineClient
from ui.sources_model import PATH_ROLE, SourcesModel, human_size

log = logging.getLogger(__name__)

PHASES = {"scan": "Looking at files", "read": "Reading", "embed": "Embedding", "paused": "Paused"}
NEW_COLLECTION = "New collection…"
MAX_COLLECTION_NAME = 60


def collection_name_problem(name: str, existing: list[str]) -> str:
    """Why ``name`` cannot be a new collection, or "" when it can."""
    if not name:
        return "A collection needs a name."
    if len(name) > MAX_COLLECTION_NAME:
        return f"Keep the name under {MAX_COLLECTION_NAME} characters."
    if name == NEW_COLLECTION or name.lower() in (c.lower() for c in existing):
        return f"There is already a collection called “{name}”."
    return ""


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def eta_text(done: int, total: int, elapsed: float) -> str:
    if done <= 0 or total <= done or elapsed < 1.0:
        return ""
    left = elapsed / done * (total - done)
    return f"about {left:.0f} s left" if left < 90 else f"about {left / 60:.0f} min left"


class SourcesPanel(QFrame):
    """Emits ``index_requested(paths)``; the window sends it to the engine."""

    index_requested = Signal(list)
    collection_changed = Signal(str)        # the collection shown (and added to) changed
    collections_changed = Signal(list)      # the names known, after a CollectionList
    watch_toggled = Signal(str, bool)       # collection, watched

    def __init__(self, client: EngineClient, data_dir: str, collection: str = "default",
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.client = client
        self.data_dir = data_dir
        self.collection = collection or "default"
        # Names the person created that hold nothing yet: the engine knows a collection only
        # once something was indexed into it.
        self.collections: list[str] = [self.collection]
        self.collection_info: dict[str, dict] = {}
        self.paused = False
        self._paused_at = 0.0
        self.job_id = ""
        self.sources: list[dict] = []
        self.last_summary: dict = {}
        self._job_started = 0.0
        self._last_run = ""
        self._phase_started = (None, 0.0)
        self.setObjectName("sourcesPanel")
        self.setMinimumWidth(400)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(14, 12, 14, 12)
        lay.setSpacing(8)
        head = QHBoxLayout()
        title = QLabel("Sources")
        title.setObjectName("panelTitle")
        self.add_button = QToolButton()
        self.add_button.setObjectName("addSources")
        self.add_button.setText("Add sources…")
        self.add_button.setPopupMode(QToolButton.InstantPopup)
        menu = QMenu(self.add_button)
        menu.addAction("A folder…", self.choose_folder)
        menu.addAction("Files…", self.choose_files)
        self.add_button.setMenu(menu)
        head.addWidget(title, 1)
        head.addWidget(self.add_button)
        lay.addLayout(head)

        pick = QHBoxLayout()
        pick_label = QLabel("Collection")
        pick_label.setObjectName("panelHint")
        self.collection_box = QComboBox()
        self.collection_box.setObjectName("collectionBox")
        self.collection_box.setToolTip("Files are indexed into named collections; each conversation chooses "
                                       "which ones it answers from (the arrow beside “Use my sources”).")
        self.collection_box.activated.connect(self._on_collection_picked)
        pick.addWidget(pick_label)
        pick.addWidget(self.collection_box, 1)
        lay.addLayout(pick)
        self._fill_collections()

        self.hint = QLabel("Drop folders or files (logs, text, markdown, HTML, CSV, JSON, PDF, Word) on the window, "
                           "or use Add sources. Then switch on “Use my sources” to ask about them.")
        self.hint.setObjectName("panelHint")
        self.hint.setWordWrap(True)
        lay.addWidget(self.hint)

        self.job = QFrame()
        self.job.setObjectName("indexJob")
        job_lay = QVBoxLayout(self.job)
        job_lay.setContentsMargins(10, 8, 10, 8)
        job_lay.setSpacing(4)
        self.job_label = QLabel()
        self.job_label.setObjectName("jobLabel")
        self.job_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(6)
        row = QHBoxLayout()
        self.job_detail = QLabel()
        self.job_detail.setObjectName("jobDetail")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setObjectName("pauseIndex")
        self.pause_button.setToolTip("Stop reading for now and keep what was read; Resume goes on from there. "
                                     "Watching waits too.")
        self.pause_button.clicked.connect(lambda: self.set_paused(not self.paused))
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelIndex")
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.job_detail, 1)
        row.addWidget(self.pause_button)
        row.addWidget(self.cancel_button)
        job_lay.addWidget(self.job_label)
        job_lay.addWidget(self.progress)
        job_lay.addLayout(row)
        self.job.hide()
        lay.addWidget(self.job)

        self.summary = QLabel()
        self.summary.setObjectName("sourcesSummary")
        self.summary.setWordWrap(True)
        lay.addWidget(self.summary)
        self.skipped_label = QLabel()
        self.skipped_label.setObjectName("skippedSources")
        self.skipped_label.setWordWrap(True)
        self.skipped_label.hide()
        lay.addWidget(self.skipped_label)

        self.model = SourcesModel(self)
        # A table, not a tree view: QTreeView lays out every row of the model on each reset.
        self.tree = QTableView()
        self.tree.setObjectName("sourcesTree")
        self.tree.setModel(self.model)
        self.tree.setShowGrid(False)
        self.tree.setWordWrap(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.verticalHeader().hide()
        self.tree.verticalHeader().setSectionResizeMode(QHeaderView.Fixed)
        self.tree.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.tree.horizontalHeader().setDefaultAlignment(Qt.AlignLeft | Qt.AlignVCenter)
        self.tree.horizontalHeader().setHighlightSections(False)
        header = self.tree.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        # Fixed widths, not ResizeToContents: that measures rows on every refresh of a long list.
        for col, width in ((1, 100), (2, 64), (3, 70)):
            header.setSectionResizeMode(col, QHeaderView.Interactive)
            header.resizeSection(col, width)
        # Long names and skip reasons are elided; the full text is in the tooltip.
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.tree.setTextElideMode(Qt.ElideRight)
        self.tree.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.tree.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.tree.setContextMenuPolicy(Qt.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._tree_menu)
        self.tree.selectionModel().selectionChanged.connect(
            lambda *_: self.remove_button.setEnabled(bool(self.selected_paths())))
        lay.addWidget(self.tree, 1)
        foot = QHBoxLayout()
        self.watch_box = QCheckBox("Watch for changes")
        self.watch_box.setObjectName("watchSources")
        self.watch_box.setToolTip("While Lantern runs, lines appended to indexed logs and files added to "
                                  "indexed folders are read on their own, and deleted files leave the index.")
        self.watch_box.setChecked(True)
        self.watch_box.toggled.connect(self._on_watch_toggled)
        foot.addWidget(self.watch_box)
        self.remove_button = QPushButton("Remove from index")
        self.remove_button.setObjectName("removeSources")
        self.remove_button.setToolTip("Forget the selected files: search and answers stop using them. "
                                      "The files themselves are not touched.")
        self.remove_button.setEnabled(False)
        self.remove_button.clicked.connect(lambda: self.remove(self.selected_paths()))
        foot.addStretch(1)
        foot.addWidget(self.remove_button)
        lay.addLayout(foot)

        client.index_progress.connect(self._on_progress)
        client.index_finished.connect(self._on_finished)
        client.sources_listed.connect(self._on_listed)
        client.sources_removed.connect(self._on_removed)
        client.request_failed.connect(self._on_failed)
        client.collections_listed.connect(self._on_collections)
        client.indexing_paused.connect(self._on_paused)
        client.reply_cancelled.connect(lambda rid, _text: self.job_cancelled(rid))

    # ------------------------------------------------------------------ actions

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Add a folder of logs or documents")
        if path:
            self.index_requested.emit([path])

    def choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Add files")
        if paths:
            self.index_requested.emit(paths)

    def start(self, paths: list[str]) -> str:
        """Ask the engine to index ``paths``; the panel follows the job."""
        self.job_id = self.client.index_paths(paths, self.collection, self.data_dir)
        self._job_started = time.monotonic()
        self._phase_started = (None, 0.0)
        names = ", ".join(Path(p).name or p for p in paths[:3]) + (" …" if len(paths) > 3 else "")
        self.job_label.setText(f"Indexing {names} into “{self.collection}”")
        self.job_detail.setText("Waiting: indexing is paused" if self.paused else "Starting…")
        self.progress.setRange(0, 0)
        self.cancel_button.setEnabled(True)
        self.job.show()
        log.info("indexing %d path(s) into %s (%s)", len(paths), self.collection, self.job_id)
        return self.job_id

    def set_paused(self, paused: bool) -> str:
        return self.client.pause_indexing(paused)

    def _on_paused(self, paused: bool) -> None:
        if paused and not self.paused:
            self._paused_at = time.monotonic()
        elif not paused and self.paused and self._paused_at:
            # The ETA counts reading time only: the pause is taken out of the phase's clock.
            phase, started = self._phase_started
            self._phase_started = (phase, started + time.monotonic() - self._paused_at)
            self._paused_at = 0.0
        self.paused = paused
        self.pause_button.setText("Resume" if paused else "Pause")
        if self.job_id:
            self.job_detail.setText("Paused · what was read so far is kept" if paused else "Resuming…")

    # ------------------------------------------------------------------ collections

    def _fill_collections(self) -> None:
        box = self.collection_box
        box.blockSignals(True)
        box.clear()
        for name in self.collections:
            info = self.collection_info.get(name)
            box.addItem(name, name)
            if info:
                box.setItemData(box.count() - 1, f"{plural(int(info.get('files', 0)), 'file')}, {plural(int(info.get('chunks', 0)), 'chunk')}",
                                Qt.ToolTipRole)
        box.addItem(NEW_COLLECTION, "")
        box.setCurrentIndex(max(0, self.collections.index(self.collection)))
        box.blockSignals(False)

    def _on_collection_picked(self, index: int) -> None:
        name = self.collection_box.itemData(index)
        if name:
            self.set_collection(name)
            return
        self._fill_collections()   # back to the current one while the name is asked for
        name, ok = QInputDialog.getText(self, "New collection",
                                        "Name of the new collection (for example “payments logs”):")
        if ok:
            self.new_collection(name)

    def new_collection(self, name: str) -> bool:
        name = " ".join(name.split())
        problem = collection_name_problem(name, self.collections)
        if problem:
            QMessageBox.warning(self, "New collection", problem)
            return False
        self.collections.append(name)
        self.set_collection(name)
        self.collections_changed.emit(list(self.collections))
        return True

    def set_collection(self, name: str) -> None:
        if name not in self.collections:
            self.collections.append(name)
        if name != self.collection:
            self.collection = name
            self.collection_changed.emit(name)
            self.sources = []
            self.model.set_sources([])
            self._last_run = ""
            self.summary.setText("")
            self.skipped_label.hide()
            self.hint.show()
        self._fill_collections()
        self.refresh()

    def refresh_collections(self) -> str:
        return self.client.list_collections(self.data_dir)

    def _on_collections(self, ev: dict) -> None:
        self.collection_info = {c["name"]: c for c in ev.get("collections") or []}
        known = list(self.collection_info)
        names = known + [n for n in self.collections if n not in self.collection_info]
        self.collections = sorted(set(names) | {self.collection}, key=lambda n: (n != "default", n.lower()))
        self._fill_collections()
        self.collections_changed.emit(list(self.collections))

    def set_watched(self, watched: bool) -> None:
        self.watch_box.blockSignals(True)
        self.watch_box.setChecked(watched)
        self.watch_box.blockSignals(False)

    def _on_watch_toggled(self, on: bool) -> None:
        self.client.watch_sources(self.collection, self.data_dir, enabled=on)
        self.watch_toggled.emit(self.collection, on)

    def cancel(self) -> None:
        if self.job_id:
            self.client.cancel(self.job_id)
            self.cancel_button.setEnabled(False)
            self.job_detail.setText("Stopping… (what was read so far is kept)")

    def selected_paths(self) -> list[str]:
        return [str(i.data(PATH_ROLE)) for i in self.tree.selectionModel().selectedRows(0) if i.data(PATH_ROLE)]

    def remove(self, paths: list[str]) -> str:
        """Take ``paths`` out of the index (and out of watching); the list refreshes after."""
        if not paths:
            return ""
        self.remove_button.setEnabled(False)
        log.info("removing %d source(s) from %s", len(paths), self.collection)
        return self.client.remove_sources(paths, self.collection, self.data_dir)

    def _tree_menu(self, pos) -> None:
        index = self.tree.indexAt(pos)
        if not index.isValid():
            return
        if not self.tree.selectionModel().isRowSelected(index.row(), index.parent()):
            self.tree.setCurrentIndex(index)
        paths = self.selected_paths()
        menu = QMenu(self.tree)
        label = "Remove from index" if len(paths) == 1 else f"Remove {len(paths)} files from index"
        menu.addAction(label, lambda: self.remove(paths))
        menu.popup(self.tree.viewport().mapToGlobal(pos))

    def _on_removed(self, ev: dict) -> None:
        if ev.get("collection") != self.collection:
            return
        n = len(ev.get("paths") or [])
        self._last_run = f"Removed {plural(n, 'file')} from the index."
        self.summary.setText(self._last_run)
        self.refresh()

    def refresh(self) -> str:
        return self.client.list_sources(self.collection, self.data_dir)

    def is_indexing(self) -> bool:
        return bool(self.job_id)

    # ------------------------------------------------------------------ engine events

    def _on_progress(self, ev: dict) -> None:
        if ev.get("id") != self.job_id:
            return
        phase, done, total = ev.get("phase", ""), int(ev.get("done", 0)), int(ev.get("total", 0))
        if phase == "paused":
            self.job_detail.setText("Paused · what was read so far is kept")
            return
        now = time.monotonic()
        if self._phase_started[0] != phase:
            self._phase_started = (phase, now)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(done, total))
        what = "chunks" if phase == "embed" else "files"
        parts = [f"{PHASES.get(phase, phase)}: {done} of {total} {what}"]
        if ev.get("bytes_done"):
            parts.append(human_size(int(ev["bytes_done"])))
        eta = eta_text(done, total, now - self._phase_started[1])
        if eta:
            parts.append(eta)
        self.job_detail.setText(" · ".join(parts))
        if ev.get("path") and phase != "embed":
            self.job_detail.setToolTip(str(ev["path"]))

    def _on_finished(self, ev: dict) -> None:
        # What happened to the index itself (a damaged vector store set aside and rebuilt) is
        # said once, by whichever run found it.
        notices = " ".join(str(n) for n in (ev.get("summary") or {}).get("notices") or [])
        if str(ev.get("id", "")).startswith(WATCH_ID_PREFIX):
            if notices:
                self._last_run = notices
                self.summary.setText(notices)
            self.refresh()   # the engine read new lines or files in a watched folder
            return
        if ev.get("id") != self.job_id:
            return
        self.job_id = ""
        self.job.hide()
        self.last_summary = s = dict(ev.get("summary") or {})
        skipped = len(s.get("skipped") or [])
        took = s.get("seconds", 0)
        self._last_run = (f"Last run: {plural(int(s.get('files', 0)), 'file')}, "
                          f"{plural(int(s.get('chunks_added', 0)), 'new chunk')}"
                          + (f", {skipped} skipped" if skipped else "") + f" in {took:.1f} s."
                          + (f" {notices}" if notices else ""))
        self.summary.setText(self._last_run)
        self.refresh()
        self.refresh_collections()

    def _on_failed(self, rid: str, kind: str, message: str) -> None:
        if rid != self.job_id:
            return
        self.job_id = ""
        self.job.hide()
        self._last_run = ("Indexing stopped. What was read before is kept; add the folder again to go on."
                          if kind in ("interrupted",) else f"Indexing failed: {message}")
        self.summary.setText(self._last_run)
        self.refresh()

    def job_cancelled(self, rid: str) -> None:
        if rid == self.job_id:
            self._on_failed(rid, "interrupted", "")

    def _on_listed(self, ev: dict) -> None:
        if ev.get("collection") != self.collection:
            return
        self.sources = list(ev.get("sources") or [])
        self.model.set_sources(self.sources)
        total_size = sum(int(s.get("size") or 0) for s in self.sources)
        total_chunks = sum(int(s.get("chunks") or 0) for s in self.sources)
        self.remove_button.setEnabled(False)
        indexed = sum(1 for s in self.sources if s.get("status") in ("indexed", "appending"))
        skipped = [s for s in self.sources if s.get("status") == "skipped"]
        # Why a file was left out matters more than the file list: say it in words, not a tooltip.
        lines = [f"• {Path(s['path']).name}: {s.get('reason') or 'skipped'}" for s in skipped[:4]]
        if len(skipped) > 4:
            lines.append(f"… and {len(skipped) - 4} more (hover the list for reasons)")
        self.skipped_label.setText("Not indexed:\n" + "\n".join(lines) if lines else "")
        self.skipped_label.setVisible(bool(lines))
        self.hint.setVisible(not self.sources)
        if self.sources:
            prefix = self._last_run + "\n" if self._last_run else ""
            self.summary.setText(f"{prefix}{plural(indexed, 'file')} indexed · {plural(total_chunks, 'chunk')} · "
                                 f"{human_size(total_size)}")
