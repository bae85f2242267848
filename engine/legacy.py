"""Legacy GGML models (the formats before GGUF) through ctransformers.

Clearly second-class: these files carry no chat template and no reliable architecture name,
so the family is recognised from the tensor names in the file (or a hint in the file name),
the ChatML fallback template is used, and prefill cannot be interrupted (ctransformers has no
abort hook; cancel is checked between tokens). Loaded only in the engine process, like every
native library.

The backend offers the same surface as ``engine.llm.LlamaBackend`` (load, stream, model,
last_result, close) so the service can hold either.
"""

from __future__ import annotations

import logging
import random
import struct
import threading
import time
from pathlib import Path
from typing import Iterator

from engine import chat_template, context
from engine.llm import GenerationCancelled, GenerationResult, LoadedModel, default_threads, stream_tokens
from engine.protocol import EngineError, ErrorKind, Sampling

log = logging.getLogger(__name__)

LEGACY_MAGICS = {b"lmgg": "ggml", b"fmgg": "ggmf", b"tjgg": "ggjt"}

# Distinctive tensor-name fragments of each family, as the ggml converters wrote them.
# Order matters: more specific markers first.
_FAMILY_MARKERS: list[tuple[bytes, str]] = [
    (b"gpt_neox.", "gpt_neox"),
    (b"transformer.word_embeddings", "falcon"),
    (b"transformer.blocks.", "mpt"),
    (b"transformer.h.0.attn.q_proj", "gptj"),
    (b"model/h0/attn/c_attn", "gpt2"),
    (b"layers.0.attention.wq", "llama"),
]
_NAME_HINTS = [("starcoder", "starcoder"), ("santacoder", "starcoder"), ("gpt-j", "gptj"), ("gptj", "gptj"),
               ("neox", "gpt_neox"), ("pythia", "gpt_neox"), ("dolly", "dolly-v2"), ("mpt", "mpt"),
               ("falcon", "falcon"), ("gpt2", "gpt2"), ("gpt-2", "gpt2"), ("replit", "replit"), ("llama", "llama")]
SCAN_BYTES = 32 * 1024 * 1024  # vocabularies come first; tensor names follow within this


def legacy_format(path: str | Path) -> str | None:
    """'ggml', 'ggmf' or 'ggjt' when ``path`` starts with a legacy magic, else None."""
    try:
        with open(path, "rb") as f:
            return LEGACY_MAGICS.get(f.read(4))
    except OSError:
        return None


def detect_family(path: Path) -> str:
    """The ctransformers model type of a legacy file, or an actionable error."""
    fmt = legacy_format(path)
    if fmt in ("ggmf", "ggjt"):
        # Only llama.cpp's own converters wrote these, and llama.cpp reads their GGUF successors.
        raise EngineError(ErrorKind.UNSUPPORTED_FORMAT,
                          f"'{path.name}' is a legacy LLaMA file ({fmt}); convert it to GGUF with llama.cpp's "
                          "convert script or download the GGUF version.")
    name = path.name.lower()
    with open(path, "rb") as f:
        head = f.read(SCAN_BYTES)
    for marker, family in _FAMILY_MARKERS:
        if marker in head:
            if family == "gpt2":
                # StarCoder files reuse GPT-2's tensor names; their vocabulary gives them away.
                n_vocab = struct.unpack("<i", head[4:8])[0] if len(head) >= 8 else 0
                if n_vocab == 49152 or any(h in name for h in ("starcoder", "santacoder")):
                    return "starcoder"
            return family
    for hint, family in _NAME_HINTS:
        if hint in name:
            return family
    raise EngineError(
        ErrorKind.UNSUPPORTED_FORMAT,
        f"'{path.name}' is a legacy GGML model of a family Lantern could not recognise "
        "(GPT-2, GPT-J, GPT-NeoX, MPT, Falcon, StarCoder and LLaMA are supported). "
        "Use a GGUF version of the model.",
    )


# Bytes per block and elements per block of the ggml tensor types legacy files used
# (current block layouts; files from before ggml's quantization version 2 fail the walk).
_TYPE_SIZES = {0: (4, 1), 1: (2, 1), 2: (18, 32), 3: (20, 32), 6: (22, 32), 7: (24, 32), 8: (34, 32)}
_MAX_NAME = 512
_MAX_TOKEN = 1024


def validate_ggml(path: Path) -> int:
    """Walk a legacy GGML file's structure without loading it; return its tensor count.

    ctransformers reads tensors until end-of-file and leaves whatever is missing
    uninitialised, so a truncated download "loads" and produces garbage. Here the
    hyper-parameters, the vocabulary and every tensor header must line up exactly with the
    file's size. The hyper-parameter block differs by family (6 to 8 words, n_vocab first
    or fifth), so each known layout is tried.
    """
    size = path.stat().st_size
    problems = []
    for n_words, vocab_index in ((6, 0), (7, 0), (8, 0), (8, 4)):
        try:
            return _walk(path, size, n_words, vocab_index)
        except ValueError as e:
            problems.append(str(e))
    raise EngineError(ErrorKind.UNSUPPORTED_FORMAT,
                      f"'{path.name}' is not a complete legacy GGML model ({problems[0]}). "
                      "The file may be truncated or damaged; download it again.")


