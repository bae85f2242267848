"""Real logs for the retrieval-quality bench: this machine's package logs, with questions labelled
by construction.

Debian-family systems keep dpkg.log (one line per package action), apt's history.log (multi-line
records; an Install: line can be several kilobytes) and alternatives.log. They are real, written by
real tools, and every machine of that family has them, though with its own contents: the figures
they give are for the machine the bench ran on. Questions are made from sampled lines (seeded):

  dpkg          "when was PKG upgraded to VERSION?" / "when was PKG VERSION installed?"; any line
                about that package at that version (the action, its status steps) answers.
  apt history   "which command installed PKG?"; the record (Start-Date .. End-Date) whose Install:
                line names the package answers.
  alternatives  "what does the GROUP link point to?"; the "link group GROUP updated to point to"
                line, or the --install line that set that target, answers.

Nothing is copied when the files are missing (other systems): the bench then runs without them.

Run as a script, it is the daemon-logs bench: search over the logs that real daemons wrote over
many years (bench/daemon_logs.py's output: corpus/ and questions.json, three phrasings: in
words with a date without a year, quoting part of a line, and vague), Lantern against the
anchors of bench/anchors.py in the same run (plain BM25 over 512-character chunks, the
512-character dense + BM25 hybrid with reciprocal-rank fusion, 1,000/20 dense), recall@1/@5
per phrasing, and the 95% bootstrap interval of Lantern's margin over the best anchor.

Usage: python bench/real_logs.py --corpus DIR [--work DIR] [--kinds words,quote] [--limit N]
                                 [--no-anchors] [--reuse]
"""

from __future__ import annotations

import os
import random
import re
import shutil

SOURCES = {"dpkg.log": "/var/log/dpkg.log", "apt-history.log": "/var/log/apt/history.log",
           "alternatives.log": "/var/log/alternatives.log"}
_DPKG = re.compile(r"^\S+ \S+ (install|upgrade) (\S+?):\S+ \S+ (\S+)$")
_ALT = re.compile(r"link group (\S+) updated to point to (\S+)")


def _lines(path: str) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().split("\n")


def add(corpus_dir: str, n_dpkg: int = 12, n_apt: int = 6, n_alt: int = 4, seed: int = 5) -> list[dict]:
    """Copy the host's package logs under corpus_dir/real and return labelled questions for them
    (relative paths, 1-based line ranges in "accept")."""
    have = {name: src for name, src in SOURCES.items() if os.path.isfile(src) and os.access(src, os.R_OK)}
    if "dpkg.log" not in have:
        return []
    real = os.path.join(corpus_dir, "real")
    os.makedirs(real, exist_ok=True)
    for name, src in have.items():
        shutil.copyfile(src, os.path.join(real, name))
    rng = random.Random(seed)
    out: list[dict] = []

    lines = _lines(os.path.join(real, "dpkg.log"))
    actions = set()
    for line in lines:
        m = _DPKG.match(line)
        if m:
            actions.add((m.group(1), m.group(2), m.group(3)))
    for verb, pkg, ver in rng.sample(sorted(actions), min(n_dpkg, len(actions))):
        q = f"when was {pkg} upgraded to {ver}?" if verb == "upgrade" else f"when was {pkg} {ver} installed?"
        # The action line and the "status ... installed" lines of that package and version all
        # answer "when" (dpkg logs each step of one install within the same second or two).
        ok = [i for i, line in enumerate(lines, 1) if f" {pkg}:" in line and line.rstrip().endswith(f" {ver}")]
        out.append({"question": q, "kind": "real", "path": "real/dpkg.log", "accept": [[i, i] for i in ok]})

    if "apt-history.log" in have:
        lines = _lines(os.path.join(real, "apt-history.log"))
        records, start = [], None
        for i, line in enumerate(lines, 1):
            if line.startswith("Start-Date:"):
                start = i
            elif line.startswith("End-Date:") and start is not None:
                records.append((start, i))
                start = None
        named = []
        for a, b in records:
            install = next((lines[i - 1] for i in range(a, b + 1) if lines[i - 1].startswith("Install: ")), "")
            for pkg in re.findall(r"(?:^Install: |, )([a-z0-9][a-z0-9.+-]+):", install):
                named.append((pkg, a, b))
        for pkg, a, b in rng.sample(named, min(n_apt, len(named))):
            out.append({"question": f"which command installed {pkg}?", "kind": "real", "path": "real/apt-history.log",
                        "accept": [[a, b]]})

    if "alternatives.log" in have:
        lines = _lines(os.path.join(real, "alternatives.log"))
        groups: dict[str, str] = {}
        for line in lines:
            m = _ALT.search(line)
            if m:
                groups[m.group(1)] = m.group(2)
        for group in rng.sample(sorted(groups), min(n_alt, len(groups))):
            # The "updated to point to" line, or the --install line that set that target.
            ok = [i for i, line in enumerate(lines, 1) if groups[group] in line and
                  (f"link group {group} " in line or f" {group} {groups[group]} " in line)]
            out.append({"question": f"what does the {group} link point to?", "kind": "real",
                        "path": "real/alternatives.log", "accept": [[i, i] for i in ok]})
    for k, q in enumerate(out):
        q["id"] = f"real-{k + 1}"
        q["line_start"], q["line_end"] = q["accept"][0]
    return out


