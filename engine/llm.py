"""The llama.cpp backend: load a GGUF model and stream a chat reply, token by token.

We drive ``Llama.generate`` ourselves instead of ``create_chat_completion`` because we need
what that convenience hides: exact token counts for the context budget, a cancel check
between every token and between prefill chunks, the KV-cache prefix reuse across turns of
the same conversation, and our own sandboxed chat template.
"""

from __future__ import annotations

import codecs
import dataclasses
import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from engine import chat_template, context, gguf
from engine.models import inspect_header
from engine.planner import smaller_load
from engine.protocol import EngineError, ErrorKind, Sampling

log = logging.getLogger(__name__)

# Prefill is one batched decode, made interruptible by llama.cpp's abort callback, which ggml
# checks between graph nodes. Where the library lacks it, prefill falls back to chunks sized
# to take about PREFILL_SLICE_S each, with a cancel check between them.
PREFILL_SLICE_S = 0.08
PREFILL_MIN_CHUNK = 8
PREFILL_FIRST_CHUNK = 32
PREFILL_MAX_CHUNK = 512


class GenerationCancelled(Exception):
    pass


@dataclass
class LoadedModel:
    path: Path
    name: str
    n_ctx: int
    n_ctx_train: int
    size_bytes: int
    formatter: chat_template.ChatFormatter
    load_ms: float
    load_note: str = ""
    n_gpu_layers: int = 0


@dataclass
class GenerationResult:
    text: str = ""
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    dropped_messages: int = 0
    ttft_ms: float = 0.0
    tokens_per_s: float = 0.0


def physical_cores() -> int:
    try:
        import psutil
        n = psutil.cpu_count(logical=False)
    except Exception:  # psutil missing or the platform hides the topology
        n = None
    return max(1, n or os.cpu_count() or 1)


def default_threads() -> int:
    """Threads for llama.cpp when the person has not chosen.

    On small machines we leave one core free. ggml's worker threads spin while they wait for
    each other, and when another busy process (the window, an indexer, a browser) shares a
    core that spinning collapses throughput: measured here on 2 cores with a second model
    process running, 2 threads gave 0.4-6.5 tok/s where 1 thread gave 56.
    """
    n = physical_cores()
    return max(1, n - 1) if n <= 4 else n


def _looks_like_oom(e: BaseException, n_gpu_layers: int) -> bool:
    """Whether a failed load was (probably) memory. llama-cpp-python turns every native
    failure into a ValueError with a fixed sentence, so this reads the sentence: a context
    that could not be created is its KV cache or compute buffer not fitting; a model that
    could not be loaded after our metadata check passed is, with GPU layers, VRAM."""
    if isinstance(e, MemoryError):
        return True
    text = str(e).lower()
    if "llama_context" in text or "alloc" in text or "out of memory" in text:
        return True
    return n_gpu_layers != 0 and "failed to load model" in text


def _model_name(meta: dict, path: Path) -> str:
    # The file name is what the person chose and recognises; general.name is often an
    # internal training-run label ("Smollm2 135M 8k Lc100K Mix1 Ep2").
    return path.stem or meta.get("general.name", "model")


# The embedder shares this process's RAM with the model. Measured here: loading
# all-MiniLM-L6-v2 with torch and embedding one batch grew RSS by 482 MiB.
EMBEDDER_RAM_RESERVE = 512 * 1024 * 1024


def _embedder_reserve() -> int:
    """RAM to keep for the embedder when it may load later in this process (once loaded, its
    memory is already missing from what the OS reports as available)."""
    import importlib.util
    import sys

    if "sentence_transformers" in sys.modules or importlib.util.find_spec("sentence_transformers") is None:
        return 0
    return EMBEDDER_RAM_RESERVE


