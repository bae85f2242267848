"""The model library on the real default model, plain folders and a fake Ollama layout."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from engine import library, models
from engine.library import ModelLibrary
from tests.unit.engine.gguf_writer import tiny_llama

DIGEST = "ab" * 32


def _link(src, dst):
    """A hard link where the file system allows one (no 98 MB copy), else a symlink."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        dst.symlink_to(src)
    return dst


def fake_ollama(root):
    """~/.ollama/models with one model (the default model as its blob) plus a config blob."""
    models_dir = root / ".ollama" / "models"
    blob = _link(models.default_model_path(), models_dir / "blobs" / f"sha256-{DIGEST}")
    (models_dir / "blobs" / f"sha256-{'cd' * 32}").write_text('{"model_format": "gguf"}')
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": f"sha256:{'cd' * 32}"},
        "layers": [
            {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{DIGEST}", "size": 98362432},
            {"mediaType": "application/vnd.ollama.image.template", "digest": f"sha256:{'ef' * 32}", "size": 10},
        ],
    }
    mdir = models_dir / "manifests" / "registry.ollama.ai" / "library" / "smollm2"
    mdir.mkdir(parents=True)
    (mdir / "135m").write_text(json.dumps(manifest))
    (mdir / "broken").write_text("{not json")
    return root / ".ollama", blob


@pytest.fixture
def lib(tmp_path):
    (tmp_path / "data").mkdir()
    lib = ModelLibrary(tmp_path / "data" / "models.sqlite")
    yield lib
    lib.close()


def test_add_the_default_model_and_read_it_back_from_sqlite(tmp_path, lib):
    report = lib.add([models.default_model_path()])
    assert [e.name for e in report.added] == ["SmolLM2-135M-Instruct.Q4_1"] and not report.skipped
    again = ModelLibrary(tmp_path / "data" / "models.sqlite")
    try:
        (e,) = again.entries()
    finally:
        again.close()
    assert e.info.block_count == 30 and e.info.context_length == 8192 and e.info.file_type == "Q4_1"
    assert e.size == 98362432 and e.exists and e.source == "file"
    assert e.sha256 is None  # not computed until asked


def test_sha256_is_computed_once_and_kept_while_size_and_mtime_hold(tmp_path, lib):
    f = _link(models.default_model_path(), tmp_path / "m" / "model.gguf")
    (e,) = lib.add([f]).added
    assert lib.sha256(e) == models.DEFAULT_MODEL_SHA256
    assert lib.find(str(f)).sha256 == models.DEFAULT_MODEL_SHA256
    # a changed file (new mtime) loses the cached digest
    small = tmp_path / "tiny.gguf"
    tiny_llama().write(small)
    (t,) = lib.add([small]).added
    lib.sha256(t)
    assert lib.find(str(small)).sha256
    os.utime(small, ns=(1, 1))
    assert lib.find(str(small)).sha256 is None
    assert lib.refresh(lib.find(str(small))).mtime_ns == 1


def test_folders_are_scanned_by_content_not_extension(tmp_path, lib):
    root = tmp_path / "lmstudio" / "models" / "pub" / "repo"
    root.mkdir(parents=True)
    tiny_llama().write(root / "model-no-extension")
    tiny_llama(n_layers=1).write(root / "small.gguf")
    (root / "readme.gguf").write_text("not a model at all")
    (root / "notes.txt").write_text("hello")
    broken = tiny_llama().build()[:500]
    (root / "cut.gguf").write_bytes(broken)
    report = lib.add([tmp_path / "lmstudio"])
    assert sorted(e.name for e in report.added) == ["model-no-extension", "small"]
    # readme.gguf is not GGUF by content: not even a candidate; the cut file is refused with a reason
    assert [(os.path.basename(p), "truncated" in r) for p, r in report.skipped] == [("cut.gguf", True)]


def test_ollama_blobs_get_their_manifest_names(tmp_path, lib):
    home, blob = fake_ollama(tmp_path)
    names = library.ollama_names(home / "models")
    assert names == {os.path.abspath(blob): "smollm2:135m"}
    report = lib.add([home])
    (e,) = report.added
    assert (e.name, e.source) == ("smollm2:135m", "ollama")
    assert e.sha256 == DIGEST  # Ollama names blobs by their digest
    assert e.info.architecture == "llama"
    assert lib.find("smollm2:135m").path == os.path.abspath(blob)
    assert lib.find("smoll").name == "smollm2:135m"  # unique prefix
    # the blobs folder, or one blob, named directly
    assert [e.name for e in lib.add([home / "models" / "blobs"]).added] == ["smollm2:135m"]
    assert [e.name for e in lib.add([blob]).added] == ["smollm2:135m"]
    assert len(lib.entries()) == 1


def test_missing_targets_and_empty_folders_are_reported(tmp_path, lib):
    (tmp_path / "empty").mkdir()
    report = lib.add([tmp_path / "nope", tmp_path / "empty"])
    assert not report.added
    assert [r for _, r in report.skipped] == [f"{tmp_path / 'nope'} does not exist",
                                              f"no GGUF model files found in {tmp_path / 'empty'}"]


def test_a_moved_file_is_listed_as_missing(tmp_path, lib):
    f = tmp_path / "tiny.gguf"
    tiny_llama().write(f)
    lib.add([f])
    shutil.move(f, tmp_path / "moved.gguf")
    (e,) = lib.entries()
    assert not e.exists