# ---------------------------------------------------------------------------- the daemon-logs bench

def _ranks(hit_lists: list[list], questions: list[dict], root: str) -> list[int | None]:
    """Rank of the first hit whose lines overlap an answering range: in the labelled file, or
    in another file the same action wrote a line to that states the answer (``also``: an
    nginx 404 is in access.log and error.log)."""
    out = []
    for q, hits in zip(questions, hit_lists):
        want = {os.path.abspath(os.path.join(root, q["path"])): q["accept"]}
        for other in q.get("also", []):
            want[os.path.abspath(os.path.join(root, other["path"]))] = other["accept"]
        out.append(next((i for i, h in enumerate(hits) if any(
            h.line_start <= b and h.line_end >= a for a, b in want.get(os.path.abspath(h.path), []))), None))
    return out


def _recall(ranks: list[int | None], k: int) -> float:
    return round(sum(1 for r in ranks if r is not None and r < k) / len(ranks), 3) if ranks else 0.0


def _paired_interval(a: list[int | None], b: list[int | None], k: int, rounds: int = 2000, seed: int = 1) -> list[float]:
    """95% bootstrap interval of recall@k(a) - recall@k(b) over the same questions: the margin
    that question sampling alone could produce."""
    rng = random.Random(seed)
    hit_a = [1 if r is not None and r < k else 0 for r in a]
    hit_b = [1 if r is not None and r < k else 0 for r in b]
    n = len(hit_a)
    diffs = sorted(sum(hit_a[i] - hit_b[i] for i in idx) / n
                   for idx in ([rng.randrange(n) for _ in range(n)] for _ in range(rounds)))
    return [round(diffs[int(0.025 * rounds)], 3), round(diffs[int(0.975 * rounds) - 1], 3)]


