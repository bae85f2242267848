"""EngineService: turns protocol commands into work and work into protocol events.

Transport-agnostic: it is handed an ``emit`` callable and fed commands with ``handle``. The
engine process wires it to a socket (``engine.__main__``); tests drive it in-process.

llama.cpp contexts are not thread-safe, so model work runs on one worker thread, in order.
Indexing runs on a thread of its own, so a chat is answered while a long folder is indexed;
each of the two threads has its own retrieval handles (SQLite connection, vector store) and
they share the embedding model. Cancel and status are answered at once from the caller's
thread, so a cancel reaches a running generation between two tokens.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
from typing import Callable

from engine import protocol as p
from engine.llm import GenerationCancelled, LlamaBackend
from engine.load_plan import AUTO as AUTO_LAYERS, planned_layers
from engine.models import default_model_path
from engine.watcher import Watcher

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
        self._retrieval = None  # the worker's RetrievalSessions, opened by the first use
        self._index_retrieval = None  # the indexer thread's
        self._index_jobs: queue.Queue = queue.Queue()
        self._indexer: threading.Thread | None = None
        # Set while the person paused indexing; the indexer thread waits on it between steps.
        self.index_paused = threading.Event()
        self.stopped = threading.Event()
        # Indexed roots are polled for changes; what changed is queued like any index job.
        self.watcher = Watcher(self._queue_index)
        self._restored: set[tuple[str, str]] = set()   # data dirs whose saved roots are watched
        self._worker = threading.Thread(target=self._run, args=(self._jobs, True), name="engine-worker",
                                        daemon=True)
        self._worker.start()
        # Handlers for commands; later features (indexing, search, model library) add theirs.
        self._handlers: dict[type, Callable[[p.Command], None]] = {
            p.LoadModel: self._queue,
            p.Chat: self._queue,
            p.IndexPaths: self._queue_index,
            p.RemoveSources: self._on_remove,
            p.WatchSources: self._queue_index,
            p.Search: self._queue,
            p.ListSources: self._queue,
            p.ListCollections: self._queue,
            p.Embed: self._queue,
            p.PauseIndexing: self._on_pause,
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
        self.watcher.close(timeout)
        self._worker.join(timeout)
        if self._indexer is not None:
            self._indexer.join(timeout)
        self.backend.close()
        for sessions in (self._retrieval, self._index_retrieval):
            if sessions is not None:
                sessions.close()

    # ------------------------------------------------------------------ immediate commands

    def _queue(self, cmd: p.Command) -> None:
        with self._lock:
            self._cancels[cmd.id] = threading.Event()
        self._jobs.put(cmd)

    def _queue_index(self, cmd: p.Command) -> None:
        with self._lock:
            self._cancels[cmd.id] = threading.Event()
            if self._indexer is None:
                self._indexer = threading.Thread(target=self._run, args=(self._index_jobs, False),
                                                 name="engine-indexer", daemon=True)
                self._indexer.start()
        self._index_jobs.put(cmd)

    def _on_remove(self, cmd: p.RemoveSources) -> None:
        # Unwatched now, not when the removal runs: a watch job already queued must not bring
        # the removed files back (it reads its exclusions when it starts).
        self.watcher.removed(cmd)
        self._queue_index(cmd)

    def _on_cancel(self, cmd: p.Cancel) -> None:
        with self._lock:
            ev = self._cancels.get(cmd.target)
        if ev is not None:
            ev.set()

    def _on_pause(self, cmd: p.PauseIndexing) -> None:
        (self.index_paused.set if cmd.paused else self.index_paused.clear)()
        log.info("indexing %s", "paused" if cmd.paused else "resumed")
        self._emit(p.IndexingState(id=cmd.id, paused=self.index_paused.is_set()))

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
        self._index_jobs.put(None)
        self.stopped.set()

    # ------------------------------------------------------------------ worker

    def _run(self, jobs: queue.Queue, owns_state: bool) -> None:
        while True:
            cmd = jobs.get()
            if cmd is None:
                return
            with self._lock:
                cancel = self._cancels.get(cmd.id) or threading.Event()
            failed = False
            try:
                if isinstance(cmd, p.LoadModel):
                    self._load(cmd)
                elif isinstance(cmd, p.Chat):
                    self._chat(cmd, cancel)
                elif isinstance(cmd, p.IndexPaths):
                    if self.watcher.before_index(cmd):
                        self._retrieval_work(cmd, cancel)
                    else:
                        self._emit(p.Cancelled(id=cmd.id))
                elif isinstance(cmd, (p.Search, p.ListSources, p.ListCollections, p.RemoveSources)):
                    self._retrieval_work(cmd, cancel)
                elif isinstance(cmd, p.WatchSources):
                    self._restore_watch(cmd)
                    self._emit(self.watcher.set_enabled(cmd))
                elif isinstance(cmd, p.Embed):
                    self._embed(cmd, cancel)
            except p.EngineError as e:
                failed = True
                self._emit(p.Failed.from_error(cmd.id, e))
            except Exception as e:  # a bug: report it as data, keep serving
                failed = True
                log.exception("internal error while handling %s", cmd.TYPE)
                self._emit(p.Failed(id=cmd.id, kind=p.ErrorKind.INTERNAL,
                                    message=f"Internal error in the engine: {type(e).__name__}: {e}",
                                    environment=False))
            finally:
                if isinstance(cmd, p.IndexPaths):
                    self.watcher.after_index(cmd, failed)   # a failed job is not redone at once
                if owns_state:
                    self.state = "idle"
                with self._lock:
                    self._cancels.pop(cmd.id, None)

    def _load(self, cmd: p.LoadModel) -> None:
        self.state = "loading"
        path = cmd.path or str(default_model_path())
        backend = self._backend_for(path)
        layers, plan_note = cmd.n_gpu_layers, ""
        if layers == AUTO_LAYERS and isinstance(backend, LlamaBackend):
            layers, plan_note = planned_layers(path, cmd.n_ctx)
        m = backend.load(path, n_ctx=cmd.n_ctx, n_gpu_layers=layers, n_threads=cmd.n_threads)
        if backend is not self.backend:
            # Swap only after the new model loaded: on failure the previous one stays usable.
            self.backend.close()
            self.backend = backend
        self._emit(p.ModelLoaded(
            id=cmd.id, path=str(m.path), name=m.name, n_ctx=m.n_ctx, n_ctx_train=m.n_ctx_train,
            size_bytes=m.size_bytes, chat_template=m.formatter.origin, template_note=m.formatter.note,
            load_ms=round(m.load_ms, 1), load_note=" ".join(filter(None, (plan_note, m.load_note))),
            n_gpu_layers=m.n_gpu_layers,
        ))

    def _backend_for(self, path: str):
        """llama.cpp for GGUF; ctransformers for the legacy GGML formats (recognised by magic)."""
        from engine.legacy import CTransformersBackend, legacy_format

        if legacy_format(path):
            return self.backend if isinstance(self.backend, CTransformersBackend) else CTransformersBackend()
        return self.backend if isinstance(self.backend, LlamaBackend) else LlamaBackend()

    def _sessions(self, indexer: bool):
        """This thread's RetrievalSessions (worker or indexer), sharing one embedder."""
        # Imported here: retrieval pulls numpy now and torch/chromadb at first use.
        from engine.retrieval.session import RetrievalSessions

        with self._lock:
            other = self._retrieval if indexer else self._index_retrieval
            mine = self._index_retrieval if indexer else self._retrieval
            if mine is None:
                mine = RetrievalSessions(other.embedder if other is not None else None, self.index_paused)
                if indexer:
                    self._index_retrieval = mine
                else:
                    self._retrieval = mine
            return mine

    def _retrieval_work(self, cmd: p.Command, cancel: threading.Event) -> None:
        indexer = isinstance(cmd, (p.IndexPaths, p.RemoveSources))
        if not indexer:
            self.state = "searching"
        self._sessions(indexer).handle(cmd, self._emit, cancel)
        self._restore_watch(cmd, indexer)

    def _restore_watch(self, cmd: p.Command, indexer: bool = True) -> None:
        """The first command naming a data dir brings back the watching of what was indexed in
        it before this engine started (the engine learns its data dir only from commands)."""
        key = (cmd.data_dir, cmd.chroma_url)
        with self._lock:
            if not cmd.data_dir or key in self._restored:
                return
            self._restored.add(key)
        idx = self._sessions(indexer).index_for(cmd.data_dir, cmd.chroma_url)   # this thread's connection
        roots = idx.manifest.roots()
        self.watcher.restore(cmd.data_dir, cmd.chroma_url, roots)
        warm = getattr(idx.embedder, "warm", None)
        if roots and warm is not None:
            # Someone who indexed files will ask about them: load the embedding model now, in
            # the background, rather than make the first sourced answer wait for it (~7 s here).
            threading.Thread(target=self._warm_embedder, args=(warm,), name="engine-warmup", daemon=True).start()

    MAX_EMBED_TEXTS = 2048

    def _embed(self, cmd: p.Embed, cancel: threading.Event) -> None:
        """The embedding model's vectors for some texts (the HTTP API's /v1/embeddings)."""
        texts = cmd.texts
        if not texts or len(texts) > self.MAX_EMBED_TEXTS or not all(isinstance(t, str) for t in texts):
            raise p.EngineError(p.ErrorKind.BAD_INPUT, f"Embed needs 1 to {self.MAX_EMBED_TEXTS} texts (strings).")
        if cancel.is_set():
            self._emit(p.Cancelled(id=cmd.id))
            return
        self.state = "embedding"
        embedder = self._sessions(False).embedder
        vectors = embedder.embed_documents(list(texts))
        impl = getattr(embedder, "_impl", None)
        tok = getattr(impl, "tokenizer", None) or getattr(getattr(impl, "model", None), "tokenizer", None)
        try:   # what the model read (truncated texts count what was kept)
            tokens = sum(len(e.ids) for e in tok.encode_batch(texts)) if hasattr(tok, "encode_batch") and \
                hasattr(tok, "no_padding") else sum(len(tok(t)["input_ids"]) for t in texts)
        except Exception:
            tokens = sum(len(t.split()) for t in texts)
        self._emit(p.Embeddings(id=cmd.id, vectors=[[round(float(x), 7) for x in v] for v in vectors],
                                model=str(getattr(embedder, "config", {}).get("name", "")), tokens=tokens))

    @staticmethod
    def _warm_embedder(warm) -> None:
        try:
            warm()
        except Exception as e:   # the first real use reports it with the whole story
            log.warning("embedding model warm-up failed: %s", e)

    def _source_fit(self, cmd: p.Chat, messages: list[dict]):
        from engine.grounding import SourcePrompt

        chunks, found = self._sessions(False).chat_sources(cmd)
        question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        return SourcePrompt(chunks, found, question=question)

    def _chat(self, cmd: p.Chat, cancel: threading.Event) -> None:
        if cancel.is_set():
            self._emit(p.Cancelled(id=cmd.id))
            return
        self.state = "generating"
        sampling = p.Sampling.from_dict(cmd.sampling)
        messages = [{"role": str(m.get("role", "")), "content": str(m.get("content", ""))}
                    for m in cmd.messages if isinstance(m, dict)]
        model = self.backend.model

        fit = self._source_fit(cmd, messages) if cmd.use_sources else None

        def on_fitted(fitted):
            if fit is not None:
                self._emit(fit.citations(cmd.id))
            if fitted.dropped_messages:
                self._emit(p.ContextTrimmed(id=cmd.id, dropped_messages=fitted.dropped_messages,
                                            prompt_tokens=fitted.n_tokens, n_ctx=model.n_ctx))

        shown: list[str] = []

        def emit(piece: str) -> None:
            if piece:
                self._emit(p.Token(id=cmd.id, text=piece, index=len(shown)))
                shown.append(piece)

        fallback, flags, completion_tokens, ttft_ms = "", [], None, None
        try:
            if fit is None:
                for piece in self.backend.stream(messages, sampling, cancel, on_fitted=on_fitted):
                    emit(piece)
            else:
                fallback, completion_tokens, ttft_ms = self._sourced_answer(
                    messages, sampling, cancel, fit, on_fitted, emit)
                from engine import grounding
                # The person's own words are not made up: an address they asked about is not flagged.
                known = [c.text for c in fit.sent] + [m["content"] for m in messages if m["role"] == "user"]
                flags = grounding.unsourced("".join(shown), known)
                if flags:
                    log.info("answer names values in no source: %s", ", ".join(f["value"] for f in flags))
        except GenerationCancelled:
            r = self.backend.last_result
            self._emit(p.Cancelled(id=cmd.id, text="".join(shown) if fit is not None else r.text,
                                   completion_tokens=r.completion_tokens))
            return
        r = self.backend.last_result
        self._emit(p.Done(
            id=cmd.id, text="".join(shown) if fit is not None else r.text, finish_reason=r.finish_reason,
            prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens if completion_tokens is None else completion_tokens,
            ttft_ms=round(r.ttft_ms if ttft_ms is None else ttft_ms, 2),
            tokens_per_s=round(r.tokens_per_s, 2), model=model.name if model else "",
            fallback=fallback, unsourced=flags,
        ))

    def _sourced_answer(self, messages, sampling, cancel, fit, on_fitted, emit) -> tuple[str, int, float]:
        """Stream an answer from sources; returns (fallback, completion tokens, ms to the first
        token shown).

        A reply is held back until it states something (``grounding.Answer.ready``): for a
        question asking for a value ("which IP ..."), a value of that kind copied from a source;
        otherwise anything beyond citation markers and the sources' places. A reply that never
        does is not shown: the person gets the plainer retry or the record itself instead (see
        engine/grounding.py), never "[1]" or "access.log:174 [1]" followed by it.
        """
        from engine import grounding

        t0 = time.perf_counter()
        first: list[float] = []
        last = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
        question = messages[last]["content"] if last >= 0 else ""
        check = grounding.Answer(question, tuple(m["content"] for i, m in enumerate(messages)
                                                 if i != last and m["role"] in ("system", "user")))

        def held(pieces, sources) -> bool:
            text, showing = "", False
            for piece in pieces:
                text += piece
                if showing:
                    emit(piece)
                elif check.ready(text, sources(), final=False):
                    first.append(time.perf_counter())
                    emit(text)
                    showing = True
            if not showing and check.ready(text, sources(), final=True):
                first.append(time.perf_counter())
                emit(text)
                showing = True
            check.texts.append(text)
            return showing

        def ms() -> float:
            return ((first[0] if first else time.perf_counter()) - t0) * 1000

        shown = held(self.backend.stream(messages, sampling, cancel, on_fitted=on_fitted, fit=fit.fit,
                                         no_lead=grounding.NO_LEAD), lambda: fit.sent)
        tokens = self.backend.last_result.completion_tokens
        sent = fit.sent
        text = check.texts[-1]
        if not sent or shown:
            # Words but no marker: cite the source that holds the answer's value, if one does.
            n = check.cite(text, sent) if sent and grounding.marker_suffix(text) else 0
            if n:
                emit(f" [{n}]")
            return "", tokens, ms()
        n = check.retry_source(sent)
        top = sent[n - 1]
        log.info("the answer stated no %s from the sources (%r); asking again with [%d] alone",
                 check.kind or "words", text[:60], n)
        retry_sampling = dataclasses.replace(sampling, max_tokens=min(sampling.max_tokens, grounding.RETRY_MAX_TOKENS))
        try:
            shown = held(self.backend.stream(grounding.retry_messages(question, top, check.kind), retry_sampling,
                                             cancel, no_lead=grounding.NO_LEAD), lambda: [top])
            tokens += self.backend.last_result.completion_tokens
        except p.EngineError as e:   # the record alone does not fit the context: quote it instead
            log.info("the plainer prompt could not run: %s", e.message)
            shown = False
        if shown:
            emit(grounding.marker_suffix(check.texts[-1], n))
            return "retry", tokens, ms()
        log.info("the plainer prompt stated nothing either (%r); showing the record", check.texts[-1][:60])
        first.append(time.perf_counter())
        emit(grounding.record_answer(top, n, check.kind))
        return "record", tokens, ms()
