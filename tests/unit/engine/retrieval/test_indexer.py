"""Indexing with the real embedder, chromadb and FTS5: only what changed is redone."""

import gzip
import os

import pytest

from engine.protocol import EngineError
from retrieval_corpus import JAVA, PYTHON, SYSLOG, access_lines


@pytest.fixture
def logs(tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    (d / "app.log").write_text(JAVA)
    (d / "sync.log").write_text(PYTHON)
    (d / "auth.log").write_text(SYSLOG)
    (d / "notes.md").write_text("# Runbook\n\nIf the orders table vanished, run the schema migration.\n")
    return d


def test_reindex_is_idempotent(index, logs):
    first = index.index(logs)
    assert first.files == 4 and first.chunks_added > 0 and not first.skipped
    chunks = index.chunks()
    assert all(c[4] == 1 for c in chunks) and index.vector_count() == len(chunks)
    again = index.index(logs)
    assert again.unchanged == 4 and again.chunks_added == 0 and again.bytes_read == 0 and again.embedded == 0
    assert index.chunks() == chunks and index.vector_count() == len(chunks)


def test_identifier_search_returns_exactly_the_record(index, logs):
    index.index(logs)
    app = str(logs / "app.log")
    for q, where in [("ORA-00942", (app, 3, 9)), ("10.0.0.8", (app, 2, 2)),
                     ("7f3c2a1e-1111-4222-8333-944445555666", (app, 3, 9)),
                     ("203.0.113.9", (str(logs / "auth.log"), 2, 2)), ("E1234", (str(logs / "sync.log"), 7, 7))]:
        hits = index.search(q, k=3)
        assert (hits[0].path, hits[0].line_start, hits[0].line_end) == where, (q, hits[0])
    # the octets of one IP do not find another IP's line
    assert all("10.0.0.8" in h.text or h.line_start != 1 for h in index.search("10.0.0.8", k=5)[:1])


def test_dense_search_finds_meaning(index, logs):
    index.index(logs)
    hit = index.search("database table is missing", k=3)[0]
    assert hit.path.endswith(("app.log", "notes.md"))
    hit = index.search("someone tried to log in with a wrong password", k=3)[0]
    assert (hit.path, hit.line_start) == (str(logs / "auth.log"), 2)


def test_time_and_level_filters(index, logs):
    index.index(logs)
    hits = index.search("what happened on June 21 at 16:47:48", k=3)
    assert (hits[0].path, hits[0].line_start, hits[0].line_end) == (str(logs / "app.log"), 3, 9)
    from datetime import datetime
    since = datetime(2024, 6, 21, 10, 0).timestamp()
    until = datetime(2024, 6, 21, 10, 5).timestamp()
    hits = index.search("sync", k=10, since=since, until=until)
    assert hits and all(h.path.endswith("sync.log") and h.line_start < 8 for h in hits)
    errors = index.search("sync", k=10, level="ERROR")
    assert errors and all(" ERROR " in h.text for h in errors)
    assert (errors[0].path, errors[0].line_start, errors[0].line_end) == (str(logs / "sync.log"), 2, 6)
    assert index.search("sync", k=10, file_glob="auth*") == [] or all(
        h.path.endswith("auth.log") for h in index.search("sync", k=10, file_glob="auth*"))


def test_append_is_read_from_the_offset(index, logs):
    index.index(logs)
    before = len(index.chunks())
    extra = "2024-06-21 16:48:00,000 ERROR [main] com.acme.Web - payment gateway timeout gw-42.pay.example\n"
    with open(logs / "app.log", "a") as f:
        f.write(extra)
    r = index.index(logs)
    assert r.appended == 1 and r.unchanged == 3 and r.bytes_read == len(extra.encode())
    assert len(index.chunks()) == before + 1
    hit = index.search("gw-42.pay.example", k=1)[0]
    assert (hit.path, hit.line_start, hit.line_end) == (str(logs / "app.log"), 12, 12)


def test_rotation_is_the_same_stream(index, logs):
    index.index(logs)
    app = logs / "app.log"
    ids = {c[0] for c in index.chunks() if c[1] == str(app)}
    os.rename(app, logs / "app.log.1")
    app.write_text("2024-06-22 08:00:00,000 INFO  [main] com.acme.Web - started fresh after rotation\n")
    r = index.index(logs)
    assert r.rotated == 1 and r.deleted == 0
    moved = {c[0] for c in index.chunks() if c[1] == str(logs / "app.log.1")}
    assert moved == ids  # same ids, same vectors: nothing re-embedded
    assert index.search("ORA-00942", k=1)[0].path == str(logs / "app.log.1")
    assert index.search("started fresh after rotation", k=1)[0].path == str(app)
    # then compressed: app.log.1 -> app.log.2.gz
    with gzip.open(logs / "app.log.2.gz", "wb") as z:
        z.write((logs / "app.log.1").read_bytes())
    os.unlink(logs / "app.log.1")
    r = index.index(logs)
    assert r.rotated == 1 and r.chunks_added == 0
    assert index.search("ORA-00942", k=1)[0].path == str(logs / "app.log.2.gz")
    assert index.vector_count() == len(index.chunks())


def test_deleted_file_leaves_the_index_and_changed_document_is_redone(index, logs):
    index.index(logs)
    os.unlink(logs / "auth.log")
    notes = logs / "notes.md"
    notes.write_text("# Runbook\n\nRestart the frobnicator when the queue stalls.\n")
    r = index.index(logs)
    assert r.deleted == 1 and r.redone == 1 and r.unchanged == 2
    assert not [c for c in index.chunks() if c[1].endswith("auth.log")]
    assert index.search("203.0.113.9", k=3) == [] or all(
        not h.path.endswith("auth.log") for h in index.search("203.0.113.9", k=3))
    assert index.search("frobnicator", k=1)[0].path == str(notes)
    assert index.vector_count() == len(index.chunks())


def test_bad_files_are_skipped_and_the_run_goes_on(index, logs):
    (logs / "blob.bin").write_bytes(bytes(range(256)) * 10)
    whole = gzip.compress(b"".join(b"line %d\n" % i for i in range(20000)))
    (logs / "old.log.3.gz").write_bytes(whole[:len(whole) // 2])
    (logs / "huge.txt").write_bytes(b"z" * (2 << 20) + b"\n")
    os.mkfifo(logs / "pipe")
    os.symlink(logs / "loop", logs / "loop")
    r = index.index(logs)
    reasons = {os.path.basename(s["path"]): s["reason"] for s in r.skipped}
    assert set(reasons) == {"blob.bin", "old.log.3.gz", "huge.txt", "pipe", "loop"}
    assert "binary" in reasons["blob.bin"] and "truncated" in reasons["old.log.3.gz"]
    assert "FIFO" in reasons["pipe"] and "loop" in reasons["loop"] and "KiB" in reasons["huge.txt"]
    assert r.files == 4 and index.search("ORA-00942", k=1)  # the good files are in


def test_templates_are_embedded_once(index, tmp_path):
    d = tmp_path / "web"
    d.mkdir()
    (d / "access.log").write_text(access_lines(400))
    r = index.index(d)
    assert r.chunks_added == 50 and r.templates_embedded <= 4
    hit = index.search("10.1.1.3", k=1)[0]
    assert "10.1.1.3 " in hit.text and hit.line_start == hit.line_end == 253


def test_collection_refuses_another_embedder(index, logs, tmp_path):
    index.index(logs)

    class Other:
        config = {"name": "other-model", "dim": 8, "normalize": True}

    with pytest.raises(EngineError, match="built with the embedder"):
        index.store.collection.__func__(type(index.store)(tmp_path / "data" / "chroma"), "default", Other.config)


def test_filtered_dense_search_ranks_the_kept_vectors_like_chroma(index, logs):
    """A filtered search ranks the allowed chunks with the vectors kept in the manifest; the
    order must be chroma's own for the same chunks, and an index without kept vectors (from
    before they were kept) still searches, through chroma."""
    import numpy as np

    from engine.retrieval import retriever as R

    index.index(logs)
    rows = index.manifest.db.execute("SELECT rowid, id, vec FROM chunks WHERE embedded = 1").fetchall()
    assert rows and all(v is not None and len(v) == 2 * 384 for _, _, v in rows)
    q = index.embedder.embed_query("someone tried to log in with a wrong password")
    ours = R._nearest(rows, q, 5)
    by_id = {cid: rowid for rowid, cid, _ in rows}
    theirs = [by_id[cid] for cid, _ in index.store.query("default", index.embedder.config, q, 5,
                                                         [cid for _, cid, _ in rows])]
    assert ours == theirs
    # The kept vector is the stored one, within float16 precision.
    got = index.store.collection("default", index.embedder.config).get(ids=[rows[0][1]], include=["embeddings"])
    assert np.allclose(np.frombuffer(rows[0][2], dtype=np.float16), got["embeddings"][0], atol=2e-3)

    since = __import__("datetime").datetime(2024, 6, 21, 10, 0).timestamp()
    with_vec = index.search("tenant sync failed", k=3, since=since, until=since + 300)
    index.manifest.db.execute("UPDATE chunks SET vec = NULL")
    without = index.search("tenant sync failed", k=3, since=since, until=since + 300)
    # The same records in the same order; scores agree within float16 precision.
    assert [(h.path, h.line_start, h.line_end) for h in without] == [(h.path, h.line_start, h.line_end) for h in with_vec]
    assert all(abs(a.score - b.score) < 1e-3 for a, b in zip(without, with_vec))


def test_a_lost_vector_store_is_restored_from_the_manifest(index, logs, tmp_path):
    """The manifest is the truth: with the chroma folder gone, the next index run puts every
    vector back from the ones the manifest keeps, without embedding, and search finds meaning
    again."""
    import shutil

    from engine.retrieval.vectorstore import VectorStore

    index.index(logs)
    n = len(index.chunks())
    # A new, empty store (chroma keeps one client per folder in a process, so a deleted folder
    # reopened here would still show the old data: another folder stands for it).
    shutil.rmtree(tmp_path / "data" / "chroma", ignore_errors=True)
    index.store = VectorStore(tmp_path / "data" / "chroma-new")
    index.retriever.store = index.store
    assert index.vector_count() == 0
    report = index.index(logs)
    assert report.embedded == 0 and report.templates_embedded == 0
    assert index.vector_count() == n
    hit = index.search("someone tried to log in with a wrong password", k=3)[0]
    assert (hit.path, hit.line_start) == (str(logs / "auth.log"), 2)


def test_a_date_without_a_year_is_evidence_for_any_year(index, tmp_path):
    """"March 1st" in a folder of logs from an earlier year means that year's March 1st: of two
    failures with the same words, the one on that day comes first, and the other one (another
    day, and more of the words) is still found, not filtered away."""
    d = tmp_path / "old"
    d.mkdir()
    (d / "monday.log").write_text(
        "2024-03-01 09:58:00,000 INFO  [batch] nightly export started\n"
        "2024-03-01 10:00:05,000 ERROR [batch] payout run failed: bank gateway refused\n")
    (d / "tuesday.log").write_text(
        "2024-03-02 10:00:05,000 ERROR [batch] settlement run failed: settlement run failed, bank gateway refused\n")
    index.index(d)
    hits = index.search("run failed on March 1st around 10:00", k=3)
    assert (hits[0].path, hits[0].line_start) == (str(d / "monday.log"), 2), hits
    assert str(d / "tuesday.log") in [h.path for h in hits]
    from datetime import datetime

    from engine.retrieval import query
    i = query.parse("on March 1st around 10:00", datetime(2026, 12, 1))
    assert i.yearless and (i.when.month, i.when.day, i.when.year) == (3, 1, None)
    assert datetime.fromtimestamp(i.when.windows(range(2024, 2025))[0][0]) == datetime(2024, 3, 1, 9, 50)
    assert not query.parse("on 2024-03-01 around 10:00").yearless
