"""EngineService: turns protocol commands into work and work into protocol events.

Transport-agnostic: it is handed an ``emit`` callable and fed commands with ``handle``. The
engine process wires it to a socket (``engine.__main__``); tests drive it in-process.

llama.cpp contexts are not thread-safe, so model work runs on one worker thread, in order.
Cancel and status are answered at once from the caller's thread, so a cancel reaches a
running generation between two tokens.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Callable

from engine import protocol as p
from engine.llm import GenerationCancelled, LlamaBackend
from engine.models import default_model_path

log = logging.getLogger(__name__)

Emit = Callable[[p.Event], None]


class EngineService:
    def __init__(self, emit: Emit, backend: LlamaBackend | None = None):
        self._emit = emit
        self.backend = backend or LlamaBackend()
        self._jobs: queue.Queue = queue.Queue()
        self._cancels: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.state = "idle"
        self._retrieval = None  # opened by the first IndexPaths/Search
        self.stopped = threading.Event()
        self._worker = threading.Thread(target=self._run, name="engine-worker", daemon=True)
        self._worker.start()
        # Handlers for commands; later features (indexing, search, model library) add theirs.
        self._handlers: dict[type, Callable[[p.Command], None]] = {
            p.LoadModel: self._queue,
            p.Chat: self._queue,
            p.IndexPaths: self._queue,
            p.Search: self._queue,
            p.Cancel: self._on_cancel,
            p.GetStatus: self._on_status,
            p.Shutdown: self._on_shutdown,
        }

    # ------------------------------------------------------------------ entry points

    def handle(self, cmd: p.Message) -> None:
        handler = self._handlers.get(type(cmd))
        if handler is None:
            self._emit(p.Failed(id=cmd.id, kind=p.ErrorKind.PROTOCOL,
                                message=f"The engine does not handle '{cmd.TYPE}' messages."))
            return
        handler(cmd)

    def close(self, timeout: float = 5.0) -> None:
        self._on_shutdown(p.Shutdown())
        self._worker.join(timeout)
        self.backend.close()
        if self._retrieval is not None:
            self._retrieval.close()

    # ------------------------------------------------------------------ immediate commands

    def _queue(self, cmd: p.Command) -> None:
        with self._lock:
            self._cancels[cmd.id] = threading.Event()
        self._jobs.put(cmd)

    def _on_cancel(self, cmd: p.Cancel) -> None:
        with self._lock:
            ev = self._cancels.get(cmd.target)
        if ev is not None:
            ev.set()

    def _on_status(self, cmd: p.GetStatus) -> None:
        self._emit(self.status(cmd.id))

    def status(self, request_id: str = "") -> p.Status:
        model = self.backend.model
        try:
            import psutil
            rss = psutil.Process().memory_info().rss
        except Exception:
            rss = 0
        return p.Status(
            id=request_id, state=self.state,
            model=model.name if model else "", model_path=str(model.path) if model else "",
            pid=os.getpid(), rss_bytes=rss,
        )

    def _on_shutdown(self, cmd: p.Shutdown) -> None:
        with self._lock:
            for ev in self._cancels.values():
                ev.set()
        self._jobs.put(None)
        self.stopped.set()

    # ------------------------------------------------------------------ worker

    def _run(self) -> None:
        while True:
            cmd = self._jobs.get()
            if cmd is None:
                return
            with self._lock:
                cancel = self._cancels.get(cmd.id) or threading.Event()
            try:
                if isinstance(cmd, p.LoadModel):
                    self._load(cmd)
                elif isinstance(cmd, p.Chat):
                    self._chat(cmd, cancel)
                elif isinstance(cmd, (p.IndexPaths, p.Search)):
                    self._retrieval_work(cmd, cancel)
            except p.EngineError as e:
                self._emit(p.Failed.from_error(cmd.id, e))
            except Exception as e:  # a bug: report it as data, keep serving
                log.exception("internal error while handling %s", cmd.TYPE)
                self._emit(p.Failed(id=cmd.id, kind=p.ErrorKind.INTERNAL,
                                    message=f"Internal error in the engine: {type(e).__name__}: {e}",
                                    environment=False))
            finally:
                self.state = "idle"
                with self._lock:
                    self._cancels.pop(cmd.id, None)

    def _load(self, cmd: p.LoadModel) -> None:
        self.state = "loading"
        path = cmd.path or str(default_model_path())
        backend = self._backend_for(path)
        m = backend.load(path, n_ctx=cmd.n_ctx, n_gpu_layers=cmd.n_gpu_layers, n_threads=cmd.n_threads)
        if backend is not self.backend:
            # Swap only after the new model loaded: on failure the previous one stays usable.
            self.backend.close()
            self.backend = backend
        self._emit(p.ModelLoaded(
            id=cmd.id, path=str(m.path), name=m.name, n_ctx=m.n_ctx, n_ctx_train=m.n_ctx_train,
            size_bytes=m.size_bytes, chat_template=m.formatter.origin, template_note=m.formatter.note,
            load_ms=round(m.load_ms, 1), load_note=m.load_note, n_gpu_layers=m.n_gpu_layers,
        ))

    def _backend_for(self, path: str):
        """llama.cpp for GGUF; ctransformers for the legacy GGML formats (recognised by magic)."""
        from engine.legacy import CTransformersBackend, legacy_format

        if legacy_format(path):
            return self.backend if isinstance(self.backend, CTransformersBackend) else CTransformersBackend()
        return self.backend if isinstance(self.backend, LlamaBackend) else LlamaBackend()

    def _retrieval_work(self, cmd: p.Command, cancel: threading.Event) -> None:
        # Imported here: retrieval pulls numpy now and torch/chromadb at first use.
        from engine.retrieval.session import RetrievalSessions

        if self._retrieval is None:
            self._retrieval = RetrievalSessions()
        self.state = "indexing" if isinstance(cmd, p.IndexPaths) else "searching"
        self._retrieval.handle(cmd, self._emit, cancel)

    def _chat(self, cmd: p.Chat, cancel: threading.Event) -> None:
        if cancel.is_set():
            self._emit(p.Cancelled(id=cmd.id))
            return
        self.state = "generating"
        sampling = p.Sampling.from_dict(cmd.sampling)
        messages = [{"role": str(m.get("role", "")), "content": str(m.get("content", ""))}
                    for m in cmd.messages if isinstance(m, dict)]
        model = self.backend.model

        def on_fitted(fitted):
            if fitted.dropped_messages:
                self._emit(p.ContextTrimmed(id=cmd.id, dropped_messages=fitted.dropped_messages,
                                            prompt_tokens=fitted.n_tokens, n_ctx=model.n_ctx))

        index = 0
        try:
            for piece in self.backend.stream(messages, sampling, cancel, on_fitted=on_fitted):
                self._emit(p.Token(id=cmd.id, text=piece, index=index))
                index += 1
        except GenerationCancelled:
            r = self.backend.last_result
            self._emit(p.Cancelled(id=cmd.id, text=r.text, completion_tokens=r.completion_tokens))
            return
        r = self.backend.last_result
        self._emit(p.Done(
            id=cmd.id, text=r.text, finish_reason=r.finish_reason, prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens, ttft_ms=round(r.ttft_ms, 2),
            tokens_per_s=round(r.tokens_per_s, 2), model=model.name if model else "",
        ))

