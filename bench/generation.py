"""Generation speed through Lantern's engine process vs llama-cpp-python called directly.

Prints one JSON object. Both sides use the same model file, prompt text, greedy sampling,
thread count and context length; runs are interleaved (direct, engine, engine, direct, ...)
so drift on a shared machine hits both alike. Each run's prompt differs (a run number), so
neither side gets a free KV-cache hit from the previous run.

  direct: Llama.create_completion(prompt, stream=True) in this process; TTFT is the time from
          the call to the first streamed chunk, decode speed is tokens after the first over
          the time after the first.
  engine: the Chat command sent over the protocol socket to `python -m engine`; TTFT is from
          the send to the first Token event received here, decode speed likewise from the
          arrival times of the Token events, so the protocol's cost is inside the figure.

With --ui it also opens the real window (offscreen) and streams a long reply through it with
a 5 ms heartbeat timer, reporting the longest event-loop stall and the window process's RSS.

Usage: python bench/generation.py [--runs 6] [--max-tokens 160] [--ui]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.engine_process import EngineProcess  # noqa: E402
from engine import protocol as p  # noqa: E402
from engine.llm import default_threads  # noqa: E402
from engine.models import default_model_path  # noqa: E402

SYSTEM = "You are a helpful assistant."
QUESTION = "Run {i}: write a long, detailed story about a lighthouse keeper and a storm."
N_CTX = 2048


def direct_run(llm, prompt: str, max_tokens: int) -> dict:
    t0 = time.perf_counter()
    t_first = None
    n = 0
    for chunk in llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, top_k=1,
                                       repeat_penalty=1.0, stream=True):
        if not chunk["choices"][0]["text"]:
            continue  # the closing chunk carries only the finish reason
        n += 1
        if t_first is None:
            t_first = time.perf_counter()
    t_end = time.perf_counter()
    return {"ttft_ms": (t_first - t0) * 1000, "tokens": n,
            "decode_tps": (n - 1) / (t_end - t_first) if n > 1 else 0.0}


def engine_run(engine: EngineProcess, messages: list[dict], max_tokens: int) -> dict:
    cmd = p.Chat(messages=messages, sampling={"temperature": 0.0, "top_k": 1, "repeat_penalty": 1.0,
                                              "max_tokens": max_tokens})
    t0 = time.perf_counter()
    engine.send(cmd)
    t_first = None
    n = 0
    done = None
    for ev in engine.events(cmd.id):
        if isinstance(ev, p.Token):
            n += 1
            if t_first is None:
                t_first = time.perf_counter()
        elif isinstance(ev, p.Done):
            done = ev
        elif isinstance(ev, p.Failed):
            raise RuntimeError(ev.message)
    t_end = time.perf_counter()
    # Token events can merge several tokens of a multi-byte character; count real tokens.
    tokens = done.completion_tokens if done else n
    return {"ttft_ms": (t_first - t0) * 1000, "tokens": tokens, "engine_ttft_ms": done.ttft_ms if done else None,
            "decode_tps": (tokens - 1) / (t_end - t_first) if tokens > 1 else 0.0}


def bench_engine(runs: int, max_tokens: int) -> dict:
    import llama_cpp

    from engine.chat_template import make_formatter

    model = str(default_model_path())
    threads = default_threads()
    llm = llama_cpp.Llama(model, n_ctx=N_CTX, n_threads=threads, n_threads_batch=threads, n_batch=512,
                          verbose=False)
    fmt = make_formatter(llm.metadata.get("tokenizer.chat_template"),
                         eos_token="<|im_end|>", bos_token="<|im_start|>")
    results = {"direct": [], "engine": []}
    log = Path(tempfile.gettempdir()) / "lantern-bench-engine.log"
    with EngineProcess(log_path=log) as engine:
        loaded = engine.call(p.LoadModel(path=model, n_ctx=N_CTX, n_threads=threads))
        assert isinstance(loaded, p.ModelLoaded), loaded
        # Warm-up of both sides (first-touch page faults of the mmapped weights).
        direct_run(llm, fmt.render([{"role": "user", "content": "hi"}]), 8)
        engine_run(engine, [{"role": "user", "content": "hi"}], 8)
        for i in range(runs):
            messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION.format(i=i)}]
            prompt = fmt.render(messages)
            order = ("direct", "engine") if i % 2 == 0 else ("engine", "direct")
            for side in order:
                if side == "direct":
                    results["direct"].append(direct_run(llm, prompt, max_tokens))
                else:
                    results["engine"].append(engine_run(engine, messages, max_tokens))
    llm.close()

    def summary(rs):
        return {
            "decode_tps_median": round(statistics.median(r["decode_tps"] for r in rs), 2),
            "ttft_ms_median": round(statistics.median(r["ttft_ms"] for r in rs), 2),
            "tokens_per_run": [r["tokens"] for r in rs],
        }

    d, e = summary(results["direct"]), summary(results["engine"])
    # Per-pair ratios cancel slow drift of the shared machine better than a ratio of medians.
    ratios = [er["decode_tps"] / dr["decode_tps"] for er, dr in zip(results["engine"], results["direct"])]
    ttft_over = [er["ttft_ms"] - dr["ttft_ms"] for er, dr in zip(results["engine"], results["direct"])]
    return {
        "model": Path(model).name, "threads": threads, "n_ctx": N_CTX, "runs": runs, "max_tokens": max_tokens,
        "direct": d, "engine": e,
        "decode_ratio_engine_over_direct": round(statistics.median(ratios), 4),
        "ttft_overhead_ms": round(statistics.median(ttft_over), 2),
        "targets": {"decode_ratio_min": 0.97, "ttft_overhead_ms_max": 15.0},
    }


def bench_ui(max_tokens: int) -> dict:
    """In a fresh process: this one has llama.cpp loaded for the direct runs, and the point is
    to measure a window process that never loads it."""
    import subprocess

    script = Path(__file__).with_name("ui_stream.py")
    r = subprocess.run([sys.executable, str(script), "--max-tokens", str(max_tokens)],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"ui_stream failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--ui", action="store_true", help="also measure the window while a reply streams")
    args = ap.parse_args()
    out = {"bench": "generation", "engine_vs_direct": bench_engine(args.runs, args.max_tokens)}
    if args.ui:
        out["ui"] = bench_ui(max(400, args.max_tokens))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
