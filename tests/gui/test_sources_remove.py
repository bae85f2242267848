"""The Sources panel against a stand-in client: remove and its refresh after the engine's own
watch jobs, collections (pick, create, refused names), pause/resume and the watch switch; what
is sent, and what the panel shows. The real engine is driven by tests/gui/test_sources.py."""

from PySide6.QtCore import QItemSelectionModel, QObject, Qt, Signal
from PySide6.QtWidgets import QMessageBox

from ui.sources_panel import NEW_COLLECTION, SourcesPanel


class FakeClient(QObject):
    index_progress = Signal(dict)
    index_finished = Signal(object)
    sources_listed = Signal(object)
    sources_removed = Signal(dict)
    request_failed = Signal(str, str, str)
    reply_cancelled = Signal(str, str)
    collections_listed = Signal(object)
    indexing_paused = Signal(bool)

    def __init__(self):
        super().__init__()
        self.sent = []

    def remove_sources(self, paths, collection, data_dir):
        self.sent.append(("remove", list(paths), collection, data_dir))
        return "r1"

    def list_sources(self, collection, data_dir):
        self.sent.append(("list", collection, data_dir))
        return "l1"

    def list_collections(self, data_dir):
        self.sent.append(("collections", data_dir))
        return "c1"

    def pause_indexing(self, paused):
        self.sent.append(("pause", paused))
        return "p1"

    def watch_sources(self, collection, data_dir, enabled=True):
        self.sent.append(("watch", collection, enabled))
        return "w1"

    def index_paths(self, paths, collection, data_dir):
        self.sent.append(("index", list(paths), collection))
        return "i1"


SOURCES = [{"path": "/logs/app.log", "status": "indexed", "chunks": 3, "size": 100},
           {"path": "/docs/report.pdf", "status": "indexed", "chunks": 5, "size": 2000}]


def test_remove_selected_source_and_refresh(qtbot):
    client = FakeClient()
    panel = SourcesPanel(client, "/data")
    qtbot.addWidget(panel)
    client.sources_listed.emit({"collection": "default", "sources": SOURCES})
    assert panel.model.rowCount() == 2 and not panel.remove_button.isEnabled()
    assert panel.model.index(1, 0).data() == "report.pdf" and panel.model.index(1, 3).data() == "2.0 KB"
    panel.tree.selectionModel().select(panel.model.index(1, 0), QItemSelectionModel.Select | QItemSelectionModel.Rows)
    assert panel.remove_button.isEnabled() and panel.selected_paths() == ["/docs/report.pdf"]
    qtbot.mouseClick(panel.remove_button, Qt.LeftButton)
    assert client.sent[-1] == ("remove", ["/docs/report.pdf"], "default", "/data")
    client.sources_removed.emit({"id": "r1", "collection": "default", "paths": ["/docs/report.pdf"]})
    assert client.sent[-1] == ("list", "default", "/data") and "Removed 1 file" in panel.summary.text()


def test_watch_jobs_refresh_the_list_without_a_job_of_ours(qtbot):
    client = FakeClient()
    panel = SourcesPanel(client, "/data")
    qtbot.addWidget(panel)
    client.index_finished.emit({"id": "watch-3", "summary": {"files": 1}})
    assert client.sent == [("list", "default", "/data")] and not panel.is_indexing()
    client.index_finished.emit({"id": "someone-else", "summary": {}})
    assert len(client.sent) == 1


def test_collections_pick_create_and_refuse(qtbot, monkeypatch):
    client = FakeClient()
    panel = SourcesPanel(client, "/data")
    qtbot.addWidget(panel)
    changed = []
    panel.collection_changed.connect(changed.append)
    client.collections_listed.emit({"collections": [{"name": "default", "files": 2, "chunks": 9, "size": 10},
                                                    {"name": "payments", "files": 1, "chunks": 4, "size": 5}]})
    box = panel.collection_box
    assert [box.itemText(i) for i in range(box.count())] == ["default", "payments", NEW_COLLECTION]
    box.activated.emit(1)
    assert panel.collection == "payments" and changed == ["payments"]
    assert client.sent[-1] == ("list", "payments", "/data")
    panel.start(["/logs"])
    assert client.sent[-1] == ("index", ["/logs"], "payments") and "payments" in panel.job_label.text()

    warned = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a: warned.append(a[2]))
    assert not panel.new_collection("Payments") and "already" in warned[-1]
    assert not panel.new_collection("   ") and "needs a name" in warned[-1]
    assert not panel.new_collection("x" * 61)
    assert panel.new_collection("  night   batch ")
    assert panel.collection == "night batch" and box.currentText() == "night batch"
    # A new, empty collection stays listed when the engine's list (which cannot know it yet) comes.
    client.collections_listed.emit({"collections": [{"name": "default", "files": 2, "chunks": 9, "size": 10}]})
    assert panel.collections == ["default", "night batch", "payments"]


def test_pause_resume_and_watch_switch(qtbot):
    client = FakeClient()
    panel = SourcesPanel(client, "/data")
    qtbot.addWidget(panel)
    panel.start(["/logs"])
    qtbot.mouseClick(panel.pause_button, Qt.LeftButton)
    assert client.sent[-1] == ("pause", True) and panel.pause_button.text() == "Pause"   # until the engine says
    client.indexing_paused.emit(True)
    assert panel.pause_button.text() == "Resume" and "Paused" in panel.job_detail.text()
    client.index_progress.emit({"id": "i1", "phase": "paused"})
    assert "Paused" in panel.job_detail.text()
    qtbot.mouseClick(panel.pause_button, Qt.LeftButton)
    assert client.sent[-1] == ("pause", False)
    client.indexing_paused.emit(False)
    client.index_progress.emit({"id": "i1", "phase": "read", "done": 1, "total": 4})
    assert panel.pause_button.text() == "Pause" and "Reading: 1 of 4 files" in panel.job_detail.text()

    watched = []
    panel.watch_toggled.connect(lambda c, on: watched.append((c, on)))
    panel.watch_box.setChecked(False)
    assert client.sent[-1] == ("watch", "default", False) and watched == [("default", False)]


def test_a_long_list_is_one_model_reset(qtbot):
    """Thousands of files (a folder of rotated logs) are handed to the view in one reset: the
    view asks for the rows it shows, so the refresh after every watch job stays cheap."""
    client = FakeClient()
    panel = SourcesPanel(client, "/data")
    qtbot.addWidget(panel)
    resets = []
    panel.model.modelReset.connect(lambda: resets.append(1))
    many = [{"path": f"/logs/worker-{i:05d}.log", "status": "indexed", "chunks": 2, "size": 10} for i in range(10000)]
    many[5] = {**many[5], "status": "skipped", "reason": "binary file"}
    client.sources_listed.emit({"collection": "default", "sources": many})
    assert resets == [1] and panel.model.rowCount() == 10000
    assert panel.model.index(5, 1).data() == "Skipped: binary file"
    assert "10,000 files" not in panel.summary.text() and "9,999 files indexed" in panel.summary.text()
