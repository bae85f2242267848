"""When things go wrong: the engine is killed, a model file is bad, the context is too small."""

from __future__ import annotations

import os
import signal

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from app import conversations as conv
from app.conversations import ConversationStore

pytestmark = pytest.mark.slow

ENGINE_MS = 60_000


def test_engine_killed_mid_reply(qtbot, make_window, wait_reply):
    w = make_window(max_tokens=400, temperature=0.7)
    cid = w.current_id
    w.send_prompt("Write a long story about a lighthouse.")
    qtbot.waitUntil(lambda: len(w.chat_view.cards()[-1].text()) > 20, timeout=ENGINE_MS)
    old_pid = w.client.pid
    started = []
    w.client.engine_started.connect(started.append)

    with wait_reply(w) as ended:
        os.kill(old_pid, signal.SIGKILL)
    _, _, reply = ended.args
    assert reply.status == conv.INTERRUPTED and len(reply.content) > 20
    assert w.store.message(reply.id).status == conv.INTERRUPTED
    card = w.chat_view.cards()[-1]
    assert card.marker.text() == "Interrupted — the engine stopped" and card.text() == reply.content

    banner = w.banners.banner("engine")
    assert banner is not None and banner.isVisible()
    assert "restart" in banner.title_label.text().lower()
    details = banner.details.toPlainText()
    assert details and "the engine" in details and details in w.client.stderr_tail() + "\n" + details
    assert w.composer.send_button.text() == "Send"

    # The engine comes back with the model, and the conversation goes on.
    qtbot.waitUntil(lambda: bool(started) and w.client.state == "ready", timeout=ENGINE_MS)
    assert started[0] != old_pid and w.client.pid == started[0]
    assert banner.title_label.text() == "The engine stopped unexpectedly and was restarted"
    w.store.set_settings(cid, {"max_tokens": 16, "temperature": 0.0})
    with wait_reply(w) as ended:
        assert w.send_prompt("Say hello.")
    assert ended.args[2].status == conv.COMPLETE and ended.args[2].content.strip()
    roles = [(m.role, m.status) for m in w.store.messages(cid)]
    assert roles == [("user", conv.COMPLETE), ("assistant", conv.INTERRUPTED),
                     ("user", conv.COMPLETE), ("assistant", conv.COMPLETE)]


