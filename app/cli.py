"""`lantern ask`: one question, answered by the engine child process, streamed to stdout."""

from __future__ import annotations

import json
import sys

from app.engine_process import EngineProcess, EngineUnavailable
from app.paths import Paths
from app.settings import Settings
from engine import protocol as p


def _read_question(arg: str) -> str:
    return sys.stdin.read() if arg == "-" else arg


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
        with EngineProcess(log_path=paths.engine_log) as engine:
            loaded = engine.call(p.LoadModel(path=args.model or settings.get("model", "path"), n_ctx=n_ctx,
                                             n_gpu_layers=settings.get("model", "n_gpu_layers"),
                                             n_threads=settings.get("model", "n_threads")))
            if isinstance(loaded, p.Failed):
                print(f"lantern ask: {loaded.message}", file=sys.stderr)
                return 1
            if loaded.template_note:
                print(f"lantern ask: note: {loaded.template_note}", file=sys.stderr)
            done = None
            for ev in engine.events(engine.send(p.Chat(messages=messages, sampling=sampling))):
                if isinstance(ev, p.Token) and not args.json:
                    sys.stdout.write(ev.text)
                    sys.stdout.flush()
                elif isinstance(ev, p.ContextTrimmed):
                    print(f"lantern ask: note: {ev.dropped_messages} older message(s) left out to fit the context",
                          file=sys.stderr)
                elif isinstance(ev, p.Failed):
                    print(f"lantern ask: {ev.message}", file=sys.stderr)
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
        }, ensure_ascii=False))
    else:
        sys.stdout.write("\n")
    return 0
