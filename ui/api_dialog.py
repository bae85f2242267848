"""Settings › Local API server: switch the window's OpenAI-compatible API on or off (off by
default), and show its URL and token with copy buttons. The server itself is app/api_server.py's
LocalApi; this dialog only switches it and shows where it is."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout,
    QWidget,
)


class ApiServerDialog(QDialog):
    def __init__(self, api, parent: QWidget | None = None):
        super().__init__(parent)
        self.api = api
        self.setObjectName("apiServerDialog")
        self.setWindowTitle("Local API server")
        self.setMinimumWidth(560)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(20, 18, 20, 16)
        outer.setSpacing(12)

        about = QLabel("Lets editors, scripts and other apps on this computer use Lantern's model, embedder and your "
                       "indexed sources through the OpenAI API. Only this computer can connect (127.0.0.1), and "
                       "every request must carry the token below.")
        about.setWordWrap(True)
        outer.addWidget(about)

        self.enabled = QCheckBox("Serve the local API while Lantern is open")
        self.enabled.setObjectName("apiEnabled")
        self.enabled.setChecked(api.running)
        self.enabled.toggled.connect(self._toggle)
        outer.addWidget(self.enabled)

        form = QFormLayout()
        self.url = QLineEdit()
        self.url.setObjectName("apiUrl")
        self.url.setReadOnly(True)
        self.copy_url = QPushButton("Copy")
        self.copy_url.setObjectName("apiCopyUrl")
        self.copy_url.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.url.text()))
        form.addRow("URL", self._row(self.url, self.copy_url))
        self.token = QLineEdit()
        self.token.setObjectName("apiToken")
        self.token.setReadOnly(True)
        self.token.setEchoMode(QLineEdit.Password)
        self.show_token = QPushButton("Show")
        self.show_token.setCheckable(True)
        self.show_token.toggled.connect(
            lambda on: self.token.setEchoMode(QLineEdit.Normal if on else QLineEdit.Password))
        self.copy_token = QPushButton("Copy")
        self.copy_token.setObjectName("apiCopyToken")
        self.copy_token.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.token.text()))
        form.addRow("Token", self._row(self.token, self.show_token, self.copy_token))
        outer.addLayout(form)

        self.state = QLabel()
        self.state.setObjectName("apiState")
        self.state.setWordWrap(True)
        outer.addWidget(self.state)

        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        outer.addWidget(buttons)
        self._refresh()

    @staticmethod
    def _row(*widgets) -> QWidget:
        w = QWidget()
        row = QHBoxLayout(w)
        row.setContentsMargins(0, 0, 0, 0)
        for x in widgets:
            row.addWidget(x, 1 if isinstance(x, QLineEdit) else 0)
        return w

    def _toggle(self, on: bool) -> None:
        ok = self.api.set_enabled(on)
        if on and not ok:
            self.enabled.blockSignals(True)
            self.enabled.setChecked(False)
            self.enabled.blockSignals(False)
        self._refresh()

    def _refresh(self) -> None:
        running = self.api.running
        self.url.setText(self.api.url)
        try:
            self.token.setText(self.api.token() if running else "")
        except Exception as e:   # an unreadable token file: say so rather than show nothing
            self.token.setText("")
            self.state.setText(str(e))
            return
        for w in (self.copy_url, self.copy_token, self.show_token):
            w.setEnabled(running)
        if running:
            self.state.setText(f"Serving at {self.api.url}. Example: curl {self.api.url}/models "
                               f"-H \"Authorization: Bearer <token>\"")
        elif self.api.error:
            self.state.setText(self.api.error)
        else:
            self.state.setText("Off: nothing listens.")
