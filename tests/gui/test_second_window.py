"""A second Lantern on the same data dir brings the first window to the front and opens nothing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_a_second_window_brings_the_first_to_the_front(qtbot, make_window):
    from app.gui import data_dir_taken

    window = make_window()
    window.showMinimized()
    qtbot.waitUntil(window.isMinimized, timeout=5_000)
    message = data_dir_taken(window.paths)
    qtbot.waitUntil(lambda: not window.isMinimized(), timeout=10_000)
    assert "brought to the front" in message and str(window.paths.data_dir) in message
    assert window.client.is_ready()    # its engine goes on, untouched
