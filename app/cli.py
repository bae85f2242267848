"""`lantern ask`: one question, answered by the engine child process, streamed to stdout."""

from __future__ import annotations

import json
import os
import sys

from app.engine_process import EngineProcess, EngineUnavailable, keep_alive_s
from app.paths import Paths
from app.settings import Settings
from engine import protocol as p


def _read_question(arg: str) -> str:
    return sys.stdin.read() if arg == "-" else arg


# A request of ours was cancelled, and not by us: the engine we shared is stopping.
STOPPED_ELSEWHERE = ("the engine stopped before answering (the window that runs it closed, or it was "
                     "stopped); run the command again")

CITATION_FIELDS = ("path", "line_start", "line_end", "page", "heading", "score", "text")


def use_sources(args, paths: Paths) -> bool:
    """--sources / --no-sources, else: whenever something was indexed in this data dir."""
    if getattr(args, "sources", None) is not None:
        return bool(args.sources)
    return (paths.data_dir / "manifest.sqlite").exists()


def _print_citations(ev: p.Citations) -> None:
    for c in ev.citations:
        lines = f"{c['line_start']}" + (f"-{c['line_end']}" if c["line_end"] != c["line_start"] else "")
        print(f"lantern ask: [{c['n']}] {c['path']}:{lines}", file=sys.stderr)
    if ev.dropped:
        print(f"lantern ask: note: {ev.dropped} matching source(s) left out to fit the context", file=sys.stderr)
    if not ev.citations:
        print("lantern ask: note: no indexed source matched the question", file=sys.stderr)


def open_engine(paths: Paths, settings: Settings, verb: str) -> EngineProcess:
    """The engine working in this data dir (the window's, a kept one, `lantern serve`'s), or a new
    one that stays ``keep_alive_s`` for the next verb."""
    return EngineProcess(log_path=paths.engine_log, data_dir=paths.data_dir, keep_alive_s=keep_alive_s(settings),
                         note=lambda msg: print(f"lantern {verb}: {msg}", file=sys.stderr))


def _loaded_already(engine: EngineProcess, args) -> bool:
    """A running engine that has the asked model loaded (or, with no --model, the model the
    window or the previous verb loaded from this data dir's settings) answers with it as it is."""
    if not engine.attached or args.n_ctx:
        return False
    status = engine.call(p.GetStatus())
    if not isinstance(status, p.Status) or not status.model_path:
        return False
    return not args.model or os.path.realpath(args.model) == os.path.realpath(status.model_path)


def run_ask(args, paths: Paths) -> int:
    question = _read_question(args.question).strip()
    if not question:
        print("lantern ask: the question is empty; pass some text (or - to read stdin).", file=sys.stderr)
        return 2
    settings = Settings(paths.settings_file)
    chat = settings.chat_defaults()
    system = chat["system_prompt"] if args.system is None else args.system
    sampling = {k: chat[k] for k in ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed")}
    sampling["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        sampling["temperature"] = args.temperature
    if args.seed is not None:
        sampling["seed"] = args.seed
    n_ctx = args.n_ctx or chat["n_ctx"]
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]

    try:
        with open_engine(paths, settings, "ask") as engine:
            if not _loaded_already(engine, args):
                loaded = engine.call(p.LoadModel(path=args.model or settings.get("model", "path"), n_ctx=n_ctx,
                                                 n_gpu_layers=settings.get("model", "n_gpu_layers"),
                                                 n_threads=settings.get("model", "n_threads")))
                if isinstance(loaded, p.Failed):
                    print(f"lantern ask: {loaded.message}", file=sys.stderr)
                    return 1
                if loaded.template_note:
                    print(f"lantern ask: note: {loaded.template_note}", file=sys.stderr)
            done = citations = None
            chat = p.Chat(messages=messages, sampling=sampling, use_sources=use_sources(args, paths),
                          collections=list(getattr(args, "collection", []) or []), data_dir=str(paths.data_dir))
            for ev in engine.events(engine.send(chat)):
                if isinstance(ev, p.Token) and not args.json:
                    sys.stdout.write(ev.text)
                    sys.stdout.flush()
                elif isinstance(ev, p.Citations):
                    citations = ev
                    _print_citations(ev)
                elif isinstance(ev, p.ContextTrimmed):
                    print(f"lantern ask: note: {ev.dropped_messages} older message(s) left out to fit the context",
                          file=sys.stderr)
                elif isinstance(ev, p.Failed):
                    print(f"lantern ask: {ev.message}", file=sys.stderr)
                    return 1
                elif isinstance(ev, p.Cancelled):
                    print(f"lantern ask: {STOPPED_ELSEWHERE}", file=sys.stderr)
                    return 1
                elif isinstance(ev, p.Done):
                    done = ev
    except EngineUnavailable as e:
        print(f"lantern ask: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nlantern ask: stopped.", file=sys.stderr)
        return 130

    if args.json:
        print(json.dumps({
            "answer": done.text,
            "model": done.model,
            "usage": {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens},
            "timings": {"ttft_ms": done.ttft_ms, "tokens_per_s": done.tokens_per_s},
            "finish_reason": done.finish_reason,
            "citations": [{k: c.get(k) for k in CITATION_FIELDS} for c in (citations.citations if citations else [])],
            # "" when the model answered in words; "retry" / "record" when it gave only markers
            "fallback": done.fallback,
            # values in the answer that no source sent to the model contains
            "unsourced": [{"kind": f.get("kind"), "value": f.get("value")} for f in done.unsourced],
        }, ensure_ascii=False))
    else:
        sys.stdout.write("\n")
        for f in done.unsourced:
            print(f"lantern ask: warning: {f.get('message') or f.get('value')}", file=sys.stderr)
    return 0
