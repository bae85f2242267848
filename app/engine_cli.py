"""`lantern serve` and `lantern engine status|stop`: the engine that works in a data dir.

One engine per data dir (engine/residency.py). `lantern serve` runs it headless in this process
until Ctrl+C; CLI verbs and a window on the same data dir use it. With the local API server
(app/api_server.py) it also answers OpenAI-compatible HTTP on loopback, as one more client of
that same engine.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

from app.paths import Paths
from engine import protocol as p
from engine import residency
from engine.channel import AttachRefused, LineChannel

STOP_WAIT_S = 300.0


def add_parsers(sub) -> None:
    serve = sub.add_parser("serve", help="run the engine headless for this data dir until Ctrl+C, with an "
                                         "OpenAI-compatible HTTP API on loopback; CLI verbs and the window use it")
    serve.add_argument("--host", default=None, metavar="ADDR",
                       help="address to bind the HTTP API (127.0.0.1); another than loopback exposes it to the network")
    serve.add_argument("--port", type=int, default=8765, metavar="N", help="HTTP port (8765; 0: any free port)")
    serve.add_argument("--token", default="", metavar="T",
                       help="the bearer token clients must send (default: a random one kept in <data dir>/api_token)")
    serve.add_argument("--max-tokens-cap", type=int, default=4096, metavar="N",
                       help="largest max_tokens a request may ask for (4096)")
    serve.add_argument("--max-queue", type=int, default=8, metavar="N",
                       help="engine requests in flight before the API answers 429 (8)")
    serve.add_argument("--no-api", action="store_true", help="only the engine: no HTTP server")
    eng = sub.add_parser("engine", help="the engine working in this data dir: status, stop")
    eng.add_argument("action", choices=("status", "stop"), help="status: which engine runs; stop: stop it "
                                                                 "after it finishes writing")
    eng.add_argument("--json", action="store_true", help="status as one JSON object")


def _api_checks(args) -> str:
    """'' when the API options are usable, else what to change."""
    if args.token and len(args.token) < 16:
        return "--token must be at least 16 characters (or leave it out for a random one kept in the data dir)"
    if not 0 <= args.port <= 65535:
        return f"--port {args.port} is not a port number (0 to 65535)"
    if args.max_tokens_cap < 1 or args.max_queue < 1:
        return "--max-tokens-cap and --max-queue must be at least 1"
    return ""


def run_serve(args, paths: Paths) -> int:
    from engine.host import HostConfig, run

    api = not getattr(args, "no_api", True)
    if api:
        why = _api_checks(args)
        if why:
            print(f"lantern serve: {why}.", file=sys.stderr)
            return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s engine[%(process)d] %(levelname)s %(name)s: %(message)s")
    servers = []

    def announce(host) -> None:
        print(f"lantern serve: the engine works in {paths.data_dir} (pid {os.getpid()}, "
              f"protocol {p.PROTOCOL_VERSION}); `lantern search`, `ask`, `index` and the window on this data dir "
              f"use it. Ctrl+C stops it after it finishes writing.", file=sys.stderr, flush=True)
        if api:
            try:
                servers.append(_start_api(args, paths, host))
            except OSError as e:
                print(f"lantern serve: cannot serve HTTP on {args.host or '127.0.0.1'}:{args.port}: "
                      f"{e.strerror or e}. Choose another --port (0: any free one), or stop what uses it; "
                      f"stopping the engine.", file=sys.stderr, flush=True)
                host.request_stop("the HTTP API could not start")

    code = run(HostConfig(data_dir=str(paths.data_dir), mode=residency.SERVE), announce=announce)
    for server in servers:
        server.shutdown()
        server.server_close()
    if api and not servers and code == 0:
        code = 1
    if code == residency.EXIT_DATA_DIR_BUSY:
        info = residency.read_info(paths.data_dir)
        who = f" (pid {info.pid}, {residency.describe_mode(info.mode)})" if info else ""
        print(f"lantern serve: a Lantern engine{who} already works in {paths.data_dir}; CLI verbs use it. "
              f"Stop it first (lantern engine stop) to serve from this terminal.", file=sys.stderr)
    return code


def _start_api(args, paths: Paths, host):
    from app import api_server
    from app.settings import Settings

    bind = args.host or api_server.DEFAULT_HOST
    server = api_server.start(bind, args.port, host.port, host.config.token, str(paths.data_dir),
                              settings=Settings(paths.settings_file), token=args.token,
                              host_given=args.host is not None, max_tokens_cap=args.max_tokens_cap,
                              max_queue=args.max_queue)
    where = "the token you gave (--token)" if args.token else \
        f'the token in {api_server.token_path(paths.data_dir)} (curl -H "Authorization: Bearer $(cat ' \
        f'{api_server.token_path(paths.data_dir)})" ...)'
    print(f"lantern serve: OpenAI-compatible API at {api_server.url(server)} ; every request needs {where}.",
          file=sys.stderr, flush=True)
    if not api_server.is_loopback(bind):
        print(f"lantern serve: WARNING: --host {bind} serves the API beyond this machine; anyone who can reach "
              f"{bind}:{server.server_address[1]} and has the token can use your model and read your indexed "
              f"sources. Traffic is not encrypted (plain HTTP).", file=sys.stderr, flush=True)
    return server


def status(paths: Paths) -> dict:
    running = residency.engine_running(paths.data_dir)
    info = residency.read_info(paths.data_dir) if running else None
    out = {"data_dir": str(paths.data_dir), "running": running}
    if info is not None:
        out.update(pid=info.pid, mode=info.mode, protocol=info.protocol, port=info.port,
                   started_at=info.started_at, keep_alive_s=info.keep_alive_s)
        try:
            chan = LineChannel.attach(info.port, info.token, info.host)
        except (OSError, AttachRefused):
            return out
        try:
            ev = chan.call(p.GetStatus())
            if isinstance(ev, p.Status):
                out.update(state=ev.state, model=ev.model, rss_bytes=ev.rss_bytes)
        finally:
            chan.close()
    return out


def stop(data_dir, note=lambda msg: None, wait_s: float = STOP_WAIT_S) -> tuple[bool, str]:
    """Ask the engine working in ``data_dir`` to stop, and wait until it has (its writes done,
    its lock released). Returns (stopped or none ran, what happened)."""
    if not residency.engine_running(data_dir):
        return True, f"no Lantern engine works in {data_dir}"
    info = residency.read_info(data_dir)
    if info is None:
        return False, f"a process holds {residency.lock_path(data_dir)} but published no engine.json; try again shortly"
    try:
        chan = LineChannel.attach(info.port, info.token, info.host)
    except (OSError, AttachRefused) as e:
        return False, f"the engine (pid {info.pid}) in {data_dir} does not answer: {e}"
    cmd = p.Shutdown()
    refused = ""
    try:
        chan.send(cmd)
        for ev in chan:   # the engine closes the connection once it has stopped
            if isinstance(ev, p.Failed) and ev.id == cmd.id:
                refused = ev.message
                break
    finally:
        chan.close()
    if refused:
        return False, refused
    deadline = time.monotonic() + wait_s
    noted = False
    while residency.engine_running(data_dir):
        if time.monotonic() > deadline:
            return False, f"the engine (pid {info.pid}) did not stop within {wait_s:.0f} s"
        if not noted:
            note(f"waiting for the engine (pid {info.pid}) to finish writing ...")
            noted = True
        time.sleep(0.1)
    return True, f"stopped the engine (pid {info.pid}, {residency.describe_mode(info.mode)}) in {data_dir}"


def run_engine(args, paths: Paths) -> int:
    if args.action == "status":
        s = status(paths)
        if args.json:
            print(json.dumps(s))
        elif not s["running"]:
            print(f"no Lantern engine works in {paths.data_dir}")
        else:
            extra = f", model {s['model']}" if s.get("model") else ""
            print(f"engine pid {s.get('pid', '?')} ({residency.describe_mode(s.get('mode', ''))}) works in "
                  f"{paths.data_dir}: {s.get('state', 'not answering')}{extra}")
        return 0
    ok, message = stop(paths.data_dir, note=lambda m: print(f"lantern engine: {m}", file=sys.stderr))
    print(f"lantern engine: {message}", file=sys.stderr)
    return 0 if ok else 1
