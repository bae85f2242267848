"""`lantern models list|add|info|plan`: the model library from the command line.

These verbs only read GGUF metadata (pure Python, ``engine.gguf``) and do arithmetic
(``engine.planner``), so they run in the CLI process: no engine child, no native load, and
a hostile file can do no more than be refused.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from app.paths import Paths

MODELS_DB = "models.sqlite"


def add_parsers(sub) -> None:
    m = sub.add_parser("models", help="list, add and inspect GGUF models; plan how they fit this machine")
    verbs = m.add_subparsers(dest="models_command", metavar="VERB", required=True)

    ls = verbs.add_parser("list", help="the models in the library")
    ls.add_argument("--json", action="store_true", help="print a JSON array")

    add = verbs.add_parser("add", help="add GGUF files, or folders of them (Ollama, LM Studio, GPT4All ...)")
    add.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (searched recursively)")
    add.add_argument("--json", action="store_true", help="print {added, skipped} as JSON")

    info = verbs.add_parser("info", help="metadata of a model (a path, or a name from the library)")
    info.add_argument("model", metavar="MODEL", help="a GGUF path or a library name")
    info.add_argument("--json", action="store_true", help="print JSON")

    plan = verbs.add_parser("plan", help="how a model would be loaded here: GPU layers, memory, and why")
    plan.add_argument("model", metavar="MODEL", help="a GGUF path or a library name")
    plan.add_argument("--context", type=int, default=None, metavar="N",
                      help="context length in tokens (default: 4096, or the largest that fits with --fit)")
    plan.add_argument("--fit", action="store_true", help="choose the largest context that fits")
    plan.add_argument("--gpu-layers", type=int, default=None, metavar="N", help="set GPU layers by hand")
    plan.add_argument("--kv-type", default="f16", metavar="T", help="KV cache type: f16 (default), q8_0, q4_0 ...")
    plan.add_argument("--json", action="store_true", help="print JSON")

    from app import fetch_cli
    fetch_cli.add_parsers(verbs)


def _gib(n: int) -> str:
    from engine.planner import fmt_bytes
    return fmt_bytes(n)


def _fail(verb: str, message: str) -> int:
    print(f"lantern models {verb}: {message}", file=sys.stderr)
    return 1


def run_models(args, paths: Paths) -> int:
    from engine.library import ModelLibrary
    from engine.protocol import EngineError

    verb = args.models_command
    try:
        lib = ModelLibrary(paths.data_dir / MODELS_DB)
    except EngineError as e:
        return _fail(verb, e.message)
    try:
        if verb in ("download", "install"):
            from app import fetch_cli
            if verb == "install":
                return fetch_cli.run_install(args, lib, paths)
            return fetch_cli.run_download(args, lib, paths, _hf_endpoint(paths))
        return {"list": _list, "add": _add, "info": _info, "plan": _plan}[verb](args, lib)
    except EngineError as e:
        return _fail(verb, e.message)
    finally:
        lib.close()


def _hf_endpoint(paths: Paths) -> str | None:
    from app.settings import Settings
    return Settings(paths.settings_file).get("model", "hf_endpoint") or None


def _list(args, lib) -> int:
    entries = lib.entries()
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2))
        return 0
    if not entries:
        print("The library is empty. Add models with: lantern models add PATH")
        return 0
    for e in entries:
        i = e.info
        flag = "" if e.exists else "  (missing)"
        print(f"{e.name:40} {i.architecture:10} {i.file_type:8} {i.n_params / 1e9:6.2f}B  {_gib(e.size):>9}  "
              f"{e.path}{flag}")
    return 0


def _add(args, lib) -> int:
    report = lib.add(args.paths)
    if args.json:
        print(json.dumps({"added": [e.to_dict() for e in report.added],
                          "skipped": [{"path": p, "reason": r} for p, r in report.skipped]}, indent=2))
    else:
        for e in report.added:
            print(f"added {e.name} ({e.info.architecture}, {e.info.file_type}, {_gib(e.size)}): {e.path}")
        for p, r in report.skipped:
            print(f"lantern models add: skipped {p}: {r}", file=sys.stderr)
    return 0 if report.added or not report.skipped else 1


def _resolve(ref: str, lib):
    """(ModelInfo, library entry or None) for a path or a library name."""
    from engine import gguf
    from engine.protocol import EngineError, ErrorKind

    entry = lib.find(ref)
    if entry is not None:
        return lib.refresh(entry).info, entry
    if Path(ref).expanduser().exists():
        return gguf.inspect(Path(ref).expanduser().absolute()), None
    raise EngineError(ErrorKind.MODEL_NOT_FOUND, f"No model '{ref}' in the library and no such file. "
                                                 "See `lantern models list`, or give a path to a .gguf file.")


def _info(args, lib) -> int:
    info, entry = _resolve(args.model, lib)
    sha = lib.sha256(entry) if entry else None
    # "name" is the library's name (what `plan` and `list` take); the GGUF's own general.name
    # is often a training-run label, kept as "model_name".
    d = {**info.to_dict(), "model_name": info.name, "name": entry.name if entry else Path(info.path).stem,
         "sha256": sha, "source": entry.source if entry else "file"}
    if args.json:
        print(json.dumps(d, indent=2))
        return 0
    rows = [
        ("name", d["name"]), ("path", info.path), ("size", f"{_gib(info.size)} ({info.size} bytes)"),
        ("architecture", info.architecture), ("model name", info.name),
        ("parameters", f"{info.n_params:,} ({info.n_params / 1e9:.2f}B)"), ("quantization", info.file_type),
        ("context length", info.context_length), ("layers", info.block_count),
        ("embedding length", info.embedding_length),
        ("heads", f"{info.head_count} (KV heads {info.head_count_kv})"), ("vocabulary", info.vocab_size),
        ("chat template", "yes" if info.has_chat_template else "no (a generic one will be used)"),
        ("weights", f"{_gib(info.tensor_bytes)}: {_gib(sum(info.layer_bytes))} in layers, "
                    f"{_gib(info.other_bytes)} outside (embeddings, output)"),
        ("sha256", sha or "(not computed)"),
    ]
    for k, v in rows:
        print(f"{k + ':':18} {v}")
    return 0


def _plan(args, lib) -> int:
    from engine.planner import ModelPlanner

    info, entry = _resolve(args.model, lib)
    planner = ModelPlanner()
    plan = planner.plan(info, args.context, n_gpu_layers=args.gpu_layers, kv_type=args.kv_type,
                        fit_context=args.fit)
    if args.json:
        print(json.dumps({"model": entry.name if entry else Path(info.path).stem, "path": info.path,
                          "devices": [d.to_dict() for d in planner.devices], "plan": plan.to_dict()}, indent=2))
        return 0
    where = f"{plan.n_gpu_layers} of {plan.n_layers + 1} layers on {plan.gpu}" if plan.n_gpu_layers else "CPU only"
    print(f"{Path(info.path).name}: {where}, context {plan.n_ctx} tokens")
    for dev, part in (("RAM", plan.breakdown["ram"]), ("GPU", plan.breakdown["vram"])):
        total = sum(part.values())
        if total:
            detail = ", ".join(f"{k.replace('_', ' ')} {_gib(v)}" for k, v in part.items() if v)
            print(f"  {dev}: {_gib(total)} ({detail})")
    print("why:")
    for r in plan.reasons:
        print(f"  - {r}")
    return 0
