"""Files that must never stop an index run: each bad one is skipped with a reason a person
understands, remembered until it changes, and everything else is indexed and searchable."""

import os
import sqlite3
import time
from pathlib import Path

import pytest

from engine.protocol import EngineError
from engine.retrieval import indexer as indexer_mod, pdf
from engine.retrieval.indexer import Indexer, walk

SEAMS = Path(__file__).resolve().parents[3] / "seams"

GOOD = ("2024-06-21 10:00:00 INFO service started kumquat-7731 on node-3\n"
        "2024-06-21 10:00:05 ERROR disk quota exceeded for volume vol-42\n")


def _zoo(d: Path) -> dict[str, Path]:
    """Each bad kind sorted before the good logs."""
    d.mkdir()
    bad = {
        # an unbalanced quote: the csv module reads on until "field larger than field limit"
        "a1-unbalanced.csv": 'time,msg\n2024-01-01 10:00:00,"start\n' + "x" * 200_000 + "\n",
        # a JSON-lines timestamp a million years ahead ("year 3170843 is out of range"): that
        # record loses its time, the file is indexed
        "a2-future.jsonl": '{"ts": 1e17, "msg": "far future"}\n{"ts": 1700000000, "msg": "ok"}\n',
        # journal export whose timestamp holds "²", a digit to str.isdigit() but not to int():
        # that entry has no time, the others keep theirs
        "a3-digit.export": ("__CURSOR=s=1\n__REALTIME_TIMESTAMP=17000000000\u00b2\nPRIORITY=6\n"
                            "MESSAGE=odd digit\n\n__CURSOR=s=2\n__REALTIME_TIMESTAMP=1700000000000000\n"
                            "PRIORITY=6\nMESSAGE=next\n\n"),
    }
    for name, text in bad.items():
        (d / name).write_text(text, encoding="utf-8")
    (d / "a4-broken.pdf").write_bytes(b"%PDF-1.4\n% a PDF whose parser raises something unexpected\n")
    (d / "z-good.log").write_text(GOOD)
    (d / "z-other.log").write_text("2024-06-21 10:01:00 WARN retrying upload to bucket quince-88\n")
    return {p.name: p for p in d.iterdir()}


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    files = _zoo(tmp_path / "zoo")
    real_open = pdf._open

    def _open(pdfium, pdfium_c, path):
        if path.endswith("a4-broken.pdf"):
            raise KeyError("/Root")   # not one of the errors pdf.py knows and turns into a reason
        return real_open(pdfium, pdfium_c, path)

    monkeypatch.setattr(pdf, "_open", _open)
    return files


def test_poison_file_zoo(index, zoo):
    report = index.index(zoo["a1-unbalanced.csv"].parent)
    reasons = {os.path.basename(s["path"]): s["reason"] for s in report.skipped}
    assert set(reasons) == {"a1-unbalanced.csv", "a4-broken.pdf"}
    assert "quote that is never closed" in reasons["a1-unbalanced.csv"]
    assert "PDF reader" in reasons["a4-broken.pdf"] and "KeyError" in reasons["a4-broken.pdf"]
    assert all("until the file changes" in r for r in reasons.values())
    assert report.files == 4
    # A record whose time no calendar holds keeps its text; its neighbours keep their times.
    far = index.search("far future", k=1)[0]
    assert far.path == str(zoo["a2-future.jsonl"]) and far.line_start == 1 and far.epoch is None
    assert index.search("odd digit", k=1)[0].path == str(zoo["a3-digit.export"])
    nxt = index.search("next", k=1, file_glob="*.export")[0]
    assert nxt.epoch == 1700000000.0
    assert [(h.path, h.line_start) for h in index.search("kumquat-7731", k=1)] == [(str(zoo["z-good.log"]), 1)]
    assert index.search("quince-88", k=1)[0].path == str(zoo["z-other.log"])
    # The sources list (the window's panel, `lantern sources`) says the same.
    sources = index.manifest.sources("default")
    assert {Path(p).name: s.reason for p, s in sources.items() if s.status == "skipped"} == reasons


def test_a_failure_is_remembered_until_the_file_changes(index, zoo, monkeypatch):
    folder = zoo["z-good.log"].parent
    index.index(folder)
    reads = []
    real = indexer_mod.read_chunks
    monkeypatch.setattr(indexer_mod, "read_chunks", lambda *a: reads.append(os.path.basename(a[1])) or real(*a))
    again = index.index(folder)
    assert reads == [] and again.bytes_read == 0, "an unchanged bad file is not read again"
    assert len(again.skipped) == 2 and again.unchanged == 4
    # Fixed: read again and indexed.
    zoo["a1-unbalanced.csv"].write_text("time,msg\n2024-01-01 10:00:00,medlar-5150 arrived\n")
    third = index.index(folder)
    assert reads == ["a1-unbalanced.csv"] and len(third.skipped) == 1
    assert index.search("medlar-5150", k=1)[0].path == str(zoo["a1-unbalanced.csv"])
    # Gone: no longer listed as skipped.
    os.unlink(zoo["a4-broken.pdf"])
    index.index(folder)
    assert not [p for p in index.manifest.sources("default") if p.endswith("a4-broken.pdf")]


