"""Sending, streaming, stopping, regenerating and editing, through the real window and engine."""

from __future__ import annotations

import re

import pytest
from PySide6.QtCore import Qt

from app import conversations as conv

pytestmark = pytest.mark.slow

STATS = re.compile(r"^TTFT \d+ ms · \d+\.\d tok/s · \d+ tokens?")
LONG_PROMPT = "Write a long story about a lighthouse."


def test_typed_question_streams_in_and_ends_with_stats(qtbot, make_window, wait_reply):
    w = make_window()
    cid = w.current_id
    question = "What is the capital of France?"
    seen_at_first_token = []

    def on_tokens(rid, text):
        if not seen_at_first_token:
            seen_at_first_token.append([(m.role, m.content, m.status) for m in w.store.messages(cid)])

    w.client.tokens_received.connect(on_tokens)
    lengths = []
    w.session.reply_updated.connect(lambda c, rid, text: lengths.append(len(text)))

    qtbot.keyClicks(w.composer.editor, question)
    assert w.composer.send_button.isEnabled()
    with wait_reply(w) as ended:
        qtbot.keyClick(w.composer.editor, Qt.Key_Return)
        # Written before any token can arrive: the reply is asked for after this row exists.
        stored = w.store.messages(cid)
        assert [(m.role, m.content) for m in stored] == [("user", question)]
        assert w.composer.send_button.text() == "Stop"
        assert w.composer.text() == ""
    _, rid, reply = ended.args

    assert seen_at_first_token and seen_at_first_token[0][0] == ("user", question, conv.COMPLETE)
    assert len(lengths) >= 2, "the reply arrived in several batches"
    assert lengths == sorted(lengths) and lengths[-1] > lengths[0], "the text grew as it streamed"

    assert reply.status == conv.COMPLETE and reply.content.strip()
    for key in ("ttft_ms", "tokens_per_s", "completion_tokens", "prompt_tokens", "model"):
        assert key in reply.meta, key
    card = w.chat_view.cards()[-1]
    assert card.role == "assistant" and card.text() == reply.content
    assert STATS.match(card.stats.text()), card.stats.text()
    assert card.stats.isVisible()
    assert w.composer.send_button.text() == "Send" and not w.composer.send_button.isEnabled()
    # The conversation took its title from the first message.
    assert w.sidebar.titles()[0] == question
    assert w.title_label.text() == question


def test_stop_keeps_the_partial_reply(qtbot, make_window, wait_reply):
    w = make_window(max_tokens=400, temperature=0.7)
    rid = w.send_prompt(LONG_PROMPT)
    assert rid
    qtbot.waitUntil(lambda: len(w.chat_view.cards()[-1].text()) > 40, timeout=60_000)
    with wait_reply(w) as ended:
        qtbot.keyClick(w.composer.editor, Qt.Key_Escape)
    _, _, reply = ended.args
    assert reply.status == conv.STOPPED
    assert len(reply.content) > 40
    stored = w.store.message(reply.id)
    assert stored.status == conv.STOPPED and stored.content == reply.content
    card = w.chat_view.cards()[-1]
    assert card.marker.text() == "Stopped" and card.marker.isVisible()
    assert w.composer.send_button.text() == "Send"
    assert (stored.meta.get("completion_tokens") or 0) < 400


def test_stop_button_and_regenerate_and_edit(qtbot, make_window, wait_reply):
    w = make_window(max_tokens=400, temperature=0.7)
    cid = w.current_id
    w.send_prompt(LONG_PROMPT)
    qtbot.waitUntil(lambda: len(w.chat_view.cards()[-1].text()) > 10, timeout=60_000)
    with wait_reply(w):
        qtbot.mouseClick(w.composer.send_button, Qt.LeftButton)    # the button is Stop now

    # Regenerate: the stopped reply is replaced by a new one.
    w.store.set_settings(cid, {"max_tokens": 16, "temperature": 0.0})
    old = w.store.messages(cid)[-1]
    card = w.chat_view.cards()[-1]
    assert card.regenerate_button.isVisible()
    with wait_reply(w) as ended:
        qtbot.mouseClick(card.regenerate_button, Qt.LeftButton)
    new = ended.args[2]
    msgs = w.store.messages(cid)
    assert [m.role for m in msgs] == ["user", "assistant"]
    # (SQLite may hand the freed row id to the new reply, so compare what the rows hold.)
    assert old.status == conv.STOPPED and msgs[-1].id == new.id and new.status == conv.COMPLETE
    assert w.chat_view.cards()[-1].marker.text() == ""

    # Edit the question: it is replaced, and the reply after it is dropped and written again.
    user_card = w.chat_view.cards()[0]
    assert user_card.edit_button.isVisible()
    qtbot.mouseClick(user_card.edit_button, Qt.LeftButton)
    assert w.composer.editing_message_id == msgs[0].id and w.composer.text() == LONG_PROMPT
    w.composer.editor.selectAll()
    qtbot.keyClicks(w.composer.editor, "Name one colour.")
    with wait_reply(w) as ended:
        qtbot.keyClick(w.composer.editor, Qt.Key_Return)
    msgs = w.store.messages(cid)
    assert [(m.role, m.status) for m in msgs] == [("user", conv.COMPLETE), ("assistant", conv.COMPLETE)]
    assert msgs[0].content == "Name one colour." and msgs[1].id == ended.args[2].id
    assert [c.text() for c in w.chat_view.cards()][0] == "Name one colour."
    assert w.composer.editing_message_id is None


def test_empty_prompt_cannot_be_sent(qtbot, make_window):
    w = make_window(start_engine=False)
    cid = w.current_id
    button = w.composer.send_button
    assert not button.isEnabled()
    qtbot.keyClicks(w.composer.editor, "   ")
    qtbot.keyClick(w.composer.editor, Qt.Key_Return, Qt.ShiftModifier)   # a new line, not a send
    qtbot.keyClicks(w.composer.editor, "  ")
    assert "\n" in w.composer.text()
    assert not button.isEnabled()
    qtbot.keyClick(w.composer.editor, Qt.Key_Return)
    qtbot.mouseClick(button, Qt.LeftButton)
    assert w.send_prompt(" \n\t ") is None
    assert w.store.messages(cid) == []
    assert not w.session.is_busy()
    qtbot.keyClicks(w.composer.editor, "hi")
    assert button.isEnabled()


def test_switching_away_while_streaming_keeps_saving_to_the_right_conversation(qtbot, make_window, wait_reply):
    w = make_window(max_tokens=60)
    first = w.current_id
    w.send_prompt("Tell me about the sea.")
    qtbot.waitUntil(lambda: w.session.active is not None and bool(w.session.active.text), timeout=60_000)
    w.new_chat()
    second = w.current_id
    assert second != first
    assert w.chat_view.cards() == [] and w.chat_view.empty_state.isVisible()
    # Only one reply is written at a time; the composer says where it is.
    assert not w.composer.send_button.isEnabled() and "being written" in w.composer.send_button.toolTip()
    with wait_reply(w) as ended:
        pass
    cid, _, reply = ended.args
    assert cid == first and reply.conversation_id == first and reply.status == conv.COMPLETE
    assert w.store.messages(second) == []
    assert w.chat_view.cards() == []
    w.open_conversation(first)
    texts = [c.text() for c in w.chat_view.cards()]
    assert texts == ["Tell me about the sea.", reply.content]
