"""Files Lantern leaves out are named in the window's sources panel with the reason, in words:
files a reader fails on, and links that lead out of the added folder."""

import gzip
import os

import pytest

pytestmark = pytest.mark.slow


def test_the_panel_says_which_files_were_left_out_and_why(make_window, qtbot, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("token elderberry-9134\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a1-unbalanced.csv").write_text('time,msg\n2024-01-01 10:00:00,"start\n' + "x" * 200_000 + "\n")
    # a rotated log cut short in the copy: gzip cannot read it to the end
    (logs / "a2-truncated.log.gz").write_bytes(gzip.compress(b"2024-06-21 10:00:00 INFO line one\n" * 200)[:60])
    os.symlink(secret, logs / "link.log")
    (logs / "z-good.log").write_text("2024-06-21 10:00:00 INFO service started kumquat-7731 on node-3\n")
    window = make_window(wait_model=False)
    panel = window.sources.panel
    finished, failed = [], []
    window.client.index_finished.connect(finished.append)
    window.client.request_failed.connect(lambda rid, kind, msg: failed.append((rid, kind, msg)))
    window.sources.add_sources([str(logs)])
    qtbot.waitUntil(lambda: bool(finished or failed), timeout=120_000)
    assert finished and not failed, failed
    assert finished[0]["summary"]["files"] == 1
    qtbot.waitUntil(lambda: len(panel.sources) == 4, timeout=30_000)
    statuses = {os.path.basename(s["path"]): s["status"] for s in panel.sources}
    assert statuses == {"a1-unbalanced.csv": "skipped", "a2-truncated.log.gz": "skipped", "link.log": "skipped",
                        "z-good.log": "indexed"}
    text = panel.skipped_label.text()
    assert panel.skipped_label.isVisible()
    assert "a1-unbalanced.csv: a CSV field is larger than the field limit" in text
    assert "a2-truncated.log.gz: the compressed file is truncated or damaged" in text
    assert "link.log: a symbolic link to" in text and "outside the folder you added" in text


def test_a_rebuilt_vector_store_is_said_in_the_panel(make_window, monkeypatch):
    """The notice travels in IndexDone.summary (tests/unit/engine/retrieval/test_store_cache.py
    makes a real one); here the panel's part: a watched folder's run that found the damage says
    it, and so does the person's own run."""
    window = make_window(start_engine=False)
    panel = window.sources.panel
    # No engine here: the lists the panel asks for after a run are not part of this test.
    monkeypatch.setattr(panel, "refresh", lambda: "")
    monkeypatch.setattr(panel, "refresh_collections", lambda: "")
    notice = "The vector store was damaged (InternalError: x). It was set aside as chroma.damaged-1 ..."
    window.client.index_finished.emit({"id": "watch-7", "summary": {"notices": [notice], "skipped": []}})
    assert panel.summary.text() == notice
    panel.job_id = "job-1"
    window.client.index_finished.emit({"id": "job-1", "summary": {"files": 2, "chunks_added": 3, "seconds": 0.5,
                                                                  "notices": [notice]}})
    assert panel.summary.text().startswith("Last run: 2 files, 3 new chunks in 0.5 s. The vector store was damaged")
