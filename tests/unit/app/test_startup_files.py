"""Damaged, odd or newer files in the data dir never stop Lantern from starting, and nothing
in them is lost: a bad row reads as far as it can, a damaged file is kept and read back, a
newer file is never written to."""

import sqlite3

import tomli_w

from app import conversations as c
from app import settings as s


def _store_with_a_chat(path):
    store = c.ConversationStore(path)
    conv = store.create_conversation("Disk trouble", {"temperature": 0.2})
    store.add_message(conv.id, "user", "Why is the disk full?")
    store.add_message(conv.id, "assistant", "Logs filled it.", meta={"model": "m"})
    store.close()
    return conv.id


def test_a_bad_row_is_read_as_far_as_it_can_be_and_left_on_disk(tmp_path):
    path = tmp_path / "conversations.sqlite"
    cid = _store_with_a_chat(path)
    db = sqlite3.connect(path)
    db.execute("UPDATE messages SET meta='{not json', content=CAST(x'4c6f677320ff66696c6c6564' AS TEXT) "
               "WHERE role='assistant'")
    db.execute("UPDATE conversations SET settings='[1, 2]', created='yesterday'")
    db.execute("UPDATE messages SET meta='[]' WHERE role='user'")
    db.commit()
    db.close()

    store = c.open_store(path)
    assert store.problem == ""
    [conv] = store.conversations()
    assert conv.title == "Disk trouble" and conv.settings == {} and conv.created == 0.0
    user, reply = store.messages(cid)
    assert user.meta == {} and reply.meta == {}
    assert reply.content == "Logs \ufffdfilled"
    store.close()
    raw = sqlite3.connect(path).execute("SELECT meta FROM messages WHERE role='assistant'").fetchone()[0]
    assert raw == "{not json"      # the row itself is not rewritten


def test_a_file_that_is_not_a_database_is_set_aside_and_a_fresh_one_opens(tmp_path):
    path = tmp_path / "conversations.sqlite"
    junk = b"this is not a database at all\n" * 200
    path.write_bytes(junk)
    store = c.open_store(path)
    assert "damaged" in store.problem and str(path) in store.problem
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("conversations.sqlite.damaged-")]
    assert len(kept) == 1 and kept[0].read_bytes() == junk and str(kept[0]) in store.problem
    assert store.conversations() == []
    store.create_conversation("works")
    store.close()


def test_a_damaged_file_is_kept_and_its_readable_conversations_come_back(tmp_path):
    path = tmp_path / "conversations.sqlite"
    cid = _store_with_a_chat(path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=DELETE")
    for i in range(300):       # enough rows for the messages index to span pages of its own
        db.execute("INSERT INTO messages(conversation_id, role, content, status, created, meta) "
                   "VALUES (?, 'user', ?, 'complete', 0, '{}')", (cid, f"filler {i} " * 20))
    db.commit()
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name='messages_by_conversation'").fetchone()[0]
    page = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    data = bytearray(path.read_bytes())
    data[(root - 1) * page:(root - 1) * page + 100] = b"\xff" * 100    # an index page destroyed
    path.write_bytes(bytes(data))

    store = c.open_store(path)
    assert "damaged" in store.problem and "could be read back" in store.problem
    [conv] = store.conversations()
    texts = [m.content for m in store.messages(conv.id)]
    assert texts[:2] == ["Why is the disk full?", "Logs filled it."]
    assert conv.settings == {"temperature": 0.2}
    assert any(p.name.startswith("conversations.sqlite.damaged-") for p in tmp_path.iterdir())
    store.close()


def test_a_newer_file_is_left_untouched_and_this_version_uses_its_own(tmp_path):
    path = tmp_path / "conversations.sqlite"
    _store_with_a_chat(path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute(f"PRAGMA user_version={c.SCHEMA_VERSION + 1}")
    db.close()
    before = path.read_bytes()

    store = c.open_store(path)
    assert "newer version" in store.problem and "left untouched" in store.problem
    assert store.path == str(tmp_path / f"conversations.schema{c.SCHEMA_VERSION}.sqlite")
    store.create_conversation("while the newer file waits")
    store.close()
    assert path.read_bytes() == before
    again = c.open_store(path)           # the next start finds the same two files
    assert [x.title for x in again.conversations()] == ["while the newer file waits"]
    again.close()


def test_a_newer_settings_file_is_read_and_never_written_over(tmp_path):
    f = tmp_path / "settings.toml"
    f.write_bytes(tomli_w.dumps({"version": s.SETTINGS_VERSION + 1, "chat": {"top_k": 7, "new_knob": "x"},
                                 "future": {"a": 1}}).encode())
    before = f.read_bytes()
    settings = s.Settings(f)
    assert settings.get("chat", "top_k") == 7 and settings.get("chat", "temperature") == 0.7
    assert "newer version" in settings.problem and str(f) in settings.problem
    settings.set("chat", "top_k", 9)
    settings.save()
    assert f.read_bytes() == before
    assert not (tmp_path / "settings.toml.bad").exists()


def test_a_setting_of_the_wrong_kind_falls_back_to_its_default_with_a_note(tmp_path):
    f = tmp_path / "settings.toml"
    f.write_bytes(tomli_w.dumps({"version": s.SETTINGS_VERSION, "chat": {"top_k": "many", "temperature": 1},
                                 "model": "oops"}).encode())
    settings = s.Settings(f)
    assert settings.get("chat", "top_k") == 40 and settings.get("chat", "temperature") == 1
    assert settings.get("model", "path") == ""
    assert "chat.top_k" in settings.problem and "model" in settings.problem
