"""The vector store: chromadb, embedded under ``data_dir/chroma`` by default, or a Chroma server
when a URL is given (``http://host:port``).

Each Lantern collection is one chroma collection whose metadata records the embedder that
filled it. Opening it with another embedder is refused: mixing vector spaces gives
silently wrong answers. Vectors are computed by us (the template cache), never by chroma.

The built-in store is a cache of the vectors the manifest keeps. When chroma fails on open,
query or write (a damaged segment, a store two processes wrote to), the folder is set aside
(renamed ``chroma.damaged-<time>``, kept for inspection), a new one is filled from the
manifest (``refill``), the person is told once (``notices`` and the log), and the operation is
tried again. A full disk is reported as that, never "repaired" by a rebuild that needs space.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import numpy as np

from engine.protocol import EngineError, ErrorKind
from engine.retrieval.manifest import disk_full, disk_full_message

log = logging.getLogger(__name__)

# Every VectorStore of one folder (the engine has one per thread) learns of a set-aside here.
_LOCK = threading.RLock()   # held while a set-aside store is refilled
_GENERATION: dict[str, int] = {}
# What a set-aside left to say, per folder: the next index run of any thread says it, once.
_NOTICES: dict[str, list[str]] = {}
_SET_ASIDE_AT: dict[str, float] = {}
REBUILD_EVERY_S = 600.0   # at most one rebuild of a folder in this long: then the error is reported


def chroma_name(collection: str) -> str:
    """Chroma allows [a-zA-Z0-9._-], 3-512 chars; a hash keeps different names apart."""
    safe = re.sub(r"[^a-zA-Z0-9._-]", "-", collection)[:40].strip("-._") or "c"
    return f"lantern-{safe}-{hashlib.sha1(collection.encode()).hexdigest()[:8]}"


def _bad_request(e: Exception) -> bool:
    """Errors chroma raises for a request it refuses (duplicate ids, a wrong dimension, too
    big a batch), as opposed to a store it cannot read or write."""
    from chromadb import errors

    return isinstance(e, (ValueError, TypeError, errors.InvalidDimensionException, errors.IDAlreadyExistsError,
                          errors.DuplicateIDError, errors.InvalidArgumentError, errors.InvalidUUIDError,
                          errors.BatchSizeExceededError))


class VectorStore:
    def __init__(self, path: Path | str | None = None, url: str = "",
                 refill: Callable[["VectorStore"], int] | None = None):
        self._path = Path(path) if path else None
        self._url = url
        self._client = None
        self._collections: dict[str, object] = {}
        self._generation = 0
        # Puts the manifest's kept vectors into a new, empty store; returns how many.
        self.refill = refill
        self._refilling = False

    @property
    def where(self) -> str:
        return self._url or str(self._path)

    def take_notices(self) -> list[str]:
        """What happened to this store since the last call (each said once): the index run
        puts it in its summary."""
        with _LOCK:
            return _NOTICES.pop(str(self._path), [])

    def _connect(self):
        if self._client is not None:
            return self._client
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        if self._url:
            try:
                u = urlparse(self._url if "://" in self._url else "http://" + self._url)
                self._client = chromadb.HttpClient(host=u.hostname or "localhost", port=u.port or 8000,
                                                   ssl=u.scheme == "https", settings=settings)
                self._client.heartbeat()
            except Exception as e:
                raise EngineError(ErrorKind.INDEX_IO, f"Cannot open the Chroma server at {self._url} (check that "
                                  f"it runs, or clear the chroma URL setting to use the built-in store): {e}") from None
        else:
            self._path.mkdir(parents=True, exist_ok=True)
            self._client = chromadb.PersistentClient(path=str(self._path), settings=settings)
        return self._client

    # ------------------------------------------------------------------ a damaged store

    def _guarded(self, op: Callable, *args):
        """Run ``op``; on a chroma error, set the built-in store aside, refill a new one from
        the manifest and run ``op`` once more."""
        key = str(self._path)
        for attempt in (0, 1):
            with _LOCK:
                gen = _GENERATION.get(key, 0)
            if gen != self._generation:   # another thread set the folder aside: use the new one
                self._client, self._collections, self._generation = None, {}, gen
            try:
                return op(*args)
            except EngineError:
                raise
            except Exception as e:
                if _bad_request(e):
                    raise   # our request was wrong, the store is fine: a bug, not damage
                if disk_full(e):
                    raise EngineError(ErrorKind.INDEX_IO, disk_full_message(self.where, e)) from None
                if self._url:
                    raise EngineError(ErrorKind.INDEX_IO, f"The Chroma server at {self._url} failed: {e}") from None
                again = time.monotonic() - _SET_ASIDE_AT.get(key, -REBUILD_EVERY_S) < REBUILD_EVERY_S
                if attempt or self._refilling or (again and _GENERATION.get(key, 0) == gen):
                    # Rebuilt and failing still: the cause is not the store's files (a read-only
                    # folder, a broken install); rebuilding at every search would not help.
                    raise EngineError(ErrorKind.INDEX_IO,
                                      f"The vector store at {self._path} fails even after it was rebuilt ({e}). "
                                      f"Check that the folder is writable; manifest.sqlite keeps the index.") from None
                with _LOCK:
                    if _GENERATION.get(key, 0) == gen:
                        try:
                            self._set_aside(e)
                        except OSError as moved:
                            raise EngineError(ErrorKind.INDEX_IO,
                                              f"The vector store at {self._path} fails ({e}) and cannot be set aside "
                                              f"to rebuild it ({moved.strerror or moved}). Check that its folder "
                                              f"is writable.") from None
                self._generation = -1   # reconnect, whoever set it aside
        raise AssertionError("unreachable")

    def _set_aside(self, error: Exception) -> None:
        """(Under _LOCK.) Rename the folder, forget chroma's cached client of it, start a new one
        and refill it from the manifest."""
        from chromadb.api.shared_system_client import SharedSystemClient

        key = str(self._path)
        system = SharedSystemClient._identifier_to_system.pop(key, None)
        SharedSystemClient._identifier_to_refcount.pop(key, None)
        if system is not None:
            try:
                system.stop()
            except Exception:
                log.debug("stopping the damaged chroma client failed", exc_info=True)
        self._client, self._collections = None, {}
        aside = None
        if self._path.exists():
            aside = self._path.with_name(f"{self._path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            n = 1
            while aside.exists():
                n += 1
                aside = aside.with_name(f"{self._path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
            os.rename(self._path, aside)
        _GENERATION[key] = _GENERATION.get(key, 0) + 1
        _SET_ASIDE_AT[key] = time.monotonic()
        self._generation = _GENERATION[key]
        log.warning("the vector store at %s failed (%s: %s); set aside as %s, rebuilding it from the manifest",
                    self._path, type(error).__name__, error, aside)
        restored = 0
        if self.refill is not None:
            self._refilling = True
            try:
                restored = self.refill(self)
            finally:
                self._refilling = False
        notice = (
            f"The vector store was damaged ({type(error).__name__}: {str(error)[:200]}). It was set aside as "
            f"{aside.name if aside else 'nothing (it was gone)'} for inspection and rebuilt from the index "
            f"({restored} vectors put back); search goes on as before.")
        _NOTICES.setdefault(key, []).append(notice)
        log.warning("%s", notice)

    def collection(self, name: str, embedder_config: dict):
        return self._guarded(self._collection, name, embedder_config)

    def _collection(self, name: str, embedder_config: dict):
        if name in self._collections:
            return self._collections[name]
        client = self._connect()
        meta = {"lantern_collection": name, "embedder": embedder_config["name"],
                "dim": int(embedder_config["dim"]), "normalize": bool(embedder_config["normalize"]),
                "hnsw:space": "cosine"}
        col = client.get_or_create_collection(chroma_name(name), metadata=meta)
        have = col.metadata or {}
        if have.get("embedder") != meta["embedder"] or int(have.get("dim", 0)) != meta["dim"]:
            raise EngineError(ErrorKind.BAD_INPUT,
                              f"Collection '{name}' was built with the embedder {have.get('embedder')} "
                              f"({have.get('dim')} dimensions), not {meta['embedder']} ({meta['dim']}). "
                              f"Index into a new collection, or delete this one and re-index.")
        self._collections[name] = col
        return col

    def upsert(self, name: str, cfg: dict, ids: list[str], vectors: np.ndarray) -> None:
        if ids:
            self._guarded(lambda: self._collection(name, cfg).upsert(ids=ids, embeddings=vectors))

    def delete(self, name: str, cfg: dict, ids: list[str]) -> None:
        if ids:
            self._guarded(lambda: self._collection(name, cfg).delete(ids=ids))

    def vectors(self, name: str, cfg: dict, ids: list[str]) -> dict[str, np.ndarray]:
        """The stored vectors of ``ids`` (those the store has)."""
        if not ids:
            return {}
        got = self._guarded(lambda: self._collection(name, cfg).get(ids=ids, include=["embeddings"]))
        return {cid: np.asarray(v, dtype=np.float32) for cid, v in zip(got["ids"], got["embeddings"])}

    def count(self, name: str, cfg: dict) -> int:
        return self._guarded(lambda: self._collection(name, cfg).count())

    def query(self, name: str, cfg: dict, vector: np.ndarray, n: int,
              ids: list[str] | None = None) -> list[tuple[str, float]]:
        """(chunk id, cosine distance), nearest first; ``ids`` restricts the search (filters)."""
        self.collection(name, cfg)
        if n <= 0 or (ids is not None and not ids):
            return []
        # No count() first: it cost 20 ms a query at 140k vectors, and chroma (1.x) returns what
        # it has when asked for more.
        kwargs = {"query_embeddings": [vector.tolist()], "n_results": n, "include": ["distances"]}
        if ids is not None:
            kwargs["ids"] = ids
            kwargs["n_results"] = min(n, len(ids))
        res = self._guarded(lambda: self._collection(name, cfg).query(**kwargs))
        return list(zip(res["ids"][0], res["distances"][0]))
