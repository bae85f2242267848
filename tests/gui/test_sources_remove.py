"""The Sources panel's remove action and its refresh after the engine's own watch jobs, against
a stand-in client: what is sent, and when the list is asked for again."""

from PySide6.QtCore import QObject, Qt, Signal

from ui.sources_panel import SourcesPanel


class FakeClient(QObject):
    index_progress = Signal(dict)
    index_finished = Signal(dict)
    sources_listed = Signal(dict)
    sources_removed = Signal(dict)
    request_failed = Signal(str, str, str)
    reply_cancelled = Signal(str, str)

    def __init__(self):
        super().__init__()
        self.sent = []

    def remove_sources(self, paths, collection, data_dir):
        self.sent.append(("remove", list(paths), collection, data_dir))
        return "r1"

    def list_sources(self, collection, data_dir):
        self.sent.append(("list", collection, data_dir))
        return "l1"


SOURCES = [{"path": "/logs/app.log", "status": "indexed", "chunks": 3, "size": 100},
           {"path": "/docs/report.pdf", "status": "indexed", "chunks": 5, "size": 2000}]


def test_remove_selected_source_and_refresh(qtbot):
    client = FakeClient()
    panel = SourcesPanel(client, "/data")
    qtbot.addWidget(panel)
    client.sources_listed.emit({"collection": "default", "sources": SOURCES})
    assert panel.tree.topLevelItemCount() == 2 and not panel.remove_button.isEnabled()
    panel.tree.topLevelItem(1).setSelected(True)
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
