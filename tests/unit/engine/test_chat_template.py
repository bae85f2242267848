from engine.chat_template import CHATML, make_formatter

MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]


def test_model_template_is_used_when_sound():
    tpl = "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"
    fmt = make_formatter(tpl, bos_token="<s>")
    assert fmt.origin == "model" and fmt.note == ""
    assert fmt.render(MSGS) == "[system]Be brief.[user]Hi?[assistant]"


def test_missing_template_falls_back_to_chatml_with_a_note():
    fmt = make_formatter(None)
    assert fmt.origin == "fallback" and "no chat template" in fmt.note
    assert fmt.render(MSGS).endswith("<|im_start|>assistant\n")
    assert fmt.source == CHATML


def test_template_escaping_the_sandbox_is_rejected():
    hostile = "{{ ''.__class__.__mro__[1].__subclasses__() }}{% for m in messages %}{{ m.content }}{% endfor %}"
    fmt = make_formatter(hostile)
    assert fmt.origin == "fallback"
    assert "sandbox" in fmt.note


def test_template_mutating_objects_is_rejected():
    hostile = "{% set _ = messages.append({'role': 'user', 'content': 'x'}) %}{% for m in messages %}{{ m.content }}{% endfor %}"
    fmt = make_formatter(hostile)
    assert fmt.origin == "fallback"


def test_broken_template_is_rejected_with_reason():
    fmt = make_formatter("{% for m in messages %}{{ m.content }")
    assert fmt.origin == "fallback" and "could not be used" in fmt.note


def test_template_that_raises_is_rejected():
    fmt = make_formatter("{{ raise_exception('System role not supported') }}")
    assert fmt.origin == "fallback" and "System role not supported" in fmt.note


def test_template_that_drops_the_user_message_is_rejected():
    fmt = make_formatter("nothing here")
    assert fmt.origin == "fallback" and "drops the user's message" in fmt.note


# ---------------------------------------------------------------------------- rendering caps

import time  # noqa: E402

import pytest  # noqa: E402

from engine.chat_template import RENDER_TIMEOUT_S, merge_turns  # noqa: E402
from engine.protocol import EngineError, ErrorKind  # noqa: E402

LOOP = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"


def test_a_template_that_loops_for_ever_fails_the_load_in_bounded_time():
    nested = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}" + LOOP
    t0 = time.monotonic()
    with pytest.raises(EngineError) as e:
        make_formatter(nested, label="looping.gguf")
    assert time.monotonic() - t0 < RENDER_TIMEOUT_S + 3
    assert e.value.kind == ErrorKind.UNSUPPORTED_FORMAT and e.value.environment
    assert "chat template in 'looping.gguf'" in e.value.message and "took longer than" in e.value.message


def test_a_huge_range_fails_the_load_naming_the_template_not_as_internal():
    with pytest.raises(EngineError) as e:
        make_formatter("{% for i in range(10**9) %}{% endfor %}" + LOOP, label="ranged.gguf")
    assert e.value.kind == ErrorKind.UNSUPPORTED_FORMAT
    assert "chat template in 'ranged.gguf'" in e.value.message and "Range too big" in e.value.message


@pytest.mark.parametrize("bomb", [
    "{{ 'a' * 10**10 }}",
    "{% set ns = namespace(a='xxxxxxxx') %}{% for i in range(60) %}{% set ns.a = ns.a ~ ns.a %}{% endfor %}",
    "{{ 'a'|center(10**10) }}",
    "{{ 'a'.rjust(10**10) }}",
    "{% set ns = namespace(a='xy') %}{% for i in range(40) %}{% set ns.a = ns.a|replace('', ns.a) %}{% endfor %}",
    "{% set s = 'a' * 100000 %}{{ range(100000)|join(s) }}",
    "{% set s = 'a' * 100000 %}{% set x %}{% for i in range(100000) %}{{ s }}{% endfor %}{% endset %}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '%0999999999d' % 1 }}",
    "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
])
def test_a_template_building_huge_text_is_stopped_before_it_allocates(bomb):
    t0 = time.monotonic()
    with pytest.raises(EngineError) as e:
        make_formatter(bomb + LOOP, label="bomb.gguf")
    assert time.monotonic() - t0 < 1.5    # refused by size, not by the clock
    assert "chat template in 'bomb.gguf'" in e.value.message


