"""Watching and removing sources through the engine service, in process: lines appended to a log
and a file added to a watched folder are found by search within seconds, with no command from
the UI; a removed file leaves search at once and is not brought back by the watcher."""

import time

import pytest

from engine import protocol as p
from engine.retrieval.session import RetrievalSessions
from tests.conftest import ServiceHarness

pytestmark = pytest.mark.slow   # several poll rounds of the watcher

APP = "".join(f"2026-03-01 10:00:{s:02d},000 INFO  [main] com.shop.Web - GET /health 200\n" for s in range(5))


@pytest.fixture
def harness(embedder):
    h = ServiceHarness()
    # The run's embedder, not a second copy of the model (seconds of loading on a small machine).
    h.service._index_retrieval = RetrievalSessions(embedder)
    h.service.watcher.interval = 0.5
    yield h
    h.service.close()


def wait_for(h, rid, kind, timeout=30.0):
    q = h.queue_for(rid)
    deadline = time.monotonic() + timeout
    while True:
        ev = q.get(timeout=max(0.1, deadline - time.monotonic()))
        if isinstance(ev, (kind, p.Failed)):
            return ev


def search(h, data, text):
    rid = h.send(p.Search(queries=[text], k=3, data_dir=str(data)))
    result = wait_for(h, rid, p.SearchResult)
    assert isinstance(result, p.SearchResult), result
    wait_for(h, rid, p.SearchDone)
    return [x for x in result.hits if text in x["text"]]


def eventually(check, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.3)
    return check()


def test_watched_folder_picks_up_appends_and_new_files_and_removal_sticks(harness, tmp_path):
    h = harness
    logs, data = tmp_path / "logs", tmp_path / "data"
    logs.mkdir()
    (logs / "app.log").write_text(APP)
    done = h.call(p.IndexPaths(paths=[str(logs)], data_dir=str(data)))
    assert isinstance(done, p.IndexDone) and done.summary["files"] == 1, done

    with open(logs / "app.log", "a") as f:
        f.write("2026-03-01 10:00:09,000 ERROR [pool-1] com.shop.Pay - gateway zq-append-7781 refused\n")
    (logs / "new.log").write_text("2026-03-01 10:01:00,000 WARN  [main] fan frobnicator-4242 overheated\n")
    appended = eventually(lambda: search(h, data, "zq-append-7781"))
    assert appended and (appended[0]["line_start"], appended[0]["line_end"]) == (6, 6)
    assert eventually(lambda: search(h, data, "frobnicator-4242"))
    watch_ids = [rid for rid in h.events if rid.startswith(p.WATCH_ID_PREFIX)]
    assert watch_ids and any(isinstance(e, p.IndexDone) for rid in watch_ids for e in h.events[rid])

    rid = h.send(p.RemoveSources(paths=[str(logs / "new.log")], data_dir=str(data)))
    removed = wait_for(h, rid, p.SourcesRemoved)
    assert isinstance(removed, p.SourcesRemoved) and removed.paths == [str(logs / "new.log")], removed
    assert removed.chunks_removed == 1 and not search(h, data, "frobnicator-4242")
    idx = h.service._index_retrieval.index_for(str(data), "")
    assert idx.store.count("default", idx.embedder.config) == idx.manifest.chunk_count("default")
    assert not idx.manifest.vector_deletes("default")
    listed = h.call(p.ListSources(data_dir=str(data)))
    assert [s["path"] for s in listed.sources] == [str(logs / "app.log")]

    # A change in the folder is indexed again, but the removed file stays out.
    with open(logs / "new.log", "a") as f:
        f.write("2026-03-01 10:02:00,000 WARN  [main] frobnicator-4242 still hot\n")
    with open(logs / "app.log", "a") as f:
        f.write("2026-03-01 10:03:00,000 INFO  [main] com.shop.Web - second marker zq-second-99\n")
    assert eventually(lambda: search(h, data, "zq-second-99"))
    assert not search(h, data, "frobnicator-4242")


def test_watching_can_be_switched_off(harness, tmp_path):
    h = harness
    logs, data = tmp_path / "logs", tmp_path / "data"
    logs.mkdir()
    (logs / "app.log").write_text(APP)
    h.call(p.IndexPaths(paths=[str(logs)], data_dir=str(data)))
    rid = h.send(p.WatchSources(enabled=False, data_dir=str(data)))
    state = wait_for(h, rid, p.WatchState)
    assert state.roots == [{"path": str(logs), "enabled": False}]
    (logs / "late.log").write_text("late line\n")
    time.sleep(0.6)
    assert h.service.watcher.poll() == []
    rid = h.send(p.WatchSources(enabled=True, paths=[str(logs)], data_dir=str(data)))
    assert wait_for(h, rid, p.WatchState).roots[0]["enabled"]
    time.sleep(0.6)
    assert eventually(lambda: search(h, data, "late line"))


def test_a_new_engine_watches_what_was_indexed_before_and_catches_up(embedder, tmp_path):
    logs, data = tmp_path / "logs", tmp_path / "data"
    logs.mkdir()
    (logs / "app.log").write_text(APP)
    (logs / "old.log").write_text("2026-03-01 10:00:00,000 INFO removed-7731 line\n")
    first = ServiceHarness()
    first.service._index_retrieval = RetrievalSessions(embedder)
    first.call(p.IndexPaths(paths=[str(logs)], data_dir=str(data)))
    wait_for(first, first.send(p.RemoveSources(paths=[str(logs / "old.log")], data_dir=str(data))), p.SourcesRemoved)
    first.service.close()

    # Written while no engine ran: the next engine's first poll indexes it.
    with open(logs / "app.log", "a") as f:
        f.write("2026-03-01 10:05:00,000 INFO  [main] com.shop.Web - while closed zq-closed-55\n")
    h = ServiceHarness()
    h.service._index_retrieval = RetrievalSessions(embedder)
    h.service.watcher.interval = 0.5
    try:
        rid = h.send(p.WatchSources(enabled=True, data_dir=str(data)))
        assert wait_for(h, rid, p.WatchState).roots == [{"path": str(logs), "enabled": True}]
        assert eventually(lambda: search(h, data, "zq-closed-55"))
        assert not search(h, data, "removed-7731")    # the removal outlived the engine
    finally:
        h.service.close()


def test_list_says_appending_until_the_new_lines_are_read(embedder, tmp_path):
    h = ServiceHarness()
    h.service._index_retrieval = RetrievalSessions(embedder)
    h.service.watcher.interval = 3600   # no watcher round during the test: the state is ours to see
    try:
        logs, data = tmp_path / "logs", tmp_path / "data"
        logs.mkdir()
        (logs / "app.log").write_text(APP)
        (logs / "notes.md").write_text("# Notes\n\nThe gateway is slow on Mondays.\n")
        assert isinstance(h.call(p.IndexPaths(paths=[str(logs)], data_dir=str(data))), p.IndexDone)
        with open(logs / "app.log", "a") as f:
            f.write("2026-03-01 10:00:09,000 ERROR [pool-1] com.shop.Pay - gateway refused\n")
        status = {s["path"]: s["status"] for s in h.call(p.ListSources(data_dir=str(data))).sources}
        assert status == {str(logs / "app.log"): "appending", str(logs / "notes.md"): "indexed"}
        assert isinstance(h.call(p.IndexPaths(paths=[str(logs)], data_dir=str(data))), p.IndexDone)
        status = {s["path"]: s["status"] for s in h.call(p.ListSources(data_dir=str(data))).sources}
        assert set(status.values()) == {"indexed"}
    finally:
        h.service.close()
