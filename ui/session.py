"""ChatSession: the conversation flow between the store, the engine client and the window.

It owns the rules that must hold whatever the widgets do:

- the person's message is in the store before the engine is asked for a reply, so a crash
  at any point loses at most the reply being written;
- a reply is saved while it streams (at most once a second, the rest is cheap in memory), and
  ends as complete, stopped, interrupted or failed, keeping whatever text it had;
- every engine event is routed by its request id, not by "the conversation on screen": the
  person may switch conversations while a reply streams into another one.

Widgets listen to its signals and never write to the store themselves.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, Signal

from app import conversations as conv
from app.conversations import ConversationStore
from app.settings import Settings
from ui.client import EngineClient

log = logging.getLogger(__name__)

SAMPLING_KEYS = ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens", "seed")
SENT_STATUSES = (conv.COMPLETE, conv.STOPPED)
SAVE_INTERVAL_S = 1.0
STATS_META = ("ttft_ms", "tokens_per_s", "completion_tokens", "prompt_tokens", "model", "finish_reason")


@dataclass
class Pending:
    """A reply being generated: where it belongs and what it has so far."""
    request_id: str
    conversation_id: int
    sent_ids: list[int]                 # ids of the history messages sent, oldest first
    text: str = ""
    message_id: int | None = None       # the assistant row, once created
    saved_at: float = 0.0
    batches: int = 0
    meta: dict = field(default_factory=dict)


class ChatSession(QObject):
    user_message_stored = Signal(int, object)     # conversation id, Message
    reply_started = Signal(int, str)              # conversation id, request id
    reply_updated = Signal(int, str, str)         # conversation id, request id, text so far
    reply_ended = Signal(int, str, object)        # conversation id, request id, stored Message
    context_trimmed = Signal(int, str, list, int)  # conversation id, request id, left-out ids, n_ctx
    busy_changed = Signal(bool)
    model_changed = Signal(dict)                  # model_loaded fields
    model_failed = Signal(str, str)               # path asked for, the engine's message
    conversation_changed = Signal(int)            # title or activity changed: refresh the list
    citations_received = Signal(int, str, object)  # conversation id, request id, Citations fields

    def __init__(self, store: ConversationStore, settings: Settings, client: EngineClient,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.store = store
        self.settings = settings
        self.client = client
        self.model: dict = {}                     # the last model_loaded fields
        self._wanted_ctx: int | None = None       # n_ctx of the newest load asked for
        self._wanted_path: str | None = None      # and its file
        self._loads: dict[str, str] = {}          # load request id -> path asked for
        self._user_loads: set[str] = set()        # loads the person asked for (saved to settings)
        self._pending: dict[str, Pending] = {}
        self.data_dir = ""                        # where the index lives; the window sets it
        client.citations_received.connect(self._on_citations)
        client.tokens_received.connect(self._on_tokens)
        client.context_trimmed.connect(self._on_trimmed)
        client.reply_finished.connect(self._on_finished)
        client.reply_cancelled.connect(self._on_cancelled)
        client.request_failed.connect(self._on_failed)
        client.model_loaded.connect(self._on_model_loaded)

    # ------------------------------------------------------------------ queries

    @property
    def active(self) -> Pending | None:
        return next(iter(self._pending.values()), None)

    def is_busy(self) -> bool:
        return bool(self._pending)

    def pending_for(self, cid: int) -> Pending | None:
        """The reply streaming into conversation ``cid``, if any."""
        return next((p for p in self._pending.values() if p.conversation_id == cid), None)

    def effective_settings(self, cid: int | None) -> dict:
        """The app defaults overlaid with what this conversation changed."""
        values = self.settings.chat_defaults()
        c = self.store.conversation(cid) if cid is not None else None
        if c is not None:
            values.update({k: v for k, v in c.settings.items() if k in values})
        return values

    def history(self, cid: int) -> tuple[list[dict], list[int]]:
        """The messages to send (system prompt first) and the ids of the non-system ones.

        Replies that failed, were cut off by a crash, or are empty are left out: they are
        shown to the person but would only confuse the model.
        """
        values = self.effective_settings(cid)
        messages: list[dict] = []
        if str(values.get("system_prompt", "")).strip():
            messages.append({"role": "system", "content": values["system_prompt"]})
        ids: list[int] = []
        for m in self.store.messages(cid):
            if m.role in ("user", "assistant") and m.status in SENT_STATUSES and m.content.strip():
                messages.append({"role": m.role, "content": m.content})
                ids.append(m.id)
        return messages, ids

    # ------------------------------------------------------------------ sources

    def uses_sources(self, cid: int | None) -> bool:
        """The conversation's "Use my sources" switch (kept in its settings)."""
        c = self.store.conversation(cid) if cid is not None else None
        return bool(c and c.settings.get("use_sources"))

    def set_use_sources(self, cid: int, on: bool) -> None:
        c = self.store.conversation(cid)
        if c is not None:
            self.store.set_settings(cid, {**c.settings, "use_sources": bool(on)})

    def collections_of(self, cid: int | None) -> list[str]:
        """The collections a conversation answers from: its own choice, else the collection the
        Sources panel shows (where the person last added files)."""
        c = self.store.conversation(cid) if cid is not None else None
        chosen = [str(x) for x in (c.settings.get("collections") or [])] if c else []
        return chosen or [str(self.settings.get("sources", "collection") or "default")]

    def set_collections(self, cid: int, names: list[str]) -> None:
        c = self.store.conversation(cid)
        if c is not None:
            self.store.set_settings(cid, {**c.settings, "collections": list(dict.fromkeys(names))})

    def _sources_request(self, cid: int) -> dict:
        if not self.uses_sources(cid):
            return {}
        return {"use_sources": True, "collections": self.collections_of(cid), "data_dir": self.data_dir}

    def _on_citations(self, rid: str, fields: dict) -> None:
        p = self._pending.get(rid)
        if p is None:
            return
        # Kept with the reply, so its source cards and "what was sent" survive a restart.
        p.meta.update(citations=fields.get("citations", []), sources_dropped=fields.get("dropped", 0),
                      dropped_chunks=fields.get("dropped_chunks", []), sources_budget=fields.get("budget", {}),
                      sources_found=fields.get("found", 0))
        self.citations_received.emit(p.conversation_id, rid, fields)

    # ------------------------------------------------------------------ model

    def load_model(self, path: str, n_ctx: int | None = None, *, remember: bool = True,
                   n_gpu_layers: int | None = None) -> str:
        """Load ``path`` ("" = the bundled default). ``remember``: save it as the model to use.
        ``n_gpu_layers``: None takes the setting; -1 lets the engine plan them."""
        n_ctx = int(n_ctx or self.settings.get("chat", "n_ctx"))
        if n_gpu_layers is None:
            n_gpu_layers = int(self.settings.get("model", "n_gpu_layers") or 0)
        rid = self.client.load_model(path, n_ctx, n_gpu_layers,
                                     int(self.settings.get("model", "n_threads") or 0))
        self._loads[rid] = path
        self._wanted_path, self._wanted_ctx = path, n_ctx
        if remember:
            self._user_loads.add(rid)
        log.info("loading model %s with n_ctx=%d (%s)", path or "<default>", n_ctx, rid)
        return rid

    def _model_path(self) -> str:
        # The newest model asked for, even if still loading: a context change must not
        # bring back the previous file.
        if self._wanted_path is not None:
            return self._wanted_path
        return self.model.get("path") or self.settings.get("model", "path") or ""

    def _ensure_context(self, n_ctx: int) -> None:
        current = self._wanted_ctx if self._wanted_ctx is not None else self.model.get("n_ctx")
        if current != n_ctx:
            # The client queues commands in order, so the chat sent next runs on the new context.
            self.load_model(self._model_path(), n_ctx, remember=False)

    def _on_model_loaded(self, info: dict) -> None:
        rid = info.get("id", "")
        self._loads.pop(rid, None)
        self.model = dict(info)
        if rid in self._user_loads:
            self._user_loads.discard(rid)
            self.settings.set("model", "path", info.get("path", ""))
            self._save_settings()
        self.model_changed.emit(self.model)

    def _save_settings(self) -> None:
        try:
            self.settings.save()
        except OSError as e:
            log.warning("could not save settings: %s", e)

    # ------------------------------------------------------------------ sending

    def send(self, cid: int, text: str) -> str | None:
        """Store ``text`` as the person's next message in ``cid`` and ask for a reply."""
        text = text.strip()
        if not text or self.is_busy():
            return None
        c = self.store.conversation(cid)
        if c is None:
            return None
        first = not any(m.role == "user" for m in self.store.messages(cid))
        msg = self.store.add_message(cid, "user", text)      # written before generation starts
        if first and c.title in ("", "New chat"):
            self.store.rename(cid, conv.title_from(text))
        self.user_message_stored.emit(cid, msg)
        self.conversation_changed.emit(cid)
        return self._request_reply(cid)

    def regenerate(self, cid: int) -> str | None:
        """Drop the last reply (if the conversation ends with one) and ask again."""
        if self.is_busy():
            return None
        msgs = self.store.messages(cid)
        if not msgs:
            return None
        if msgs[-1].role == "assistant":
            self.store.delete_messages_from(cid, msgs[-1].id)
        if not any(m.role == "user" for m in self.store.messages(cid)):
            return None
        return self._request_reply(cid)

    def resend_edited(self, cid: int, message_id: int, text: str) -> str | None:
        """Replace the person's message ``message_id`` (and everything after it) with ``text``."""
        text = text.strip()
        if not text or self.is_busy():
            return None
        self.store.delete_messages_from(cid, message_id)
        msg = self.store.add_message(cid, "user", text)
        self.user_message_stored.emit(cid, msg)
        self.conversation_changed.emit(cid)
        return self._request_reply(cid)

    def _request_reply(self, cid: int) -> str:
        values = self.effective_settings(cid)
        self._ensure_context(int(values["n_ctx"]))
        messages, ids = self.history(cid)
        sampling = {k: values[k] for k in SAMPLING_KEYS}
        rid = self.client.chat(messages, sampling, **self._sources_request(cid))
        self._pending[rid] = Pending(rid, cid, ids)
        log.info("asked for a reply in conversation %d (%s, %d messages)", cid, rid, len(messages))
        self.reply_started.emit(cid, rid)
        self.busy_changed.emit(True)
        return rid

    def stop(self) -> None:
        for rid in list(self._pending):
            self.client.cancel(rid)

    # ------------------------------------------------------------------ engine events

    def _on_trimmed(self, rid: str, dropped: int, prompt_tokens: int, n_ctx: int) -> None:
        p = self._pending.get(rid)
        if p is None:
            return
        left_out = p.sent_ids[:dropped]
        p.meta.update(left_out=left_out, context_n_ctx=n_ctx)
        self.context_trimmed.emit(p.conversation_id, rid, left_out, n_ctx)

    def _on_tokens(self, rid: str, text: str) -> None:
        p = self._pending.get(rid)
        if p is None:
            return  # a request we no longer track (an old, cancelled one)
        p.text += text
        p.batches += 1
        now = time.monotonic()
        if p.message_id is None:
            m = self.store.add_message(p.conversation_id, "assistant", p.text, conv.STREAMING, p.meta)
            p.message_id, p.saved_at = m.id, now
        elif now - p.saved_at >= SAVE_INTERVAL_S:
            self.store.update_message(p.message_id, content=p.text)
            p.saved_at = now
        self.reply_updated.emit(p.conversation_id, rid, p.text)

    def _on_finished(self, rid: str, done: dict) -> None:
        meta = {k: done[k] for k in STATS_META if k in done}
        # Answers from sources: how the text was made and which values no source holds.
        meta.update({k: done[k] for k in ("fallback", "unsourced") if done.get(k)})
        self._end(rid, conv.COMPLETE, done.get("text") or None, meta)

    def _on_cancelled(self, rid: str, text_so_far: str) -> None:
        self._end(rid, conv.STOPPED, text_so_far or None, {})

    def _on_failed(self, rid: str, kind: str, message: str) -> None:
        if rid in self._loads:
            path = self._loads.pop(rid)
            self._user_loads.discard(rid)
            if kind != "interrupted":
                # The previous model stays loaded, and is what later loads start from.
                self._wanted_path, self._wanted_ctx = self.model.get("path"), self.model.get("n_ctx")
                self.model_failed.emit(path, message)
            return
        if rid not in self._pending:
            return
        status = conv.INTERRUPTED if kind == "interrupted" else conv.FAILED
        self._end(rid, status, None, {"error": message, "error_kind": kind})

    def _end(self, rid: str, status: str, text: str | None, meta: dict) -> None:
        p = self._pending.pop(rid, None)
        if p is None:
            return
        if text is not None and len(text) >= len(p.text):
            p.text = text
        p.meta.update(meta)
        if p.message_id is None:
            m = self.store.add_message(p.conversation_id, "assistant", p.text, status, p.meta)
            p.message_id = m.id
        else:
            self.store.update_message(p.message_id, content=p.text, status=status, meta=p.meta)
        self.store.touch(p.conversation_id)
        log.info("reply %s ended: %s, %d chars in %d batches", rid, status, len(p.text), p.batches)
        stored = self.store.message(p.message_id)
        self.reply_ended.emit(p.conversation_id, rid, stored)
        self.conversation_changed.emit(p.conversation_id)
        if not self._pending:
            self.busy_changed.emit(False)

    def discard_conversation(self, cid: int) -> None:
        """Forget replies streaming into ``cid`` (it is being deleted) and cancel them."""
        for rid, p in list(self._pending.items()):
            if p.conversation_id == cid:
                del self._pending[rid]
                self.client.cancel(rid)
        if not self._pending:
            self.busy_changed.emit(False)

    def abandon_all(self, status: str = conv.STOPPED) -> None:
        """Close every running reply as ``status`` with its text so far (the window is closing)."""
        for rid in list(self._pending):
            self._end(rid, status, None, {})


def stats_line(meta: dict) -> str:
    """'TTFT 120 ms · 68.3 tok/s · 42 tokens' from a reply's stored meta ('' if none)."""
    parts = []
    if "ttft_ms" in meta:
        parts.append(f"TTFT {meta['ttft_ms']:.0f} ms")
    if "tokens_per_s" in meta:
        parts.append(f"{meta['tokens_per_s']:.1f} tok/s")
    if "completion_tokens" in meta:
        n = int(meta["completion_tokens"])
        parts.append(f"{n} token{'s' if n != 1 else ''}")
    return " · ".join(parts)

