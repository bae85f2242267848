"""The engine process's front: the data dir's lock, its clients, and when to stop.

One engine per data dir (engine/residency.py). Its clients are

- the parent that started it (the window's EngineClient or a CLI verb's EngineProcess), which
  listens on a port passed in the environment and is connected to by the engine, as before;
- any number of clients that connect to the loopback port published in the data dir's
  engine.json and prove themselves with its per-run token (``LineChannel.attach``): a
  ``lantern search`` while the window is open, the next ``lantern ask`` while a resident engine
  waits, later the local API server of ``lantern serve``.

Commands from all clients go to the one ``EngineService`` in the order they arrive (this thread
hands them over; the service queues model work on its worker). Each request's events go back to
the connection that sent it, until the event that ends it (``protocol.FINAL_EVENTS``); events of
no client's request (the watcher's ``watch-`` jobs) go to every client.

When the engine stops depends on its mode: a window's engine when the window's connection
closes; a CLI's engine when no client has been connected for ``keep_alive_s``; ``lantern serve``
on Ctrl+C/SIGTERM or a ``Shutdown``. Stopping is always the same orderly path: cancel what runs,
let the indexer finish its write, close the stores, remove engine.json, release the lock.
Nothing is SIGKILLed mid-flush by its own side.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from engine import protocol as p
from engine import residency as r
from engine.channel import HANDSHAKE_TIMEOUT_S, LineChannel

log = logging.getLogger("engine.host")

MAX_CLIENTS = 64
OUTBOX_MAX = 100_000   # unsent events per client before it counts as stuck
# Stopping waits this long for the indexer and the model worker to finish their current write.
FLUSH_TIMEOUT_S = 600.0
POLL_S = 0.25

# Commands that name a data dir: the engine works in it only under its lock.
_DATA_DIR_COMMANDS = (p.Chat, p.IndexPaths, p.RemoveSources, p.WatchSources, p.ListSources, p.ListCollections,
                      p.Search)


@dataclass
class HostConfig:
    data_dir: str = ""                # locked and published at start; "" for a parent-only engine
    mode: str = r.WINDOW
    keep_alive_s: float = 0.0         # CLI mode
    parent_port: int = 0              # 0: no parent (lantern serve)
    parent_token: str = ""
    token: str = field(default_factory=lambda: secrets.token_hex(16))   # what attaching clients show


class Connection:
    """One client. Events go out through its own sender thread, so a client that stops reading
    (a terminal suspended with Ctrl+Z) stalls nobody else's answer; past OUTBOX_MAX unsent
    messages it is dropped."""

    _ids = iter(range(1, 1 << 62))

    def __init__(self, channel: LineChannel, owner: bool, peer_pid: int = 0):
        self.channel = channel
        self.owner = owner
        self.peer_pid = peer_pid
        self.n = next(Connection._ids)
        self.closed = False
        self._outbox: queue.Queue = queue.Queue(maxsize=OUTBOX_MAX)
        self._sender = threading.Thread(target=self._send_loop, name=f"engine-send-{self.n}", daemon=True)
        self._sender.start()

    def send(self, msg: p.Message) -> None:
        if self.closed:
            return
        try:
            self._outbox.put_nowait(msg)
        except queue.Full:
            log.warning("%s stopped reading (%d events waiting); disconnecting it", self, OUTBOX_MAX)
            self.close()

    def _send_loop(self) -> None:
        while True:
            msg = self._outbox.get()
            if msg is None:
                return
            try:
                self.channel.send(msg)
            except OSError:
                self.closed = True   # its reader sees the end too and reports it
                return

    def close(self, drain_s: float = 0.0) -> None:
        """Close; with ``drain_s``, first give the sender that long to deliver what is queued."""
        if drain_s and not self.closed:
            try:
                self._outbox.put(None, timeout=drain_s)
                self._sender.join(drain_s)
            except queue.Full:
                pass
        self.closed = True
        self.channel.close()
        try:
            self._outbox.put_nowait(None)   # ends the sender thread (what is left is not sent)
        except queue.Full:
            pass   # it is in a send that fails now the socket is closed

    def __repr__(self) -> str:
        return f"client {self.n} ({'owner' if self.owner else 'attached'}, pid {self.peer_pid})"


class Host:
    def __init__(self, config: HostConfig):
        self.config = config
        self.mode = config.mode
        self._locks: dict[str, r.DataDirLock] = {}
        self._lock = threading.Lock()
        self._routes: dict[str, Connection] = {}
        self._conns: set[Connection] = set()
        self._inbox: queue.Queue = queue.Queue()
        self._server: socket.socket | None = None
        self.port = 0
        self.stop_reason = ""
        self._stop = threading.Event()
        self.service = None

    # ------------------------------------------------------------------ the data dir

    def claim_primary(self) -> None:
        """Lock the configured data dir; raise residency.DataDirBusy if another engine has it.
        Called first thing, before the heavy imports, so a refused engine exits at once."""
        if self.config.data_dir:
            self._claim(self.config.data_dir, publish=False)

    def _claim(self, data_dir: str, publish: bool = True) -> None:
        key = r.canonical(data_dir)
        if key in self._locks:
            return
        lock = r.DataDirLock(key)
        lock.acquire()
        self._locks[key] = lock
        if publish:
            self._publish(lock)

    def _publish(self, lock: r.DataDirLock) -> None:
        lock.publish(r.EngineInfo(pid=os.getpid(), port=self.port, token=self.config.token,
                                  protocol=p.PROTOCOL_VERSION, mode=self.mode, data_dir=lock.data_dir,
                                  keep_alive_s=self.config.keep_alive_s))

    def _check_data_dir(self, cmd: p.Command) -> str:
        """'' when the engine may work in the command's data dir, else why not."""
        data_dir = getattr(cmd, "data_dir", "") if isinstance(cmd, _DATA_DIR_COMMANDS) else ""
        if not data_dir:
            return ""
        try:
            self._claim(data_dir)
        except r.DataDirBusy as e:
            return f"{e} Run it there, or close that one first."
        except OSError as e:
            return f"Cannot lock the data dir {data_dir}: {e.strerror or e}."
        return ""

    # ------------------------------------------------------------------ connections

    def listen(self) -> int:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        for lock in self._locks.values():
            self._publish(lock)
        threading.Thread(target=self._accept_loop, name="engine-accept", daemon=True).start()
        return self.port

    def connect_parent(self) -> bool:
        """The parent listens; we connect, say Hello with its token, and wait for Welcome."""
        channel = LineChannel.connect(self.config.parent_port)
        channel.send(p.Hello(token=self.config.parent_token, pid=os.getpid()))
        messages = iter(channel)
        welcome = next(messages, None)
        if not isinstance(welcome, p.Welcome) or not welcome.accepted:
            log.error("the parent refused this engine: %s", getattr(welcome, "reason", "no answer"))
            channel.close()
            return False
        self._add(Connection(channel, owner=True, peer_pid=os.getppid()), messages)
        return True

    def _accept_loop(self) -> None:
        server = self._server
        while not self._stop.is_set():
            try:
                sock, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=self._handshake, args=(sock,), name="engine-handshake", daemon=True).start()

    def _handshake(self, sock: socket.socket) -> None:
        sock.settimeout(HANDSHAKE_TIMEOUT_S)
        channel = LineChannel(sock)
        messages = iter(channel)
        try:
            hello = next(messages, None)
        except OSError:
            hello = None
        if hello is None:
            channel.close()
            return
        welcome = p.answer_hello(hello, self.config.token)
        with self._lock:
            if welcome.accepted and len(self._conns) >= MAX_CLIENTS:
                welcome = p.Welcome(id=hello.id, accepted=False, reason=f"{MAX_CLIENTS} clients are connected already")
            if welcome.accepted and self._stop.is_set():
                welcome = p.Welcome(id=hello.id, accepted=False, reason="the engine is stopping")
        try:
            channel.send(welcome)
        except OSError:
            channel.close()
            return
        if not welcome.accepted:
            log.warning("refused a client: %s", welcome.reason)
            channel.close()
            return
        sock.settimeout(None)
        self._add(Connection(channel, owner=False, peer_pid=getattr(hello, "pid", 0)), messages)

    def _add(self, conn: Connection, messages) -> None:
        with self._lock:
            self._conns.add(conn)
        log.info("%s connected", conn)
        threading.Thread(target=self._read, args=(conn, messages), name=f"engine-client-{conn.n}",
                         daemon=True).start()

    def _read(self, conn: Connection, messages) -> None:
        try:
            for msg in messages:
                self._inbox.put((conn, msg))
        except Exception:   # a reader must never die silently: report the connection closed
            log.exception("reading from %s", conn)
        self._inbox.put((conn, None))

    # ------------------------------------------------------------------ events

    def emit(self, ev: p.Event) -> None:
        """The service's emit: to the connection whose request this answers, else to everyone."""
        with self._lock:
            conn = self._routes.get(ev.id)
            if conn is not None and p.ends_request(ev):
                del self._routes[ev.id]
            targets = [conn] if conn is not None else list(self._conns)
        for c in targets:
            if not c.closed:
                c.send(ev)

    # ------------------------------------------------------------------ the loop

    def request_stop(self, reason: str) -> None:
        if not self.stop_reason:
            self.stop_reason = reason
        self._stop.set()

    def in_flight(self) -> int:
        with self._lock:
            return len(self._routes)

    def clients(self) -> int:
        with self._lock:
            return len(self._conns)

    def run(self, service) -> str:
        """Hand commands to ``service`` until it is time to stop; returns why."""
        self.service = service
        idle_since = time.monotonic()
        while not self._stop.is_set():
            try:
                conn, msg = self._inbox.get(timeout=POLL_S)
            except queue.Empty:
                conn = msg = None
            if conn is not None:
                if msg is None:
                    self._closed(conn)
                else:
                    self._command(conn, msg)
            if service.stopped.is_set():
                self.request_stop("shutdown")
            if self.mode == r.CLI:
                # Requests of clients that left were cancelled when they left, and stopping
                # waits for what still runs to finish its write: no client is reason enough.
                if self.clients():
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= self.config.keep_alive_s:
                    self.request_stop(f"no client for {self.config.keep_alive_s:g} s")
        return self.stop_reason

    def _closed(self, conn: Connection) -> None:
        with self._lock:
            self._conns.discard(conn)
            mine = [rid for rid, c in self._routes.items() if c is conn]
        conn.close()
        log.info("%s disconnected%s", conn, f"; cancelling its {len(mine)} request(s)" if mine else "")
        # A client that went away does not want its answer: free the worker for the others.
        for rid in mine:
            self.service.handle(p.Cancel(target=rid))
        if conn.owner and self.mode == r.WINDOW:
            self.request_stop("the window's connection closed")

    def _refuse(self, conn: Connection, cmd: p.Message, kind: str, message: str) -> None:
        conn.send(p.Failed(id=cmd.id, kind=kind, message=message, environment=True))

    def _command(self, conn: Connection, cmd: p.Message) -> None:
        if not isinstance(cmd, p.Command) or isinstance(cmd, p.Hello):
            return
        if isinstance(cmd, p.Shutdown):
            if conn.owner or self.mode != r.WINDOW:
                log.info("shutdown asked by %s", conn)
                self.request_stop(f"shutdown asked by {conn}")
            else:
                self._refuse(conn, cmd, p.ErrorKind.BUSY, "This engine belongs to the window; close the window to stop it.")
            return
        if isinstance(cmd, p.ShowWindow):
            with self._lock:
                owner = next((c for c in self._conns if c.owner), None) if self.mode == r.WINDOW else None
            if owner is not None:
                owner.send(cmd)   # the window brings itself to the front
            conn.send(p.WindowShown(id=cmd.id, shown=owner is not None))
            return
        if isinstance(cmd, p.Cancel):
            with self._lock:
                mine = self._routes.get(cmd.target) is conn
            if mine:
                self.service.handle(cmd)
            return
        why = self._check_data_dir(cmd)
        if why:
            self._refuse(conn, cmd, p.ErrorKind.BUSY, why)
            return
        if isinstance(cmd, p.LoadModel) and not conn.owner and self.mode == r.WINDOW:
            why = self._window_model_conflict(cmd)
            if why:
                self._refuse(conn, cmd, p.ErrorKind.BUSY, why)
                return
        with self._lock:
            if cmd.id in self._routes:
                duplicate = True
            else:
                duplicate = False
                self._routes[cmd.id] = conn
        if duplicate:
            self._refuse(conn, cmd, p.ErrorKind.PROTOCOL, f"Request id {cmd.id!r} is already in use.")
            return
        self.service.handle(cmd)

    def _window_model_conflict(self, cmd: p.LoadModel) -> str:
        """A client may not swap the model the window's conversation runs on."""
        model = getattr(self.service.backend, "model", None)
        if model is None:
            return ""
        if cmd.path and os.path.realpath(cmd.path) == os.path.realpath(str(model.path)):
            return ""
        return (f"The window has {model.name} loaded and uses it; ask without --model and --n-ctx to use it "
                f"as it is, or close the window to load another.")

    # ------------------------------------------------------------------ stopping

    def close(self) -> None:
        """After the service closed: disconnect everyone, unpublish, release the locks."""
        self._stop.set()
        if self._server is not None:
            try:
                self._server.close()
            except OSError:
                pass
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for c in conns:
            c.close(drain_s=2.0)   # the last events (Cancelled of what was stopped) reach them
        for lock in self._locks.values():
            lock.release()
        self._locks.clear()


