"""The window opens whatever state the data dir's files are in, and says what it found."""

from __future__ import annotations

import sqlite3

import tomli_w

from app import conversations as conv
from app import settings as app_settings
from app.conversations import ConversationStore


def _seed(paths) -> int:
    store = ConversationStore(paths.conversations_db)
    c = store.create_conversation("Disk trouble")
    store.add_message(c.id, "user", "Why is the disk full?")
    store.add_message(c.id, "assistant", "Logs filled it.", meta={"model": "m"})
    store.close()
    return c.id


def _banner_text(window, key) -> str:
    b = window.banners.banner(key)
    return b.all_text() if b is not None and b.isVisible() else ""


def test_a_bad_row_does_not_stop_the_window(qtbot, make_window, prepare, data_dir):
    paths = prepare(data_dir)
    _seed(paths)
    db = sqlite3.connect(paths.conversations_db)
    db.execute("UPDATE messages SET meta='{broken' WHERE role='assistant'")
    db.execute("UPDATE conversations SET settings='not json'")
    db.commit()
    db.close()
    w = make_window(start_engine=False)
    assert [c.text() for c in w.chat_view.cards()] == ["Why is the disk full?", "Logs filled it."]
    assert w.sidebar.titles() == ["Disk trouble"]


def test_a_damaged_conversations_file_is_set_aside_and_the_window_says_so(qtbot, make_window, prepare, data_dir):
    paths = prepare(data_dir)
    paths.conversations_db.write_bytes(b"garbage, not SQLite\n" * 100)
    w = make_window(start_engine=False)
    text = _banner_text(w, "conversations")
    assert "damaged" in text and "conversations.sqlite.damaged-" in text
    assert w.current_id is not None        # a fresh conversation to type into
    kept = [p for p in data_dir.iterdir() if p.name.startswith("conversations.sqlite.damaged-")]
    assert kept and kept[0].read_bytes() == b"garbage, not SQLite\n" * 100


def test_a_newer_conversations_file_and_settings_are_left_alone(qtbot, make_window, prepare, data_dir):
    paths = prepare(data_dir)
    _seed(paths)
    db = sqlite3.connect(paths.conversations_db)
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute(f"PRAGMA user_version={conv.SCHEMA_VERSION + 1}")
    db.close()
    newer_settings = {"version": app_settings.SETTINGS_VERSION + 1, "chat": {"max_tokens": 24, "temperature": 0.0},
                      "tomorrow": {"x": 1}}
    paths.settings_file.write_bytes(tomli_w.dumps(newer_settings).encode())
    db_before, settings_before = paths.conversations_db.read_bytes(), paths.settings_file.read_bytes()

    w = make_window(start_engine=False)
    assert "newer version" in _banner_text(w, "conversations")
    assert "newer version" in _banner_text(w, "settings")
    assert w.settings.get("chat", "max_tokens") == 24
    w.new_chat()
    w.shutdown()                                  # saves settings, closes the engine
    assert paths.conversations_db.read_bytes() == db_before
    assert paths.settings_file.read_bytes() == settings_before
