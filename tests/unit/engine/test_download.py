"""Downloads against a local stand-in for the hub: pick, resume, verify, refuse."""

from __future__ import annotations

import threading

import pytest

from engine import download
from engine.protocol import EngineError
from tests.unit.engine.gguf_writer import tiny_llama
from tests.unit.engine.hub_server import FakeHub

REPO = "lantern-test/Tiny-GGUF"
NAME = "tiny-Q4_K_M.gguf"


@pytest.fixture
def hub():
    with FakeHub() as h:
        h.files[REPO] = {NAME: tiny_llama(n_layers=2, n_embd=128, vocab=256).build(),
                         "tiny-Q8_0.gguf": tiny_llama().build(), "README.md": b"# tiny"}
        yield h


def test_resolve_picks_the_named_quantization_and_lists_its_sha(hub):
    remote = download.resolve(REPO, "q4_k_m", endpoint=hub.endpoint)
    assert remote.name == NAME
    assert remote.size == len(hub.files[REPO][NAME]) and len(remote.sha256) == 64
    assert remote.url == f"{hub.endpoint}/{REPO}/resolve/main/{NAME}"
    # with no pattern, the preferred quantization wins over the others
    assert download.resolve(REPO, endpoint=hub.endpoint).name == NAME


def test_interrupted_download_resumes_from_the_part_file(hub, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "CHUNK", 4096)
    data = hub.files[REPO][NAME]
    remote = download.resolve(REPO, NAME, endpoint=hub.endpoint)
    hub.cut_after = 20_000
    with pytest.raises(EngineError) as e:
        download.download(remote, tmp_path)
    assert e.value.kind == "interrupted"
    part = tmp_path / (NAME + ".part")
    assert part.stat().st_size == 20_000 and not (tmp_path / NAME).exists()

    seen = []
    path = download.download(remote, tmp_path, progress=seen.append)
    assert path.read_bytes() == data and not part.exists()
    ranges = [r for p, r in hub.requests if p.endswith(NAME)]
    assert ranges == [None, "bytes=20000-"]
    assert seen[-1].done == seen[-1].total == len(data)


def test_cancel_keeps_the_part_for_later(hub, tmp_path, monkeypatch):
    monkeypatch.setattr(download, "CHUNK", 4096)
    cancel = threading.Event()
    remote = download.resolve(REPO, NAME, endpoint=hub.endpoint)
    with pytest.raises(download.DownloadCancelled):
        download.download(remote, tmp_path, progress=lambda p: cancel.set(), cancel=cancel)
    assert (tmp_path / (NAME + ".part")).exists() and not (tmp_path / NAME).exists()


def test_checksum_mismatch_keeps_nothing(hub, tmp_path):
    hub.listed_sha[(REPO, NAME)] = "0" * 64
    remote = download.resolve(REPO, NAME, endpoint=hub.endpoint)
    with pytest.raises(EngineError, match="failed its checksum") as e:
        download.download(remote, tmp_path)
    assert e.value.kind == "bad_input"
    assert list(tmp_path.iterdir()) == []


def test_missing_repo_says_404_clearly(hub):
    with pytest.raises(EngineError, match="not found \\(HTTP 404\\).*repo id") as e:
        download.resolve("nobody/nothing", endpoint=hub.endpoint)
    assert e.value.kind == "model_not_found"


def test_unknown_pattern_lists_what_there_is(hub):
    with pytest.raises(EngineError, match="tiny-Q8_0.gguf"):
        download.resolve(REPO, "Q2_K", endpoint=hub.endpoint)


def test_direct_url_non_gguf_is_discarded(hub, tmp_path):
    remote = download.resolve(f"{hub.endpoint}/{REPO}/resolve/main/README.md")
    with pytest.raises(EngineError, match="not a GGUF"):
        download.download(remote, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_endpoint_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(download.ENV_ENDPOINT, "http://mirror.example/")
    assert download.hub_endpoint("https://other") == "http://mirror.example"
    monkeypatch.delenv(download.ENV_ENDPOINT)
    assert download.hub_endpoint(None) == download.DEFAULT_ENDPOINT
