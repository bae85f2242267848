"""The sidebar, switching, renaming, deleting, restarting, and per-conversation settings."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from app import conversations as conv
from app.conversations import ConversationStore


def seed(paths, chats: dict[str, list[tuple[str, str]]]) -> dict[str, int]:
    """Conversations with messages, written straight to the store; oldest first."""
    store = ConversationStore(paths.conversations_db)
    ids = {}
    for title, messages in chats.items():
        c = store.create_conversation(title)
        for role, text in messages:
            store.add_message(c.id, role, text)
        ids[title] = c.id
    store.close()
    return ids


def card_texts(window) -> list[str]:
    return [c.text() for c in window.chat_view.cards()]


def test_switch_conversations_and_filter_by_title(qtbot, make_window, prepare, data_dir):
    ids = seed(prepare(data_dir), {
        "Apples and pears": [("user", "Which apples keep longest?"), ("assistant", "Late-season ones, like Fuji.")],
        "Weather in Oslo": [("user", "Is Oslo rainy in May?")],
    })
    w = make_window(start_engine=False)
    # Newest first, and the newest is open.
    assert w.sidebar.titles() == ["Weather in Oslo", "Apples and pears"]
    assert w.current_id == ids["Weather in Oslo"]
    assert card_texts(w) == ["Is Oslo rainy in May?"]
    assert w.sidebar.list.currentItem().text() == "Weather in Oslo"

    item = w.sidebar.list.item(1)
    rect = w.sidebar.list.visualItemRect(item)
    qtbot.mouseClick(w.sidebar.list.viewport(), Qt.LeftButton, pos=rect.center())
    assert w.current_id == ids["Apples and pears"]
    assert card_texts(w) == ["Which apples keep longest?", "Late-season ones, like Fuji."]
    assert [c.role for c in w.chat_view.cards()] == ["user", "assistant"]
    assert w.title_label.text() == "Apples and pears"
    assert w.sidebar.list.currentItem().text() == "Apples and pears"

    qtbot.keyClicks(w.sidebar.filter_edit, "oslo")
    assert w.sidebar.titles() == ["Weather in Oslo"]
    w.sidebar.filter_edit.setText("no such title")
    assert w.sidebar.titles() == [] and w.sidebar.empty_hint.isVisible()
    w.sidebar.filter_edit.clear()
    assert len(w.sidebar.titles()) == 2


def test_new_chat_rename_and_delete(qtbot, make_window, prepare, data_dir, monkeypatch):
    ids = seed(prepare(data_dir), {"Old notes": [("user", "hello")]})
    w = make_window(start_engine=False)
    qtbot.keyClick(w, Qt.Key_N, Qt.ControlModifier)
    new_id = w.current_id
    assert new_id != ids["Old notes"] and w.sidebar.titles()[0] == "New chat"
    assert w.chat_view.empty_state.isVisible()
    assert len(w.chat_view.empty_state.example_buttons) == 3
    # A second "new chat" while this one is still empty reuses it.
    w.new_chat()
    assert w.current_id == new_id and len(w.store.conversations()) == 2

    # Rename in place: the list edits the item, the store gets the title.
    item = w.sidebar.list.currentItem()
    item.setText("Shopping list")
    assert w.store.conversation(new_id).title == "Shopping list"
    assert w.title_label.text() == "Shopping list"

    # Delete asks first; "Cancel" keeps it, "Delete" removes it and opens the next one.
    asked = []
    monkeypatch.setattr(w, "confirm_delete", lambda title: asked.append(title) or False)
    w.sidebar.list.setFocus()
    qtbot.keyClick(w.sidebar.list, Qt.Key_Delete)
    assert asked == ["Shopping list"] and w.store.conversation(new_id) is not None
    monkeypatch.setattr(w, "confirm_delete", lambda title: True)
    qtbot.keyClick(w.sidebar.list, Qt.Key_Delete)
    assert w.store.conversation(new_id) is None
    assert w.sidebar.titles() == ["Old notes"] and w.current_id == ids["Old notes"]
    assert card_texts(w) == ["hello"]


@pytest.mark.slow
def test_conversations_survive_a_restart(qtbot, make_window, wait_reply, data_dir):
    w = make_window()
    with wait_reply(w) as ended:
        w.send_prompt("Say hello.")
    reply = ended.args[2]
    w.new_chat()
    w.send_prompt("Count to three.") and None
    with wait_reply(w):
        pass
    before = {c.id: [(m.role, m.content, m.status) for m in w.store.messages(c.id)] for c in w.store.conversations()}
    titles = w.sidebar.titles()
    w.close()                       # stops the engine and saves settings
    w.store.close()
    assert w.client.state == "stopped"

    again = make_window(start_engine=False)
    assert again.sidebar.titles() == titles == ["Count to three.", "Say hello."]
    after = {c.id: [(m.role, m.content, m.status) for m in again.store.messages(c.id)]
             for c in again.store.conversations()}
    assert after == before
    again.open_conversation(reply.conversation_id)
    assert card_texts(again) == ["Say hello.", reply.content]
    assert again.chat_view.cards()[-1].stats.text().startswith("TTFT")


def test_settings_dialog_saves_and_resets(qtbot, make_window, prepare, data_dir):
    ids = seed(prepare(data_dir), {"Tuned": [("user", "hi")]})
    w = make_window(start_engine=False)
    qtbot.mouseClick(w.settings_button, Qt.LeftButton)
    dialog = w.settings_dialog
    assert dialog is not None and dialog.isVisible()
    defaults = w.settings.chat_defaults()
    assert dialog.values() == {k: defaults[k] for k in dialog.values()}
    dialog.system_prompt.setPlainText("Answer like a pirate.")
    dialog.inputs["temperature"].setValue(1.3)
    dialog.inputs["n_ctx"].setValue(1024)
    dialog.inputs["seed"].setValue(-1)
    assert dialog.inputs["seed"].text() == "random"
    dialog.accept()
    saved = w.store.conversation(ids["Tuned"]).settings
    assert saved["system_prompt"] == "Answer like a pirate." and saved["temperature"] == 1.3
    assert saved["n_ctx"] == 1024 and saved["seed"] == -1
    messages, _ = w.session.history(ids["Tuned"])
    assert messages[0] == {"role": "system", "content": "Answer like a pirate."}

    dialog = w.open_settings()
    assert dialog.values()["temperature"] == 1.3
    qtbot.mouseClick(dialog.reset_button, Qt.LeftButton)
    assert dialog.values()["system_prompt"] == defaults["system_prompt"]
    assert dialog.values()["n_ctx"] == defaults["n_ctx"]
    dialog.reject()                 # cancelling keeps what was saved
    assert w.store.conversation(ids["Tuned"]).settings["temperature"] == 1.3


def test_history_sent_skips_failed_and_empty_replies(make_window, prepare, data_dir):
    paths = prepare(data_dir, system_prompt="")
    store = ConversationStore(paths.conversations_db)
    c = store.create_conversation("Mixed")
    store.add_message(c.id, "user", "one")
    store.add_message(c.id, "assistant", "half a rep", conv.STOPPED)
    store.add_message(c.id, "user", "two")
    store.add_message(c.id, "assistant", "", conv.FAILED, {"error": "boom"})
    store.add_message(c.id, "assistant", "cut", conv.INTERRUPTED)
    store.add_message(c.id, "user", "three")
    store.close()
    w = make_window(start_engine=False)
    messages, ids = w.session.history(c.id)
    assert messages == [{"role": "user", "content": "one"}, {"role": "assistant", "content": "half a rep"},
                        {"role": "user", "content": "two"}, {"role": "user", "content": "three"}]
    assert len(ids) == 4
    markers = [card.marker.text() for card in w.chat_view.cards()]
    assert markers == ["", "Stopped", "", "Failed: boom", "Interrupted — the engine stopped", ""]