def test_a_file_the_engine_died_reading_is_read_in_a_child_and_skipped(index, tmp_path, monkeypatch):
    """The row written before a file is read survives the engine's death; the next run reads
    that file in a child process first. The seam makes the child's reader SIGKILL itself."""
    d = tmp_path / "logs"
    d.mkdir()
    (d / "crash.log").write_text("2024-06-21 10:00:00 INFO this line kills the reader\n")
    (d / "good.log").write_text(GOOD)
    (d / "killed.log").write_text("2024-06-21 10:02:00 INFO fig-2024 was being read when kill -9 came\n")
    for name in ("crash.log", "killed.log"):   # as a run killed while reading it leaves them
        st = os.stat(d / name)
        with index.manifest:
            index.manifest.start_reading("default", str(d / name), (st.st_size, st.st_mtime, st.st_ino, st.st_dev))
    monkeypatch.setenv("PYTHONPATH", str(SEAMS))
    monkeypatch.setenv("LANTERN_TEST_CRASH_FILE", "crash.log")
    report = index.index(d)
    reasons = {os.path.basename(s["path"]): s["reason"] for s in report.skipped}
    assert list(reasons) == ["crash.log"] and "SIGKILL" in reasons["crash.log"], reasons
    # A file the engine was merely killed during (its child reads it fine) is indexed as usual.
    assert index.search("fig-2024", k=1)[0].path == str(d / "killed.log")
    assert index.search("kumquat-7731", k=1)[0].path == str(d / "good.log")
    assert index.manifest.reading("default") == {}
    again = index.index(d)   # not retried, not even in a child, until it changes
    assert [s["path"] for s in again.skipped] == [str(d / "crash.log")] and again.bytes_read == 0


