"""Wall time of `lantern search` and `lantern ask` as a person types them: with no engine running
(each verb starts one and loads the embedder), and again while the engine the previous verb kept
is still running (`[engine] keep_alive_s`, 600 s by default).

Prints one JSON object. A small generated folder of logs is indexed first (its engine stopped
afterwards); then, per verb, `--cold` runs with LANTERN_ENGINE_KEEP_ALIVE_S=0 (a fresh engine
each time, as every run was before engines were kept), and `--warm` runs against one kept
engine (started by one untimed run before them). Each run is a real `python -m app.main` subprocess; the time is
the subprocess's wall time, Python start-up and imports included. The queries vary per run, so
no run answers from a cache the previous one filled.

Usage: python bench/cli_latency.py [--cold 3] [--warm 5] [--no-ask]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEEP = "LANTERN_ENGINE_KEEP_ALIVE_S"


def lantern(data: Path, *args: str, keep: float) -> float:
    env = dict(os.environ, **{KEEP: f"{keep:g}"})
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "app.main", "--data-dir", str(data), *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"lantern {' '.join(args)} failed ({r.returncode}): {r.stderr[-2000:]}")
    return seconds


def make_logs(root: Path, files: int = 4, lines: int = 500) -> int:
    root.mkdir(parents=True)
    for f in range(files):
        with open(root / f"svc{f}.log", "w") as out:
            for i in range(lines):
                level = "ERROR" if i % 17 == 0 else "INFO"
                out.write(f"2024-06-21 {8 + i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d},000 {level} [w{f}] "
                          f"svc{f}.Worker - job {f}-{i} for 10.{f}.{i // 250}.{i % 250} took {i % 97} ms\n")
    return files * lines


def stats(xs: list[float]) -> dict:
    return {"median_s": round(statistics.median(xs), 3), "min_s": round(min(xs), 3), "max_s": round(max(xs), 3),
            "runs": [round(x, 3) for x in xs]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold", type=int, default=3, help="runs per verb with no engine running (3)")
    ap.add_argument("--warm", type=int, default=5, help="runs per verb against the kept engine (5)")
    ap.add_argument("--no-ask", action="store_true", help="time `lantern search` only")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="lantern-cli-latency-") as tmp:
        tmp = Path(tmp)
        data = tmp / "data"
        lines = make_logs(tmp / "logs")
        index_s = lantern(data, "index", str(tmp / "logs"), keep=0)
        verbs = {"search": lambda i: ["search", f"job 2-{i * 37 % 500}", "-k", "3"]}
        if not args.no_ask:
            verbs["ask"] = lambda i: ["ask", f"What happened to job 1-{i * 41 % 500}?", "--max-tokens", "24",
                                      "--seed", "1", "--temperature", "0"]
        out: dict = {"files": 4, "lines": lines, "index_s": round(index_s, 2), "python": sys.version.split()[0],
                     "cpus": os.cpu_count()}
        try:
            for verb, argv in verbs.items():
                cold = [lantern(data, *argv(i), keep=0) for i in range(args.cold)]
                lantern(data, *argv(args.cold), keep=600)        # starts the engine that stays
                warm = [lantern(data, *argv(args.cold + 1 + i), keep=600) for i in range(args.warm)]
                lantern(data, "engine", "stop", keep=0)
                out[verb] = {"no_engine_running": stats(cold), "engine_kept": stats(warm),
                             "speedup": round(statistics.median(cold) / statistics.median(warm), 1)}
        finally:
            subprocess.run([sys.executable, "-m", "app.main", "--data-dir", str(data), "engine", "stop"], cwd=ROOT,
                           capture_output=True, timeout=600)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
