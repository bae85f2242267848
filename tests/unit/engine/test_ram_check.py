"""A model too large for the RAM available is refused with the numbers before any native load."""

import threading

import pytest

from engine.llm import LlamaBackend
from engine.models import default_model_path
from engine.planner import Device, ModelPlanner
from engine.protocol import EngineError, Sampling

MiB = 1024 * 1024


def backend_with_ram(free_mib: int) -> LlamaBackend:
    cpu = Device("cpu", "test CPU", 64 * 1024 * MiB, free_mib * MiB)
    return LlamaBackend(planner_factory=lambda: ModelPlanner(devices=[cpu]))


def test_too_large_for_ram_is_refused_with_numbers_and_previous_model_stays():
    b = LlamaBackend()
    b.load(default_model_path(), n_ctx=1024)
    b._planner_factory = lambda: ModelPlanner(devices=[Device("cpu", "test CPU", 8 * 1024 * MiB, 40 * MiB)])
    with pytest.raises(EngineError) as e:
        b.load(default_model_path(), n_ctx=4096)
    assert e.value.kind == "out_of_memory"
    assert "MiB" in e.value.message and "available" in e.value.message
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in e.value.message
    # The model loaded before is untouched and still answers.
    text = "".join(b.stream([{"role": "user", "content": "What is the capital of France?"}],
                            Sampling(temperature=0, max_tokens=24), threading.Event()))
    assert "Paris" in text
    b.close()


def test_context_is_lowered_to_fit_and_the_person_is_told():
    b = backend_with_ram(200)  # the weights fit; an 8192-token context does not
    try:
        m = b.load(default_model_path(), n_ctx=8192)
        assert m.n_ctx < 8192
        assert "Context lowered from 8192" in m.load_note
    finally:
        b.close()
