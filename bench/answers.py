"""Do answers from sources state the answer? Questions about log records, asked through the real
chat path, scored for the value, the citation and the time.

Prints one JSON object. The path is the one `lantern ask --sources` takes, in this process: an
EngineService with the llama.cpp backend and the real retrieval, a data dir indexed by the real
indexer (an IndexPaths command), a Chat with use_sources and the default system prompt, greedy
decoding. For each model (--model, repeatable; the default model by default):

  value_accuracy     the answer contains the right value (question "answer" or one of
                     "answer_alts", case-insensitive), whatever produced the text
  value_accuracy_model  the same, counting only answers the model wrote (not a quoted record)
  value_accuracy_first_try  the same, counting only the model's answer to the grounded prompt
                     (no retry): what the prompt alone achieves
  citation_accuracy  a [n] in the answer names a source whose file is the question's and whose
                     lines overlap one of its "accept" ranges
  right_record_sent / right_record_first  the accepted record was among the sources sent / was
                     [1] (retrieval's share of a miss)
  markers_only       the model's first answer stated nothing the question asked for (markers
                     only, a source's place, no value of the asked kind from a source), so it
                     was not shown
  by_kind            value_accuracy / value_accuracy_model per question phrasing
  one_source_sent    answers whose prompt held a single source (the best one led clearly)
  fallback_retry / fallback_record  what the person got instead (see engine/grounding.py)
  flagged            answers with a value flagged as in no source
  median_s           seconds per answer, retrieval included
  ceiling            the same model handed exactly the accepted lines in a plain prompt, no
                     retrieval, no citing rules: what reading alone achieves

Corpus: --corpus DIR with DIR/corpus/ (the files) and DIR/questions.json, a list of
{"id", "kind", "format", "program", "path" (relative to DIR/corpus), "accept": [[start, end], ...],
"question", "answer", "answer_alts": [...]}.

Usage: python bench/answers.py --corpus DIR [--model default --model qwen2.5-coder-0.5b | PATH]
                               [--limit 40] [--kinds words,quote] [--seed 1] [--work DIR]
                               [--details FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import protocol as p  # noqa: E402

FINAL = (p.Done, p.Cancelled, p.Failed, p.ModelLoaded, p.IndexDone)
MARKER = re.compile(r"\[\s*(\d{1,3}(?:\s*[,;-]\s*\d{1,3})*)\s*\]")
CEILING_PROMPT = "Use these log lines to answer the question.\n\n{lines}\n\nQuestion: {question}"


class Engine:
    """An EngineService in this process, its events collected per request."""

    def __init__(self):
        from engine.service import EngineService

        self._queues: dict[str, queue.Queue] = {}
        self._lock = threading.Lock()
        self.service = EngineService(self._emit)

    def _emit(self, ev: p.Event) -> None:
        with self._lock:
            q = self._queues.setdefault(ev.id, queue.Queue())
        q.put(ev)

    def call(self, cmd: p.Command, timeout: float = 900) -> list[p.Event]:
        with self._lock:
            q = self._queues.setdefault(cmd.id, queue.Queue())
        self.service.handle(cmd)
        events = []
        while True:
            ev = q.get(timeout=timeout)
            events.append(ev)
            if isinstance(ev, FINAL):
                with self._lock:
                    self._queues.pop(cmd.id, None)
                return events

    def close(self) -> None:
        self.service.close()


def model_path(spec: str) -> str:
    from app import paths
    from engine import wheel_model
    from engine.models import default_model_path

    if spec in ("", "default"):
        return str(default_model_path())
    if spec in wheel_model.CATALOG:
        return str(paths.resolve().models_dir / wheel_model.CATALOG[spec].file_name)
    return spec


def load_questions(cdir: Path, kinds: str, limit: int, seed: int) -> list[dict]:
    questions = json.loads((cdir / "questions.json").read_text())
    if kinds:
        wanted = {k.strip() for k in kinds.split(",") if k.strip()}
        questions = [q for q in questions if q.get("kind") in wanted]
    if limit and len(questions) > limit:
        questions = random.Random(seed).sample(questions, limit)
    return questions


def value_ok(q: dict, text: str) -> bool:
    low = text.lower()
    return any(str(a).lower() in low for a in [q["answer"], *q.get("answer_alts", [])] if str(a).strip())


def covers(q: dict, cdir: Path, c: dict) -> bool:
    want = os.path.realpath(cdir / "corpus" / q["path"])
    if os.path.realpath(c.get("path", "")) != want:
        return False
    return any(c["line_start"] <= end and start <= c["line_end"] for start, end in q["accept"])


def cited_numbers(text: str) -> set[int]:
    out = set()
    for m in MARKER.finditer(text):
        for part in re.split(r"\s*[,;]\s*", m.group(1)):
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                out.update(range(a, b + 1))
            elif part.strip():
                out.add(int(part))
    return out


def accepted_lines(q: dict, cdir: Path) -> str:
    lines = (cdir / "corpus" / q["path"]).read_text(encoding="utf-8", errors="replace").split("\n")
    return "\n".join("\n".join(lines[a - 1:b]) for a, b in q["accept"])


def sampling(max_tokens: int) -> dict:
    # Greedy: the figures are about the prompt, not about sampling luck.
    return {"temperature": 0.0, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_penalty": 1.1,
            "max_tokens": max_tokens, "seed": 1}


def ask(engine: Engine, q: dict, data_dir: str, max_tokens: int, system: str) -> dict:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": q["question"]}]
    t0 = time.perf_counter()
    events = engine.call(p.Chat(messages=messages, sampling=sampling(max_tokens), use_sources=True,
                                data_dir=data_dir))
    seconds = time.perf_counter() - t0
    done = events[-1]
    cites = next((e.citations for e in events if isinstance(e, p.Citations)), [])
    if not isinstance(done, p.Done):
        return {"id": q["id"], "error": getattr(done, "message", type(done).__name__), "seconds": seconds}
    # getattr: the script also measures engines from before protocol 1.5 (no fallback, no flags).
    return {"id": q["id"], "text": done.text, "seconds": round(seconds, 2),
            "fallback": getattr(done, "fallback", ""),
            "unsourced": [f.get("value") for f in getattr(done, "unsourced", [])], "citations": cites}


def ceiling(engine: Engine, q: dict, cdir: Path, max_tokens: int, system: str) -> dict:
    prompt = CEILING_PROMPT.format(lines=accepted_lines(q, cdir), question=q["question"])
    messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
    t0 = time.perf_counter()
    done = engine.call(p.Chat(messages=messages, sampling=sampling(max_tokens)))[-1]
    return {"text": getattr(done, "text", ""), "seconds": round(time.perf_counter() - t0, 2)}


def score(q: dict, cdir: Path, a: dict) -> dict:
    text = a.get("text", "")
    cites = {int(c["n"]): c for c in a.get("citations", [])}
    cited = [cites[n] for n in cited_numbers(text) if n in cites]
    return {
        "value": value_ok(q, text),
        "value_model": value_ok(q, text) and a.get("fallback") != "record",
        "value_first": value_ok(q, text) and not a.get("fallback"),
        "citation": any(covers(q, cdir, c) for c in cited),
        "sent": any(covers(q, cdir, c) for c in cites.values()),
        "first": bool(cites) and covers(q, cdir, cites[min(cites)]),
    }


def rate(xs: list[bool]) -> float:
    return round(sum(xs) / len(xs), 3) if xs else 0.0


def run_model(engine: Engine, spec: str, questions: list[dict], cdir: Path, data_dir: str, args,
              details: list) -> dict:
    from app.settings import DEFAULT_SYSTEM_PROMPT

    path = model_path(spec)
    loaded = engine.call(p.LoadModel(path=path, n_ctx=args.n_ctx))[-1]
    if not isinstance(loaded, p.ModelLoaded):
        return {"error": getattr(loaded, "message", "could not load"), "path": path}
    scores, ceil_ok, secs, ceil_secs, kinds = [], [], [], [], []
    markers = retry = record = flagged = errors = alone = 0
    for i, q in enumerate(questions):
        a = ask(engine, q, data_dir, args.max_tokens, DEFAULT_SYSTEM_PROMPT)
        if "error" in a:
            errors += 1
            details.append({"model": loaded.name, "id": q["id"], **a})
            continue
        s = score(q, cdir, a)
        scores.append(s)
        kinds.append(q.get("kind", ""))
        secs.append(a["seconds"])
        markers += a["fallback"] != ""
        retry += a["fallback"] == "retry"
        record += a["fallback"] == "record"
        flagged += bool(a["unsourced"])
        alone += len(a["citations"]) == 1
        row = {"model": loaded.name, "id": q["id"], "question": q["question"], "answer": q["answer"],
               "text": a["text"], "fallback": a["fallback"], "unsourced": a["unsourced"], **s,
               "seconds": a["seconds"],
               "sources": [f"[{c['n']}] {os.path.basename(c['path'])}:{c['line_start']}-{c['line_end']}"
                           f" score={c.get('score', 0):.4g} sim={c.get('similarity', 0):.3f}"
                           for c in a["citations"]],
               "source_texts": [c.get("text", "")[:400] for c in a["citations"]]}
        if not args.no_ceiling:
            c = ceiling(engine, q, cdir, args.max_tokens, DEFAULT_SYSTEM_PROMPT)
            ceil_ok.append(value_ok(q, c["text"]))
            ceil_secs.append(c["seconds"])
            row["ceiling_text"], row["ceiling_value"] = c["text"], ceil_ok[-1]
        details.append(row)
        print(f"{loaded.name} {i + 1}/{len(questions)} {q['id']}: value={s['value']} cite={s['citation']} "
              f"fallback={a['fallback'] or '-'} {a['seconds']:.1f}s {a['text'][:80]!r}", file=sys.stderr)
    out = {
        "path": path, "n": len(scores), "errors": errors,
        "value_accuracy": rate([s["value"] for s in scores]),
        "value_accuracy_model": rate([s["value_model"] for s in scores]),
        "value_accuracy_first_try": rate([s["value_first"] for s in scores]),
        "citation_accuracy": rate([s["citation"] for s in scores]),
        "right_record_sent": rate([s["sent"] for s in scores]),
        "right_record_first": rate([s["first"] for s in scores]),
        "markers_only": markers, "one_source_sent": alone, "fallback_retry": retry, "fallback_record": record, "flagged": flagged,
        "median_s": round(statistics.median(secs), 2) if secs else None,
        "mean_s": round(statistics.mean(secs), 2) if secs else None,
        "by_kind": {k: {"n": kinds.count(k),
                        "value_accuracy": rate([s["value"] for s, kk in zip(scores, kinds) if kk == k]),
                        "value_accuracy_model": rate([s["value_model"] for s, kk in zip(scores, kinds) if kk == k])}
                    for k in sorted(set(kinds))},
    }
    if ceil_ok:
        out["ceiling"] = {"value_accuracy": rate(ceil_ok), "median_s": round(statistics.median(ceil_secs), 2)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", required=True, help="folder with corpus/ and questions.json")
    ap.add_argument("--model", action="append", default=[],
                    help="'default', a catalog key (qwen2.5-coder-0.5b) or a GGUF path; repeatable")
    ap.add_argument("--limit", type=int, default=40, help="questions per model, sampled with --seed (0: all)")
    ap.add_argument("--kinds", default="", help="comma-separated question kinds to keep")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", default="", help="data dir for the index (kept; reused by a later run)")
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--no-ceiling", action="store_true", help="skip the plain-prompt anchor runs")
    ap.add_argument("--details", default="", help="write every answer, scored, to this JSON file")
    ap.add_argument("--question-files", action="store_true",
                    help="index only the files the sampled questions are about (a quicker, easier corpus)")
    args = ap.parse_args()

    cdir = Path(args.corpus).resolve()
    questions = load_questions(cdir, args.kinds, args.limit, args.seed)
    data_dir = args.work or tempfile.mkdtemp(prefix="lantern-answers-")
    engine = Engine()
    details: list = []
    try:
        t0 = time.perf_counter()
        roots = (sorted({str(cdir / "corpus" / q["path"]) for q in questions}) if args.question_files
                 else [str(cdir / "corpus")])
        done = engine.call(p.IndexPaths(paths=roots, data_dir=data_dir))[-1]
        if not isinstance(done, p.IndexDone):
            print(f"indexing failed: {getattr(done, 'message', done)}", file=sys.stderr)
            return 1
        index_s = time.perf_counter() - t0
        models = {}
        for spec in args.model or ["default"]:
            models[spec] = run_model(engine, spec, questions, cdir, data_dir, args, details)
    finally:
        engine.close()
    if args.details:
        Path(args.details).write_text(json.dumps(details, indent=1, ensure_ascii=False))
    print(json.dumps({
        "corpus": str(cdir), "questions": len(questions), "kinds": args.kinds or "all", "seed": args.seed,
        "index": {"chunks": done.summary.get("chunks"), "seconds": round(index_s, 1),
                  "files": "the questions' files only" if args.question_files else "all"},
        "greedy": True, "max_tokens": args.max_tokens, "models": models,
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
