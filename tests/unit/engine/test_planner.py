"""Offload planning on the real model (this CPU machine) and on fake devices at the seam."""

from __future__ import annotations

import pytest

from engine import gguf, models, planner
from engine.planner import GiB, MiB, Device, ModelInfo, ModelPlanner
from engine.protocol import EngineError


def seven_b() -> ModelInfo:
    """A 7B-shaped Q4_K_M llama: 32 layers of 120 MiB, 8 KV heads of 128."""
    return ModelInfo(path="/models/big-7b.Q4_K_M.gguf", size=4 * GiB, architecture="llama", name="Big 7B",
                     file_type="Q4_K_M", context_length=32768, block_count=32, embedding_length=4096,
                     feed_forward_length=14336, head_count=32, head_count_kv=8, vocab_size=32000,
                     layer_bytes=[120 * MiB] * 32, other_bytes=210 * MiB, output_bytes=105 * MiB,
                     tensor_bytes=32 * 120 * MiB + 210 * MiB)


def cpu(free=32 * GiB) -> Device:
    return Device("cpu", "test cpu", 64 * GiB, free)


def gpu(free_gib: float) -> Device:
    return Device("cuda", "Test GPU", int(8 * GiB), int(free_gib * GiB))


def test_default_model_on_this_machine_runs_on_the_cpu_within_its_ram():
    info = gguf.inspect(models.default_model_path())
    p = ModelPlanner().plan(info, 2048)
    assert p.n_ctx == 2048 and p.n_layers == 30
    if ModelPlanner().gpu is None:
        assert p.n_gpu_layers == 0 and p.vram_bytes == 0
        assert "no GPU found" in " ".join(p.reasons)
    # weights 92 MiB + KV 45 MiB + compute + overhead: a few hundred MiB, not GiB
    assert 150 * MiB < p.ram_bytes < 400 * MiB
    assert p.breakdown["ram"]["kv_cache"] == 45 * MiB  # what llama.cpp reports for n_ctx 2048


def test_kv_cache_formula_matches_llama_cpp_for_the_default_model():
    info = gguf.inspect(models.default_model_path())
    # llama.cpp: "KV buffer size = 180.00 MiB" at 8192, 45.00 MiB at 2048 (f16)
    assert planner.kv_cache_bytes(info, 8192) == 180 * MiB
    assert planner.kv_cache_bytes(info, 2000) == 45 * MiB  # rounded up to 256 cells
    assert planner.kv_cache_bytes(info, 8192, "q8_0") == int(180 * MiB * 34 / 64)
    # and the GPU-side compute formula against llama.cpp's reserved 99.4 / 166.4 MiB
    assert abs(planner.compute_bytes(info, 2048) / MiB - 99.4) < 3
    assert abs(planner.compute_bytes(info, 8192) / MiB - 166.4) < 3


def test_a_4_gib_gpu_takes_part_of_a_7b_model_and_says_why():
    p = ModelPlanner([cpu(), gpu(3.9)]).plan(seven_b(), 4096)
    assert 12 <= p.n_gpu_layers < 32
    usable = int(3.9 * GiB * 0.9) - 512 * MiB
    assert p.vram_bytes <= usable
    # one more layer would not have fitted
    more = planner.estimate(seven_b(), 4096, p.n_gpu_layers + 1)
    assert sum(more["vram"].values()) > usable
    text = " ".join(p.reasons)
    assert "Test GPU has 3.9 GiB free" in text
    assert f"{p.n_gpu_layers} of 32 layers go to the GPU" in text
    assert p.gpu == "Test GPU"
    # the layers not on the GPU are in RAM
    assert p.breakdown["ram"]["weights"] >= (32 - p.n_gpu_layers) * 120 * MiB


