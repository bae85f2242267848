import pytest

from engine.context import answer_room, fit_messages
from engine.protocol import EngineError


def render(msgs):
    return " ".join(f"<{m['role']}> {m['content']}" for m in msgs)


def count(text):
    return text.split()


def turns(n, words=10):
    out = []
    for i in range(n):
        out.append({"role": "user", "content": " ".join([f"u{i}"] * words)})
        out.append({"role": "assistant", "content": " ".join([f"a{i}"] * words)})
    return out


def test_everything_fits_nothing_dropped():
    msgs = [{"role": "system", "content": "sys"}] + turns(2) + [{"role": "user", "content": "now"}]
    fitted = fit_messages(msgs, n_ctx=1000, max_tokens=100, render=render, tokenize=count)
    assert fitted.dropped_messages == 0
    assert fitted.text == render(msgs)
    assert fitted.n_tokens == len(count(render(msgs)))


def test_oldest_turns_are_dropped_whole_and_counted():
    msgs = [{"role": "system", "content": "sys"}] + turns(5) + [{"role": "user", "content": "now"}]
    fitted = fit_messages(msgs, n_ctx=100, max_tokens=40, render=render, tokenize=count)
    assert fitted.n_tokens <= 100 - 40
    assert fitted.dropped_messages > 0 and fitted.dropped_messages % 2 == 0, "a turn is a user and its reply"
    assert fitted.text.startswith("<system> sys"), "the system prompt is never dropped"
    assert fitted.text.endswith("<user> now"), "the new question is never dropped"
    assert "u0" not in fitted.text and "u4" in fitted.text, "the oldest go first"


def test_answer_room_is_capped_at_half_the_window():
    assert answer_room(4096, 100_000) == 2048
    assert answer_room(4096, 256) == 256


def test_a_message_too_long_for_the_window_is_an_actionable_error():
    msgs = [{"role": "user", "content": "w " * 500}]
    with pytest.raises(EngineError) as e:
        fit_messages(msgs, n_ctx=256, max_tokens=64, render=render, tokenize=count)
    assert e.value.kind == "context_overflow"
    assert "Context length" in e.value.message and "256" in e.value.message


@pytest.mark.parametrize("msgs", [[], [{"role": "assistant", "content": "x"}], [{"role": "user", "content": "  "}]])
def test_conversation_must_end_with_a_user_message(msgs):
    with pytest.raises(EngineError) as e:
        fit_messages(msgs, n_ctx=256, max_tokens=64, render=render, tokenize=count)
    assert e.value.kind == "bad_input"
