"""Guards against a known-bad Qt binding: PySide6 6.12.0's Signal.emit() returned True without
a new reference, so after enough emitted tokens the interpreter aborted in bool_dealloc."""

import sys

from PySide6.QtCore import QCoreApplication, QObject, Signal


class _Emitter(QObject):
    text = Signal(str, str)


def test_emitting_signals_keeps_reference_counts(qapp):
    e = _Emitter()
    e.text.connect(lambda a, b: None)
    before = sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(5000):
        e.text.emit("rid", "token")
    QCoreApplication.processEvents()
    assert (sys.getrefcount(True), sys.getrefcount(False)) == before
