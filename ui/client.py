"""EngineClient: the window's handle on the engine child process.

It starts ``python -m engine`` with QProcess, listens for it on a loopback QTcpServer, checks
its Hello (one-time token, protocol version), and then turns protocol events into Qt signals
on the main thread. Nothing here blocks: Qt's event loop does the waiting.

Tokens are batched on a short timer before they reach the view: the engine may produce a
hundred tokens a second, and re-rendering a reply that often would stall the window.

If the engine dies (a native crash, kill -9, out of memory), the client reports it with the
last lines the engine wrote on stderr, fails the requests that were in flight as
``interrupted``, starts a new engine and re-sends the last LoadModel, so the person can go on.
An index job in flight is sent again, once, to the new engine (it goes on where it stopped).
"""

from __future__ import annotations

import collections
import logging
import os
import secrets
import sys
import time

from PySide6.QtCore import QByteArray, QObject, QProcess, QProcessEnvironment, QTimer, Signal
from PySide6.QtNetwork import QHostAddress, QTcpServer, QTcpSocket

from engine import protocol as p
from engine.channel import ENV_PORT, ENV_TOKEN

log = logging.getLogger(__name__)

TOKEN_FLUSH_MS = 33          # ~30 repaints a second is smooth and cheap
STDERR_LINES_KEPT = 200
MAX_RESTARTS = 3             # within RESTART_WINDOW_S; more means something is badly wrong
RESTART_WINDOW_S = 60.0
HANDSHAKE_TIMEOUT_MS = 30_000
DATA_DIR_BUSY_EXIT = 75      # engine/residency.py: another engine still works in the data dir
BUSY_RETRY_S = 20.0          # ... while it finishes stopping (a window closed and reopened)
STOP_FLUSH_MS = 60_000       # after the grace period, how long a stopping engine may take to write