class LlamaBackend:
    def __init__(self, planner_factory=None):
        self._llm = None
        self.model: LoadedModel | None = None
        # Builds the ModelPlanner that checks RAM before each load; tests hand in one with a
        # fixed device list (the narrow seam: everything after it is the real load).
        self._planner_factory = planner_factory

    # ------------------------------------------------------------------ loading

    def load(self, path: str | os.PathLike, n_ctx: int = 4096, n_gpu_layers: int = 0, n_threads: int = 0) -> LoadedModel:
        """Load ``path``; on any failure the previously loaded model stays in place."""
        header = inspect_header(path)
        # The full metadata check: a hostile or damaged file is refused here, in Python,
        # instead of by an abort inside llama.cpp.
        info = gguf.inspect(header.path)
        if n_ctx < 256:
            raise EngineError(ErrorKind.BAD_INPUT, f"Context length {n_ctx} is too small; use at least 256 tokens.")
        if 0 < info.context_length < n_ctx:
            # Past its training context a model produces garbage; cap it before allocating.
            n_ctx = info.context_length
        n_ctx, fit_note = self._check_ram(info, n_ctx, n_gpu_layers)
        import llama_cpp  # heavy native import, only in the engine process and only now

        threads = n_threads or default_threads()
        t0 = time.perf_counter()
        def open_model(ctx: int, layers: int):
            return llama_cpp.Llama(
                model_path=str(header.path),
                n_ctx=ctx,
                n_gpu_layers=layers,
                n_threads=threads,
                n_threads_batch=threads,
                n_batch=512,
                verbose=False,
            )

        load_note = fit_note
        retried = False
        try:
            try:
                llm = open_model(n_ctx, n_gpu_layers)
            except (MemoryError, ValueError, RuntimeError) as e:
                oom = _looks_like_oom(e, n_gpu_layers)
                smaller = smaller_load(info.n_layers, n_ctx, n_gpu_layers) if oom else None
                if smaller is None:
                    raise
                # One retry with less, as Ollama does: most such failures are the KV cache or
                # the GPU's share not fitting, and a smaller load is better than none.
                log.warning("load of %s failed (%s); retrying with n_ctx=%d, n_gpu_layers=%d",
                            header.path, e, *smaller)
                retried = True
                llm = open_model(*smaller)
                load_note = ("Not enough memory for the chosen settings; loaded with "
                             + (f"{smaller[1]} GPU layers instead of {n_gpu_layers}" if smaller[1] != n_gpu_layers
                                else f"a {smaller[0]}-token context instead of {n_ctx}") + ".")
                n_ctx, n_gpu_layers = smaller
            n_ctx_train = llm._model.n_ctx_train()
            if 0 < n_ctx_train < n_ctx:
                llm.close()
                llm = open_model(n_ctx_train, n_gpu_layers)
            meta = dict(llm.metadata)
        except MemoryError:
            raise EngineError(
                ErrorKind.OUT_OF_MEMORY,
                f"Not enough memory to load '{header.path.name}' with a {n_ctx}-token context. "
                "Lower the context length or choose a smaller model.",
            ) from None
        except (ValueError, RuntimeError, OSError) as e:
            if _looks_like_oom(e, n_gpu_layers):
                raise EngineError(
                    ErrorKind.OUT_OF_MEMORY,
                    f"Not enough memory to load '{header.path.name}' with a {n_ctx}-token context and "
                    f"{n_gpu_layers} GPU layers{', even after a retry with less' if retried else ''} ({e}). "
                    "Lower the context length, "
                    "use fewer GPU layers, or choose a smaller model.",
                ) from None
            raise EngineError(
                ErrorKind.UNSUPPORTED_FORMAT,
                f"llama.cpp could not load '{header.path.name}': {e}. The file may be damaged or use an "
                "architecture this build does not support.",
            ) from None
        load_ms = (time.perf_counter() - t0) * 1000

        try:
            formatter = chat_template.make_formatter(
                meta.get("tokenizer.chat_template"),
                bos_token=self._token_text(llm, llm.token_bos()),
                eos_token=self._token_text(llm, llm.token_eos()),
                label=header.path.name,
                control=control_tokens(llm),
            )
        except EngineError:
            llm.close()     # a template refused at load: the previous model stays
            raise
        if self._llm is not None:
            self._llm.close()
        self._llm = llm
        self.model = LoadedModel(
            path=header.path,
            name=_model_name(meta, header.path),
            n_ctx=llm.n_ctx(),
            n_ctx_train=n_ctx_train,
            size_bytes=header.size,
            formatter=formatter,
            load_ms=load_ms,
            load_note=load_note,
            n_gpu_layers=n_gpu_layers,
        )
        log.info("loaded %s (n_ctx=%d, threads=%d) in %.0f ms", header.path, llm.n_ctx(), threads, load_ms)
        return self.model

    def _check_ram(self, info, n_ctx: int, n_gpu_layers: int) -> tuple[int, str]:
        """Refuse, with the numbers, a model that cannot fit in the RAM available now, or
        lower its context to what fits, before llama.cpp maps anything. With mmap a too-large
        model would otherwise "load" and then be killed by the OS in the middle of a reply."""
        from engine.planner import ModelPlanner, fmt_bytes

        if self._planner_factory:
            planner = self._planner_factory()
        else:
            planner = ModelPlanner()
            reserve = _embedder_reserve()
            if reserve:
                planner.devices = [dataclasses.replace(d, free_bytes=max(0, d.free_bytes - reserve))
                                   if d.kind == "cpu" else d for d in planner.devices]
        plan = planner.plan(info, n_ctx, n_gpu_layers=max(0, n_gpu_layers))  # raises out_of_memory
        if plan.n_ctx < n_ctx:
            note = (f"Context lowered from {n_ctx} to {plan.n_ctx} tokens to fit in the "
                    f"{fmt_bytes(planner.ram_free)} of RAM available (estimate {fmt_bytes(plan.ram_bytes)}).")
            log.warning(note)
            return plan.n_ctx, note
        return n_ctx, ""

    @staticmethod
    def _token_text(llm, token: int) -> str:
        if token < 0:
            return ""
        return llm._model.detokenize([token], special=True).decode("utf-8", errors="replace")

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None
            self.model = None

    # ------------------------------------------------------------------ generation

    def _tokenize(self, text: str) -> list[int]:
        """Token ids of a rendered prompt (control tokens where the template wrote them, the
        messages as text) or of plain text (all of it text). The rendered template already
        holds the BOS text when the model wants it, so no second BOS is added."""
        control = self.model.formatter.control if self.model is not None else None
        if control is None:      # this llama-cpp-python cannot list control tokens
            return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        return control.tokenize(text, self._text_tokens)

    def _text_tokens(self, text: str) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def stream(self, messages: list[dict], sampling: Sampling, cancel: threading.Event,
               on_fitted=None, fit=None, no_lead: str = "") -> Iterator[str]:
        """Yield reply text pieces; the summary is in ``self.last_result`` afterwards.

        ``fit`` replaces ``context.fit_messages`` (same arguments); answering from sources uses it.
        ``no_lead``: characters the reply may not start with (leading whitespace aside).

        Raises GenerationCancelled when ``cancel`` is set (the text so far is in last_result).
        ``on_fitted(FittedPrompt)`` is called once the prompt is built, before any token.
        """
        if self._llm is None or self.model is None:
            raise EngineError(ErrorKind.NO_MODEL, "No model is loaded. Choose a model first.")
        sampling.validate()
        llm = self._llm
        model = self.model
        t_start = time.perf_counter()

        fitted = (fit or context.fit_messages)(
            messages, model.n_ctx, sampling.max_tokens, model.formatter.render, self._tokenize,
        )
        if on_fitted is not None:
            on_fitted(fitted)
        tokens = fitted.tokens
        result = GenerationResult(prompt_tokens=len(tokens), dropped_messages=fitted.dropped_messages)
        self.last_result = result

        seed = sampling.seed if sampling.seed >= 0 else random.randrange(2**31)
        llm.set_seed(seed)
        self._prefill(tokens, cancel)

        max_new = min(sampling.max_tokens, model.n_ctx - len(tokens))
        stops = model.formatter.stop_strings + tuple(sampling.stop)   # the request's own after the template's
        vocab = llm._model.vocab
        import llama_cpp

        yield from stream_tokens(
            llm.generate(
                tokens,
                top_k=sampling.top_k,
                top_p=sampling.top_p,
                min_p=sampling.min_p,
                temp=sampling.temperature,
                repeat_penalty=sampling.repeat_penalty,
                logits_processor=self._lead_ban(no_lead, len(tokens)) if no_lead else None,
            ),
            is_end=lambda tok: llama_cpp.llama_vocab_is_eog(vocab, tok),
            to_bytes=lambda tok: llm._model.detokenize([tok]),
            stops=stops, max_new=max_new, cancel=cancel, result=result, t_start=t_start,
        )

    def _lead_ban(self, chars: str, n_prompt: int):
        """A logits processor that keeps tokens starting with one of ``chars`` out of the reply
        until it has some text other than whitespace."""
        import numpy as np

        llm = self._llm
        cache = self.__dict__.setdefault("_lead_ids", {})
        key = (str(self.model.path), chars)
        if key not in cache:
            ids = []
            for tok in range(llm.n_vocab()):
                piece = llm._model.detokenize([tok]).decode("utf-8", errors="replace").lstrip()
                if piece[:1] and piece[0] in chars:
                    ids.append(tok)
            cache[key] = np.asarray(ids, dtype=np.int64)
        banned = cache[key]

        def process(input_ids, scores):
            generated = list(input_ids[n_prompt:])
            if generated and llm._model.detokenize(generated).strip():
                return scores
            scores[banned] = -np.inf
            return scores

        return llama_logits([process])

    def _prefill(self, tokens: list[int], cancel: threading.Event) -> None:
        """Evaluate all but the last prompt token, reusing the cached prefix.

        ``Llama.generate`` would do this in one uninterruptible call; by leaving exactly one
        token for it, its own prefix match finds the rest cached and evaluates one token.
        """
        import numpy as np

        llm = self._llm
        target = len(tokens) - 1
        cached = np.asarray(llm.input_ids[: llm.n_tokens])
        head = np.asarray(tokens[: len(cached)])
        n_common = len(head)
        mismatch = np.nonzero(cached[: len(head)] != head)[0]
        if len(mismatch):
            n_common = int(mismatch[0])
        n_common = min(n_common, target)
        # Llama.eval drops the KV cache beyond n_tokens before evaluating.
        llm.n_tokens = n_common
        if n_common >= target:
            return
        if cancel.is_set():
            raise GenerationCancelled()
        with _abort_on(llm, cancel) as interruptible:
            if interruptible:
                try:
                    llm.eval(tokens[n_common:target])
                except RuntimeError:
                    if cancel.is_set():
                        raise GenerationCancelled() from None
                    raise
                return
        self._prefill_in_chunks(tokens, n_common, target, cancel)

    def _prefill_in_chunks(self, tokens: list[int], start: int, target: int, cancel: threading.Event) -> None:
        llm = self._llm
        i = start
        chunk = PREFILL_FIRST_CHUNK
        while i < target:
            if cancel.is_set():
                raise GenerationCancelled()
            end = min(i + chunk, target)
            t0 = time.perf_counter()
            llm.eval(tokens[i:end])
            rate = (end - i) / max(time.perf_counter() - t0, 1e-6)
            chunk = int(min(PREFILL_MAX_CHUNK, max(PREFILL_MIN_CHUNK, rate * PREFILL_SLICE_S)))
            i = end


