"""Hostile chat templates in a real model file (the default model's weights, its template
replaced): the load fails with a message naming the file's template, the previous model
stays, and a strict template keeps working after a reply that failed."""

import sys
import threading
from pathlib import Path

import pytest

from engine import protocol as p
from engine.llm import LlamaBackend
from engine.models import default_model_path
from engine.protocol import EngineError, ErrorKind, Sampling

sys.path.insert(0, str(Path(__file__).parent))
from gguf_writer import with_chat_template  # noqa: E402

pytestmark = pytest.mark.slow

LOOP = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
STRICT = ("{% if messages[0].role == 'system' %}{% set turns = messages[1:] %}{% else %}{% set turns = messages %}"
          "{% endif %}{% for m in turns %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
          "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
          "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n")


@pytest.fixture(scope="module")
def backend():
    b = LlamaBackend()
    b.load(default_model_path(), n_ctx=512)
    yield b
    b.close()


def test_a_huge_range_in_the_file_fails_the_load_and_the_model_stays(backend, tmp_path):
    bad = with_chat_template(default_model_path(), tmp_path / "ranged.gguf", "{% for i in range(10**9) %}{% endfor %}" + LOOP)
    before = backend.model
    with pytest.raises(EngineError) as e:
        backend.load(bad, n_ctx=512)
    assert e.value.kind == ErrorKind.UNSUPPORTED_FORMAT
    assert "chat template in 'ranged.gguf'" in e.value.message and "was not loaded" in e.value.message
    assert backend.model is before
    text = "".join(backend.stream([{"role": "user", "content": "Hi"}], Sampling(temperature=0, max_tokens=4),
                                  threading.Event()))
    assert text and backend.last_result.completion_tokens > 0


def test_through_the_engine_the_refusal_is_not_internal(tmp_path):
    from tests.conftest import ServiceHarness

    bad = with_chat_template(default_model_path(), tmp_path / "looping.gguf",
                             "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}" + LOOP)
    h = ServiceHarness()
    try:
        ev = h.call(p.LoadModel(path=str(bad), n_ctx=512))
        assert isinstance(ev, p.Failed) and ev.kind == ErrorKind.UNSUPPORTED_FORMAT, ev
        assert "looping.gguf" in ev.message and "took longer than" in ev.message
        ok = h.call(p.LoadModel(n_ctx=512))
        assert isinstance(ok, p.ModelLoaded), ok     # the engine thread was not hung
    finally:
        h.service.close()


def test_a_strict_template_answers_after_a_reply_that_failed(backend, tmp_path):
    strict = with_chat_template(default_model_path(), tmp_path / "strict.gguf", STRICT)
    b = LlamaBackend()
    try:
        m = b.load(strict, n_ctx=512)
        assert m.formatter.origin == "model", m.formatter.note
        # The first reply failed, so it is not in the history: two user turns in a row.
        history = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"},
                   {"role": "user", "content": "What is 2+2?"}]
        text = "".join(b.stream(history, Sampling(temperature=0, max_tokens=6), threading.Event()))
        assert text and b.last_result.prompt_tokens > 0
    finally:
        b.close()
