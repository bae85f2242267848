"""The status bar: which model is loaded, what the engine is doing, and how much memory
the engine and the window hold (sampled every two seconds; psutil reads /proc, no engine call)."""

from __future__ import annotations

import logging
import os

import psutil
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from ui.client import EngineClient

log = logging.getLogger(__name__)

MEMORY_INTERVAL_MS = 2000

STATE_TEXT = {
    "starting": "Starting the engine…",
    "ready": "Ready",
    "loading": "Loading model…",
    "generating": "Generating…",
    "crashed": "Engine crashed — restarting…",
    "stopped": "Engine stopped",
}


def human_bytes(n: int) -> str:
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GB"
    return f"{n / (1 << 20):.0f} MB"


class _ClickableLabel(QLabel):
    clicked = Signal()

    def mouseReleaseEvent(self, event) -> None:
        if event.button() == Qt.LeftButton:
            self.clicked.emit()
        super().mouseReleaseEvent(event)


class StatusBar(QStatusBar):
    model_clicked = Signal()     # the model name was clicked: open the model library

    def __init__(self, client: EngineClient, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("statusBar")
        self.setSizeGripEnabled(False)
        self.client = client
        self.model_label = _ClickableLabel("No model loaded")
        self.model_label.setObjectName("modelStatus")
        self.model_label.setCursor(Qt.PointingHandCursor)
        self.model_label.clicked.connect(self.model_clicked)
        self.state_label = QLabel(STATE_TEXT.get(client.state, client.state))
        self.state_label.setObjectName("engineStatus")
        self.memory_label = QLabel("")
        self.memory_label.setObjectName("memoryStatus")
        self.addWidget(self.model_label, 1)
        self.addPermanentWidget(self.state_label)
        self.addPermanentWidget(self.memory_label)
        self.gave_up = False
        client.state_changed.connect(self.show_state)
        client.engine_started.connect(lambda _pid: self.sample_memory())
        self._own = psutil.Process(os.getpid())
        self._engine: psutil.Process | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(MEMORY_INTERVAL_MS)
        self.timer.timeout.connect(self.sample_memory)
        self.timer.start()
        self.sample_memory()

    def show_state(self, state: str) -> None:
        if state == "starting":
            self.gave_up = False
        text = STATE_TEXT.get(state, state)
        if state == "crashed" and self.gave_up:
            text = "Engine stopped after repeated crashes"
        self.state_label.setText(text)
        self.state_label.setProperty("state", state)
        self.state_label.style().unpolish(self.state_label)
        self.state_label.style().polish(self.state_label)

    def show_gave_up(self) -> None:
        self.gave_up = True
        self.show_state("crashed")

    def show_model(self, info: dict) -> None:
        name = info.get("name") or os.path.basename(info.get("path", "")) or "model"
        layers = info.get("n_gpu_layers") or 0
        self.model_label.setText(f"{name}  ·  {info.get('n_ctx', 0):,} tokens of context"
                                 + (f"  ·  {layers} GPU layers" if layers else ""))
        size = info.get("size_bytes") or 0
        self.model_label.setToolTip(f"{info.get('path', '')}\n{human_bytes(size)} on disk"
                                    + (f", trained on up to {info['n_ctx_train']:,} tokens of context"
                                       if info.get("n_ctx_train") else "")
                                    + (f"\n{info['load_note']}" if info.get("load_note") else "")
                                    + "\nClick to open the model library")

    def sample_memory(self) -> None:
        parts = []
        pid = self.client.pid
        try:
            if pid and (self._engine is None or self._engine.pid != pid):
                self._engine = psutil.Process(pid)
            if pid and self._engine is not None:
                parts.append(f"Engine {human_bytes(self._engine.memory_info().rss)}")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            self._engine = None  # between a crash and the restart
        try:
            parts.append(f"Window {human_bytes(self._own.memory_info().rss)}")
        except psutil.Error:
            pass
        self.memory_label.setText("  ·  ".join(parts))
        self.memory_label.setToolTip("Resident memory of the engine process and of this window")
