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
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QFileDialog, QFrame, QHBoxLayout, QHeaderView, QLabel, QMenu, QProgressBar, QPushButton,
    QToolButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget,
)

from engine.protocol import WATCH_ID_PREFIX
from ui.client import EngineClient

log = logging.getLogger(__name__)

PHASES = {"scan": "Looking at files", "read": "Reading", "embed": "Embedding"}
STATUS_TEXT = {"indexed": "Indexed", "appending": "New lines to read", "skipped": "Skipped",
               "missing": "Missing"}


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def eta_text(done: int, total: int, elapsed: float) -> str:
    if done <= 0 or total <= done or elapsed < 1.0:
        return ""
    left = elapsed / done * (total - done)
    return f"about {left:.0f} s left" if left < 90 else f"about {left / 60:.0f} min left"


class SourcesPanel(QFrame):
    """Emits ``index_requested(paths)``; the window sends it to the engine."""

    index_requested = Signal(list)

    def __init__(self, client: EngineClient, data_dir: str, collection: str = "default",
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.client = client
        self.data_dir = data_dir
        self.collection = collection
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
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelIndex")
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.job_detail, 1)
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

        self.tree = QTreeWidget()
        self.tree.setObjectName("sourcesTree")
        self.tree.setHeaderLabels(["File", "Status", "Chunks", "Size"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        header.setSectionResizeMode(1, QHeaderView.Interactive)
        header.resizeSection(1, 100)
        for col in (2, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeToContents)
        # Long names and skip reasons are elided; the full text is in the tooltip.
        self.tree.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.tree.setTextElideMode(Qt.ElideRight)
        self.tree.setSelectionMode(QTreeWidget.ExtendedSelection)
        self.tree.setContextMenuPolicy(Qt.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._tree_menu)
        self.tree.itemSelectionChanged.connect(
            lambda: self.remove_button.setEnabled(bool(self.selected_paths())))
        lay.addWidget(self.tree, 1)
        foot = QHBoxLayout()
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
        self.job_label.setText(f"Indexing {names}")
        self.job_detail.setText("Starting…")
        self.progress.setRange(0, 0)
        self.cancel_button.setEnabled(True)
        self.job.show()
        log.info("indexing %d path(s) into %s (%s)", len(paths), self.collection, self.job_id)
        return self.job_id

    def cancel(self) -> None:
        if self.job_id:
            self.client.cancel(self.job_id)
            self.cancel_button.setEnabled(False)
            self.job_detail.setText("Stopping… (what was read so far is kept)")

    def selected_paths(self) -> list[str]:
        return [str(it.data(0, Qt.UserRole)) for it in self.tree.selectedItems() if it.data(0, Qt.UserRole)]

    def remove(self, paths: list[str]) -> str:
        """Take ``paths`` out of the index (and out of watching); the list refreshes after."""
        if not paths:
            return ""
        self.remove_button.setEnabled(False)
        log.info("removing %d source(s) from %s", len(paths), self.collection)
        return self.client.remove_sources(paths, self.collection, self.data_dir)

    def _tree_menu(self, pos) -> None:
        item = self.tree.itemAt(pos)
        if item is None:
            return
        if not item.isSelected():
            self.tree.setCurrentItem(item)
        paths = self.selected_paths()
        menu = QMenu(self.tree)
        label = "Remove from index" if len(paths) == 1 else f"Remove {len(paths)} files from index"
        menu.addAction(label, lambda: self.remove(paths))
        menu.popup(self.tree.viewport().mapToGlobal(pos))

    def _on_removed(self, ev: dict) -> None:
        if ev.get("collection") != self.collection:
            return
        n = len(ev.get("paths") or [])
        self._last_run = f"Removed {n} file(s) from the index."
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
        if str(ev.get("id", "")).startswith(WATCH_ID_PREFIX):
            self.refresh()   # the engine read new lines or files in a watched folder
            return
        if ev.get("id") != self.job_id:
            return
        self.job_id = ""
        self.job.hide()
        self.last_summary = s = dict(ev.get("summary") or {})
        skipped = len(s.get("skipped") or [])
        took = s.get("seconds", 0)
        self._last_run = (f"Last run: {s.get('files', 0)} file(s), {s.get('chunks_added', 0)} new chunk(s)"
                          + (f", {skipped} skipped" if skipped else "") + f" in {took:.1f} s.")
        self.summary.setText(self._last_run)
        self.refresh()

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
        self.tree.clear()
        total_size = total_chunks = 0
        for s in self.sources:
            status = STATUS_TEXT.get(s.get("status", ""), s.get("status", ""))
            if s.get("reason"):
                status += f": {s['reason']}"
            item = QTreeWidgetItem([Path(s["path"]).name, status, str(s.get("chunks", 0)),
                                    human_size(int(s.get("size") or 0))])
            item.setToolTip(0, s["path"])
            item.setData(0, Qt.UserRole, s["path"])
            item.setToolTip(1, status)
            if s.get("status") == "skipped":
                item.setForeground(1, QColor("#9a6700"))
            item.setTextAlignment(2, Qt.AlignRight | Qt.AlignVCenter)
            item.setTextAlignment(3, Qt.AlignRight | Qt.AlignVCenter)
            self.tree.addTopLevelItem(item)
            total_size += int(s.get("size") or 0)
            total_chunks += int(s.get("chunks") or 0)
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
            self.tree.setHeaderLabels(["File", "Status", "Chunks", "Size"])
            prefix = self._last_run + "\n" if self._last_run else ""
            self.summary.setText(f"{prefix}{indexed} file(s) indexed · {total_chunks} chunks · {human_size(total_size)}")
