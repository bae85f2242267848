"""MainWindow: the sidebar, the chat, the composer and the status bar, wired to a ChatSession.

The window is built from parts it is handed (paths, settings, store, engine client), so a test
or a benchmark script can build one without running the application's event loop:

    window = MainWindow(paths, settings, store, client)
    window.show()
    rid = window.send_prompt("Hello")     # as if typed and sent with Enter

Nothing here blocks: model loads, replies and crashes all arrive as signals.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog, QFrame, QHBoxLayout, QLabel, QMainWindow, QMessageBox, QSplitter, QToolButton,
    QVBoxLayout, QWidget,
)

from app.conversations import ConversationStore
from app.paths import Paths
from app.settings import Settings
from ui.banner import BannerArea
from ui.chat_view import ChatView
from ui.client import EngineClient
from ui.composer import Composer
from ui.markdown import warm_up
from ui.session import ChatSession
from ui.settings_dialog import ConversationSettingsDialog
from ui.sidebar import Sidebar
from ui.sources_controller import SourcesController
from ui.status import StatusBar

log = logging.getLogger(__name__)

DEFAULT_SIZE = (1100, 760)
MODEL_SUFFIX = ".gguf"


def _source_paths(mime) -> list[str]:
    """Dropped local files and folders that are not models: they are for indexing."""
    return [u.toLocalFile() for u in mime.urls()
            if u.isLocalFile() and not u.toLocalFile().lower().endswith(MODEL_SUFFIX)] if mime.hasUrls() else []


def _gguf_paths(mime) -> list[str]:
    return [u.toLocalFile() for u in mime.urls()
            if u.isLocalFile() and u.toLocalFile().lower().endswith(MODEL_SUFFIX)] if mime.hasUrls() else []


class MainWindow(QMainWindow):
    def __init__(self, paths: Paths, settings: Settings, store: ConversationStore, client: EngineClient,
                 parent: QWidget | None = None, *, start_engine: bool = True):
        super().__init__(parent)
        self.paths = paths
        self.settings = settings
        self.store = store
        self.client = client
        self.session = ChatSession(store, settings, client, self)
        self.current_id: int | None = None
        self.settings_dialog: ConversationSettingsDialog | None = None
        self.library_dialog = None
        self.api_dialog = None
        # The local OpenAI-compatible API: off unless the person switched it on (Settings menu).
        from app.api_server import LocalApi
        self.local_api = LocalApi(paths.data_dir, settings)
        self._closed = False
        self.setWindowTitle("Lantern")
        self.setObjectName("mainWindow")
        self.setAcceptDrops(True)
        warm_up()

        self._build()
        self._build_menus()
        self.session.data_dir = str(paths.data_dir)
        self.sources = SourcesController(self)
        self._connect()
        self._restore_geometry()

        if settings.problem:
            title = ("Your settings come from a newer Lantern" if getattr(settings, "read_only", False)
                     else "Your settings could not be read")
            self.banners.show_banner("settings", "warning", title, settings.problem)
        if getattr(store, "problem", ""):
            self.banners.show_banner("conversations", "warning", "Your conversations file could not be opened as it "
                                     "was", store.problem)
        if store.recovered_interrupted:
            n = store.recovered_interrupted
            self.banners.show_banner(
                "recovered", "info", "Lantern closed while writing a reply",
                f"{n} cut-off {'reply was' if n == 1 else 'replies were'} kept and marked Interrupted.")

        convs = store.conversations()
        if convs:
            self.open_conversation(convs[0].id)
        else:
            self.new_chat()
        if start_engine:
            n_ctx = self.session.effective_settings(self.current_id)["n_ctx"]
            self.session.load_model(settings.get("model", "path") or "", n_ctx, remember=False)
        self.composer.editor.setFocus()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.sidebar = Sidebar(self.store)
        main = QWidget()
        main.setObjectName("mainPanel")
        col = QVBoxLayout(main)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)

        header = QFrame()
        header.setObjectName("chatHeader")
        row = QHBoxLayout(header)
        row.setContentsMargins(24, 10, 14, 10)
        self.title_label = QLabel("")
        self.title_label.setObjectName("chatTitle")
        self.settings_button = QToolButton()
        self.settings_button.setObjectName("settingsButton")
        self.settings_button.setText("⚙  Settings")
        self.settings_button.setToolTip("Settings of this conversation: system prompt, sampling, context (Ctrl+,)")
        self.settings_button.setCursor(Qt.PointingHandCursor)
        self.settings_button.clicked.connect(self.open_settings)
        row.addWidget(self.title_label, 1)
        row.addWidget(self.settings_button)
        self.header_row = row   # the sources controller adds its buttons here
        col.addWidget(header)

        self.banners = BannerArea()
        col.addWidget(self.banners)
        self.chat_view = ChatView()
        col.addWidget(self.chat_view, 1)

        dock = QWidget()
        dock.setObjectName("composerDock")
        dock_lay = QHBoxLayout(dock)
        dock_lay.setContentsMargins(24, 8, 24, 14)
        self.composer = Composer()
        self.composer.setMaximumWidth(900)
        dock_lay.addWidget(self.composer)
        col.addWidget(dock)

        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(main)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)
        self.status = StatusBar(self.client)
        self.setStatusBar(self.status)

    def _build_menus(self) -> None:
        def action(menu, text, slot, shortcut=None):
            a = QAction(text, self)
            if shortcut is not None:
                a.setShortcut(QKeySequence(shortcut))
            a.triggered.connect(slot)
            menu.addAction(a)
            return a

        file_menu = self.menuBar().addMenu("&File")
        action(file_menu, "&New chat", self.new_chat, QKeySequence.New)
        action(file_menu, "&Open model…", self.choose_model, QKeySequence.Open)
        file_menu.addSeparator()
        action(file_menu, "&Quit", self.close, QKeySequence.Quit)

        chat_menu = self.menuBar().addMenu("&Chat")
        self.stop_action = action(chat_menu, "&Stop reply", self.on_escape, Qt.Key_Escape)
        action(chat_menu, "&Regenerate reply", self.regenerate, "Ctrl+Shift+R")
        action(chat_menu, "&Edit last message", self.edit_last_message, "Ctrl+Shift+E")
        action(chat_menu, "Focus &composer", lambda: self.composer.editor.setFocus(), "Ctrl+L")
        chat_menu.addSeparator()
        action(chat_menu, "Conversation &settings…", self.open_settings, "Ctrl+,")
        action(chat_menu, "Re&name conversation", self.sidebar.rename_current, None)
        models_menu = self.menuBar().addMenu("&Models")
        action(models_menu, "Model &library…", self.open_model_library, "Ctrl+Shift+M")
        settings_menu = self.menuBar().addMenu("&Settings")
        action(settings_menu, "Local &API server…", self.open_api_server, None)
        self.status.model_clicked.connect(self.open_model_library)

    def _connect(self) -> None:
        s = self.session
        s.user_message_stored.connect(self._on_user_message)
        s.reply_started.connect(self._on_reply_started)
        s.reply_updated.connect(self._on_reply_updated)
        s.reply_ended.connect(self._on_reply_ended)
        s.context_trimmed.connect(self._on_context_trimmed)
        s.busy_changed.connect(lambda _busy: self._update_composer())
        s.model_changed.connect(self._on_model_loaded)
        s.model_failed.connect(self._on_model_failed)
        s.conversation_changed.connect(self._on_conversation_changed)
        self.client.engine_crashed.connect(self._on_engine_crashed)
        self.client.engine_started.connect(self._on_engine_started)
        self.client.engine_gave_up.connect(self._on_engine_gave_up)
        self.client.show_requested.connect(self.bring_to_front)
        self.client.engine_started.connect(self._start_local_api)

        self.sidebar.conversation_selected.connect(self.open_conversation)
        self.sidebar.new_chat_requested.connect(self.new_chat)
        self.sidebar.renamed.connect(self.rename_conversation)
        self.sidebar.delete_requested.connect(self.delete_conversation)
        self.composer.send_requested.connect(self._on_send)
        self.composer.stop_requested.connect(self.session.stop)
        self.chat_view.example_chosen.connect(self.send_prompt)
        self.chat_view.regenerate_requested.connect(self.regenerate)
        self.chat_view.edit_requested.connect(self.edit_message)

    # ------------------------------------------------------------------ conversations

    def open_conversation(self, cid: int) -> None:
        c = self.store.conversation(cid)
        if c is None:
            return
        if self.composer.editing_message_id is not None and cid != self.current_id:
            self.composer.cancel_edit()
        self.current_id = cid
        self.sidebar.refresh(cid)
        self.title_label.setText(c.title)
        self.sources.conversation_opened(cid)
        self._reload_view()
        self._update_composer()

    def _reload_view(self) -> None:
        """Show the current conversation as stored, plus the reply streaming into it, if any."""
        cid = self.current_id
        self.chat_view.show_messages(self.store.messages(cid) if cid is not None else [])
        pending = self.session.pending_for(cid) if cid is not None else None
        if pending is not None:
            # The stored row of a streaming reply lags behind; the live card replaces it.
            if pending.message_id is not None:
                self.chat_view.remove_message(pending.message_id)
            self.chat_view.begin_reply(pending.request_id, pending.text)
        self.chat_view.update_actions(self.session.is_busy())

    def new_chat(self) -> None:
        if self.current_id is not None and not self.store.messages(self.current_id):
            self.composer.editor.setFocus()  # this one is still empty: reuse it
            return
        c = self.store.create_conversation("New chat")
        self.sidebar.filter_edit.clear()
        self.open_conversation(c.id)
        self.composer.editor.setFocus()

    def rename_conversation(self, cid: int, title: str) -> None:
        self.store.rename(cid, title)
        self._on_conversation_changed(cid)

    def delete_conversation(self, cid: int, confirm: bool = True) -> bool:
        c = self.store.conversation(cid)
        if c is None:
            return False
        if confirm and not self.confirm_delete(c.title):
            return False
        self.session.discard_conversation(cid)
        self.store.delete_conversation(cid)
        log.info("deleted conversation %d", cid)
        if cid == self.current_id:
            self.current_id = None
            rest = self.store.conversations()
            if rest:
                self.open_conversation(rest[0].id)
            else:
                self.new_chat()
        else:
            self.sidebar.refresh()
        return True

    def confirm_delete(self, title: str) -> bool:
        box = QMessageBox(QMessageBox.Warning, "Delete conversation",
                          f"Delete “{title}” and all its messages? This cannot be undone.",
                          QMessageBox.Cancel, self)
        delete = box.addButton("Delete", QMessageBox.DestructiveRole)
        box.setDefaultButton(QMessageBox.Cancel)   # Enter must not delete by accident
        box.exec()
        return box.clickedButton() is delete

    def _on_conversation_changed(self, cid: int) -> None:
        self.sidebar.refresh(self.current_id)
        if cid == self.current_id:
            c = self.store.conversation(cid)
            if c is not None:
                self.title_label.setText(c.title)

    # ------------------------------------------------------------------ sending

    def send_prompt(self, text: str) -> str | None:
        """Send ``text`` in the current conversation as if typed; returns the request id."""
        self.composer.set_text(text)
        return self._on_send(text)

    def _on_send(self, text: str) -> str | None:
        if self.current_id is None or not text.strip():
            return None
        editing = self.composer.editing_message_id
        if editing is not None:
            rid = self.session.resend_edited(self.current_id, editing, text)
            if rid:
                self._reload_view()
        else:
            rid = self.session.send(self.current_id, text)
        if rid:
            self.composer.clear_after_send()
            self.chat_view.scroll_to_bottom()
        return rid

    def regenerate(self) -> str | None:
        if self.current_id is None:
            return None
        rid = self.session.regenerate(self.current_id)
        if rid:
            self._reload_view()
            self.chat_view.scroll_to_bottom()
        return rid

    def edit_message(self, message_id: int) -> None:
        m = self.store.message(message_id)
        if m is None or m.role != "user" or self.session.is_busy():
            return
        self.composer.begin_edit(message_id, m.content)

    def edit_last_message(self) -> None:
        if self.current_id is None:
            return
        last = next((m for m in reversed(self.store.messages(self.current_id)) if m.role == "user"), None)
        if last is not None:
            self.edit_message(last.id)

    def on_escape(self) -> None:
        if self.session.is_busy():
            self.session.stop()
        elif self.composer.editing_message_id is not None:
            self.composer.cancel_edit()

    def _update_composer(self) -> None:
        active = self.session.active
        if active is None:
            self.composer.set_blocked("")
            self.composer.set_busy(False)
        elif active.conversation_id == self.current_id:
            self.composer.set_blocked("")
            self.composer.set_busy(True)
        else:
            c = self.store.conversation(active.conversation_id)
            where = f"“{c.title}”" if c else "another conversation"
            self.composer.set_busy(False)
            self.composer.set_blocked(f"A reply is being written in {where}; wait for it or stop it (Esc).")
        self.chat_view.update_actions(self.session.is_busy())

    # ------------------------------------------------------------------ session events

    def _on_user_message(self, cid: int, msg) -> None:
        if cid == self.current_id:
            self.chat_view.add_message(msg)
            self.chat_view.scroll_to_bottom()

    def _on_reply_started(self, cid: int, rid: str) -> None:
        if cid == self.current_id and self.chat_view.streaming_card(rid) is None:
            self.chat_view.begin_reply(rid)
        self._update_composer()

    def _on_reply_updated(self, cid: int, rid: str, text: str) -> None:
        if cid == self.current_id:
            self.chat_view.update_reply(rid, text)

    def _on_reply_ended(self, cid: int, rid: str, msg) -> None:
        if cid == self.current_id:
            self.chat_view.end_reply(rid, msg)
        self._update_composer()

    def _on_context_trimmed(self, cid: int, rid: str, left_out: list, n_ctx: int) -> None:
        if cid == self.current_id:
            self.chat_view.show_trimmed(rid, left_out, n_ctx)

    # ------------------------------------------------------------------ model

    def choose_model(self) -> None:
        start = str(Path(self.session.model.get("path") or self.paths.models_dir).parent)
        path, _ = QFileDialog.getOpenFileName(self, "Open a model", start, "GGUF models (*.gguf);;All files (*)")
        if path:
            self.open_model(path)

    def open_model(self, path: str) -> str:
        """Load the model file ``path`` for this and later sessions (kept if it loads)."""
        self.banners.dismiss("model")
        n_ctx = self.session.effective_settings(self.current_id)["n_ctx"]
        return self.session.load_model(path, n_ctx, remember=True)

    def _on_model_loaded(self, info: dict) -> None:
        self.status.show_model(info)
        self.status.sample_memory()     # the engine just grew by the model; show it now
        self.banners.dismiss("model")
        if info.get("template_note"):
            self.banners.show_banner("template", "info", f"Note about {info.get('name') or 'this model'}",
                                     info["template_note"])
        else:
            self.banners.dismiss("template")

    def _on_model_failed(self, path: str, message: str) -> None:
        name = Path(path).name if path else "the default model"
        if self.session.model and "previous model" not in message:
            message += f" {self.session.model.get('name', 'The previous model')} is still loaded."
        self.banners.show_banner("model", "error", f"Could not load {name}", message)

    def dragEnterEvent(self, event):
        if _gguf_paths(event.mimeData()) or _source_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event):
        paths = _gguf_paths(event.mimeData())
        if paths:
            self.add_to_library(paths)
            self.open_model(paths[0])
            event.acceptProposedAction()
            return
        sources = _source_paths(event.mimeData())
        if sources:
            self.sources.add_sources(sources)
            event.acceptProposedAction()

    # ------------------------------------------------------------------ model library

    def open_model_library(self):
        """The library dialog (one at a time); its loads go through the session like any other."""
        from ui.model_library import ModelLibraryDialog

        if self.library_dialog is None or not self.library_dialog.isVisible():
            n_ctx = self.session.effective_settings(self.current_id)["n_ctx"]
            self.library_dialog = ModelLibraryDialog(
                self.paths.data_dir, self.paths.models_dir, n_ctx,
                self.settings.get("model", "hf_endpoint") or "", parent=self)
            self.library_dialog.load_requested.connect(self._load_from_library)
        self.library_dialog.show()
        self.library_dialog.raise_()
        return self.library_dialog

    def _load_from_library(self, path: str, n_ctx: int, n_gpu_layers: int) -> str:
        self.banners.dismiss("model")
        return self.session.load_model(path, n_ctx, remember=True, n_gpu_layers=n_gpu_layers)

    def add_to_library(self, paths: list[str]) -> None:
        """Dropped models join the library too; reading a GGUF header is quick and pure Python."""
        from engine.library import ModelLibrary
        from engine.protocol import EngineError

        try:
            lib = ModelLibrary(self.paths.data_dir / "models.sqlite")
        except EngineError as e:
            log.warning("model library unavailable: %s", e.message)
            return
        try:
            report = lib.add(paths)
        finally:
            lib.close()
        for p, why in report.skipped:
            log.info("not added to the library: %s: %s", p, why)
        if self.library_dialog is not None and self.library_dialog.isVisible():
            self.library_dialog.refresh()

    # ------------------------------------------------------------------ engine health

    def _on_engine_crashed(self, tail: str) -> None:
        self.banners.show_banner(
            "engine", "error", "The engine stopped unexpectedly — restarting it…",
            "Your conversations are safe; a reply that was cut off is kept and marked Interrupted. "
            "The engine's last words:", details=tail)

    def bring_to_front(self) -> None:
        """Lantern was opened again on this data dir: this window is the one to use."""
        if self.isMinimized():
            self.showNormal()
        self.show()
        self.raise_()
        self.activateWindow()

    def _on_engine_started(self, _pid: int) -> None:
        banner = self.banners.banner("engine")
        if banner is not None:
            banner.set_title("The engine stopped unexpectedly and was restarted")

    def _start_local_api(self, _pid: int = 0) -> None:
        """Serve the local API once the engine runs, when the person switched it on."""
        if self.local_api.enabled and not self._closed:
            self.local_api.start()

    def open_api_server(self):
        from ui.api_dialog import ApiServerDialog

        self.api_dialog = ApiServerDialog(self.local_api, self)
        self.api_dialog.open()
        return self.api_dialog

    def _on_engine_gave_up(self, tail: str) -> None:
        self.status.show_gave_up()
        self.banners.show_banner(
            "engine", "error", "The engine keeps crashing, so Lantern stopped restarting it",
            f"The full engine log is at {self.paths.engine_log}. Try another model, or try again.",
            details=tail, actions=[("Try again", self._retry_engine)])

    def _retry_engine(self) -> None:
        self.banners.dismiss("engine")
        path = self.session.model.get("path") or self.settings.get("model", "path") or ""
        self.session.load_model(path, self.session.effective_settings(self.current_id)["n_ctx"], remember=False)

    # ------------------------------------------------------------------ settings

    def open_settings(self) -> ConversationSettingsDialog | None:
        c = self.store.conversation(self.current_id) if self.current_id is not None else None
        if c is None:
            return None
        dialog = ConversationSettingsDialog(
            self.session.effective_settings(c.id), self.settings.chat_defaults(), self,
            title=c.title, n_ctx_train=int(self.session.model.get("n_ctx_train") or 0))
        dialog.accepted.connect(lambda cid=c.id, d=dialog: self._save_conversation_settings(cid, d.values()))
        dialog.finished.connect(dialog.deleteLater)
        self.settings_dialog = dialog
        dialog.open()   # window-modal but not blocking: the event loop (and streaming) goes on
        return dialog

    def _save_conversation_settings(self, cid: int, values: dict) -> None:
        c = self.store.conversation(cid)
        if c is not None:
            # Set from the header, not on the dialog: kept as they are.
            values = {**values, **{k: c.settings[k] for k in ("use_sources", "collections") if k in c.settings}}
        self.store.set_settings(cid, values)
        log.info("saved settings of conversation %d", cid)

    def _restore_geometry(self) -> None:
        geometry = self.settings.get("ui", "window_geometry") or ""
        if not (geometry and self.restoreGeometry(QByteArray.fromBase64(geometry.encode()))):
            self.resize(*DEFAULT_SIZE)
        width = int(self.settings.get("ui", "sidebar_width") or 260)
        self.splitter.setSizes([width, max(400, self.width() - width)])

    # ------------------------------------------------------------------ closing

    def shutdown(self) -> None:
        """Save what is streaming, remember the window, stop the engine. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.session.abandon_all()
        self.settings.set("ui", "window_geometry", bytes(self.saveGeometry().toBase64()).decode())
        self.settings.set("ui", "sidebar_width", int(self.splitter.sizes()[0]))
        try:
            self.settings.save()
        except OSError as e:
            log.warning("could not save settings: %s", e)
        self.status.timer.stop()
        self.local_api.stop()
        self.client.stop()

    def closeEvent(self, event):
        self.shutdown()
        super().closeEvent(event)
