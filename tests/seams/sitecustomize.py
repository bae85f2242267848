"""A test seam, active only in a process started with this folder on PYTHONPATH: the file named
by LANTERN_TEST_CRASH_FILE makes Lantern's line reader kill its own process (SIGKILL), as a
parser crashing in native code would. Nothing outside the tests puts this folder on a path."""

import os
import signal
import sys

_NAME = os.environ.get("LANTERN_TEST_CRASH_FILE")
if _NAME:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from engine.retrieval import loaders

    _load_lines = loaders.load_lines

    def load_lines(path, *args, **kwargs):
        if os.path.basename(path) == _NAME:
            os.kill(os.getpid(), signal.SIGKILL)
        return _load_lines(path, *args, **kwargs)

    loaders.load_lines = load_lines
