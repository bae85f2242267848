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
