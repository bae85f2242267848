"""Task: one piece of slow, pure-Python work (hashing, scanning, downloading) off the UI thread.

The work function runs on a QThread and gets the task, so it can report progress and see
cancellation; results, progress and failures come back as signals, which Qt queues onto the
main thread because the task object itself lives there. Errors cross as a message a person
can read, like the engine's; a bug is logged with its traceback.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from PySide6.QtCore import QThread, Signal

from engine.protocol import EngineError

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised by work that saw ``task.cancel`` set."""


class Task(QThread):
    progressed = Signal(str, object, object)    # text, done, total (object: sizes pass 2**31)
    succeeded = Signal(object)
    failed = Signal(str)

    def __init__(self, name: str, work: Callable[["Task"], Any], parent=None):
        super().__init__(parent)
        self.setObjectName(name)
        self.work = work
        self.cancel = threading.Event()

    def report(self, text: str, done: int = 0, total: int | None = None) -> None:
        self.progressed.emit(text, done, total)

    def run(self) -> None:
        try:
            result = self.work(self)
        except EngineError as e:
            self.failed.emit(e.message)
        except Cancelled:
            self.failed.emit("Cancelled.")
        except Exception as e:  # a bug: keep the window alive, keep the traceback in the log
            log.exception("background task %s failed", self.objectName())
            self.failed.emit(f"Internal error: {type(e).__name__}: {e}")
        else:
            self.succeeded.emit(result)

    def stop(self, wait_ms: int = 5000) -> None:
        self.cancel.set()
        self.wait(wait_ms)
