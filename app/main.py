"""The `lantern` command: the window by default, and headless verbs on the same engine."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from app import paths as app_paths

log = logging.getLogger("lantern")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lantern",
        description="Chat privately with a local language model. With no command, opens the window.",
    )
    parser.add_argument("--data-dir", metavar="DIR",
                        help="keep conversations, settings, logs and models under DIR (tests, portable use)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    ask = sub.add_parser("ask", help="ask the model one question and stream the answer to stdout")
    ask.add_argument("question", help="the question (use - to read it from stdin)")
    ask.add_argument("--model", metavar="PATH", default="", help="a GGUF model file (default: the bundled model)")
    ask.add_argument("--system", metavar="TEXT", default=None, help="system prompt")
    ask.add_argument("--max-tokens", type=int, default=512, metavar="N", help="longest answer in tokens (512)")
    ask.add_argument("--temperature", type=float, default=None, metavar="T", help="sampling temperature")
    ask.add_argument("--seed", type=int, default=None, metavar="N", help="random seed (-1: random)")
    ask.add_argument("--n-ctx", type=int, default=None, metavar="N", help="context length in tokens")
    ask.add_argument("--json", action="store_true",
                     help="print one JSON object {answer, model, usage, timings, citations} instead of streaming")
    src = ask.add_mutually_exclusive_group()
    src.add_argument("--sources", dest="sources", action="store_true", default=None,
                     help="answer from indexed files, citing them (default when `lantern index` has run)")
    src.add_argument("--no-sources", dest="sources", action="store_false", help="do not use indexed files")
    ask.add_argument("--collection", action="append", default=[], metavar="C",
                     help="collection to answer from (default: default); repeat for several")

    doctor = sub.add_parser("doctor", help="report versions, CPU features, GPUs and the default model's checksum")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")

    from app.index_cli import add_parsers
    add_parsers(sub)
    from app import models_cli
    models_cli.add_parsers(sub)
    from app import engine_cli
    engine_cli.add_parsers(sub)

    sub.add_parser("gui", help="open the window (the default)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        paths = app_paths.resolve(args.data_dir)
    except app_paths.DataDirError as e:
        print(f"lantern: {e}", file=sys.stderr)
        if args.command in (None, "gui"):
            _show_startup_error(str(e))
        return 2

    if args.command == "ask":
        from app.cli import run_ask
        return run_ask(args, paths)
    if args.command in ("index", "search"):
        from app.index_cli import run_index, run_search
        return (run_index if args.command == "index" else run_search)(args, paths)
    if args.command in ("serve", "engine"):
        from app import engine_cli
        return (engine_cli.run_serve if args.command == "serve" else engine_cli.run_engine)(args, paths)
    if args.command == "models":
        from app.models_cli import run_models
        return run_models(args, paths)
    if args.command == "doctor":
        from app.doctor import collect, render_text
        report = collect()
        print(json.dumps(report, indent=2) if args.json else render_text(report))
        return 0 if report["default_model"].get("checksum_ok") else 1
    from app.gui import run_gui
    return run_gui(paths)


def _show_startup_error(message: str) -> None:
    """A person who double-clicked the app sees no terminal: show the error in a dialog."""
    try:
        from PySide6.QtWidgets import QApplication, QMessageBox
    except ImportError:
        return
    app = QApplication.instance() or QApplication(sys.argv)
    if app.platformName() in ("offscreen", "minimal"):
        return
    QMessageBox.critical(None, "Lantern cannot start", message)


if __name__ == "__main__":
    sys.exit(main())
