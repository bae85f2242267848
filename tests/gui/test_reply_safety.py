"""A reply is untrusted text (the model's, or a source's quoted by it): the message view loads
nothing it names, and its links show their target and open only when the person says so."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, Qt, QUrl, Slot
from PySide6.QtGui import QColor, QDesktopServices, QImage, QMouseEvent, QTextDocument
from PySide6.QtWidgets import QApplication, QMessageBox

from app import conversations as conv
from tests.gui.text_points import anchor_point
from ui.message_view import MessageCard


def _images(doc) -> list[str]:
    names, block = [], doc.begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            fmt = it.fragment().charFormat()
            if fmt.isImageFormat():
                names.append(fmt.toImageFormat().name())
            it += 1
        block = block.next()
    return names


def _card(qtbot, text: str) -> MessageCard:
    card = MessageCard("assistant", 1)
    qtbot.addWidget(card)
    card.resize(700, 300)
    card.set_text(text)
    card.set_status(conv.COMPLETE, {})
    card.show()
    qtbot.waitExposed(card)
    return card


def _png(path) -> str:
    img = QImage(40, 40, QImage.Format_RGB32)
    img.fill(QColor("red"))
    assert img.save(str(path))
    return str(path)


def test_an_image_in_a_reply_is_a_link_and_never_loaded(qtbot, tmp_path):
    png = _png(tmp_path / "secret.png")
    card = _card(qtbot, f"Here: ![a chart]({png}) and ![z](/nonexistent/z.png).")
    seg = card.body
    assert _images(seg.document()) == []                         # no <img> at all
    assert "[image: a chart]" in seg.toPlainText() and "[image: z]" in seg.toPlainText()
    assert anchor_point(seg, png) is not None                   # the target, as a link
    assert not seg.document().resource(QTextDocument.ImageResource, QUrl(png))
    assert not seg.document().resource(QTextDocument.ImageResource, QUrl.fromLocalFile(png))


def test_the_browser_itself_loads_no_resource_even_from_raw_html(qtbot, tmp_path):
    """However markup reaches it (a future renderer, a quoted source), the view reads no file."""
    png = _png(tmp_path / "secret.png")
    card = _card(qtbot, "x")
    seg = card.body
    seg.setHtml(f'<p>a<img src="{QUrl.fromLocalFile(png).toString()}" width="40" height="40">b</p>'
                f'<link rel="stylesheet" href="{QUrl.fromLocalFile(png).toString()}">')
    assert seg.loadResource(int(QTextDocument.ImageResource.value), QUrl.fromLocalFile(png)) is None
    assert not seg.document().resource(QTextDocument.ImageResource, QUrl.fromLocalFile(png))


class _Desktop(QObject):
    """Stands in for the person's browser: QDesktopServices hands it the URLs it would open."""

    def __init__(self):
        super().__init__()
        self.opened: list[str] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.opened.append(url.toString())


def _button(box: QMessageBox, text: str):
    return next(b for b in box.buttons() if b.text().replace("&", "") == text)


def test_a_link_shows_its_target_and_opens_only_after_confirmation(qtbot):
    desktop = _Desktop()
    QDesktopServices.setUrlHandler("https", desktop, "open")
    try:
        target = "https://evil.example/login?next=1"
        card = _card(qtbot, f"Sign in at [your bank]({target}).")
        seg = card.body
        point = anchor_point(seg, target)
        assert point is not None

        hover = QMouseEvent(QEvent.MouseMove, QPointF(point), QPointF(seg.viewport().mapToGlobal(point)),
                            Qt.NoButton, Qt.NoButton, Qt.NoModifier)
        QApplication.sendEvent(seg.viewport(), hover)
        qtbot.waitUntil(lambda: seg.toolTip() == target, timeout=2000)   # the target, on hover

        opened = []
        seg.link_opened.connect(lambda url: opened.append(url.toString()))
        qtbot.mouseClick(seg.viewport(), Qt.LeftButton, pos=point)
        qtbot.waitUntil(lambda: seg.link_box is not None and seg.link_box.isVisible(), timeout=2000)
        assert target in seg.link_box.text()
        assert desktop.opened == [] and opened == []                      # asked, not opened
        _button(seg.link_box, "Cancel").click()
        qtbot.waitUntil(lambda: seg.link_box is None, timeout=2000)
        assert desktop.opened == []

        qtbot.mouseClick(seg.viewport(), Qt.LeftButton, pos=point)
        qtbot.waitUntil(lambda: seg.link_box is not None and seg.link_box.isVisible(), timeout=2000)
        _button(seg.link_box, "Open link").click()
        qtbot.waitUntil(lambda: desktop.opened == [target], timeout=2000)
        assert opened == [target]
    finally:
        QDesktopServices.unsetUrlHandler("https")


def test_a_link_to_a_local_path_is_shown_and_not_opened(qtbot):
    desktop = _Desktop()
    QDesktopServices.setUrlHandler("file", desktop, "open")
    try:
        card = _card(qtbot, "The notes are [here](/etc/passwd).")
        seg = card.body
        point = anchor_point(seg, "/etc/passwd")
        qtbot.mouseClick(seg.viewport(), Qt.LeftButton, pos=point)
        qtbot.waitUntil(lambda: seg.link_box is not None and seg.link_box.isVisible(), timeout=2000)
        assert "/etc/passwd" in seg.link_box.text() and "not opened" in seg.link_box.text()
        assert not any(b.text().replace("&", "") == "Open link" for b in seg.link_box.buttons())
        _button(seg.link_box, "Close").click()
        assert desktop.opened == []
    finally:
        QDesktopServices.unsetUrlHandler("file")


def test_status_and_warning_lines_are_never_markup(qtbot, tmp_path):
    png = _png(tmp_path / "x.png")
    card = _card(qtbot, "ok")
    card.set_status(conv.FAILED, {"error": f'could not load <img src="{png}">'})
    assert card.marker.textFormat() == Qt.PlainText and f'<img src="{png}">' in card.marker.text()