def test_symlinks_out_of_the_folder_are_skipped_and_loops_end(index, tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY----- damson-6021\n")
    d = tmp_path / "logs"
    d.mkdir()
    (d / "app.log").write_text(GOOD)
    os.symlink(secret / "id_rsa", d / "link.log")
    os.symlink(secret, d / "outside")
    os.symlink(".", d / "a")
    os.symlink("/", d / "z")
    os.symlink("app.log", d / "same.log")   # a link inside the folder is fine
    t0 = time.monotonic()
    report = index.index(d)
    assert time.monotonic() - t0 < 60
    reasons = {os.path.basename(s["path"]): s["reason"] for s in report.skipped}
    assert set(reasons) == {"link.log", "outside", "z"}, reasons
    assert all("outside the folder you added" in r for r in reasons.values())
    assert index.search("damson-6021", k=3) == [] or all("damson" not in h.text for h in index.search("damson-6021"))
    assert {h.path for h in index.search("kumquat-7731", k=5)} <= {str(d / "app.log"), str(d / "same.log")}
    # The watcher sees the same files as the indexer's walk.
    from engine.watcher import snapshot
    assert set(snapshot(str(d), set())) == {str(d / "app.log"), str(d / "same.log")}


def test_a_link_indexed_before_leaves_the_index(index, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("token elderberry-9134\n")
    d = tmp_path / "logs"
    d.mkdir()
    os.symlink(secret, d / "link.log")
    (d / "app.log").write_text(GOOD)
    Indexer(index.manifest, index.store, index.embedder, follow_links=True).index([str(d)])
    assert index.search("elderberry-9134", k=1)[0].path == str(d / "link.log")
    report = index.index(d)
    assert [s["path"] for s in report.skipped] == [str(d / "link.log")] and report.deleted == 0
    assert all("elderberry" not in h.text for h in index.search("elderberry-9134", k=3))
    link = index.manifest.sources("default")[str(d / "link.log")]
    assert link.status == "skipped" and "outside the folder you added" in link.reason


def test_deep_trees_end(tmp_path):
    from engine.retrieval.indexer import MAX_DEPTH, IndexReport
    from engine.watcher import snapshot

    d = tmp_path / "deep"
    p = str(d)
    os.mkdir(p)
    for _ in range(1100):   # deeper than Python's recursion limit
        p += "/d"
        os.mkdir(p)
    with open(p + "/bottom.log", "w") as f:
        f.write("x\n")
    (d / "top.log").write_text("y\n")
    try:
        report = IndexReport()
        t0 = time.monotonic()
        files = walk([str(d)], report)
        assert files == [str(d / "top.log")]
        assert len(report.skipped) == 1 and f"more than {MAX_DEPTH} folders deep" in report.skipped[0]["reason"]
        assert set(snapshot(str(d), set())) == {str(d / "top.log")}
        assert time.monotonic() - t0 < 30
    finally:   # bottom up: shutil.rmtree (pytest's cleanup) recurses once per level
        os.unlink(p + "/bottom.log")
        while p != str(d):
            os.rmdir(p)
            p = os.path.dirname(p)


def test_a_full_disk_stops_the_run_with_that_reason(index, tmp_path, monkeypatch):
    d = tmp_path / "logs"
    d.mkdir()
    (d / "a.log").write_text(GOOD)
    (d / "b.log").write_text("2024-06-21 10:01:00 WARN retrying upload to bucket quince-88\n")
    real = index.manifest.add_chunks

    def add_chunks(collection, path, *args):
        if path.endswith("b.log"):
            index.manifest.db.execute("INSERT INTO chunks_fts (rowid, tokens) VALUES (999999, 'half')")
            raise sqlite3.OperationalError("database or disk is full")
        return real(collection, path, *args)

    monkeypatch.setattr(index.manifest, "add_chunks", add_chunks)
    with pytest.raises(EngineError) as e:
        index.index(d)
    assert e.value.kind == "index_io" and "is full" in e.value.message and "Free some space" in e.value.message
    sources = index.manifest.sources("default")
    assert sources[str(d / "a.log")].status == "ok" and str(d / "b.log") not in sources
    assert not [c for c in index.chunks() if c[1].endswith("b.log")]
    assert index.manifest.db.execute("SELECT count(*) FROM chunks_fts WHERE rowid=999999").fetchone()[0] == 0


def test_a_failed_watch_job_waits_before_it_is_tried_again(tmp_path):
    from engine import protocol as p
    from engine.watcher import FAILED_BACKOFF_S, Watcher

    d = tmp_path / "logs"
    d.mkdir()
    (d / "app.log").write_text("one\n")
    queued = []
    w = Watcher(queued.append, interval=0.01)
    w._start = lambda: None   # polled by hand here
    cmd = p.IndexPaths(paths=[str(d)], data_dir=str(tmp_path / "data"))
    assert w.before_index(cmd)
    w.after_index(cmd, failed=True)
    (d / "app.log").write_text("one\ntwo\n")
    time.sleep(0.05)
    assert w.poll() == [], "a busy log does not repeat a failed job at every poll"
    root = next(iter(w._roots.values()))
    assert root.next_poll - time.monotonic() > FAILED_BACKOFF_S - 5
    root.next_poll = 0
    assert len(w.poll()) == 1


def test_after_a_pdf_crash_the_other_pdfs_of_the_run_are_read_in_a_child(index, tmp_path, monkeypatch):
    """Three PDFs that crash the PDF reader: the engine dies on the first only. Its restart reads
    it in a child (dies: skipped), and the other PDFs of that run are read in a child first
    too, so they cost no more engine restarts; a good PDF still goes in."""
    pytest.importorskip("fpdf")
    from test_pdf_docx import write_pdf

    d = tmp_path / "docs"
    d.mkdir()
    for name in ("b1.pdf", "b2.pdf", "b3.pdf"):
        write_pdf(d / name, [["nothing to see"]])
    write_pdf(d / "good.pdf", [["The plum-3391 cluster was rebuilt on Tuesday."]])
    st = os.stat(d / "b1.pdf")
    with index.manifest:
        index.manifest.start_reading("default", str(d / "b1.pdf"), (st.st_size, st.st_mtime, st.st_ino, st.st_dev))
    monkeypatch.setenv("PYTHONPATH", str(SEAMS))
    monkeypatch.setenv("LANTERN_TEST_CRASH_FILE", "b1.pdf,b2.pdf,b3.pdf")
    report = index.index(d)
    reasons = {os.path.basename(s["path"]): s["reason"] for s in report.skipped}
    assert set(reasons) == {"b1.pdf", "b2.pdf", "b3.pdf"} and all("SIGKILL" in r for r in reasons.values())
    assert "the engine stopped while reading it" in reasons["b1.pdf"]
    assert index.search("plum-3391", k=1)[0].path == str(d / "good.pdf")


def test_a_full_disk_under_the_vector_store_is_said_once(index, tmp_path, monkeypatch):
    d = tmp_path / "logs"
    d.mkdir()
    (d / "a.log").write_text(GOOD)
    col = index.store.collection("default", index.embedder.config)
    monkeypatch.setattr(type(col), "upsert", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(EngineError) as e:
        index.index(d)
    assert e.value.message.count("is full") == 1 and "No space left on device" in e.value.message
    assert index.manifest.sources("default")[str(d / "a.log")].status == "ok"   # the lexical index has it
    monkeypatch.undo()
    index.index(d)   # space again: the next run embeds what was left
    assert index.vector_count() == len(index.chunks())


def test_two_threads_opening_a_new_index_at_once_both_succeed(tmp_path):
    """The engine's worker and indexer threads open the manifest together (a search while the
    first folder is indexed): adding a column the other just added is no error."""
    import threading

    from engine.retrieval.manifest import Manifest

    errors = []
    for i in range(20):
        path = tmp_path / f"m{i}" / "manifest.sqlite"
        gate = threading.Barrier(3)

        def open_it():
            gate.wait()
            try:
                Manifest(path).close()
            except Exception as e:   # noqa: BLE001 - collected and asserted below
                errors.append(e)

        threads = [threading.Thread(target=open_it) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