def test_a_big_gpu_takes_everything_and_the_ram_keeps_only_embeddings():
    p = ModelPlanner([cpu(), gpu(7.5)]).plan(seven_b(), 4096)
    assert p.n_gpu_layers == 33
    assert "all 32 layers and the output fit" in " ".join(p.reasons)
    assert p.breakdown["ram"]["weights"] == 210 * MiB - 105 * MiB
    assert p.breakdown["vram"]["kv_cache"] == planner.kv_cache_bytes(seven_b(), 4096)


def test_more_context_means_fewer_gpu_layers():
    pl = ModelPlanner([cpu(), gpu(3.9)])
    assert pl.plan(seven_b(), 32768).n_gpu_layers < pl.plan(seven_b(), 2048).n_gpu_layers


def test_manual_override_and_its_range():
    pl = ModelPlanner([cpu(), gpu(3.9)])
    p = pl.plan(seven_b(), 4096, n_gpu_layers=5)
    assert p.n_gpu_layers == 5 and "set by hand" in " ".join(p.reasons)
    assert pl.plan(seven_b(), 4096, n_gpu_layers=-1).n_gpu_layers == 33
    with pytest.raises(EngineError) as e:
        pl.plan(seven_b(), 4096, n_gpu_layers=40)
    assert e.value.kind == "bad_input" and "between 0 and 33" in e.value.message


def test_too_big_for_ram_is_refused_with_the_numbers():
    with pytest.raises(EngineError) as e:
        ModelPlanner([cpu(free=2 * GiB)]).plan(seven_b(), 4096)
    assert e.value.kind == "out_of_memory"
    msg = e.value.message
    assert "big-7b.Q4_K_M.gguf" in msg and "2.0 GiB is available" in msg and "GiB of RAM" in msg


def test_tight_ram_lowers_the_context_instead_of_refusing():
    info = seven_b()
    at_2k = sum(planner.estimate(info, 2048, 0)["ram"].values())
    p = ModelPlanner([cpu(free=at_2k + 10 * MiB)]).plan(info, 16384)
    assert planner.MIN_CTX <= p.n_ctx < 16384 and p.n_ctx >= 2048
    assert "context lowered from 16384" in " ".join(p.reasons)


def test_fit_context_finds_the_largest_context_on_the_gpu():
    pl = ModelPlanner([cpu(), gpu(7.5)])
    p = pl.plan(seven_b(), fit_context=True)
    assert p.n_gpu_layers == 33 and p.n_ctx % 256 == 0
    assert p.vram_bytes <= pl.vram_usable()
    assert sum(planner.estimate(seven_b(), p.n_ctx + 256, 33)["vram"].values()) > pl.vram_usable()
    assert f"largest context that fits on the GPU: {p.n_ctx}" in " ".join(p.reasons)


def test_context_is_capped_at_the_training_length():
    info = gguf.inspect(models.default_model_path())
    p = ModelPlanner([cpu()]).plan(info, 100_000)
    assert p.n_ctx == 8192 and "training length 8192" in " ".join(p.reasons)


def test_reduced_plan_for_a_retry():
    pl = ModelPlanner([cpu(), gpu(3.9)])
    p = pl.plan(seven_b(), 4096)
    r = pl.reduced(seven_b(), p)
    assert r.n_gpu_layers == p.n_gpu_layers * 3 // 4
    cpu_only = ModelPlanner([cpu()])
    r2 = cpu_only.reduced(seven_b(), cpu_only.plan(seven_b(), 4096))
    assert r2.n_ctx == 2048
    assert cpu_only.reduced(seven_b(), cpu_only.plan(seven_b(), 512)) is None


def test_nvidia_smi_output_is_parsed():
    text = "0, NVIDIA GeForce RTX 3060, 12288, 11000\n1, Tesla T4, [N/A], [N/A]\n"
    devs = planner.parse_nvidia_smi(text)
    assert len(devs) == 1
    assert devs[0].name == "NVIDIA GeForce RTX 3060" and devs[0].free_bytes == 11000 * MiB


def test_find_devices_always_lists_the_cpu_first():
    devs = planner.find_devices()
    assert devs[0].kind == "cpu" and devs[0].free_bytes > 0
