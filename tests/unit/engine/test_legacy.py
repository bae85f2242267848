"""Legacy GGML through ctransformers, on a tiny GPT-2 file written in the real format."""

import threading

import pytest
from ggml_writer import write_gpt2

from engine import legacy
from engine.llm import GenerationCancelled
from engine.protocol import EngineError, Sampling

MSGS = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_gpt2(tmp_path_factory.mktemp("ggml") / "tiny-gpt2.bin")


@pytest.fixture
def backend(tiny):
    b = legacy.CTransformersBackend()
    b.load(tiny, n_ctx=128)
    yield b
    b.close()


def test_family_is_recognised_from_the_tensor_names(tiny):
    assert legacy.legacy_format(tiny) == "ggml"
    assert legacy.detect_family(tiny) == "gpt2"


def test_unknown_family_is_an_actionable_refusal(tmp_path):
    f = tmp_path / "mystery.bin"
    f.write_bytes(b"lmgg" + b"\0" * 1000)
    with pytest.raises(EngineError) as e:
        legacy.detect_family(f)
    assert e.value.kind == "unsupported_format" and "mystery.bin" in e.value.message and "GGUF" in e.value.message


def test_load_generate_stream(backend, tiny):
    assert backend.model.n_ctx == 128 and "legacy gpt2" in backend.model.name
    assert "legacy GGML" in backend.model.formatter.note
    pieces = list(backend.stream(MSGS, Sampling(temperature=0, max_tokens=12), threading.Event()))
    r = backend.last_result
    assert r.completion_tokens == 12 and r.finish_reason == "length"
    assert "".join(pieces) == r.text and len(pieces) >= 6
    assert r.prompt_tokens > 10 and r.tokens_per_s > 0


def test_greedy_is_deterministic_and_seed_reproduces(backend):
    a = "".join(backend.stream(MSGS, Sampling(temperature=0, max_tokens=10), threading.Event()))
    b = "".join(backend.stream(MSGS, Sampling(temperature=0, max_tokens=10), threading.Event()))
    assert a == b
    c = "".join(backend.stream(MSGS, Sampling(temperature=1.0, seed=5, max_tokens=10), threading.Event()))
    d = "".join(backend.stream(MSGS, Sampling(temperature=1.0, seed=5, max_tokens=10), threading.Event()))
    assert c == d


def test_cancel_between_tokens(backend):
    cancel = threading.Event()
    got = []
    with pytest.raises(GenerationCancelled):
        for piece in backend.stream(MSGS, Sampling(temperature=0.8, max_tokens=100, seed=1), cancel):
            got.append(piece)
            if len(got) == 3:
                cancel.set()
    assert len(got) == 3 and backend.last_result.text == "".join(got)


@pytest.mark.parametrize("keep", [30, 200, 5000, -1000, -1])
def test_truncated_legacy_file_is_refused_before_native_load(tiny, tmp_path, keep):
    """ctransformers itself would "load" these and compute with uninitialised weights."""
    cut = tmp_path / "cut-gpt2.bin"
    raw = tiny.read_bytes()
    cut.write_bytes(raw[:keep])
    b = legacy.CTransformersBackend()
    with pytest.raises(EngineError) as e:
        b.load(cut, n_ctx=128)
    assert e.value.kind == "unsupported_format"
    assert "cut-gpt2.bin" in e.value.message and "truncated" in e.value.message


def test_complete_file_walks_to_its_exact_end(tiny):
    assert legacy.validate_ggml(tiny) == 4 + 12 * 2


def test_legacy_llama_magics_are_pointed_to_gguf(tmp_path):
    f = tmp_path / "llama-7b.ggjt.bin"
    f.write_bytes(b"tjgg" + b"\0" * 100)
    with pytest.raises(EngineError, match="convert it to GGUF"):
        legacy.detect_family(f)


@pytest.mark.slow
def test_service_switches_to_legacy_and_back(tiny):
    """Through the engine service: load, stream, cancel on the legacy backend, then GGUF again."""
    from tests.conftest import ServiceHarness

    from engine import protocol as p

    h = ServiceHarness()
    try:
        assert isinstance(h.call(p.LoadModel(n_ctx=1024)), p.ModelLoaded)
        loaded = h.call(p.LoadModel(path=str(tiny), n_ctx=128))
        assert isinstance(loaded, p.ModelLoaded) and "legacy" in loaded.template_note
        rid = h.send(p.Chat(messages=MSGS, sampling={"temperature": 0, "max_tokens": 16}))
        done = h.wait(rid)
        assert isinstance(done, p.Done) and done.completion_tokens == 16
        assert "".join(t.text for t in h.tokens(rid)) == done.text
        rid = h.send(p.Chat(messages=MSGS, sampling={"temperature": 0.9, "max_tokens": 100}))
        h.service.handle(p.Cancel(target=rid))
        assert isinstance(h.wait(rid), (p.Cancelled, p.Done))
        # A damaged legacy file is refused and the legacy model stays loaded.
        bad = tiny.parent / "bad-gpt2.bin"
        bad.write_bytes(tiny.read_bytes()[:777])
        assert isinstance(h.call(p.LoadModel(path=str(bad), n_ctx=128)), p.Failed)
        assert "legacy" in h.service.status().model
        assert isinstance(h.call(p.LoadModel(n_ctx=1024)), p.ModelLoaded)
        again = h.call(p.Chat(messages=[{"role": "user", "content": "What is the capital of France?"}],
                              sampling={"temperature": 0, "max_tokens": 24}))
        assert "Paris" in again.text
    finally:
        h.service.close()


def test_without_the_legacy_extra_a_ggml_file_is_refused_naming_the_extra(tiny, monkeypatch):
    """ctransformers is an optional extra: a person without it learns which one to install."""
    monkeypatch.setitem(__import__("sys").modules, "ctransformers", None)   # as if not installed
    with pytest.raises(EngineError) as e:
        legacy.CTransformersBackend().load(tiny, n_ctx=128)
    assert e.value.kind == "unsupported_format" and e.value.environment
    assert "tiny-gpt2.bin" in e.value.message and "lantern[legacy]" in e.value.message and "GGUF" in e.value.message
