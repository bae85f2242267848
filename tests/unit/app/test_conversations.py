import sqlite3
import time

import pytest

from app import conversations as c


@pytest.fixture
def store(tmp_path):
    s = c.ConversationStore(tmp_path / "conversations.sqlite")
    yield s
    s.close()


def test_wal_mode_and_schema_version(store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == c.SCHEMA_VERSION


def test_conversations_newest_first_and_filter(store):
    a = store.create_conversation("Payments outage")
    time.sleep(0.01)
    b = store.create_conversation("Recipe ideas")
    assert [x.id for x in store.conversations()] == [b.id, a.id]
    time.sleep(0.01)
    store.add_message(a.id, "user", "hello")  # activity moves it to the top
    assert [x.id for x in store.conversations()] == [a.id, b.id]
    assert [x.title for x in store.conversations("outage")] == ["Payments outage"]
    assert store.conversations("100%") == [], "LIKE wildcards in the filter are literal"


def test_rename_delete_and_settings(store):
    conv = store.create_conversation("x", {"temperature": 0.2})
    store.rename(conv.id, "  Renamed  ")
    store.set_settings(conv.id, {"temperature": 0.5, "system_prompt": "hi"})
    got = store.conversation(conv.id)
    assert got.title == "Renamed" and got.settings["temperature"] == 0.5
    store.add_message(conv.id, "user", "q")
    store.delete_conversation(conv.id)
    assert store.conversation(conv.id) is None
    assert store.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0, "messages go with it"


def test_messages_are_durable_as_soon_as_written(tmp_path):
    path = tmp_path / "conversations.sqlite"
    store = c.ConversationStore(path)
    conv = store.create_conversation("t")
    store.add_message(conv.id, "user", "sent before generation")
    reply = store.add_message(conv.id, "assistant", "partial ans", status=c.STREAMING)
    # A second connection (another process, or the app after a crash) sees both rows now,
    # without close() or an explicit commit.
    other = sqlite3.connect(path)
    rows = other.execute("SELECT role, content, status FROM messages ORDER BY id").fetchall()
    other.close()
    assert rows == [("user", "sent before generation", "complete"), ("assistant", "partial ans", "streaming")]
    # The app "crashes" here (no close); on the next start the cut-off reply is interrupted.
    again = c.ConversationStore(path)
    assert again.recovered_interrupted == 1
    assert again.message(reply.id).status == c.INTERRUPTED
    assert again.message(reply.id).content == "partial ans"
    again.close()
    store.close()


def test_update_and_delete_from(store):
    conv = store.create_conversation("t")
    u1 = store.add_message(conv.id, "user", "one")
    a1 = store.add_message(conv.id, "assistant", "", status=c.STREAMING)
    store.update_message(a1.id, content="answer", status=c.COMPLETE, meta={"ttft_ms": 12.5})
    u2 = store.add_message(conv.id, "user", "two")
    store.add_message(conv.id, "assistant", "answer two")
    assert store.message(a1.id).meta == {"ttft_ms": 12.5}
    store.delete_messages_from(conv.id, u2.id)  # regenerate/edit: drop the last turn
    assert [m.id for m in store.messages(conv.id)] == [u1.id, a1.id]


def test_newer_schema_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "conversations.sqlite"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={c.SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="newer Lantern"):
        c.ConversationStore(path)


@pytest.mark.parametrize("text, title", [
    ("What is the capital of France?", "What is the capital of France?"),
    ("  first line\nsecond line", "first line"),
    ("word " * 30, "word word word word word word word word word…"),
    ("   ", "New chat"),
])
def test_title_from_first_message(text, title):
    assert c.title_from(text) == title