def install_signal_handlers(host: Host) -> None:
    """SIGTERM and SIGINT stop the engine the orderly way (the indexer finishes its write)."""
    def on_signal(signum, _frame):
        host.request_stop(signal.Signals(signum).name)

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            signal.signal(sig, on_signal)
        except ValueError:   # not the main thread (an embedding test)
            pass


def run(config: HostConfig, announce: Callable[[Host], None] | None = None) -> int:
    """The engine process: lock, listen, serve, stop in order. Returns the exit status."""
    host = Host(config)
    try:
        host.claim_primary()
    except r.DataDirBusy as e:
        log.error("%s", e)
        return r.EXIT_DATA_DIR_BUSY
    try:
        host.listen()
        install_signal_handlers(host)
        # Imported under the lock: a refused engine does not pay for llama.cpp and friends.
        from engine.service import EngineService

        service = EngineService(host.emit)
        if config.parent_port and not host.connect_parent():
            service.close()
            return 3
        log.info("engine ready (protocol %s, %s, data dir %s, port %s)", p.PROTOCOL_VERSION, config.mode,
                 config.data_dir or "named by commands", host.port or "-")
        if announce is not None:
            announce(host)
        reason = host.run(service)
        log.info("stopping: %s", reason)
        # Cancel what runs, let the indexer finish the write it is in, close the stores.
        service.close(timeout=FLUSH_TIMEOUT_S)
        log.info("stopped")
        return 0
    finally:
        host.close()
