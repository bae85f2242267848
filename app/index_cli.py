"""`lantern index` and `lantern search`: the retrieval verbs, run by the engine child process.

Progress goes to stderr and results to stdout, so `lantern search ... --json | jq` works.
`lantern search --queries FILE` sends all queries in one request: the embedding model and the
vector store load once for the lot.
"""

from __future__ import annotations

import json
import os
import sys

from app.cli import STOPPED_ELSEWHERE, open_engine
from app.engine_process import EngineUnavailable
from app.paths import Paths
from app.settings import Settings
from engine import protocol as p


def add_parsers(sub) -> None:
    idx = sub.add_parser("index", help="index files and folders (logs, text, markdown, HTML, CSV, JSON) for search")
    idx.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to index")
    idx.add_argument("--collection", default="default", metavar="C", help="collection to index into (default)")
    idx.add_argument("--chroma-url", default="", metavar="URL",
                     help="a Chroma server (http://host:port) instead of the built-in vector store")
    idx.add_argument("--json", action="store_true", help="print the summary as one JSON object (default too)")

    s = sub.add_parser("search", help="search indexed files; hits cite path and lines")
    s.add_argument("query", nargs="?", default=None, help="what to look for (words, an IP, an error code ...)")
    s.add_argument("--queries", metavar="FILE", help="read one query per line (- for stdin); one JSON line each")
    s.add_argument("-k", type=int, default=5, metavar="N", help="hits per query (5)")
    s.add_argument("--collection", default="default", metavar="C")
    s.add_argument("--level", default="", metavar="L", help="only records of this level or worse (error, warning ...)")
    s.add_argument("--since", default="", metavar="T", help="only records at or after T (ISO time, 'yesterday', '2 hours ago')")
    s.add_argument("--until", default="", metavar="T", help="only records before T")
    s.add_argument("--file", default="", metavar="GLOB", help="only files matching GLOB (name, or a path pattern)")
    s.add_argument("--chroma-url", default="", metavar="URL")
    s.add_argument("--json", action="store_true", help="print JSON instead of readable text")


def _progress(ev: p.Progress) -> None:
    if not sys.stderr.isatty():
        print(f"lantern index: {ev.phase} {ev.done}/{ev.total} {ev.path}", file=sys.stderr)
    else:
        sys.stderr.write(f"\r{ev.phase} {ev.done}/{ev.total} {os.path.basename(ev.path)[:50]:<50}")
        sys.stderr.flush()


def run_index(args, paths: Paths) -> int:
    cmd = p.IndexPaths(paths=[os.path.abspath(x) for x in args.paths], collection=args.collection,
                       data_dir=str(paths.data_dir), chroma_url=args.chroma_url)
    try:
        with open_engine(paths, Settings(paths.settings_file), "index") as engine:
            done = None
            for ev in engine.events(engine.send(cmd)):
                if isinstance(ev, p.Progress):
                    _progress(ev)
                elif isinstance(ev, p.Failed):
                    print(f"lantern index: {ev.message}", file=sys.stderr)
                    return 1
                elif isinstance(ev, p.Cancelled):
                    print(f"lantern index: {STOPPED_ELSEWHERE}; it goes on where it stopped", file=sys.stderr)
                    return 1
                elif isinstance(ev, p.IndexDone):
                    done = ev
    except EngineUnavailable as e:
        print(f"lantern index: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nlantern index: stopped; run it again to continue where it stopped.", file=sys.stderr)
        return 130
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    s = done.summary
    for skip in s.get("skipped", []):
        print(f"lantern index: skipped {skip['path']}: {skip['reason']}", file=sys.stderr)
    for notice in s.get("notices", []):
        print(f"lantern index: {notice}", file=sys.stderr)
    print(json.dumps(s, ensure_ascii=False))
    return 0


def _read_queries(source: str) -> list[str]:
    text = sys.stdin.read() if source == "-" else open(source, encoding="utf-8").read()
    return [q.strip() for q in text.splitlines() if q.strip()]


def run_search(args, paths: Paths) -> int:
    if args.queries:
        try:
            queries = _read_queries(args.queries)
        except OSError as e:
            print(f"lantern search: cannot read {args.queries}: {e.strerror}", file=sys.stderr)
            return 2
    elif args.query:
        queries = [args.query]
    else:
        print("lantern search: give a query, or --queries FILE with one query per line.", file=sys.stderr)
        return 2
    cmd = p.Search(queries=queries, k=args.k, collection=args.collection, level=args.level, since=args.since,
                   until=args.until, file_glob=args.file, data_dir=str(paths.data_dir), chroma_url=args.chroma_url)
    try:
        with open_engine(paths, Settings(paths.settings_file), "search") as engine:
            for ev in engine.events(engine.send(cmd)):
                if isinstance(ev, p.Failed):
                    print(f"lantern search: {ev.message}", file=sys.stderr)
                    return 1
                if isinstance(ev, p.Cancelled):
                    print(f"lantern search: {STOPPED_ELSEWHERE}", file=sys.stderr)
                    return 1
                if isinstance(ev, p.SearchResult):
                    _print_result(ev, args.json or bool(args.queries))
    except EngineUnavailable as e:
        print(f"lantern search: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _print_result(ev: p.SearchResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"query": ev.query, "hits": ev.hits}, ensure_ascii=False), flush=True)
        return
    if not ev.hits:
        print(f"no hits for {ev.query!r}")
    for h in ev.hits:
        where = f"{h['path']}:{h['line_start']}" + (f"-{h['line_end']}" if h["line_end"] != h["line_start"] else "")
        if h.get("page"):
            where += f" (page {h['page']})"
        if h.get("heading"):
            where += f" · {h['heading']}"
        print(f"{where}  [{h['score']:.4f}]")
        for line in h["text"].splitlines()[:12]:
            print(f"    {line}")
    sys.stdout.flush()
