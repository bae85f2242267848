"""Where things are drawn in a QTextBrowser, for tests that click them."""

from __future__ import annotations

from PySide6.QtGui import QTextCursor


def anchor_point(browser, href: str):
    """Where on screen the link ``href`` is drawn in ``browser``."""
    block = browser.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            frag = it.fragment()
            if frag.charFormat().anchorHref() == href:
                cursor = QTextCursor(browser.document())
                cursor.setPosition(frag.position() + 1)
                return browser.cursorRect(cursor).center()
            it += 1
        block = block.next()
    return None
