"""EngineProcess: the headless (CLI, bench) way to run and talk to the engine child process.

The same ``python -m engine`` process and protocol as the window uses, with plain sockets
and blocking reads instead of Qt. The engine's stderr goes to the engine log, so native
chatter never mixes with the CLI's output.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from engine import protocol as p
from engine.channel import ENV_PORT, ENV_TOKEN, LineChannel

FINAL_EVENTS = (p.Done, p.Cancelled, p.Failed, p.ModelLoaded, p.IndexDone, p.SearchDone)


class EngineUnavailable(RuntimeError):
    pass


class EngineProcess:
    def __init__(self, log_path: Path | None = None, python: str | None = None, start_timeout: float = 60.0):
        self._log_path = log_path
        self._python = python or os.environ.get("LANTERN_ENGINE_PYTHON", sys.executable)
        self._start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.channel: LineChannel | None = None
        self._events: Iterator[p.Message] | None = None

    def __enter__(self) -> "EngineProcess":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        server = socket.create_server(("127.0.0.1", 0))
        server.settimeout(self._start_timeout)
        token = secrets.token_hex(16)
        env = dict(os.environ, **{ENV_PORT: str(server.getsockname()[1]), ENV_TOKEN: token})
        log = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL
        try:
            self.proc = subprocess.Popen(
                [self._python, "-m", "engine"], env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=log,
                # Its own session: Ctrl+C in the terminal reaches only the CLI, which then shuts
                # the engine down in order instead of both dying mid-write.
                start_new_session=True,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        try:
            conn, _ = server.accept()
        except socket.timeout:
            self.close()
            raise EngineUnavailable(f"the engine did not start within {self._start_timeout:.0f} s; see {self._log_path}")
        finally:
            server.close()
        self.channel = LineChannel(conn)
        self._events = iter(self.channel)
        hello = next(self._events, None)
        welcome = p.answer_hello(hello, token) if hello else p.Welcome(accepted=False, reason="no hello")
        self.channel.send(welcome)
        if not welcome.accepted:
            self.close()
            raise EngineUnavailable(f"the engine was refused: {welcome.reason}")

    def send(self, cmd: p.Command) -> str:
        assert self.channel is not None
        self.channel.send(cmd)
        return cmd.id

    def events(self, request_id: str) -> Iterator[p.Event]:
        """Events answering ``request_id``, up to and including its final one."""
        assert self._events is not None
        for msg in self._events:
            if msg.id != request_id:
                continue
            yield msg
            if isinstance(msg, FINAL_EVENTS):
                return
        code = self.proc.wait(timeout=5) if self.proc else None
        raise EngineUnavailable(f"the engine stopped unexpectedly (exit code {code}); see {self._log_path}")

    def call(self, cmd: p.Command) -> p.Event:
        """Send ``cmd`` and return its final event."""
        last = None
        for last in self.events(self.send(cmd)):
            pass
        return last

    def close(self) -> None:
        if self.channel is not None and not self.channel.closed:
            try:
                self.channel.send(p.Shutdown())
            except OSError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.channel is not None:
            self.channel.close()
            self.channel = None
