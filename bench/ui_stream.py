"""The window while a reply streams at full speed: event-loop stalls and the window's memory.

A 5 ms heartbeat QTimer runs in the window's event loop; the longest gap between two beats
while tokens arrive is the longest stall a person could feel (target: under 50 ms). RSS is
the window process's own (the engine is a separate process), sampled every 100 ms (target:
under 300 MB, and no torch or llama.cpp loaded in it).

Run through bench/generation.py --ui, or alone: python bench/ui_stream.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HEARTBEAT_MS = 5
PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm, with a code block of Python at the end."


def open_window(data_dir: str, size: tuple[int, int]):
    """The real window (offscreen unless a platform is set) on ``data_dir``, its default model
    loaded; returns (window, wait) where wait(pred, timeout_s) runs the event loop until pred()."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop

    from app import paths as app_paths
    from app.gui import create_app, create_window

    app = create_app()
    window = create_window(app_paths.resolve(data_dir))
    window.resize(*size)
    window.show()

    def wait(pred, timeout_s: float) -> bool:
        end = time.monotonic() + timeout_s
        while not pred() and time.monotonic() < end:
            app.processEvents(QEventLoop.AllEvents, 20)
        return pred()

    loaded: dict = {}
    window.client.model_loaded.connect(lambda info: loaded.update(info))
    # Connected before the event loop runs, so the first load cannot be missed.
    if not wait(lambda: bool(loaded), 120):
        raise RuntimeError("the model did not load")
    return window, wait


def measure_window(max_tokens: int = 600) -> dict:
    import psutil
    from PySide6.QtCore import QElapsedTimer, QTimer

    proc = psutil.Process()
    window, wait = open_window(tempfile.mkdtemp(prefix="lantern-bench-ui-"), (1100, 760))
    client = window.client

    cid = window.current_id
    settings = window.session.effective_settings(cid)
    settings.update({"max_tokens": max_tokens, "temperature": 0.8, "seed": 7})
    window.store.set_settings(cid, settings)

    gaps: list[float] = []
    rss: list[int] = []
    clock = QElapsedTimer()
    state = {"streaming": False, "last": None, "tokens": 0, "batches": 0, "done": None, "t_first": None}

    def beat():
        now = clock.nsecsElapsed() / 1e6
        if state["streaming"] and state["last"] is not None:
            gaps.append(now - state["last"])
        state["last"] = now

    def sample_rss():
        rss.append(proc.memory_info().rss)

    def on_tokens(_rid, _text):
        if not state["streaming"]:
            state["streaming"] = True
            state["t_first"] = time.perf_counter()
        state["batches"] += 1

    def on_done(_rid, fields):
        state["streaming"] = False
        state["done"] = fields

    client.tokens_received.connect(on_tokens)
    client.reply_finished.connect(on_done)
    heartbeat = QTimer()
    heartbeat.setInterval(HEARTBEAT_MS)
    heartbeat.timeout.connect(beat)
    rss_timer = QTimer()
    rss_timer.setInterval(100)
    rss_timer.timeout.connect(sample_rss)
    clock.start()
    heartbeat.start()
    rss_timer.start()
    sample_rss()

    t0 = time.perf_counter()
    window.send_prompt(PROMPT)
    ok = wait(lambda: state["done"] is not None, 300)
    t_end = time.perf_counter()
    heartbeat.stop()
    rss_timer.stop()
    sample_rss()
    loaded_modules = sorted(m for m in ("torch", "llama_cpp", "chromadb", "sentence_transformers") if m in sys.modules)
    done = state["done"] or {}
    window.close()
    window.store.close()
    if not ok:
        raise RuntimeError("the reply did not finish")

    gaps_sorted = sorted(gaps)
    return {
        "prompt_tokens": done.get("prompt_tokens"),
        "completion_tokens": done.get("completion_tokens"),
        "engine_tokens_per_s": done.get("tokens_per_s"),
        "ui_batches": state["batches"],
        "stream_seconds": round(t_end - (state["t_first"] or t0), 2),
        "heartbeat_ms": HEARTBEAT_MS,
        "max_event_loop_gap_ms": round(max(gaps) if gaps else 0.0, 1),
        "p99_event_loop_gap_ms": round(gaps_sorted[int(len(gaps_sorted) * 0.99)] if gaps else 0.0, 1),
        "median_event_loop_gap_ms": round(statistics.median(gaps) if gaps else 0.0, 1),
        "window_rss_peak_mb": round(max(rss) / 2**20, 1),
        "window_rss_end_mb": round(rss[-1] / 2**20, 1),
        "heavy_modules_in_window_process": loaded_modules,
        "targets": {"max_event_loop_gap_ms": 50, "window_rss_peak_mb": 300},
    }


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--max-tokens", type=int, default=600)
    args = ap.parse_args()
    print(json.dumps({"bench": "ui_stream", **measure_window(args.max_tokens)}, indent=2))
