"""Entry point of the engine child process: ``python -m engine``.

The parent (the window's EngineClient or the CLI's EngineProcess) listens on a loopback port
and passes it, with a one-time token, in the environment. We connect, say Hello, and serve
commands until the parent says Shutdown or goes away. If the parent dies, the socket closes
and we exit too, so no orphan engine keeps a model in memory.
"""

from __future__ import annotations

import logging
import os
import sys

from engine import protocol as p
from engine.channel import ENV_PORT, ENV_TOKEN, LineChannel
from engine.service import EngineService

log = logging.getLogger("engine")


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
    # The token must not leak to grandchildren or into a crash report.
    os.environ.pop(ENV_TOKEN, None)

    channel = LineChannel.connect(port)
    channel.send(p.Hello(token=token, pid=os.getpid()))
    messages = iter(channel)
    welcome = next(messages, None)
    if not isinstance(welcome, p.Welcome) or not welcome.accepted:
        reason = getattr(welcome, "reason", "no answer")
        log.error("the parent refused this engine: %s", reason)
        return 3

    def emit(event: p.Event) -> None:
        try:
            channel.send(event)
        except OSError:
            pass  # the parent is gone; the read loop below ends too

    service = EngineService(emit)
    log.info("engine ready (protocol %s)", p.PROTOCOL_VERSION)
    for msg in messages:
        service.handle(msg)
        if service.stopped.is_set():
            break
    service.close()
    channel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
