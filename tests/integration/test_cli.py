"""`lantern ask` and `lantern doctor` as a person runs them: real processes, real model."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def lantern(*args, data_dir, timeout=180, input=None):
    return subprocess.run([sys.executable, "-m", "app.main", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=timeout, input=input)


def test_ask_json_answers_from_the_engine_process(tmp_path):
    r = lantern("ask", "What is the capital of France?", "--json", "--temperature", "0", "--max-tokens", "40",
                data_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert "Paris" in out["answer"]
    assert out["model"]
    assert out["usage"]["prompt_tokens"] > 0 and out["usage"]["completion_tokens"] > 0
    assert out["timings"]["ttft_ms"] > 0 and out["timings"]["tokens_per_s"] > 0
    # llama.cpp's own chatter went to the engine log, not to our stdout.
    assert (tmp_path / "logs" / "engine.log").exists()


def test_ask_streams_plain_text(tmp_path):
    r = lantern("ask", "What is the capital of France?", "--temperature", "0", "--max-tokens", "40",
                "--system", "Answer in one short sentence.", data_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Paris" in r.stdout and not r.stdout.lstrip().startswith("{")


def test_ask_reads_stdin_and_refuses_an_empty_question(tmp_path):
    r = lantern("ask", "-", data_dir=tmp_path, input="   \n")
    assert r.returncode == 2 and "empty" in r.stderr


def test_ask_with_a_file_that_is_not_a_model(tmp_path):
    bogus = tmp_path / "report.pdf.gguf"
    bogus.write_bytes(b"%PDF-1.4 not a model")
    r = lantern("ask", "hi", "--model", str(bogus), data_dir=tmp_path)
    assert r.returncode == 1
    assert "report.pdf.gguf" in r.stderr and "not a GGUF model" in r.stderr
    assert "Traceback" not in r.stderr


def test_unwritable_data_dir_is_reported_at_start(tmp_path):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    r = lantern("doctor", data_dir=blocker)
    assert r.returncode == 2
    assert str(blocker) in r.stderr and "--data-dir" in r.stderr and "Traceback" not in r.stderr


def test_doctor_json_reports_versions_cpu_and_model_checksum(tmp_path):
    r = lantern("doctor", "--json", data_dir=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["packages"]["llama-cpp-python"]
    assert report["default_model"]["checksum_ok"] is True
    assert isinstance(report["gpus"], list)
    assert report["cpu"]["logical_cores"] >= 1
    if report["cpu"]["machine"] in ("x86_64", "AMD64"):
        assert "avx2" in report["cpu"]["flags"] or "avx" in report["cpu"]["flags"]
    assert "CPU" in report["llama_cpp_system_info"] or "AVX" in report["llama_cpp_system_info"]


def test_doctor_text(tmp_path):
    r = lantern("doctor", data_dir=tmp_path)
    assert r.returncode == 0 and "checksum OK" in r.stdout
