"""A test seam, active only in a process started with this folder on PYTHONPATH: the files named
by LANTERN_TEST_CRASH_FILE (comma-separated base names) make Lantern's line reader or PDF reader
kill its own process (SIGKILL), as a parser crashing in native code would. Nothing outside the
tests puts this folder on a path."""

import os
import signal
import sys

_NAMES = set(filter(None, os.environ.get("LANTERN_TEST_CRASH_FILE", "").split(",")))
if _NAMES:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from engine.retrieval import loaders, pdf

    def _crashing(read):
        def wrapped(path, *args, **kwargs):
            if os.path.basename(path) in _NAMES:
                os.kill(os.getpid(), signal.SIGKILL)
            return read(path, *args, **kwargs)
        return wrapped

    loaders.load_lines = _crashing(loaders.load_lines)
    pdf.page_records = _crashing(pdf.page_records)
