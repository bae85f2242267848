"""The window reads the model library and plans memory in its own process, which is only
safe while those engine modules stay pure Python: no native ML library behind them."""

import subprocess
import sys

NATIVE = ("llama_cpp", "ctransformers", "torch", "chromadb", "sentence_transformers", "numpy")


def test_the_library_dialog_pulls_in_no_native_library():
    code = ("import sys, ui.model_library, engine.download, engine.wheel_model; "
            f"bad = [m for m in {NATIVE!r} if m in sys.modules]; assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