def control_tokens(llm) -> chat_template.ControlTokens | None:
    """The model's control and unknown tokens by text: what llama.cpp would parse out of text
    with special parsing on (user-defined tokens are parsed either way: they are text tokens)."""
    try:
        from llama_cpp import llama_cpp as lib

        vocab = llm._model.vocab
        get_attr = lib.llama_vocab_get_attr
        kinds = lib.LLAMA_TOKEN_ATTR_CONTROL | lib.LLAMA_TOKEN_ATTR_UNKNOWN
        lstrip_bit, rstrip_bit = lib.LLAMA_TOKEN_ATTR_LSTRIP, lib.LLAMA_TOKEN_ATTR_RSTRIP
    except (ImportError, AttributeError) as e:
        log.warning("cannot list the model's control tokens (%s); message text is tokenized with special "
                    "tokens parsed", e)
        return None
    ids: dict[str, int] = {}
    lstrip, rstrip = set(), set()
    for tok in range(llm.n_vocab()):
        attr = int(get_attr(vocab, tok))
        if not attr & kinds:
            continue
        text = llm._model.detokenize([tok], special=True).decode("utf-8", errors="replace")
        if not text or "\ufffd" in text or text in ids:
            continue
        ids[text] = tok
        if attr & lstrip_bit:
            lstrip.add(text)
        if attr & rstrip_bit:
            rstrip.add(text)
    return chat_template.ControlTokens(ids, frozenset(lstrip), frozenset(rstrip))


