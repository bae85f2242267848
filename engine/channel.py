"""Newline-delimited JSON over a socket, the engine's side of the dedicated channel.

The engine's stdout and stderr belong to native code (llama.cpp prints there), so protocol
messages never travel on them. The parent listens on a loopback port and passes the port and
a one-time token in the environment; the engine connects and proves itself with ``Hello``.

More clients reach a running engine the other way round (``attach``): the engine listens on the
loopback port written in its data dir's engine.json, and a client proves itself with a
``Hello`` carrying the token written there (see engine/residency.py and engine/host.py).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Iterator

from engine import protocol

log = logging.getLogger(__name__)

ENV_PORT = "LANTERN_ENGINE_PORT"
ENV_TOKEN = "LANTERN_ENGINE_TOKEN"
ENV_DATA_DIR = "LANTERN_ENGINE_DATA_DIR"   # the data dir the engine locks and serves
ENV_MODE = "LANTERN_ENGINE_MODE"           # window | cli | serve (engine/residency.py)
ENV_KEEP_ALIVE = "LANTERN_ENGINE_KEEP_ALIVE_S"   # cli mode: seconds to stay with no client

HANDSHAKE_TIMEOUT_S = 10.0


class AttachRefused(ConnectionError):
    """A running engine turned this client away (wrong token, other protocol major)."""


class LineChannel:
    """A thread-safe sender and a single-reader iterator of protocol messages on a socket."""

    def __init__(self, sock: socket.socket):
        self._sock = sock
        # Small, frequent token events: without TCP_NODELAY Nagle's algorithm holds each one
        # back until the previous is acknowledged, which shows up as stutter and TTFT.
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self._reader = sock.makefile("rb")
        self._send_lock = threading.Lock()
        self.closed = False

    @classmethod
    def connect(cls, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> "LineChannel":
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.settimeout(None)
        return cls(sock)

    @classmethod
    def attach(cls, port: int, token: str, host: str = "127.0.0.1",
               timeout: float = HANDSHAKE_TIMEOUT_S) -> "LineChannel":
        """Connect to a running engine as one more client; raise OSError when nothing listens
        (a stale engine.json) and AttachRefused when the engine refuses us."""
        sock = socket.create_connection((host, port), timeout=timeout)
        chan = cls(sock)
        try:
            chan.send(protocol.Hello(token=token, pid=os.getpid()))
            line = chan._reader.readline(protocol.MAX_LINE_BYTES + 1)
        except OSError:
            chan.close()
            raise
        try:
            welcome = protocol.decode(line) if line else None
        except protocol.ProtocolError:
            welcome = None
        if not isinstance(welcome, protocol.Welcome) or not welcome.accepted:
            chan.close()
            raise AttachRefused(getattr(welcome, "reason", "") or "the engine closed the connection")
        sock.settimeout(None)
        return chan

    def send(self, msg: protocol.Message) -> None:
        data = protocol.encode(msg)
        with self._send_lock:
            if self.closed:
                return
            try:
                self._sock.sendall(data)
            except OSError:
                self.closed = True
                raise

    def call(self, cmd: protocol.Command) -> protocol.Message | None:
        """Send ``cmd`` and return the event that ends it (``protocol.FINAL_EVENTS``), or None
        when the peer closes first. For one-shot clients that read nothing else."""
        self.send(cmd)
        for msg in self:
            if msg.id == cmd.id and protocol.ends_request(msg):
                return msg
        return None

    def __iter__(self) -> Iterator[protocol.Message]:
        """Yield messages until the peer closes; bad lines are logged and dropped."""
        while not self.closed:
            try:
                line = self._reader.readline(protocol.MAX_LINE_BYTES + 1)
            except (OSError, ValueError):
                break
            if not line:
                break
            if not line.strip():
                continue
            try:
                yield protocol.decode(line)
            except protocol.ProtocolError as e:
                log.warning("dropping a bad protocol line: %s", e)
        self.closed = True

    def close(self) -> None:
        self.closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
