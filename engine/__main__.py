"""Entry point of the engine process: ``python -m engine``.

Started by a parent (the window's EngineClient or the CLI's EngineProcess), which listens on a
loopback port and passes it, with a one-time token, in the environment; we connect and say
Hello. The parent also names the data dir the engine locks and serves (``LANTERN_ENGINE_DATA_DIR``)
and its mode: ``window`` (ends with the window's connection, so no orphan keeps a model in
memory), ``cli`` (stays ``LANTERN_ENGINE_KEEP_ALIVE_S`` seconds after its last client, so the next
CLI verb finds it warm). ``lantern serve`` runs the same host in its own process, with no parent.

Exit status 75 (``residency.EXIT_DATA_DIR_BUSY``): another engine already works in the data dir;
the parent connects to that one instead (engine/host.py, engine/residency.py).
"""

from __future__ import annotations

import logging
import os
import sys

from engine import residency
from engine.channel import ENV_DATA_DIR, ENV_KEEP_ALIVE, ENV_MODE, ENV_PORT, ENV_TOKEN
from engine.host import HostConfig, run


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("LANTERN_ENGINE_LOG", "INFO"),
        stream=sys.stderr,
        format="%(asctime)s engine[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    try:
        port = int(os.environ[ENV_PORT])
        token = os.environ[ENV_TOKEN]
    except (KeyError, ValueError):
        print(f"engine: {ENV_PORT} and {ENV_TOKEN} must be set by the parent process", file=sys.stderr)
        return 2
    mode = os.environ.get(ENV_MODE, residency.WINDOW)
    if mode not in (residency.WINDOW, residency.CLI):
        print(f"engine: {ENV_MODE} must be window or cli, not {mode!r}", file=sys.stderr)
        return 2
    try:
        keep_alive = float(os.environ.get(ENV_KEEP_ALIVE, "0") or 0)
    except ValueError:
        print(f"engine: {ENV_KEEP_ALIVE} must be a number of seconds", file=sys.stderr)
        return 2
    data_dir = os.environ.get(ENV_DATA_DIR, "")
    # The token must not leak to grandchildren or into a crash report.
    for name in (ENV_TOKEN, ENV_PORT, ENV_DATA_DIR, ENV_MODE, ENV_KEEP_ALIVE):
        os.environ.pop(name, None)
    return run(HostConfig(data_dir=data_dir, mode=mode,
                          keep_alive_s=max(0.0, keep_alive), parent_port=port, parent_token=token))


if __name__ == "__main__":
    sys.exit(main())
