"""Sources in the window, end to end on the real engine process, embedder and default model: a
folder dropped on the window is indexed in the background with progress, a question with "Use
my sources" on gets a reply with source cards, and a card opens the cited lines highlighted."""

import os

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication

pytestmark = pytest.mark.slow

SHOTS = os.environ.get("LANTERN_SHOTS", "/tmp/shots")
INDEX_TIMEOUT_MS = 180_000

PAYMENT = "".join(f"2026-03-01 09:{m:02d}:00,000 INFO  [main] com.shop.Web - GET /health 200\n" for m in range(50, 60)) + (
    "2026-03-01 10:00:03,120 ERROR [pool-2] com.shop.PaymentService - call to gateway timed out after 30000 ms\n"
    "java.net.SocketTimeoutException: Read timed out\n"
    "\tat java.net.SocketInputStream.read(SocketInputStream.java:171)\n"
    "\tat com.shop.PaymentClient.charge(PaymentClient.java:88)\n"
    "2026-03-01 10:00:04,000 INFO  [main] com.shop.Web - GET /health 200\n")
SYSLOG = ("Mar  1 09:59:58 web1 kernel: [1234.5] eth0: link up\n"
          "Mar  1 10:00:01 web1 CRON[311]: (root) CMD (run-parts /etc/cron.hourly)\n")
NGINX = "".join(f'10.0.0.{i} - - [01/Mar/2026:10:00:0{i} +0000] "POST /api/pay HTTP/1.1" 504 167 "-" "curl/8.0"\n'
                for i in range(1, 4))


def shot(widget, name):
    os.makedirs(SHOTS, exist_ok=True)
    QApplication.processEvents()   # let layouts settle after the last signal
    widget.grab().save(os.path.join(SHOTS, name))


