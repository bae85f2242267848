"""`lantern serve` and `lantern engine status|stop`: the engine that works in a data dir.

One engine per data dir (engine/residency.py). `lantern serve` runs it headless in this process
until Ctrl+C; CLI verbs and a window on the same data dir use it. The local API server of a
later version is added to this command (its options go beside the data dir), not beside it.
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
    sub.add_parser("serve", help="run the engine headless for this data dir until Ctrl+C; "
                                 "CLI verbs and the window use it")
    eng = sub.add_parser("engine", help="the engine working in this data dir: status, stop")
    eng.add_argument("action", choices=("status", "stop"), help="status: which engine runs; stop: stop it "
                                                                 "after it finishes writing")
    eng.add_argument("--json", action="store_true", help="status as one JSON object")


def run_serve(args, paths: Paths) -> int:
    from engine.host import HostConfig, run

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s engine[%(process)d] %(levelname)s %(name)s: %(message)s")

    def announce(host) -> None:
        print(f"lantern serve: the engine works in {paths.data_dir} (pid {os.getpid()}, "
              f"protocol {p.PROTOCOL_VERSION}); `lantern search`, `ask`, `index` and the window on this data dir "
              f"use it. Ctrl+C stops it after it finishes writing.", file=sys.stderr, flush=True)

    code = run(HostConfig(data_dir=str(paths.data_dir), mode=residency.SERVE), announce=announce)
    if code == residency.EXIT_DATA_DIR_BUSY:
        info = residency.read_info(paths.data_dir)
        who = f" (pid {info.pid}, {residency.describe_mode(info.mode)})" if info else ""
        print(f"lantern serve: a Lantern engine{who} already works in {paths.data_dir}; CLI verbs use it. "
              f"Stop it first (lantern engine stop) to serve from this terminal.", file=sys.stderr)
    return code


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
            cmd = p.GetStatus()
            chan.send(cmd)
            for ev in chan:
                if isinstance(ev, p.Status) and ev.id == cmd.id:
                    out.update(state=ev.state, model=ev.model, rss_bytes=ev.rss_bytes)
                    break
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
