"""Load on `lantern serve`'s HTTP API: N concurrent streaming clients for a bounded time, against
one client alone, on 127.0.0.1 with the default model (or --model).

Each client, driven by the official openai package, streams chat completions one after another
(a different question each time, seeded, max_tokens fixed) until the time is up; a request
started before the end is finished and counted. Time to first token is from sending the request
to the first content chunk, so with several clients it includes the wait in the engine's queue
(one model, one request at a time). Prints one JSON object: per run, requests completed, errors,
p50/p95 time to first token, completion tokens per second over the run (all clients together),
and the ratio of N clients' throughput to one client's.

Usage: python bench/api_load.py [--clients 4] [--seconds 30] [--max-tokens 64] [--model PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ["rivers", "bread", "clocks", "owls", "bridges", "tea", "comets", "maps", "violins", "glaciers", "bees",
          "lanterns", "trains", "salt", "moss", "kites"]


def start_server(data: Path, model: str, err_path: Path, max_queue: int):
    args = [sys.executable, "-m", "app.main", "--data-dir", str(data), "serve", "--port", "0",
            "--max-queue", str(max_queue)]
    if model:
        from app.settings import Settings
        s = Settings(data / "settings.toml")
        s.set("model", "path", model)
        s.save()
    err = open(err_path, "w+", encoding="utf-8")
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
                            env=dict(os.environ, LANTERN_ENGINE_KEEP_ALIVE_S="0"))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        err.seek(0)
        m = re.search(r"API at (http://127\.0\.0\.1:\d+/v1)", err.read())
        if m:
            return proc, m.group(1), (data / "api_token").read_text().strip()
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    err.seek(0)
    raise SystemExit(f"lantern serve did not start: {err.read()[-2000:]}")


def one_request(client, n: int, max_tokens: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    ttft = None
    tokens = 0
    stream = client.chat.completions.create(
        model="local", messages=[{"role": "user", "content": f"Write a few sentences about {TOPICS[n % len(TOPICS)]}."}],
        max_tokens=max_tokens, temperature=0.7, seed=n, stream=True, stream_options={"include_usage": True})
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content and ttft is None:
            ttft = time.perf_counter() - t0
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    return (ttft if ttft is not None else time.perf_counter() - t0), tokens


def run(url: str, token: str, clients: int, seconds: float, max_tokens: int) -> dict:
    ttfts: list[float] = []
    tokens = [0]
    errors: list[str] = []
    done = [0]
    lock = threading.Lock()
    counter = iter(range(1, 1 << 30))
    end = time.perf_counter() + seconds

    def worker():
        client = openai.OpenAI(base_url=url, api_key=token, max_retries=0, timeout=600)
        while time.perf_counter() < end:
            with lock:
                n = next(counter)
            try:
                ttft, toks = one_request(client, n, max_tokens)
            except Exception as e:   # counted, not fatal: the point is to see them
                with lock:
                    errors.append(f"{type(e).__name__}: {e}"[:200])
                continue
            with lock:
                ttfts.append(ttft)
                tokens[0] += toks
                done[0] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    q = statistics.quantiles(ttfts, n=20) if len(ttfts) >= 2 else [ttfts[0]] * 19 if ttfts else [0.0] * 19
    return {"clients": clients, "seconds": round(wall, 2), "requests": done[0], "errors": len(errors),
            "error_samples": errors[:3], "ttft_p50_ms": round(statistics.median(ttfts) * 1000, 1) if ttfts else None,
            "ttft_p95_ms": round(q[18] * 1000, 1), "completion_tokens": tokens[0],
            "tokens_per_s": round(tokens[0] / wall, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--model", default="", help="a GGUF file (default: the bundled model)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lantern-api-load-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        proc, url, token = start_server(data, args.model, Path(tmp) / "serve.err", max_queue=max(8, args.clients))
        try:
            client = openai.OpenAI(base_url=url, api_key=token, max_retries=0, timeout=600)
            model = client.models.list().data[0].id
            one_request(client, 0, 8)   # loads the model; not timed
            single = run(url, token, 1, args.seconds, args.max_tokens)
            many = run(url, token, args.clients, args.seconds, args.max_tokens)
        finally:
            proc.terminate()
            proc.wait(timeout=120)
    print(json.dumps({"model": model, "max_tokens": args.max_tokens, "single": single, "concurrent": many,
                      "throughput_ratio": round(many["tokens_per_s"] / single["tokens_per_s"], 2)
                      if single["tokens_per_s"] else None}, indent=2))


if __name__ == "__main__":
    main()