def drop(window, paths):
    """What dropping files from a file manager does: the window's own dropEvent."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    ev = QDropEvent(QPointF(200, 200), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    window.dropEvent(ev)
    return ev


def test_drop_index_ask_and_open_the_cited_lines(make_window, wait_reply, qtbot, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "payment.log").write_text(PAYMENT)
    (logs / "syslog").write_text(SYSLOG)
    (logs / "access.log").write_text(NGINX)
    (logs / "core.bin").write_bytes(bytes(range(256)) * 8)
    window = make_window(max_tokens=48)
    panel = window.sources.panel
    progress = []

    def on_progress(ev):
        if not progress:
            shot(panel, "sources_progress.png")   # the job as the person sees it, mid-run
        progress.append(ev)
    window.client.index_progress.connect(on_progress)

    finished, failed = [], []
    window.client.index_finished.connect(finished.append)
    window.client.request_failed.connect(lambda rid, kind, msg: failed.append((rid, kind, msg)))
    window.client.engine_crashed.connect(lambda tail: failed.append(("crash", "", tail)))
    assert drop(window, [logs]).isAccepted()
    assert panel.isVisible() and panel.job.isVisible() and panel.is_indexing()
    # The engine keeps answering while it indexes.
    with wait_reply(window) as replied:
        window.send_prompt("Say hello.")
    assert replied.args[2].status == "complete", (replied.args[2].meta, failed)
    qtbot.waitUntil(lambda: bool(finished or failed), timeout=INDEX_TIMEOUT_MS)
    assert finished and not failed, (failed, window.client.stderr_tail())
    assert finished[0]["summary"]["files"] == 3
    assert progress and not panel.job.isVisible()
    assert any(ev["phase"] == "read" and ev["bytes_done"] > 0 for ev in progress)
    qtbot.waitUntil(lambda: len(panel.sources) == 4, timeout=30_000)
    statuses = {os.path.basename(s["path"]): s["status"] for s in panel.sources}
    assert statuses["payment.log"] == "indexed" and statuses["core.bin"] == "skipped"
    assert panel.model.rowCount() == 4
    shot(window, "sources_panel.png")

    assert window.session.uses_sources(window.current_id)    # adding sources switched it on here
    window.new_chat()
    assert not window.sources.use_button.isChecked()        # a new conversation starts without
    qtbot.mouseClick(window.sources.use_button, Qt.LeftButton)
    assert window.session.uses_sources(window.current_id)
    with wait_reply(window) as replied:
        window.send_prompt("why did the payment service time out on March 1st around 10:00?")
    msg = replied.args[2]
    cites = msg.meta["citations"]
    assert cites and cites[0]["path"].endswith("payment.log")
    assert window.store.message(msg.id).meta["citations"] == cites     # survives a restart
    window._reload_view()                # as after a restart: the cards come back from the store
    card = window.chat_view.cards()[-1]
    assert len(card.citation_buttons) == len(cites) and card.sent_button.isVisible()
    shot(window, "reply_with_sources.png")

    qtbot.mouseClick(card.citation_buttons[0], Qt.LeftButton)
    viewer = window.sources.viewer
    assert viewer is not None and viewer.isVisible() and viewer.from_file
    first = cites[0]
    assert viewer.highlighted == list(range(first["line_start"], first["line_end"] + 1))
    lines = PAYMENT.splitlines()
    assert [t for _, t in viewer.cited_lines] == lines[first["line_start"] - 1:first["line_end"]]
    assert viewer.lines[0][0] == max(1, first["line_start"] - 10)    # context above
    shot(viewer, "source_viewer.png")

    card.open_citation(first["n"])       # what a click on a [n] marker in the text does
    assert window.sources.viewer.citation["n"] == first["n"]
    qtbot.mouseClick(card.sent_button, Qt.LeftButton)
    report = window.sources.report
    assert report is not None and "Tokens" in report.browser.toPlainText()
    shot(report, "what_was_sent.png")


def test_collections_per_conversation(make_window, wait_reply, qtbot, tmp_path):
    """Two collections; a conversation answers only from the ones it chose."""
    pay, ops = tmp_path / "pay", tmp_path / "ops"
    pay.mkdir()
    ops.mkdir()
    (pay / "payment.log").write_text(PAYMENT)
    (ops / "syslog").write_text(SYSLOG * 3 + "Mar  1 10:02:00 web1 sshd[88]: Failed password for quokka-7 from 10.9.9.9\n")
    window = make_window(max_tokens=16)
    panel, sources = window.sources.panel, window.sources
    finished = []
    window.client.index_finished.connect(finished.append)

    assert panel.new_collection("payments")
    assert window.settings.get("sources", "collection") == "payments"
    drop(window, [pay])
    qtbot.waitUntil(lambda: len(finished) == 1, timeout=INDEX_TIMEOUT_MS)
    first = window.current_id
    assert window.session.collections_of(first) == ["payments"]
    question = "why did the payment service time out on March 1st around 10:00?"
    with wait_reply(window) as replied:
        window.send_prompt(question)
    cites = replied.args[2].meta.get("citations") or []
    assert cites and all(c["path"].endswith("payment.log") for c in cites), cites

    window.new_chat()
    panel.set_collection("default")
    drop(window, [ops])
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=INDEX_TIMEOUT_MS)
    assert finished[1]["summary"]["collection"] == "default"
    assert window.session.collections_of(window.current_id) == ["default"]
    assert window.session.collections_of(first) == ["payments"]     # the panel's switch did not change it
    qtbot.waitUntil(lambda: {"default", "payments"} <= set(panel.collection_info), timeout=30_000)

    with wait_reply(window) as replied:
        window.send_prompt(question)
    cites = replied.args[2].meta.get("citations") or []
    assert not any(c["path"].endswith("payment.log") for c in cites), cites

    # The arrow menu lists both; choosing "payments" adds it to this conversation.
    sources._fill_collections_menu()
    labels = [a.text() for a in sources.collections_menu.actions() if a.isCheckable()]
    assert labels[0].startswith("default") and labels[1] == "payments  (1 file)"
    next(a for a in sources.collections_menu.actions() if a.data() == "payments").trigger()
    assert window.session.collections_of(window.current_id) == ["default", "payments"]
    with wait_reply(window) as replied:
        window.send_prompt(question)
    cites = replied.args[2].meta.get("citations") or []
    assert any(c["path"].endswith("payment.log") for c in cites), cites
    shot(window, "collections.png")