def _walk(path: Path, size: int, n_words: int, vocab_index: int) -> int:
    f = open(path, "rb")
    try:
        def read(n: int) -> bytes:
            b = f.read(n)
            if len(b) != n:
                raise ValueError(f"it ends at byte {f.tell()} in the middle of a record")
            return b
        read(4)
        hparams = struct.unpack(f"<{n_words}i", read(4 * n_words))
        n_vocab = hparams[vocab_index]
        (count,) = struct.unpack("<i", read(4))
        if count != n_vocab or not 0 < n_vocab < 1_000_000:
            raise ValueError(f"vocabulary size {count} does not match the header's {n_vocab}")
        for _ in range(n_vocab):
            (n,) = struct.unpack("<I", read(4))
            if n > _MAX_TOKEN:
                raise ValueError(f"a vocabulary entry claims {n} bytes")
            f.seek(n, 1)
        tensors = 0
        while f.tell() < size:
            n_dims, name_len, ttype = struct.unpack("<3i", read(12))
            if not 1 <= n_dims <= 4 or not 0 < name_len <= _MAX_NAME or ttype not in _TYPE_SIZES:
                raise ValueError(f"tensor {tensors} has an impossible header ({n_dims} dims, type {ttype})")
            dims = struct.unpack(f"<{n_dims}i", read(4 * n_dims))
            if any(d <= 0 for d in dims):
                raise ValueError(f"tensor {tensors} has a non-positive dimension")
            read(name_len)
            nbytes, block = _TYPE_SIZES[ttype]
            elements = 1
            for d in dims:
                elements *= d
            if elements % block:
                raise ValueError(f"tensor {tensors} does not fill whole blocks")
            data_bytes = elements // block * nbytes
            if f.tell() + data_bytes > size:
                raise ValueError(f"tensor {tensors} needs {data_bytes} bytes but the file ends sooner")
            f.seek(data_bytes, 1)
            tensors += 1
        if tensors == 0:
            raise ValueError("it has no tensors")
        return tensors
    except struct.error as e:
        raise ValueError(str(e)) from None
    finally:
        f.close()


def _cpu_lib() -> str | None:
    # ctransformers picks its own build by CPU features; "avx2" where we know it is safe.
    try:
        with open("/proc/cpuinfo") as f:
            return "avx2" if " avx2" in f.read() else "avx"
    except OSError:
        return None


class CTransformersBackend:
    kind = "ggml"

    def __init__(self):
        self._llm = None
        self.model: LoadedModel | None = None
        self.last_result = GenerationResult()
        self._threads = 1

    def load(self, path, n_ctx: int = 2048, n_gpu_layers: int = 0, n_threads: int = 0) -> LoadedModel:
        p = Path(path)
        family = detect_family(p)
        validate_ggml(p)
        try:
            from ctransformers import LLM, Config
        except ImportError:
            raise EngineError(ErrorKind.UNSUPPORTED_FORMAT,
                              f"'{p.name}' is a legacy GGML {family} model, which needs Lantern's optional "
                              "'legacy' extra (the ctransformers package), and it is not installed. Install "
                              "it with `pip install 'lantern[legacy]'` (a source checkout's `make run` "
                              "installs it), or use a GGUF version of the model.") from None
        self._threads = n_threads or default_threads()
        t0 = time.perf_counter()
        try:
            llm = LLM(str(p), model_type=family,
                      config=Config(context_length=n_ctx, gpu_layers=n_gpu_layers, threads=self._threads,
                                    batch_size=8),
                      lib=_cpu_lib())
        except (OSError, RuntimeError, ValueError) as e:
            raise EngineError(ErrorKind.UNSUPPORTED_FORMAT,
                              f"ctransformers could not load '{p.name}' as {family}: {e}") from None
        load_ms = (time.perf_counter() - t0) * 1000
        fmt = chat_template.make_formatter(None)
        fmt.note = f"'{p.name}' is a legacy GGML {family} model without a chat template; using ChatML."
        if self._llm is not None:
            self.close()
        self._llm = llm
        self.model = LoadedModel(path=p, name=f"{p.stem} (legacy {family})", n_ctx=llm.context_length,
                                 n_ctx_train=llm.context_length, size_bytes=p.stat().st_size,
                                 formatter=fmt, load_ms=load_ms)
        return self.model

    def close(self) -> None:
        self._llm = None  # ctransformers frees the model when the object goes
        self.model = None

    def stream(self, messages: list[dict], sampling: Sampling, cancel: threading.Event,
               on_fitted=None, fit=None, no_lead: str = "") -> Iterator[str]:
        # ``no_lead`` is not supported here (ctransformers has no logits hook); the markers-only
        # fallback of a sourced answer still applies.
        if self._llm is None or self.model is None:
            raise EngineError(ErrorKind.NO_MODEL, "No model is loaded. Choose a model first.")
        sampling.validate()
        llm, model = self._llm, self.model
        t_start = time.perf_counter()
        fitted = (fit or context.fit_messages)(messages, model.n_ctx, sampling.max_tokens, model.formatter.render,
                                      llm.tokenize)
        if on_fitted is not None:
            on_fitted(fitted)
        result = GenerationResult(prompt_tokens=fitted.n_tokens, dropped_messages=fitted.dropped_messages)
        self.last_result = result
        if cancel.is_set():
            raise GenerationCancelled()
        seed = sampling.seed if sampling.seed >= 0 else random.randrange(2**31)
        max_new = min(sampling.max_tokens, model.n_ctx - fitted.n_tokens)
        # ctransformers treats temperature 0 as "no sampling" only through top_k=1.
        greedy = sampling.temperature <= 0
        yield from stream_tokens(
            llm.generate(fitted.tokens, top_k=1 if greedy else sampling.top_k or 40,
                         top_p=sampling.top_p, temperature=max(sampling.temperature, 1e-5),
                         repetition_penalty=sampling.repeat_penalty, seed=seed, threads=self._threads,
                         reset=True),
            is_end=llm.is_eos_token,
            to_bytes=lambda tok: llm.detokenize([tok], decode=False),
            stops=model.formatter.stop_strings + tuple(sampling.stop), max_new=max_new, cancel=cancel, result=result,
            t_start=t_start,
        )
