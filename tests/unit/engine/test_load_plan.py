"""Loads that leave the GPU layers to the engine: the planner chooses and the note says why."""

from __future__ import annotations

from engine import protocol as p
from engine.load_plan import planned_layers
from engine.models import default_model_path
from engine.planner import GiB, Device, ModelPlanner
from tests.conftest import ServiceHarness


def planner(gpu_free: int) -> ModelPlanner:
    return ModelPlanner(devices=[Device("cpu", "CPU", 64 * GiB, 32 * GiB),
                                 Device("cuda", "Test GPU", 24 * GiB, gpu_free)])


def test_a_roomy_gpu_gets_every_layer_and_the_note_has_the_estimate():
    layers, note = planned_layers(str(default_model_path()), 2048, planner(20 * GiB))
    assert layers == 31
    assert note.startswith("Planned: 31 of 31 layers on Test GPU; estimated RAM") and "GPU memory" in note


def test_no_gpu_means_cpu_only():
    layers, note = planned_layers(str(default_model_path()), 2048, ModelPlanner(devices=[planner(0).devices[0]]))
    assert layers == 0 and note.startswith("Planned: CPU only; estimated RAM")


def test_the_engine_plans_when_asked_with_minus_one():
    h = ServiceHarness()
    try:
        loaded = h.call(p.LoadModel(n_ctx=1024, n_gpu_layers=-1))
        assert isinstance(loaded, p.ModelLoaded), loaded
        assert loaded.load_note.startswith("Planned: ")
        if "CPU only" in loaded.load_note:
            assert loaded.n_gpu_layers == 0
    finally:
        h.service.close()
