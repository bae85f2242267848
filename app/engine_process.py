"""EngineProcess: the headless (CLI, bench) way to reach the engine.

With a data dir, it first looks for the engine already working there (the window's, one a
previous CLI verb left running, or ``lantern serve``'s; see engine/residency.py) and talks to
it as one more client. Only when none runs does it start ``python -m engine`` itself, in CLI
mode: that engine stays ``keep_alive_s`` seconds after its last client left, so the next verb
finds it warm (docs/ARCHITECTURE.md, "One engine per data dir").

The same protocol as the window uses, with plain sockets and blocking reads instead of Qt. The
engine's stderr goes to the engine log, so native chatter never mixes with the CLI's output.
Nothing here kills an engine that is writing: closing disconnects, and an engine with no
reason to stay stops on its own, in order.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

from engine import protocol as p
from engine import residency
from engine.channel import (ENV_DATA_DIR, ENV_KEEP_ALIVE, ENV_MODE, ENV_PORT, ENV_TOKEN, AttachRefused,
                            LineChannel)

# Kept for callers that imported it from here; the table lives in the protocol.
FINAL_EVENTS = p.FINAL_EVENTS
# How long closing waits for an engine it started (and that has no reason to stay) to stop in
# order; only past this is it killed. An index flush of a large batch takes seconds, not minutes.
STOP_WAIT_S = 300.0
NOTE_AFTER_S = 3.0


class EngineUnavailable(RuntimeError):
    pass


class EngineProcess:
    def __init__(self, log_path: Path | None = None, python: str | None = None, start_timeout: float = 60.0,
                 data_dir: str | os.PathLike | None = None, keep_alive_s: float = 0.0, attach: bool = True,
                 note: Callable[[str], None] | None = None):
        self._log_path = log_path
        self._python = python or os.environ.get("LANTERN_ENGINE_PYTHON", sys.executable)
        self._start_timeout = start_timeout
        self._data_dir = residency.canonical(data_dir) if data_dir else None
        self._keep_alive_s = max(0.0, float(keep_alive_s))
        self._attach = attach
        self._note = note or (lambda _msg: None)
        self.proc: subprocess.Popen | None = None
        self.channel: LineChannel | None = None
        self._events: Iterator[p.Message] | None = None
        self.attached = False    # talking to an engine this process did not start
        self.pid = 0
        self.mode = ""

    def __enter__(self) -> "EngineProcess":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ start

    def start(self) -> None:
        deadline = time.monotonic() + self._start_timeout
        if self._data_dir is None:
            # No data dir named: a private engine bound to this connection (benches, tests).
            if not self._spawn(deadline, mode=residency.WINDOW):
                raise EngineUnavailable("the engine found its data dir taken")  # cannot happen: none given
            return
        waited_note = False
        note_at = time.monotonic() + NOTE_AFTER_S
        while True:
            if self._attach and self._try_attach():
                return
            if not residency.engine_running(self._data_dir):
                if self._spawn(deadline, mode=residency.CLI):
                    return
                # Another engine took the data dir between our look and its start: use that one.
            if time.monotonic() > deadline:
                info = residency.read_info(self._data_dir)
                who = f"pid {info.pid}" if info else "its pid is unknown"
                raise EngineUnavailable(
                    f"another Lantern engine holds the data dir {self._data_dir} ({who}) but does not answer; "
                    f"wait for it to finish, or stop that process")
            if not waited_note and time.monotonic() > note_at:
                # Starting (it locks first, then listens) or stopping: either way, soon.
                info = residency.read_info(self._data_dir)
                who = f" (pid {info.pid})" if info else ""
                self._note(f"waiting for the Lantern engine{who} that holds {self._data_dir} to answer or stop ...")
                waited_note = True
            time.sleep(0.1)

    def _try_attach(self) -> bool:
        info = residency.read_info(self._data_dir)
        if info is None or not residency.pid_alive(info.pid):
            return False
        if not p.versions_compatible(info.protocol, p.PROTOCOL_VERSION):
            if not residency.engine_running(self._data_dir):
                return False   # a stale file of an older version; the pid is someone else's now
            raise EngineUnavailable(
                f"a Lantern engine of another version (protocol {info.protocol}, pid {info.pid}) works in "
                f"{self._data_dir}; stop it (lantern engine stop) or close the window that runs it")
        try:
            channel = LineChannel.attach(info.port, info.token, info.host)
        except (OSError, AttachRefused):
            return False   # stale engine.json, or an engine that is stopping
        self.channel = channel
        self._events = iter(channel)
        self.attached = True
        self.pid = info.pid
        self.mode = info.mode
        return True

    def _spawn(self, deadline: float, mode: str) -> bool:
        """Start an engine; False when it found the data dir taken by another (exit status 75)."""
        server = socket.create_server(("127.0.0.1", 0))
        server.settimeout(0.2)
        token = secrets.token_hex(16)
        env = dict(os.environ, **{ENV_PORT: str(server.getsockname()[1]), ENV_TOKEN: token, ENV_MODE: mode})
        env.pop(ENV_DATA_DIR, None)
        if self._data_dir:
            env[ENV_DATA_DIR] = self._data_dir
            env[ENV_KEEP_ALIVE] = f"{self._keep_alive_s:g}"
        log = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(
                [self._python, "-m", "engine"], env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=log,
                # Its own session: Ctrl+C in the terminal reaches only the CLI, and an engine kept
                # for the next verb outlives the terminal.
                start_new_session=True,
            )
        finally:
            if log is not subprocess.DEVNULL:
                log.close()
        try:
            while True:
                try:
                    conn, _ = server.accept()
                    break
                except socket.timeout:
                    code = proc.poll()
                    if code == residency.EXIT_DATA_DIR_BUSY:
                        return False
                    if code is not None:
                        raise EngineUnavailable(f"the engine stopped at start (exit status {code}); see {self._log_path}")
                    if time.monotonic() > deadline:
                        proc.kill()
                        proc.wait()
                        raise EngineUnavailable(
                            f"the engine did not start within {self._start_timeout:.0f} s; see {self._log_path}")
        finally:
            server.close()
        conn.settimeout(None)
        self.proc = proc
        self.pid = proc.pid
        self.mode = mode
        self.channel = LineChannel(conn)
        self._events = iter(self.channel)
        hello = next(self._events, None)
        welcome = p.answer_hello(hello, token) if hello else p.Welcome(accepted=False, reason="no hello")
        self.channel.send(welcome)
        if not welcome.accepted:
            self.close()
            raise EngineUnavailable(f"the engine was refused: {welcome.reason}")
        return True

    # ------------------------------------------------------------------ requests

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
            if p.ends_request(msg):
                return
        if self.proc is not None:
            try:
                code = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
            raise EngineUnavailable(f"the engine stopped unexpectedly (exit code {code}); see {self._log_path}")
        raise EngineUnavailable(f"the engine (pid {self.pid}) went away; see {self._log_path}")

    def call(self, cmd: p.Command) -> p.Event:
        """Send ``cmd`` and return its final event."""
        last = None
        for last in self.events(self.send(cmd)):
            pass
        return last

    # ------------------------------------------------------------------ close

    def close(self) -> None:
        """Disconnect. An engine we started that has no reason to stay (no keep-alive, or no data
        dir) then stops on its own, in order; we wait for it, so its writes are done when the
        verb returns. A kept engine, or one we only attached to, goes on."""
        channel, self.channel = self.channel, None
        if channel is not None and not channel.closed and self._data_dir is None:
            try:
                channel.send(p.Shutdown())
            except OSError:
                pass
        if channel is not None:
            channel.close()
        proc = self.proc
        if proc is None or (self._data_dir is not None and self._keep_alive_s > 0):
            return
        try:
            proc.wait(timeout=NOTE_AFTER_S)
            return
        except subprocess.TimeoutExpired:
            self._note("waiting for the engine to finish writing ...")
        except KeyboardInterrupt:
            return   # it finishes on its own (its own session); nothing is cut short
        try:
            proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self._note(f"the engine (pid {proc.pid}) did not stop within {STOP_WAIT_S:.0f} s; killing it")
            proc.kill()
            proc.wait()
        except KeyboardInterrupt:
            pass


def keep_alive_s(settings=None) -> float:
    """How long an engine a CLI verb starts stays for the next one: LANTERN_ENGINE_KEEP_ALIVE_S,
    else ``[engine] keep_alive_s`` in settings.toml, else 10 minutes. 0: stop after the verb."""
    raw = os.environ.get(ENV_KEEP_ALIVE)
    if raw is None and settings is not None:
        raw = settings.get("engine", "keep_alive_s")
    if raw is None or raw == "":
        return DEFAULT_KEEP_ALIVE_S
    try:
        return max(0.0, float(raw))
    except (TypeError, ValueError):
        raise EngineUnavailable(f"keep_alive_s must be a number of seconds, not {raw!r} "
                                f"(settings.toml [engine] or {ENV_KEEP_ALIVE})") from None


DEFAULT_KEEP_ALIVE_S = 600.0
