"""The real default model, driven through EngineService in this process."""

import threading
import time

import pytest

from engine import protocol as p
from tests.conftest import chat

pytestmark = pytest.mark.slow


def test_answers_capital_of_france_with_paris(engine):
    done = chat(engine, "What is the capital of France?", temperature=0, max_tokens=48)
    assert isinstance(done, p.Done), done
    assert "Paris" in done.text
    assert done.completion_tokens > 0 and done.prompt_tokens > 0
    assert done.ttft_ms > 0 and done.tokens_per_s > 0


def test_tokens_arrive_in_order_and_add_up_to_the_answer(engine):
    rid = engine.send(p.Chat(messages=[{"role": "user", "content": "Count from one to ten in words."}],
                             sampling={"temperature": 0, "max_tokens": 40}))
    done = engine.wait(rid)
    tokens = engine.tokens(rid)
    assert len(tokens) > 5
    assert [t.index for t in tokens] == list(range(len(tokens)))
    assert "".join(t.text for t in tokens) == done.text
    events = engine.events[rid]
    assert events[-1] is done, "Done comes after every token"


def test_same_seed_same_answer(engine):
    a = chat(engine, "Name a colour.", temperature=0.9, seed=1234, max_tokens=16)
    b = chat(engine, "Name a colour.", temperature=0.9, seed=1234, max_tokens=16)
    assert a.text == b.text


def test_max_tokens_ends_with_length(engine):
    done = chat(engine, "Write a long story about a lighthouse.", temperature=0, max_tokens=7)
    assert done.finish_reason == "length" and done.completion_tokens == 7


def test_cancel_stops_generation_within_200_ms(engine):
    rid = engine.send(p.Chat(messages=[{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
                             sampling={"temperature": 0.7, "max_tokens": 2000, "seed": 1}))
    q = engine.queue_for(rid)
    first = q.get(timeout=30)
    assert isinstance(first, p.Token)
    t0 = time.perf_counter()
    engine.service.handle(p.Cancel(target=rid))
    final = engine.wait(rid, timeout=5)
    elapsed_ms = (time.perf_counter() - t0) * 1000
    assert isinstance(final, p.Cancelled), final
    assert elapsed_ms < 200, f"cancel took {elapsed_ms:.0f} ms"
    assert final.text.startswith(first.text)
    # The engine is usable right after a cancel.
    assert "Paris" in chat(engine, "What is the capital of France?", temperature=0, max_tokens=32).text


def test_cancel_during_long_prefill_is_prompt(engine):
    long = "Here is a log line: ERROR payment timeout after 30s. " * 90  # ~1,200 tokens of prefill
    rid = engine.send(p.Chat(messages=[{"role": "user", "content": long + "Summarise."}],
                             sampling={"temperature": 0, "max_tokens": 64}))
    time.sleep(0.05)
    t0 = time.perf_counter()
    engine.service.handle(p.Cancel(target=rid))
    final = engine.wait(rid, timeout=10)
    assert isinstance(final, p.Cancelled), final
    assert not engine.tokens(rid), "cancelled before the first token"
    assert (time.perf_counter() - t0) * 1000 < 200
    # An aborted prefill leaves no half-written state behind: the next answer is normal.
    assert "Paris" in chat(engine, "What is the capital of France?", temperature=0, max_tokens=32).text


def test_old_turns_are_dropped_visibly_when_the_context_is_exceeded():
    from tests.conftest import ServiceHarness

    h = ServiceHarness()
    try:
        assert isinstance(h.call(p.LoadModel(n_ctx=512)), p.ModelLoaded)
        filler = "The quick brown fox jumps over the lazy dog. " * 25  # ~250 tokens
        msgs = []
        for i in range(4):
            msgs += [{"role": "user", "content": f"Turn {i}: {filler}"}, {"role": "assistant", "content": "Noted."}]
        msgs.append({"role": "user", "content": "What is the capital of France?"})
        rid = h.send(p.Chat(messages=msgs, sampling={"temperature": 0, "max_tokens": 32}))
        done = h.wait(rid)
        assert isinstance(done, p.Done), done
        trimmed = [e for e in h.events[rid] if isinstance(e, p.ContextTrimmed)]
        assert len(trimmed) == 1 and trimmed[0].dropped_messages >= 2
        assert trimmed[0].prompt_tokens <= 512 - 32
        assert h.events[rid].index(trimmed[0]) == 0, "the notice comes before any token"

        too_long = h.call(p.Chat(messages=[{"role": "user", "content": filler * 3}], sampling={"max_tokens": 32}))
        assert isinstance(too_long, p.Failed) and too_long.kind == "context_overflow"
    finally:
        h.service.close()


def test_not_a_gguf_is_refused_and_the_previous_model_stays(engine, tmp_path):
    bogus = tmp_path / "holiday-photos.gguf"
    bogus.write_text("these are not weights")
    failed = engine.call(p.LoadModel(path=str(bogus), n_ctx=2048))
    assert isinstance(failed, p.Failed) and failed.kind == "unsupported_format"
    assert "holiday-photos.gguf" in failed.message
    status = engine.call_status() if hasattr(engine, "call_status") else engine.service.status()
    assert status.model_path.endswith(".gguf") and "holiday" not in status.model_path
    assert "Paris" in chat(engine, "What is the capital of France?", temperature=0, max_tokens=32).text


def test_chat_without_a_model_is_an_actionable_error():
    from tests.conftest import ServiceHarness

    h = ServiceHarness()
    try:
        failed = h.call(p.Chat(messages=[{"role": "user", "content": "hi"}]))
        assert isinstance(failed, p.Failed) and failed.kind == "no_model"
        assert "Choose a model" in failed.message
    finally:
        h.service.close()


def test_status_reports_state_model_and_memory(engine):
    status = engine.service.status("s1")
    assert status.state == "idle" and status.model and status.rss_bytes > 50_000_000


def test_unknown_command_type_fails_as_data(engine):
    class Bogus(p.Command):
        TYPE = "bogus_for_test"

    failed = engine.call(Bogus())
    assert isinstance(failed, p.Failed) and failed.kind == "protocol"