def llama_logits(processors):
    from llama_cpp import LogitsProcessorList
    return LogitsProcessorList(processors)


class _abort_on:
    """Install llama.cpp's abort callback for the duration of a block.

    Only around prefill: the callback is a call into Python for every graph node, which during
    decoding would cost a few percent of speed for nothing (decode checks between tokens).
    """

    def __init__(self, llm, cancel: threading.Event):
        self._llm = llm
        self._cancel = cancel
        self._setter = None
        self._callback = None

    def __enter__(self) -> bool:
        try:
            import ctypes

            from llama_cpp import llama_cpp as lib

            setter = lib._lib.llama_set_abort_callback
            setter.argtypes = [ctypes.c_void_p, lib.ggml_abort_callback, ctypes.c_void_p]
            setter.restype = None
        except (ImportError, AttributeError):
            return False
        cancel = self._cancel
        self._callback = lib.ggml_abort_callback(lambda _data: cancel.is_set())
        self._null = lib.ggml_abort_callback()
        self._setter = setter
        setter(self._llm._ctx.ctx, self._callback, None)
        return True

    def __exit__(self, *exc) -> None:
        if self._setter is not None:
            self._setter(self._llm._ctx.ctx, self._null, None)


def stream_tokens(token_ids, *, is_end, to_bytes, stops: tuple[str, ...], max_new: int,
                  cancel: threading.Event, result: GenerationResult, t_start: float) -> Iterator[str]:
    """Turn a backend's token ids into text pieces: UTF-8 across token boundaries, stop
    strings held back until they are ruled out, a cancel check per token, and the counts and
    timings in ``result``. Shared by the llama.cpp and ctransformers backends."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pieces: list[str] = []
    held = ""  # text held back because it may be the start of a stop string
    t_first = None
    n = 0
    result.finish_reason = "length"
    for tok in token_ids:
        if cancel.is_set():
            result.text = "".join(pieces)
            result.completion_tokens = n
            raise GenerationCancelled()
        if is_end(tok):
            result.finish_reason = "stop"
            break
        n += 1
        if t_first is None:
            t_first = time.perf_counter()
        held += decoder.decode(to_bytes(tok))
        emit, held, hit = _split_stops(held, stops)
        if emit:
            pieces.append(emit)
            yield emit
        if hit:
            result.finish_reason = "stop"
            break
        if n >= max_new:
            break
    tail = held + decoder.decode(b"", final=True)
    if tail and not any(s.startswith(tail) for s in stops):
        pieces.append(tail)
        yield tail
    t_end = time.perf_counter()
    result.text = "".join(pieces)
    result.completion_tokens = n
    if t_first is not None:
        result.ttft_ms = (t_first - t_start) * 1000
        if n > 1 and t_end > t_first:
            result.tokens_per_s = (n - 1) / (t_end - t_first)


def _split_stops(text: str, stops: tuple[str, ...]) -> tuple[str, str, bool]:
    """Split ``text`` into (safe to emit, held back, stop found)."""
    if not stops:
        return text, "", False
    for s in stops:
        i = text.find(s)
        if i >= 0:
            return text[:i], "", True
    # Hold back the longest suffix that is a prefix of some stop string.
    keep = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                keep = max(keep, k)
                break
    return (text[:-keep], text[-keep:], False) if keep else (text, "", False)
