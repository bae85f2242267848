"""`lantern models list|add|info|plan` as a person runs them: a real process, the real model."""

from __future__ import annotations

import json
import subprocess
import sys

from engine import models
from tests.unit.engine.test_library import DIGEST, fake_ollama


def lantern(*args, data_dir, timeout=60):
    return subprocess.run([sys.executable, "-m", "app.main", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=timeout)


def test_add_list_info_plan_json_round_trip(tmp_path):
    data = tmp_path / "data"
    home, blob = fake_ollama(tmp_path)
    r = lantern("models", "add", str(models.default_model_path()), str(home), "--json", data_dir=data)
    assert r.returncode == 0, r.stderr
    added = json.loads(r.stdout)["added"]
    assert sorted(a["name"] for a in added) == ["SmolLM2-135M-Instruct.Q4_1", "smollm2:135m"]
    assert (data / "models.sqlite").exists()

    r = lantern("models", "list", "--json", data_dir=data)
    listed = {e["name"]: e for e in json.loads(r.stdout)}
    assert listed["smollm2:135m"]["source"] == "ollama" and listed["smollm2:135m"]["sha256"] == DIGEST
    assert listed["SmolLM2-135M-Instruct.Q4_1"]["block_count"] == 30

    r = lantern("models", "info", "SmolLM2-135M-Instruct.Q4_1", "--json", data_dir=data)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["sha256"] == models.DEFAULT_MODEL_SHA256
    assert (info["architecture"], info["block_count"], info["context_length"]) == ("llama", 30, 8192)
    assert info["n_params"] == 134_515_008 and info["file_type"] == "Q4_1" and info["has_chat_template"]

    r = lantern("models", "plan", "smollm2:135m", "--context", "2048", "--json", data_dir=data)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    plan = out["plan"]
    assert plan["n_ctx"] == 2048 and plan["n_layers"] == 30
    assert plan["breakdown"]["ram"]["kv_cache"] == 45 * 2**20
    assert out["devices"][0]["kind"] == "cpu"
    if len(out["devices"]) == 1:
        assert plan["n_gpu_layers"] == 0
    assert any("context 2048 tokens" in reason for reason in plan["reasons"])


def test_text_output_and_a_path_outside_the_library(tmp_path):
    r = lantern("models", "plan", str(models.default_model_path()), "--context", "4096", data_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "context 4096 tokens" in r.stdout and "why:" in r.stdout and "RAM:" in r.stdout
    r = lantern("models", "info", str(models.default_model_path()), data_dir=tmp_path)
    assert "layers:            30" in r.stdout and "Q4_1" in r.stdout
    r = lantern("models", "list", data_dir=tmp_path)
    assert "library is empty" in r.stdout


def test_bad_files_are_refused_with_the_reason_and_no_traceback(tmp_path):
    bogus = tmp_path / "report.pdf.gguf"
    bogus.write_bytes(b"%PDF-1.4 " + b"x" * 100)
    r = lantern("models", "info", str(bogus), data_dir=tmp_path / "d")
    assert r.returncode == 1 and "report.pdf.gguf" in r.stderr and "not a GGUF model" in r.stderr
    assert "Traceback" not in r.stderr
    r = lantern("models", "add", str(bogus), data_dir=tmp_path / "d")
    assert r.returncode == 1 and "skipped" in r.stderr and "Traceback" not in r.stderr
    r = lantern("models", "plan", "no-such-model", data_dir=tmp_path / "d")
    assert r.returncode == 1 and "No model 'no-such-model'" in r.stderr


def test_download_from_a_local_hub_lands_in_the_library(tmp_path, monkeypatch):
    from tests.unit.engine.gguf_writer import tiny_llama
    from tests.unit.engine.hub_server import FakeHub

    with FakeHub() as hub:
        hub.files["org/Tiny-GGUF"] = {"tiny-Q4_K_M.gguf": tiny_llama().build()}
        monkeypatch.setenv("LANTERN_HF_ENDPOINT", hub.endpoint)
        r = lantern("models", "download", "org/Tiny-GGUF", "--file", "Q4_K_M", "--json", data_dir=tmp_path)
        assert r.returncode == 0, r.stderr
        events = [json.loads(line) for line in r.stdout.splitlines()]
        assert events[0]["event"] == "resolved" and events[-1]["event"] == "done"
        assert events[-1]["architecture"] == "llama" and len(events[-1]["sha256"]) == 64
        assert (tmp_path / "models" / "tiny-Q4_K_M.gguf").exists()

        r = lantern("models", "download", "org/Missing-GGUF", data_dir=tmp_path)
        assert r.returncode == 1 and "not found (HTTP 404)" in r.stderr
