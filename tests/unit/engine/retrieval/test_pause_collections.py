"""Pausing the indexer and listing collections, through the engine service in process with the
real embedder, chromadb and manifest."""

import time

import pytest

from engine import protocol as p
from engine.retrieval.session import RetrievalSessions
from tests.conftest import ServiceHarness

LINES = "".join(f"2026-03-01 10:00:{s:02d},000 INFO  [main] com.shop.Web - GET /orders/{s} 200\n" for s in range(40))


@pytest.fixture
def harness(embedder):
    h = ServiceHarness()
    h.service._index_retrieval = RetrievalSessions(embedder, h.service.index_paused)
    h.service._retrieval = RetrievalSessions(embedder)
    h.service.watcher.interval = 3600
    yield h
    h.service.close()


def test_pause_holds_the_job_and_resume_finishes_it(harness, tmp_path):
    h = harness
    logs, data = tmp_path / "logs", tmp_path / "data"
    logs.mkdir()
    for i in range(3):
        (logs / f"app{i}.log").write_text(LINES.replace("orders", f"orders{i}"))
    state = h.call(p.PauseIndexing(paused=True))
    assert isinstance(state, p.IndexingState) and state.paused
    rid = h.send(p.IndexPaths(paths=[str(logs)], data_dir=str(data)))
    deadline = time.monotonic() + 30
    while not any(getattr(e, "phase", "") == "paused" for e in h.events.get(rid, [])):
        assert time.monotonic() < deadline, h.events.get(rid)
        time.sleep(0.05)
    time.sleep(1.0)
    assert not any(isinstance(e, (p.IndexDone, p.Failed)) for e in h.events[rid]), "the job went on while paused"
    assert not h.call(p.PauseIndexing(paused=False)).paused
    done = h.wait(rid, 60)
    assert isinstance(done, p.IndexDone) and done.summary["files"] == 3, done


def test_cancel_ends_a_paused_job(harness, tmp_path):
    h = harness
    logs, data = tmp_path / "logs", tmp_path / "data"
    logs.mkdir()
    (logs / "app.log").write_text(LINES)
    h.call(p.PauseIndexing(paused=True))
    rid = h.send(p.IndexPaths(paths=[str(logs)], data_dir=str(data)))
    deadline = time.monotonic() + 30
    while not any(getattr(e, "phase", "") == "paused" for e in h.events.get(rid, [])):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    h.service.handle(p.Cancel(target=rid))
    assert isinstance(h.wait(rid, 10), p.Cancelled)
    h.call(p.PauseIndexing(paused=False))


def test_collections_are_listed_with_counts(harness, tmp_path):
    h = harness
    data = tmp_path / "data"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "app.log").write_text(LINES)
    (tmp_path / "b" / "notes.md").write_text("# Runbook\n\nRestart the gateway.\n")
    assert isinstance(h.call(p.IndexPaths(paths=[str(tmp_path / "a")], data_dir=str(data))), p.IndexDone)
    assert isinstance(h.call(p.IndexPaths(paths=[str(tmp_path / "b")], collection="runbooks",
                                          data_dir=str(data))), p.IndexDone)
    rid = h.send(p.ListCollections(data_dir=str(data)))
    got = h.queue_for(rid).get(timeout=30)
    assert isinstance(got, p.CollectionList), got
    by_name = {c["name"]: c for c in got.collections}
    assert list(by_name) == ["default", "runbooks"]
    assert by_name["default"]["files"] == 1 and by_name["default"]["chunks"] >= 1
    assert by_name["runbooks"]["files"] == 1 and by_name["runbooks"]["size"] == len("# Runbook\n\nRestart the gateway.\n")


class WarmRecorder:
    """Stands in for the embedder at one seam: whether the engine asked it to warm up."""
    config = {"name": "recorder", "dim": 4, "normalize": True}

    def __init__(self):
        self.warmed = __import__("threading").Event()

    def warm(self):
        self.warmed.set()


def test_the_embedder_warms_up_when_a_data_dir_has_sources(tmp_path):
    from engine.retrieval.manifest import Manifest

    empty, used = tmp_path / "empty", tmp_path / "used"
    m = Manifest(used / "manifest.sqlite")
    with m:
        m.put_root("default", str(tmp_path / "logs"), [])
    m.close()
    for data, expect in ((empty, False), (used, True)):
        h = ServiceHarness()
        rec = WarmRecorder()
        h.service._index_retrieval = RetrievalSessions(rec, h.service.index_paused)
        h.service.watcher.interval = 3600
        try:
            rid = h.send(p.WatchSources(data_dir=str(data)))
            assert isinstance(h.queue_for(rid).get(timeout=30), p.WatchState)
            assert rec.warmed.wait(5 if expect else 0.5) is expect, data
        finally:
            h.service.close()