def bench(corpus_root: str, questions: list[dict], work: str, k: int = 5, anchors_on: bool = True,
          reuse: bool = False) -> dict:
    import sys
    import time
    from pathlib import Path

    from bench.anchors import Anchors
    from engine.retrieval.embedder import MiniLMEmbedder
    from engine.retrieval.indexer import Indexer
    from engine.retrieval.retriever import Filters
    from engine.retrieval.session import RetrievalIndex

    emb = MiniLMEmbedder()
    files = sorted(str(p) for p in Path(corpus_root).rglob("*") if p.is_file())
    data = os.path.join(work, "lantern")
    if not reuse:
        shutil.rmtree(data, ignore_errors=True)
    idx = RetrievalIndex(Path(data), embedder=emb)
    t0 = time.perf_counter()
    Indexer(idx.manifest, idx.store, emb).index([corpus_root], "logs")
    index_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    anchors = Anchors(files, emb) if anchors_on else None
    anchors_s = time.perf_counter() - t0

    sides: dict[str, list] = {"lantern": []}
    seconds = []
    for n, q in enumerate(questions):
        if n % 100 == 0:
            print(f"question {n} of {len(questions)}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        sides["lantern"].append(idx.retriever.search(q["question"], k, Filters("logs")))
        seconds.append(time.perf_counter() - t0)
        for name, hits in (anchors.rank(q["question"], k) if anchors else {}).items():
            sides.setdefault(name, []).append(hits)
    chunks = idx.manifest.chunk_count("logs")
    idx.close()

    ranks = {name: _ranks(hits, questions, corpus_root) for name, hits in sides.items()}
    kinds = sorted({q["kind"] for q in questions})
    out: dict = {"questions": len(questions), "files": len(files), "k": k,
                 "index_seconds": {"lantern": round(index_s, 1), "anchors": round(anchors_s, 1)},
                 "lantern_chunks": chunks, "search_ms_median": round(1000 * sorted(seconds)[len(seconds) // 2], 1),
                 "by_kind": {}}
    for kind in ["all", *kinds]:
        pick = [i for i, q in enumerate(questions) if kind == "all" or q["kind"] == kind]
        row = {"n": len(pick)}
        for name, rs in ranks.items():
            sub = [rs[i] for i in pick]
            row[name] = {"recall@1": _recall(sub, 1), "recall@5": _recall(sub, 5)}
        anchors_only = [n for n in ranks if n != "lantern"]
        for at in (1, 5) if anchors_only else ():
            best = max(anchors_only, key=lambda n: row[n][f"recall@{at}"])
            row[f"margin@{at}"] = {"best_anchor": best,
                                   "delta": round(row["lantern"][f"recall@{at}"] - row[best][f"recall@{at}"], 3),
                                   "interval95": _paired_interval([ranks["lantern"][i] for i in pick],
                                                                  [ranks[best][i] for i in pick], at)}
        out["by_kind"][kind] = row
    out["lantern_missed_at_5"] = {q["id"]: [f"{os.path.relpath(h.path, corpus_root)}:{h.line_start}"
                                            for h in sides["lantern"][i][:2]]
                                  for i, q in enumerate(questions) if ranks["lantern"][i] is None}
    return out


def main() -> int:
    import argparse
    import json
    import sys
    import tempfile

    ap = argparse.ArgumentParser(description="Search over real daemon logs (bench/daemon_logs.py's output): "
                                             "Lantern against plain BM25, a 512-char hybrid and 1,000/20 dense.")
    ap.add_argument("--corpus", required=True, help="the folder daemon_logs.py wrote (corpus/ and questions.json)")
    ap.add_argument("--work", default="")
    ap.add_argument("--kinds", default="", help="comma-separated question kinds (words, quote, vague)")
    ap.add_argument("--limit", type=int, default=0, help="at most this many questions (seeded sample)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-anchors", action="store_true", help="Lantern alone (quick runs while tuning)")
    ap.add_argument("--reuse", action="store_true", help="keep the Lantern index in --work from a run before")
    args = ap.parse_args()
    questions = json.load(open(os.path.join(args.corpus, "questions.json"), encoding="utf-8"))
    if args.kinds:
        questions = [q for q in questions if q["kind"] in args.kinds.split(",")]
    if args.limit and len(questions) > args.limit:
        questions = random.Random(args.seed).sample(questions, args.limit)
    work = args.work or tempfile.mkdtemp(prefix="lantern-bench-reallogs-")
    out = {"bench": "real_logs", "corpus": args.corpus, **bench(os.path.join(args.corpus, "corpus"), questions, work,
                                                                    anchors_on=not args.no_anchors, reuse=args.reuse)}
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    import sys
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
