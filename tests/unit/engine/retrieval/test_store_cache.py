"""The vector store is a cache of the manifest, also when it is damaged: a chroma error sets the
folder aside (kept for inspection), a new store is filled from the manifest's kept vectors, the
person is told once, and the search or index run goes on."""

import glob
import os

import numpy as np
import pytest

from engine.protocol import EngineError
from engine.retrieval.retriever import Filters
from engine.retrieval.session import RetrievalIndex
from engine.retrieval.vectorstore import VectorStore
from retrieval_corpus import JAVA, SYSLOG


def _forget_chroma_clients() -> None:
    """As a new engine process would: no chroma client of any folder held in memory."""
    from chromadb.api.shared_system_client import SharedSystemClient

    for key in list(SharedSystemClient._identifier_to_system):
        SharedSystemClient._identifier_to_system.pop(key).stop()
    SharedSystemClient._identifier_to_refcount.clear()


def _damage_segment(chroma_dir) -> None:
    (header,) = glob.glob(os.path.join(chroma_dir, "*", "header.bin"))
    data = bytearray(open(header, "rb").read())
    for i in range(0, len(data), 7):
        data[i] ^= 0xA5
    open(header, "wb").write(bytes(data))


@pytest.fixture
def damaged(tmp_path, embedder):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text(JAVA)
    (logs / "auth.log").write_text(SYSLOG)
    # Enough chunks (8 records each) that chroma writes its HNSW segment files (past ~1,000).
    (logs / "worker.log").write_text("".join(
        f"2024-06-2{1 + i // 6000} {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d} INFO worker {i % 7} "
        f"processed job {i} in {i % 97} ms\n" for i in range(12_000)))
    data = tmp_path / "data"
    idx = RetrievalIndex(data, "", embedder)
    from engine.retrieval.indexer import Indexer
    Indexer(idx.manifest, idx.store, embedder).index([str(logs)])
    n = idx.store.count("default", embedder.config)
    assert n > 0
    idx.close()
    _forget_chroma_clients()
    _damage_segment(data / "chroma")
    import chromadb
    from engine.retrieval.vectorstore import chroma_name
    with pytest.raises(Exception):   # the damage is real: chroma itself fails on this folder
        chromadb.PersistentClient(str(data / "chroma")).get_collection(chroma_name("default")).count()
    _forget_chroma_clients()
    return data, logs, n


@pytest.mark.slow
def test_a_damaged_store_is_set_aside_and_rebuilt_on_search(damaged, embedder):
    data, logs, n = damaged
    idx = RetrievalIndex(data, "", embedder)
    hit = idx.retriever.search("someone tried to log in with a wrong password", 3, Filters("default"))[0]
    assert (hit.path, hit.line_start) == (str(logs / "auth.log"), 2)
    aside = glob.glob(str(data / "chroma.damaged-*"))
    assert len(aside) == 1 and glob.glob(os.path.join(aside[0], "*", "header.bin")), "kept for inspection"
    assert idx.store.count("default", embedder.config) == n
    # The next index run (the engine's other thread, its own VectorStore of the folder) says it.
    notices = VectorStore(data / "chroma").take_notices()
    assert len(notices) == 1 and "set aside" in notices[0] and f"{n} vectors" in notices[0]
    assert idx.store.take_notices() == [], "said once"
    idx.close()


@pytest.mark.slow
def test_an_index_run_on_a_damaged_store_goes_on_and_says_so(damaged, embedder, tmp_path):
    from engine import protocol as p
    from engine.retrieval.session import RetrievalSessions

    data, logs, n = damaged
    (logs / "more.log").write_text("2024-06-21 10:00:00 INFO tangerine-4410 arrived\n")
    events = []
    sessions = RetrievalSessions(embedder)
    import threading
    sessions.handle(p.IndexPaths(paths=[str(logs)], data_dir=str(data)), events.append, threading.Event())
    done = events[-1]
    assert isinstance(done, p.IndexDone), done
    assert len(done.summary["notices"]) == 1 and "rebuilt" in done.summary["notices"][0]
    idx = sessions.index_for(str(data), "")
    assert idx.store.count("default", embedder.config) == idx.manifest.chunk_count("default") == n + 1
    sessions.close()


def test_a_full_disk_is_not_repaired_by_a_rebuild(tmp_path, embedder, monkeypatch):
    store = VectorStore(tmp_path / "chroma", refill=lambda s: pytest.fail("no rebuild on a full disk"))
    cfg = embedder.config
    store.upsert("default", cfg, ["a"], np.ones((1, cfg["dim"]), dtype=np.float32))
    col = store.collection("default", cfg)
    monkeypatch.setattr(type(col), "upsert", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(EngineError) as e:
        store.upsert("default", cfg, ["b"], np.ones((1, cfg["dim"]), dtype=np.float32))
    assert "is full" in e.value.message and not glob.glob(str(tmp_path / "chroma.damaged-*"))


def test_a_refused_request_is_not_taken_for_damage(tmp_path, embedder):
    store = VectorStore(tmp_path / "chroma", refill=lambda s: pytest.fail("the store is not damaged"))
    cfg = embedder.config
    store.upsert("default", cfg, ["a"], np.ones((1, cfg["dim"]), dtype=np.float32))
    with pytest.raises(Exception) as e:
        store.upsert("default", cfg, ["b", "b"], np.ones((2, cfg["dim"]), dtype=np.float32))
    assert not isinstance(e.value, EngineError) and not glob.glob(str(tmp_path / "chroma.damaged-*"))
    assert store.count("default", cfg) == 1


def test_a_store_that_fails_after_its_rebuild_is_reported_not_rebuilt_again(tmp_path, embedder, monkeypatch):
    refills = []
    store = VectorStore(tmp_path / "chroma", refill=lambda s: refills.append(1) or 0)
    cfg = embedder.config
    store.upsert("default", cfg, ["a"], np.ones((1, cfg["dim"]), dtype=np.float32))
    col = store.collection("default", cfg)
    monkeypatch.setattr(type(col), "count", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("readonly")))
    for _ in range(3):
        with pytest.raises(EngineError) as e:
            store.count("default", cfg)
        assert "fails even after it was rebuilt" in e.value.message
    assert refills == [1] and len(glob.glob(str(tmp_path / "chroma.damaged-*"))) == 1
