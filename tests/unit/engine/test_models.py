import struct

import pytest

from engine import models
from engine.protocol import EngineError


def gguf_header(version=3, n_tensors=1, n_kv=1, pad=4096):
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv) + b"\0" * pad


@pytest.mark.parametrize("content, kind, words", [
    (b"", "unsupported_format", "only 0 bytes"),
    (b"GGUF\x03\x00", "unsupported_format", "only 6 bytes"),
    (b"%PDF-1.7\n" + b"x" * 100, "unsupported_format", "not a GGUF model"),
    (b"lmgg" + b"\0" * 100, "unsupported_format", "legacy GGML"),
    (b"tjgg" + b"\0" * 100, "unsupported_format", "legacy GGML (ggjt)"),
    (gguf_header(version=99), "unsupported_format", "version 99"),
    (gguf_header(n_tensors=2**60), "unsupported_format", "corrupt GGUF header"),
    (gguf_header(n_kv=2**40), "unsupported_format", "corrupt GGUF header"),
])
def test_bad_files_are_refused_by_name_before_native_load(tmp_path, content, kind, words):
    f = tmp_path / "notes.gguf"
    f.write_bytes(content)
    with pytest.raises(EngineError) as e:
        models.inspect_header(f)
    assert e.value.kind == kind
    assert words in e.value.message
    assert "notes.gguf" in e.value.message


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(EngineError) as e:
        models.inspect_header(tmp_path / "nope.gguf")
    assert e.value.kind == "model_not_found" and "nope.gguf" in e.value.message
    with pytest.raises(EngineError) as e:
        models.inspect_header(tmp_path)
    assert e.value.kind == "bad_input"


def test_plausible_header_passes(tmp_path):
    f = tmp_path / "ok.gguf"
    f.write_bytes(gguf_header())
    info = models.inspect_header(f)
    assert (info.gguf_version, info.n_tensors, info.n_kv) == (3, 1, 1)


def test_default_model_is_found_offline_and_its_checksum_holds():
    path = models.default_model_path()
    assert path.name == models.DEFAULT_MODEL_FILE
    report = models.check_default_model()
    assert report["checksum_ok"], report
    assert report["sha256"] == models.DEFAULT_MODEL_SHA256
