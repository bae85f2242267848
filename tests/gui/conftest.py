"""Fixtures for the window tests: a real window on a temporary data dir, with the real engine
process and the real default model (it loads in well under a second)."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before any Qt import

import pytest  # noqa: E402

from app import paths as app_paths  # noqa: E402
from app.settings import Settings  # noqa: E402

ENGINE_TIMEOUT_MS = 60_000

# Deterministic, short replies keep the suite fast; tests that need more say so.
FAST_CHAT = {"temperature": 0.0, "max_tokens": 24, "n_ctx": 2048, "seed": 1}


def prepare_settings(data_dir, **chat) -> app_paths.Paths:
    """Write the app settings a window on ``data_dir`` will start with."""
    paths = app_paths.resolve(data_dir)
    settings = Settings(paths.settings_file)
    for key, value in {**FAST_CHAT, **chat}.items():
        settings.set("chat", key, value)
    settings.save()
    return paths


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def make_window(qtbot, data_dir):
    """make_window(start_engine=True, wait_model=True, data_dir=None, **chat) -> MainWindow"""
    from app.gui import create_window

    made = []

    def make(*, start_engine: bool = True, wait_model: bool = True, directory=None, **chat):
        directory = directory or data_dir
        paths = prepare_settings(directory, **chat) if (chat or not (directory / "settings.toml").exists()) \
            else app_paths.resolve(directory)
        window = create_window(paths, start_engine=start_engine)
        made.append(window)
        window.show()
        qtbot.waitExposed(window)
        # Shortcuts (Ctrl+N, Esc) only reach the active window.
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow, timeout=5_000)
        if start_engine and wait_model:
            qtbot.waitUntil(lambda: bool(window.session.model), timeout=ENGINE_TIMEOUT_MS)
        return window

    yield make
    for window in made:
        window.shutdown()
        window.store.close()
        window.close()
        window.deleteLater()


@pytest.fixture
def wait_reply(qtbot):
    """wait_reply(window) -> a context manager that waits for the next reply to end;
    its .args are (conversation id, request id, stored Message)."""
    def wait(window, timeout: int = ENGINE_TIMEOUT_MS):
        return qtbot.waitSignal(window.session.reply_ended, timeout=timeout)
    return wait


@pytest.fixture
def prepare():
    """prepare(data_dir, **chat) -> Paths, with the app settings written."""
    return prepare_settings