def test_bad_model_file_is_named_and_the_previous_model_stays(qtbot, make_window, wait_reply, tmp_path):
    w = make_window()
    good = dict(w.session.model)
    bogus = tmp_path / "x.gguf"
    bogus.write_text("this is a text file, not a model\n" * 4)

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(bogus))])
    drop = QDropEvent(QPointF(200, 200), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    with qtbot.waitSignal(w.session.model_failed, timeout=ENGINE_MS):
        w.dropEvent(drop)
    banner = w.banners.banner("model")
    assert banner is not None and banner.isVisible() and banner.kind == "error"
    assert "x.gguf" in banner.all_text()
    assert w.session.model["path"] == good["path"]
    assert w.settings.get("model", "path") == ""            # a bad file is not remembered
    assert good["name"] in w.status.model_label.text()

    with wait_reply(w) as ended:
        w.send_prompt("Say hello.")
    assert ended.args[2].status == conv.COMPLETE and ended.args[2].meta["model"] == good["name"]


def test_open_model_remembers_a_good_file(qtbot, make_window):
    w = make_window()
    path = w.session.model["path"]
    with qtbot.waitSignal(w.session.model_changed, timeout=ENGINE_MS):
        w.open_model(path)
    assert w.settings.get("model", "path") == path
    assert w.banners.banner("model") is None


def _long_text(topic: str, words: int = 230) -> str:
    base = f"This is a long note about {topic}, written to fill the context window. "
    out = []
    while len(" ".join(out).split()) < words:
        out.append(base)
    return " ".join(out)


def test_left_out_messages_are_announced_and_dimmed(qtbot, make_window, wait_reply, prepare, data_dir):
    paths = prepare(data_dir)
    store = ConversationStore(paths.conversations_db)
    c = store.create_conversation("Long chat", {"n_ctx": 512, "max_tokens": 64, "temperature": 0.0})
    early = []
    for i, topic in enumerate(["gardens", "rivers", "mountains", "cities"]):
        role = "user" if i % 2 == 0 else "assistant"
        early.append(store.add_message(c.id, role, _long_text(topic)).id)
    store.close()

    w = make_window()
    assert w.current_id == c.id
    with qtbot.waitSignal(w.session.context_trimmed, timeout=ENGINE_MS) as trimmed:
        w.send_prompt("Summarise our chat in one line.")
    _, _, left_out, n_ctx = trimmed.args
    assert n_ctx == 512 and left_out and set(left_out) <= set(early)
    assert w.session.model["n_ctx"] == 512, "the model was reloaded with the conversation's context"

    notices = [n for n in w.chat_view.notices() if "left out" in n.text()]
    assert len(notices) == 1 and notices[0].isVisible()
    assert f"{len(left_out)} older message" in notices[0].text() and "512-token" in notices[0].text()
    dimmed = [card for card in w.chat_view.cards() if card.left_out]
    assert [card.message_id for card in dimmed] == left_out
    assert all(card.left_out_label.isVisible() for card in dimmed)
    assert all(card.left_out_label.text() == "not sent: outside the context window" for card in dimmed)
    assert all(card.graphicsEffect() is not None for card in dimmed)

    with wait_reply(w) as ended:
        pass
    reply = ended.args[2]
    assert reply.meta["left_out"] == left_out

    # Reopening the conversation shows the same notice and dimming, from the stored reply.
    w.open_conversation(c.id)
    assert [card.message_id for card in w.chat_view.cards() if card.left_out] == left_out
    assert any("left out" in n.text() for n in w.chat_view.notices())


def test_gave_up_and_template_note_are_shown(qtbot, make_window):
    w = make_window(start_engine=False)
    w.client.engine_gave_up.emit("[lantern] the engine crashed")
    banner = w.banners.banner("engine")
    assert banner is not None and "stopped restarting" in banner.title_label.text()
    assert str(w.paths.engine_log) in banner.text_label.text()
    assert banner.details.toPlainText() == "[lantern] the engine crashed"
    assert w.status.state_label.text() == "Engine stopped after repeated crashes"
    banner.dismiss()
    assert w.banners.banner("engine") is None and not w.banners.isVisible()

    w.client.model_loaded.emit({"id": "x", "path": "/models/odd.gguf", "name": "Odd", "n_ctx": 1024,
                                "n_ctx_train": 4096, "size_bytes": 1, "chat_template": "fallback",
                                "template_note": "This model has no chat template; a generic one is used.",
                                "load_ms": 1.0})
    note = w.banners.banner("template")
    assert note is not None and "no chat template" in note.all_text()
    assert w.status.model_label.text().startswith("Odd") and "1,024" in w.status.model_label.text()


def test_run_gui_opens_the_window_and_exits_cleanly(qtbot, prepare, data_dir, monkeypatch):
    import sys

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.gui import run_gui
    from ui.main_window import MainWindow

    monkeypatch.setattr(sys, "excepthook", sys.excepthook)   # run_gui installs its own
    paths = prepare(data_dir)
    seen = {}

    def close_when_ready():
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        if windows and windows[0].session.model:
            seen["model"] = windows[0].session.model.get("name")
            windows[0].close()
        else:
            QTimer.singleShot(50, close_when_ready)

    QTimer.singleShot(50, close_when_ready)
    QTimer.singleShot(ENGINE_MS, QApplication.instance().quit)     # never hang the suite
    assert run_gui(paths) == 0
    assert seen.get("model")
    log_text = paths.app_log.read_text(encoding="utf-8")
    assert "starting the window" in log_text and "window closed" in log_text
