"""The one retry with less after an out-of-memory load, on the real model and llama.cpp."""

from __future__ import annotations

import pytest

from engine.llm import LlamaBackend, _looks_like_oom
from engine.models import default_model_path
from engine.protocol import EngineError


def _failing_first(monkeypatch, message: str, times: int = 1):
    import llama_cpp

    real = llama_cpp.Llama
    calls = []

    def fake(*args, **kwargs):
        calls.append(dict(kwargs))
        if len(calls) <= times:
            raise ValueError(message)
        return real(*args, **kwargs)

    monkeypatch.setattr(llama_cpp, "Llama", fake)
    return calls


def test_context_allocation_failure_retries_once_with_half_the_context(monkeypatch):
    calls = _failing_first(monkeypatch, "Failed to create llama_context")
    backend = LlamaBackend()
    try:
        m = backend.load(default_model_path(), n_ctx=2048)
    finally:
        backend.close()
    assert [c["n_ctx"] for c in calls] == [2048, 1024]
    assert m.n_ctx == 1024
    assert "1024-token context instead of 2048" in m.load_note


def test_a_second_failure_is_reported_as_out_of_memory(monkeypatch):
    calls = _failing_first(monkeypatch, "Failed to create llama_context", times=2)
    with pytest.raises(EngineError) as e:
        LlamaBackend().load(default_model_path(), n_ctx=2048)
    assert len(calls) == 2
    assert e.value.kind == "out_of_memory" and "even after a retry" in e.value.message


def test_a_format_failure_is_not_retried(monkeypatch):
    calls = _failing_first(monkeypatch, "Failed to load model from file: x.gguf")
    with pytest.raises(EngineError) as e:
        LlamaBackend().load(default_model_path(), n_ctx=2048)
    assert len(calls) == 1 and e.value.kind == "unsupported_format"


def test_oom_heuristic():
    assert _looks_like_oom(MemoryError(), 0)
    assert _looks_like_oom(ValueError("Failed to load model from file: a.gguf"), 20)
    assert not _looks_like_oom(ValueError("Failed to load model from file: a.gguf"), 0)