def test_a_conversation_that_makes_the_template_fail_later_is_a_clear_error():
    """Passing the load-time probe does not make a template safe for every conversation."""
    tpl = "{% for m in messages %}{% if 'loop' in m.content %}{% for i in range(100000) %}" \
          "{% for j in range(100000) %}{% endfor %}{% endfor %}{% endif %}{{ m.content }}{% endfor %}"
    fmt = make_formatter(tpl, label="picky.gguf")
    with pytest.raises(EngineError) as e:
        fmt.render([{"role": "user", "content": "please loop"}])
    assert e.value.kind == ErrorKind.BAD_INPUT and "chat template of 'picky.gguf'" in e.value.message


ALTERNATING = (     # as Llama 2 and Mistral files have it
    "{% if messages[0].role == 'system' %}{% set turns = messages[1:] %}{% else %}{% set turns = messages %}"
    "{% endif %}{% for m in turns %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "[{{ m.role }}]{{ m.content }}{% endfor %}[assistant]"
)


def test_an_alternation_template_keeps_working_after_a_reply_that_failed():
    """A failed or cut-off reply is not sent, leaving two user messages in a row."""
    fmt = make_formatter(ALTERNATING, label="strict.gguf")
    assert fmt.origin == "model"
    history = [{"role": "user", "content": "Here is my log: ERROR disk full"},
               {"role": "user", "content": "What went wrong?"}]
    text = fmt.render(history)
    assert text == "[user]Here is my log: ERROR disk full\n\nWhat went wrong?[assistant]"
    later = history + [{"role": "assistant", "content": "The disk."}, {"role": "user", "content": "Thanks"},
                       {"role": "user", "content": "And now?"}]
    assert fmt.render(later).endswith("[assistant]The disk.[user]Thanks\n\nAnd now?[assistant]")


def test_merge_turns_keeps_every_message_text():
    merged = merge_turns([{"role": "system", "content": "S"}, {"role": "user", "content": "a "},
                          {"role": "user", "content": " b"}, {"role": "assistant", "content": "c"},
                          {"role": "assistant", "content": "d"}, {"role": "user", "content": "e"}])
    assert merged == [{"role": "system", "content": "S"}, {"role": "user", "content": "a\n\nb"},
                      {"role": "assistant", "content": "c\n\nd"}, {"role": "user", "content": "e"}]


def test_content_spans_cover_each_message_even_through_trim():
    fmt = make_formatter("{% for m in messages %}<{{ m.role }}>{{ m.content | trim }}</s>{% endfor %}")
    text = fmt.render([{"role": "user", "content": "  hello <|x|>  "}, {"role": "assistant", "content": "hi"}])
    assert text == "<user>hello <|x|></s><assistant>hi</s>"
    assert [text[a:b] for a, b in text.content_spans] == ["hello <|x|>", "hi"]


# An interruption that lands in a weakref callback during garbage collection is printed and
# swallowed by the interpreter (an "unraisable" exception); the deadline fires again, so the
# render still stops. What this test guards is that none escapes into the code after a render.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_deadline_that_fires_as_a_render_ends_never_leaks(monkeypatch):
    """The deadline interrupts the rendering thread; one that fires just as a render finishes
    must be taken back, not raised later in unrelated code."""
    from engine import chat_template
    fmt = make_formatter("{% for i in range(3000) %}{% endfor %}" + LOOP)
    monkeypatch.setattr(chat_template, "RENDER_TIMEOUT_S", 0.002)
    outcomes = set()
    for _ in range(300):
        try:
            fmt.render([{"role": "user", "content": "hi"}])
            outcomes.add("ok")
        except EngineError as e:
            assert "took longer than" in e.message
            outcomes.add("late")
        sum(range(20000))       # bytecode in which a stray interruption would surface
    assert outcomes            # both kinds usually occur; neither may escape as anything else