class EngineClient(QObject):
    # Payloads that can be long (file lists, hits) travel as Python objects: Signal(dict) converts
    # them to a QVariantMap and back, 118 ms for a list of 10,000 files.
    state_changed = Signal(str)                 # starting | ready | loading | generating | crashed | stopped
    engine_started = Signal(int)                # pid, after a good handshake
    engine_crashed = Signal(str)                # the last lines of the engine's stderr
    engine_gave_up = Signal(str)                # too many crashes: no more restarts
    model_loaded = Signal(dict)                 # ModelLoaded fields
    tokens_received = Signal(str, str)          # request id, text (a batch of tokens)
    context_trimmed = Signal(str, int, int, int)  # request id, dropped messages, prompt tokens, n_ctx
    reply_finished = Signal(str, dict)          # request id, Done fields
    reply_cancelled = Signal(str, str)          # request id, text generated before the stop
    request_failed = Signal(str, str, str)      # request id, error kind, message
    status_received = Signal(dict)
    index_progress = Signal(dict)               # Progress fields (id, phase, done, total, path, bytes_done)
    index_finished = Signal(object)             # IndexDone fields (id, summary)
    sources_listed = Signal(object)             # SourceList fields (id, collection, sources)
    sources_removed = Signal(dict)              # SourcesRemoved fields (id, collection, paths, chunks_removed)
    collections_listed = Signal(object)         # CollectionList fields (id, collections)
    indexing_paused = Signal(bool)              # IndexingState: the engine's indexer is paused
    watch_state = Signal(dict)                  # WatchState fields (id, collection, roots)
    citations_received = Signal(str, object)    # request id, Citations fields
    search_result = Signal(str, object)         # request id, SearchResult fields
    show_requested = Signal()                   # a second window on this data dir asks us to the front

    def __init__(self, parent: QObject | None = None, *, engine_log_path: str | None = None,
                 python: str | None = None, extra_env: dict | None = None):
        super().__init__(parent)
        self._python = python or sys.executable
        self._extra_env = dict(extra_env or {})
        self._log_path = engine_log_path
        self._log_file = None
        self._server = QTcpServer(self)
        self._server.newConnection.connect(self._on_connection)
        self._proc: QProcess | None = None
        self._sock: QTcpSocket | None = None
        self._token = ""
        self._buffer = bytearray()
        self._ready = False
        self._stopping = False
        self._pending: list[p.Command] = []     # sent before the engine was ready
        self._in_flight: dict[str, p.Command] = {}
        self._last_good_load: p.LoadModel | None = None  # what a restarted engine reloads
        self._resent: set[str] = set()          # index jobs already sent again after a crash
        self._stderr = collections.deque(maxlen=STDERR_LINES_KEPT)
        self._stderr_partial = b""
        self._crash_times: collections.deque = collections.deque()
        self._busy_since = 0.0
        self._batch: dict[str, list[str]] = {}
        self._flush_timer = QTimer(self)
        self._flush_timer.setInterval(TOKEN_FLUSH_MS)
        self._flush_timer.timeout.connect(self.flush_tokens)
        self._handshake_timer = QTimer(self)
        self._handshake_timer.setSingleShot(True)
        self._handshake_timer.timeout.connect(self._on_handshake_timeout)
        self.state = "stopped"
        self.pid = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._proc is not None:
            return
        self._stopping = False
        self._ready = False
        if not self._server.isListening():
            self._server.listen(QHostAddress.LocalHost, 0)
        self._token = secrets.token_hex(16)
        env = QProcessEnvironment.systemEnvironment()
        env.insert(ENV_PORT, str(self._server.serverPort()))
        env.insert(ENV_TOKEN, self._token)
        env.insert("PYTHONUNBUFFERED", "1")
        for k, v in self._extra_env.items():
            env.insert(k, str(v))
        proc = QProcess(self)
        proc.setProcessEnvironment(env)
        proc.setProcessChannelMode(QProcess.SeparateChannels)
        proc.readyReadStandardError.connect(self._on_stderr)
        proc.readyReadStandardOutput.connect(self._on_stdout)
        proc.finished.connect(self._on_finished)
        proc.errorOccurred.connect(self._on_process_error)
        self._proc = proc
        self._set_state("starting")
        proc.start(self._python, ["-m", "engine"])
        self._handshake_timer.start(HANDSHAKE_TIMEOUT_MS)

    def stop(self, timeout_ms: int = 3000) -> None:
        """Ask the engine to shut down; kill it if it does not within ``timeout_ms``."""
        self._stopping = True
        self._flush_timer.stop()
        proc = self._proc
        if proc is None:
            self._set_state("stopped")
            return
        if self._sock is not None and self._ready:
            self._write(p.Shutdown())
            self._sock.flush()
        if not proc.waitForFinished(timeout_ms):
            # Still writing (an index batch, the stores' close): killing it now could leave a
            # half-written store. SIGTERM takes the same orderly path; kill only if it hangs.
            log.info("the engine is still finishing its writes; waiting for it")
            proc.terminate()
            if not proc.waitForFinished(STOP_FLUSH_MS):
                proc.kill()
                proc.waitForFinished(1000)
        self._cleanup_process()
        self._set_state("stopped")

    def is_ready(self) -> bool:
        return self._ready

    def stderr_tail(self, lines: int = 20) -> str:
        return "\n".join(list(self._stderr)[-lines:])

    # ------------------------------------------------------------------ commands

    def load_model(self, path: str = "", n_ctx: int = 4096, n_gpu_layers: int = 0, n_threads: int = 0) -> str:
        cmd = p.LoadModel(path=path, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, n_threads=n_threads)
        return self._send(cmd)

    def chat(self, messages: list[dict], sampling: dict | None = None, **sources) -> str:
        """``sources``: Chat's optional fields (use_sources, collections, data_dir, sources_k)."""
        return self._send(p.Chat(messages=list(messages), sampling=dict(sampling or {}), **sources))

    def index_paths(self, paths: list[str], collection: str = "default", data_dir: str = "") -> str:
        return self._send(p.IndexPaths(paths=list(paths), collection=collection, data_dir=data_dir))

    def list_sources(self, collection: str = "default", data_dir: str = "") -> str:
        return self._send(p.ListSources(collection=collection, data_dir=data_dir))

    def remove_sources(self, paths: list[str], collection: str = "default", data_dir: str = "") -> str:
        return self._send(p.RemoveSources(paths=list(paths), collection=collection, data_dir=data_dir))

    def watch_sources(self, collection: str = "default", data_dir: str = "", enabled: bool = True,
                      paths: list[str] | None = None) -> str:
        return self._send(p.WatchSources(enabled=enabled, paths=list(paths or []), collection=collection,
                                         data_dir=data_dir))

    def list_collections(self, data_dir: str = "") -> str:
        return self._send(p.ListCollections(data_dir=data_dir))

    def pause_indexing(self, paused: bool = True) -> str:
        return self._send(p.PauseIndexing(paused=paused))

    def search(self, queries: list[str], k: int = 5, collection: str = "default", data_dir: str = "") -> str:
        return self._send(p.Search(queries=list(queries), k=k, collection=collection, data_dir=data_dir))

    def cancel(self, request_id: str) -> None:
        if request_id in self._in_flight:
            self._send(p.Cancel(target=request_id), track=False)

    def request_status(self) -> str:
        return self._send(p.GetStatus(), track=False)

    def _send(self, cmd: p.Command, track: bool = True) -> str:
        if track:
            self._in_flight[cmd.id] = cmd
        if self._ready:
            self._write(cmd)
        else:
            self._pending.append(cmd)
            if self._proc is None and not self._stopping:
                self.start()
        if isinstance(cmd, p.Chat):
            self._set_state("generating")
        elif isinstance(cmd, p.LoadModel):
            self._set_state("loading")
        return cmd.id

    def _write(self, msg: p.Message) -> None:
        if self._sock is not None:
            self._sock.write(QByteArray(p.encode(msg)))

    # ------------------------------------------------------------------ socket

    def _on_connection(self) -> None:
        sock = self._server.nextPendingConnection()
        if sock is None:
            return
        if self._sock is not None:
            # One engine at a time; anything else knocking on the port is turned away.
            sock.abort()
            return
        self._sock = sock
        self._buffer.clear()
        sock.readyRead.connect(self._on_ready_read)

    def _on_ready_read(self) -> None:
        sock = self._sock
        if sock is None:
            return
        self._buffer += bytes(sock.readAll().data())
        while True:
            nl = self._buffer.find(b"\n")
            if nl < 0:
                if len(self._buffer) > p.MAX_LINE_BYTES:
                    log.warning("engine sent an over-long line; dropping it")
                    self._buffer.clear()
                return
            line = bytes(self._buffer[:nl])
            del self._buffer[: nl + 1]
            if not line.strip():
                continue
            try:
                msg = p.decode(line)
            except p.ProtocolError as e:
                log.warning("dropping a bad line from the engine: %s", e)
                continue
            self._dispatch(msg)

    def _dispatch(self, msg: p.Message) -> None:
        if not self._ready:
            welcome = p.answer_hello(msg, self._token)
            self._write(welcome)
            if not welcome.accepted:
                log.error("refusing engine: %s", welcome.reason)
                self._stderr.append(f"[lantern] engine refused: {welcome.reason}")
                if self._proc is not None:
                    self._proc.kill()
                return
            self._handshake_timer.stop()
            self._ready = True
            self._busy_since = 0.0
            self.pid = getattr(msg, "pid", 0) or (self._proc.processId() if self._proc else 0)
            self._set_state("ready")
            self.engine_started.emit(self.pid)
            pending, self._pending = self._pending, []
            for cmd in pending:
                self._write(cmd)
            if pending:
                self._set_state("loading" if any(isinstance(c, p.LoadModel) for c in pending) else "generating")
            return

        rid = msg.id
        if isinstance(msg, p.Token):
            if rid in self._in_flight:
                self._batch.setdefault(rid, []).append(msg.text)
                if not self._flush_timer.isActive():
                    self._flush_timer.start()
            return
        # Any other event ends or informs a request: flush its tokens first to keep order.
        self.flush_tokens()
        if isinstance(msg, p.ContextTrimmed):
            self.context_trimmed.emit(rid, msg.dropped_messages, msg.prompt_tokens, msg.n_ctx)
        elif isinstance(msg, p.Citations):
            self.citations_received.emit(rid, _fields(msg))
        elif isinstance(msg, p.Progress):
            self.index_progress.emit(_fields(msg))
        elif isinstance(msg, p.IndexDone):
            self._finish(rid)
            self.index_finished.emit(_fields(msg))
        elif isinstance(msg, p.SourceList):
            self._finish(rid)
            self.sources_listed.emit(_fields(msg))
        elif isinstance(msg, p.SourcesRemoved):
            self._finish(rid)
            self.sources_removed.emit(_fields(msg))
        elif isinstance(msg, p.WatchState):
            self._finish(rid)
            self.watch_state.emit(_fields(msg))
        elif isinstance(msg, p.CollectionList):
            self._finish(rid)
            self.collections_listed.emit(_fields(msg))
        elif isinstance(msg, p.IndexingState):
            self._finish(rid)
            self.indexing_paused.emit(bool(msg.paused))
        elif isinstance(msg, p.SearchResult):
            self.search_result.emit(rid, _fields(msg))
        elif isinstance(msg, p.SearchDone):
            self._finish(rid)
        elif isinstance(msg, p.ModelLoaded):
            cmd = self._in_flight.get(rid)
            if isinstance(cmd, p.LoadModel):
                # Only a load that worked is worth repeating after a crash; a refused file
                # would leave the restarted engine with no model at all.
                self._last_good_load = cmd
            self._finish(rid)
            self.model_loaded.emit(_fields(msg))
        elif isinstance(msg, p.Done):
            self._finish(rid)
            self.reply_finished.emit(rid, _fields(msg))
        elif isinstance(msg, p.Cancelled):
            self._finish(rid)
            self.reply_cancelled.emit(rid, msg.text)
        elif isinstance(msg, p.Failed):
            self._finish(rid)
            self.request_failed.emit(rid, msg.kind, msg.message)
        elif isinstance(msg, p.Status):
            self.status_received.emit(_fields(msg))
        elif isinstance(msg, p.ShowWindow):
            self.show_requested.emit()

    def _finish(self, rid: str) -> None:
        self._in_flight.pop(rid, None)
        # An index job runs beside chats on its own engine thread; it does not keep the
        # engine "generating" in the status bar.
        if self._ready and not any(not isinstance(c, (p.IndexPaths, p.ListSources, p.Search, p.RemoveSources,
                                                                p.WatchSources, p.ListCollections, p.PauseIndexing))
                                   for c in self._in_flight.values()):
            self._set_state("ready")

    def flush_tokens(self) -> None:
        batch, self._batch = self._batch, {}
        for rid, parts in batch.items():
            self.tokens_received.emit(rid, "".join(parts))
        if not self._batch:
            self._flush_timer.stop()

    # ------------------------------------------------------------------ process

    def _on_stderr(self) -> None:
        if self._proc is None:
            return
        data = self._stderr_partial + bytes(self._proc.readAllStandardError().data())
        *lines, self._stderr_partial = data.split(b"\n")
        for raw in lines:
            self._stderr.append(raw.decode("utf-8", errors="replace"))
        self._append_log(data[: len(data) - len(self._stderr_partial)])

    def _on_stdout(self) -> None:
        # Native code prints here; keep it in the log with stderr, never parse it.
        if self._proc is not None:
            self._append_log(bytes(self._proc.readAllStandardOutput().data()))

    def _append_log(self, data: bytes) -> None:
        if not self._log_path or not data:
            return
        try:
            if self._log_file is None:
                self._log_file = open(self._log_path, "ab")
            self._log_file.write(data)
            self._log_file.flush()
        except OSError:
            self._log_path = None  # logging must never take the window down

    def _on_process_error(self, error) -> None:
        if error == QProcess.FailedToStart:
            self._stderr.append(f"[lantern] could not start the engine with {self._python}")
            self._on_finished(-1, QProcess.CrashExit)

    def _on_handshake_timeout(self) -> None:
        if not self._ready and self._proc is not None:
            self._stderr.append("[lantern] the engine did not answer within 30 s")
            self._proc.kill()

    def _on_finished(self, exit_code: int, exit_status) -> None:
        if self._proc is None:
            return
        self._on_stderr()
        if self._stderr_partial:
            self._stderr.append(self._stderr_partial.decode("utf-8", errors="replace"))
            self._stderr_partial = b""
        self._cleanup_process()
        if self._stopping:
            self._set_state("stopped")
            return
        if exit_status != QProcess.CrashExit and exit_code == DATA_DIR_BUSY_EXIT:
            # The data dir's previous engine is still stopping: try again shortly, not a crash.
            now = time.monotonic()
            self._busy_since = self._busy_since or now
            if now - self._busy_since < BUSY_RETRY_S:
                QTimer.singleShot(300, self.start)
                return
        self._busy_since = 0.0
        how = "crashed" if exit_status == QProcess.CrashExit else f"exited with code {exit_code}"
        self._stderr.append(f"[lantern] the engine {how}")
        tail = self.stderr_tail()
        self.flush_tokens()
        # Requests that were running are lost with the process; say so, one by one. An index
        # job goes to the restarted engine once more instead: the manifest makes it go on where
        # it stopped, and a file the engine died reading is read in a child process first.
        in_flight, self._in_flight = self._in_flight, {}
        for rid, cmd in in_flight.items():
            if isinstance(cmd, p.IndexPaths) and rid not in self._resent:
                self._resent.add(rid)
                self._in_flight[rid] = cmd
                self._pending.append(cmd)
            elif isinstance(cmd, (p.Chat, p.LoadModel, p.IndexPaths)):
                self.request_failed.emit(rid, p.ErrorKind.INTERRUPTED,
                                         "The engine stopped unexpectedly; it is being restarted.")
        self._set_state("crashed")
        self.engine_crashed.emit(tail)
        now = time.monotonic()
        self._crash_times.append(now)
        while self._crash_times and now - self._crash_times[0] > RESTART_WINDOW_S:
            self._crash_times.popleft()
        if len(self._crash_times) > MAX_RESTARTS:
            for cmd in [c for c in self._pending if isinstance(c, p.IndexPaths)]:
                self._pending.remove(cmd)
                self._in_flight.pop(cmd.id, None)
                self.request_failed.emit(cmd.id, p.ErrorKind.INTERRUPTED, "The engine stopped unexpectedly.")
            self.engine_gave_up.emit(tail)
            return
        # Restart, and bring back the model that was loaded.
        good = self._last_good_load
        if good is not None:
            again = p.LoadModel(path=good.path, n_ctx=good.n_ctx, n_gpu_layers=good.n_gpu_layers,
                                n_threads=good.n_threads)
            self._in_flight[again.id] = again
            self._pending.append(again)
        QTimer.singleShot(200, self.start)

    def _cleanup_process(self) -> None:
        self._handshake_timer.stop()
        self._ready = False
        self.pid = 0
        if self._sock is not None:
            self._sock.abort()
            self._sock.deleteLater()
            self._sock = None
        if self._proc is not None:
            self._proc.deleteLater()
            self._proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)


def _fields(msg: p.Message) -> dict:
    d = msg.to_dict()
    d.pop("type", None)
    return d


def engine_python() -> str:
    """The interpreter for the engine: ours, unless LANTERN_ENGINE_PYTHON says otherwise."""
    return os.environ.get("LANTERN_ENGINE_PYTHON", sys.executable)
