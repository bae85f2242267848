"""The window's start-up: the Qt application, logging, the theme, and the parts the window needs.

``run_gui(paths)`` is what ``lantern`` runs. ``create_window(paths)`` builds the same window
without entering the event loop, for tests and benchmark scripts:

    app = create_app()
    window = create_window(paths)        # starts the engine and loads the model
    window.show()
    window.send_prompt("Hello")
    ...
    window.close()                       # stops the engine, saves settings
    window.store.close()
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from importlib import resources
from pathlib import Path

from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import QApplication

from app.conversations import ConversationStore, open_store
from app.paths import Paths
from app.settings import Settings
from engine import residency
from engine.channel import ENV_DATA_DIR, ENV_MODE
from ui.client import EngineClient, engine_python
from ui.main_window import MainWindow

log = logging.getLogger(__name__)

LOG_BYTES = 1_000_000
LOG_BACKUPS = 3
FONT_POINTS = 10.5
# The first installed family wins; the list covers the usual desktops, DejaVu is the fallback.
FONT_FAMILIES = ("Inter", "Segoe UI", "SF Pro Text", "Cantarell", "Noto Sans", "Ubuntu", "DejaVu Sans")


_file_handler: logging.Handler | None = None


def configure_logging(paths: Paths, level: int = logging.INFO) -> None:
    """Log the app to ``paths.app_log`` (rotating). Idempotent; a window on another data dir
    (tests build many) moves the log there instead of adding a second file."""
    global _file_handler
    root = logging.getLogger()
    target = str(paths.app_log)
    if _file_handler is not None:
        if getattr(_file_handler, "baseFilename", None) == target:
            return
        root.removeHandler(_file_handler)
        _file_handler.close()
        _file_handler = None
    try:
        handler = logging.handlers.RotatingFileHandler(target, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS,
                                                       encoding="utf-8")
    except OSError as e:
        log.warning("cannot write the app log %s: %s", target, e)
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    _file_handler = handler
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)


def load_stylesheet() -> str:
    try:
        return resources.files("assets").joinpath("style.qss").read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError, OSError) as e:
        # An editable install made before assets/ became a package cannot import it; the
        # file is still next to us in a source checkout.
        beside = Path(__file__).resolve().parent.parent / "assets" / "style.qss"
        if beside.is_file():
            return beside.read_text(encoding="utf-8")
        log.warning("stylesheet not found (%s); using Qt's default look", e)
        return ""


def apply_theme(app: QApplication) -> None:
    installed = set(QFontDatabase.families())
    family = next((f for f in FONT_FAMILIES if f in installed), app.font().family())
    font = QFont(family)
    font.setPointSizeF(FONT_POINTS)
    app.setFont(font)
    app.setStyleSheet(load_stylesheet())


def create_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication (the existing one if there is one), themed."""
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv if argv is not None else sys.argv[:1]))
    app.setApplicationName("Lantern")
    app.setApplicationDisplayName("Lantern")
    app.setOrganizationName("Lantern")
    apply_theme(app)
    return app


def create_window(paths: Paths, *, start_engine: bool = True, settings: Settings | None = None,
                  store: ConversationStore | None = None, client: EngineClient | None = None) -> MainWindow:
    """A ready window on ``paths``; any part not given is created the standard way."""
    create_app()
    configure_logging(paths)
    settings = settings or Settings(paths.settings_file)
    store = store or open_store(paths.conversations_db)
    client = client or EngineClient(None, engine_log_path=str(paths.engine_log), python=engine_python(),
                                    extra_env=engine_env(paths))
    return MainWindow(paths, settings, store, client, start_engine=start_engine)


def engine_env(paths: Paths) -> dict:
    """The window's engine locks and serves the window's data dir, and ends with the window."""
    return {ENV_DATA_DIR: str(paths.data_dir), ENV_MODE: residency.WINDOW}


def data_dir_taken(paths: Paths) -> str:
    """'' when this window may start its engine in its data dir, else a sentence for the person."""
    return _data_dir_taken(paths)[0]


def _data_dir_taken(paths: Paths) -> tuple[str, bool]:
    """(why this window may not open, or ''; whether the window already open came to the front).

    One engine per data dir: an engine a CLI verb kept running steps aside (it stops after its
    current write); a window's or `lantern serve`'s is left alone and named, and this window
    does not open, so it neither starts a second writer nor marks the other's live reply
    interrupted (the conversation store is opened only after this check)."""
    if not residency.engine_running(paths.data_dir):
        return "", False
    info = residency.read_info(paths.data_dir)
    if info is not None and info.mode == residency.CLI:
        from app.engine_cli import stop

        log.info("stopping the engine the command line kept in %s (pid %d)", paths.data_dir, info.pid)
        ok, message = stop(paths.data_dir, wait_s=120.0)
        if ok:
            return "", False
        return f"Lantern could not take over its data folder {paths.data_dir}: {message}.", False
    other = "another data folder (lantern --data-dir FOLDER)"
    if info is not None and info.mode == residency.SERVE:
        return (f"`lantern serve` (process {info.pid}) is working in the data folder {paths.data_dir}. "
                f"Stop it (Ctrl+C in its terminal, or `lantern engine stop`) to open the window here, "
                f"or open the window on {other}."), False
    pid = f" (process {info.pid})" if info is not None else ""
    shown = info is not None and _show_window(info)
    front = " It was brought to the front." if shown else ""
    return (f"Lantern is already open on the data folder {paths.data_dir}{pid}.{front} Use that window; only "
            f"one Lantern may work in a data folder at a time. To open a second window, start it on {other}."), shown


def _show_window(info: residency.EngineInfo) -> bool:
    """Ask the window that owns the engine to come to the front; whether it was asked."""
    from engine import protocol as p
    from engine.channel import AttachRefused, LineChannel

    try:
        chan = LineChannel.attach(info.port, info.token, info.host, timeout=5.0)
    except (OSError, AttachRefused):
        return False
    try:
        ev = chan.call(p.ShowWindow())
        return isinstance(ev, p.WindowShown) and ev.shown
    except OSError:
        return False
    finally:
        chan.close()


def _log_unhandled(exc_type, exc, tb) -> None:
    # A bug in a slot must not vanish into a terminal nobody sees; it goes to the app log.
    log.critical("unhandled exception", exc_info=(exc_type, exc, tb))
    sys.__excepthook__(exc_type, exc, tb)


def run_gui(paths: Paths) -> int:
    app = create_app()
    configure_logging(paths)
    sys.excepthook = _log_unhandled
    log.info("starting the window on %s", paths.data_dir)
    taken, shown = _data_dir_taken(paths)
    if taken:
        log.warning("not opening: %s", taken)
        print(f"lantern: {taken}", file=sys.stderr)
        if app.platformName() not in ("offscreen", "minimal") and not shown:
            from PySide6.QtWidgets import QMessageBox

            QMessageBox.information(None, "Lantern is already open", taken)
        return 1
    window = create_window(paths)
    window.show()
    code = app.exec()
    window.shutdown()
    window.store.close()
    log.info("window closed (%d)", code)
    return int(code)
