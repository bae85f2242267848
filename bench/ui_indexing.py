"""The window while a folder is indexed: event-loop stalls, the window's memory, a chat meanwhile.

A 5 ms heartbeat QTimer runs in the window's event loop while the engine indexes a dropped folder
(the seeded log corpus of bench/corpus.py plus --many small log files, the case of a folder of
rotated logs, which makes the Sources list long). The longest gap between two beats is the longest
stall a person could feel (target: under 50 ms). The window's RSS is sampled before the drop and
every 100 ms after (target: unchanged by indexing, which happens in the engine process). Halfway,
a question is sent, so the chat is shown to stay usable: its time to the first token is reported.

Usage: python bench/ui_indexing.py [--mb 5] [--many 1500]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import corpus as corpus_mod  # noqa: E402
from bench.ui_stream import open_window  # noqa: E402

HEARTBEAT_MS = 5


def many_small_logs(folder: str, n: int) -> None:
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        with open(os.path.join(folder, f"worker-{i:04d}.log"), "w", encoding="utf-8") as f:
            for s in range(20):
                f.write(f"2024-03-01 10:{s % 60:02d}:{(i + s) % 60:02d},000 INFO  [w{i}] job {i}-{s} done in {s * 7} ms\n")


def measure(mb: float, many: int) -> dict:
    import psutil
    from PySide6.QtCore import QElapsedTimer, QTimer

    work = tempfile.mkdtemp(prefix="lantern-bench-ui-index-")
    corpus = os.path.join(work, "corpus")
    gen = corpus_mod.generate(corpus, mb)
    os.remove(os.path.join(corpus, "queries.json"))
    os.remove(os.path.join(corpus, "questions.json"))
    many_small_logs(os.path.join(corpus, "workers"), many)

    proc = psutil.Process()
    window, wait = open_window(os.path.join(work, "data"), (1280, 800))
    client = window.client
    wait(lambda: False, 2.0)   # let start-up work settle
    rss_before = proc.memory_info().rss

    gaps: list[float] = []
    rss: list[int] = []
    clock = QElapsedTimer()
    state = {"indexing": False, "last": None, "done": None, "progress": 0, "listed": 0, "reply": None,
             "t_sent": None, "t_first": None}

    marks: list[tuple[float, str]] = []   # what happened when, to name the longest stalls

    def mark(what: str) -> None:
        marks.append((clock.nsecsElapsed() / 1e6, what))

    def beat():
        now = clock.nsecsElapsed() / 1e6
        if state["indexing"] and state["last"] is not None:
            gaps.append(now - state["last"])
            if now - state["last"] > 20:
                since = [w for t, w in marks if state["last"] - 1 <= t <= now]
                slow.append((round(now - state["last"], 1), since[-3:]))
        state["last"] = now

    slow: list[tuple[float, list[str]]] = []
    client.index_progress.connect(lambda ev: (state.__setitem__("progress", state["progress"] + 1),
                                              mark(f"progress {ev.get('phase')}")))
    client.index_finished.connect(lambda ev: mark("index finished"))
    client.sources_listed.connect(lambda ev: mark(f"listed {len(ev.get('sources') or [])}"))
    client.collections_listed.connect(lambda ev: mark("collections listed"))
    client.tokens_received.connect(lambda *_: mark("tokens"))
    client.reply_finished.connect(lambda *_: mark("reply finished"))
    client.index_finished.connect(lambda ev: state.__setitem__("done", ev) if not str(ev.get("id", "")).startswith("watch-") else None)
    client.sources_listed.connect(lambda ev: state.__setitem__("listed", len(ev.get("sources") or [])))

    def on_tokens(_rid, _text):
        if state["t_sent"] and state["t_first"] is None:
            state["t_first"] = time.perf_counter()
    client.tokens_received.connect(on_tokens)
    client.reply_finished.connect(lambda rid, fields: state.__setitem__("reply", fields))

    heartbeat = QTimer()
    heartbeat.setInterval(HEARTBEAT_MS)
    heartbeat.timeout.connect(beat)
    rss_timer = QTimer()
    rss_timer.setInterval(100)
    rss_timer.timeout.connect(lambda: rss.append(proc.memory_info().rss))
    clock.start()
    heartbeat.start()
    rss_timer.start()

    t0 = time.perf_counter()
    state["indexing"] = True
    mark("drop")
    window.sources.add_sources([corpus])
    mark("drop handled")
    # A question while the folder is read: the chat must stay usable.
    wait(lambda: state["progress"] >= 20, 120)
    state["t_sent"] = time.perf_counter()
    mark("send")
    window.send_prompt("Say hello in five words.")
    mark("sent")
    ok = wait(lambda: state["done"] is not None, 3600)
    t_index = time.perf_counter() - t0
    # The list refresh after the job is part of what the window does for indexing.
    wait(lambda: state["listed"] >= many, 120)
    wait(lambda: False, 1.0)
    state["indexing"] = False
    heartbeat.stop()
    rss_timer.stop()
    wait(lambda: state["reply"] is not None, 60)
    summary = (state["done"] or {}).get("summary", {})
    heavy = sorted(m for m in ("torch", "llama_cpp", "chromadb", "sentence_transformers") if m in sys.modules)
    window.close()
    window.store.close()
    shutil.rmtree(work, ignore_errors=True)
    if not ok:
        raise RuntimeError("indexing did not finish")
    gs = sorted(gaps)
    return {
        "corpus": {**gen, "small_files": many},
        "files_indexed": summary.get("files"), "chunks": summary.get("chunks"),
        "index_seconds": round(t_index, 1), "progress_events": state["progress"],
        "sources_listed": state["listed"],
        "heartbeat_ms": HEARTBEAT_MS, "beats": len(gaps),
        "max_event_loop_gap_ms": round(gs[-1], 1) if gs else None,
        "p99_event_loop_gap_ms": round(gs[int(len(gs) * 0.99)], 1) if gs else None,
        "median_event_loop_gap_ms": round(statistics.median(gs), 1) if gs else None,
        "longest_gaps": sorted(slow, key=lambda x: -x[0])[:6],   # (ms, what happened in it)
        "chat_during_indexing": {"ttft_ms": round((state["t_first"] - state["t_sent"]) * 1000, 1)
                                 if state["t_first"] and state["t_sent"] else None,
                                 "completed": state["reply"] is not None},
        "window_rss_before_mb": round(rss_before / 2**20, 1),
        "window_rss_peak_mb": round(max(rss) / 2**20, 1) if rss else None,
        "window_rss_growth_mb": round((max(rss) - rss_before) / 2**20, 1) if rss else None,
        "heavy_modules_in_window_process": heavy,
        "targets": {"max_event_loop_gap_ms": 50},
    }


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=5)
    ap.add_argument("--many", type=int, default=1500)
    args = ap.parse_args()
    print(json.dumps({"bench": "ui_indexing", **measure(args.mb, args.many)}, indent=2))
