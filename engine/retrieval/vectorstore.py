"""The vector store: chromadb, embedded under ``data_dir/chroma`` by default, or a Chroma server
when a URL is given (``http://host:port``).

Each Lantern collection is one chroma collection whose metadata records the embedder that
filled it. Opening it with another embedder is refused: mixing vector spaces gives
silently wrong answers. Vectors are computed by us (the template cache), never by chroma.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from engine.protocol import EngineError, ErrorKind

log = logging.getLogger(__name__)


def chroma_name(collection: str) -> str:
    """Chroma allows [a-zA-Z0-9._-], 3-512 chars; a hash keeps different names apart."""
    safe = re.sub(r"[^a-zA-Z0-9._-]", "-", collection)[:40].strip("-._") or "c"
    return f"lantern-{safe}-{hashlib.sha1(collection.encode()).hexdigest()[:8]}"


class VectorStore:
    def __init__(self, path: Path | str | None = None, url: str = ""):
        self._path = Path(path) if path else None
        self._url = url
        self._client = None
        self._collections: dict[str, object] = {}

    @property
    def where(self) -> str:
        return self._url or str(self._path)

    def _connect(self):
        if self._client is not None:
            return self._client
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False, allow_reset=False)
        try:
            if self._url:
                u = urlparse(self._url if "://" in self._url else "http://" + self._url)
                self._client = chromadb.HttpClient(host=u.hostname or "localhost", port=u.port or 8000,
                                                   ssl=u.scheme == "https", settings=settings)
                self._client.heartbeat()
            else:
                self._path.mkdir(parents=True, exist_ok=True)
                self._client = chromadb.PersistentClient(path=str(self._path), settings=settings)
        except EngineError:
            raise
        except Exception as e:
            what = (f"the Chroma server at {self._url} (check that it runs, or clear the chroma URL setting "
                    f"to use the built-in store)") if self._url else (
                f"the vector store at {self._path} (check the folder is writable; it can be deleted and "
                f"rebuilt from manifest.sqlite)")
            raise EngineError(ErrorKind.INDEX_IO, f"Cannot open {what}: {e}") from None
        return self._client

    def collection(self, name: str, embedder_config: dict):
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
            self.collection(name, cfg).upsert(ids=ids, embeddings=vectors)

    def delete(self, name: str, cfg: dict, ids: list[str]) -> None:
        if ids:
            self.collection(name, cfg).delete(ids=ids)

    def vectors(self, name: str, cfg: dict, ids: list[str]) -> dict[str, np.ndarray]:
        """The stored vectors of ``ids`` (those the store has)."""
        if not ids:
            return {}
        got = self.collection(name, cfg).get(ids=ids, include=["embeddings"])
        return {cid: np.asarray(v, dtype=np.float32) for cid, v in zip(got["ids"], got["embeddings"])}

    def count(self, name: str, cfg: dict) -> int:
        return self.collection(name, cfg).count()

    def query(self, name: str, cfg: dict, vector: np.ndarray, n: int,
              ids: list[str] | None = None) -> list[tuple[str, float]]:
        """(chunk id, cosine distance), nearest first; ``ids`` restricts the search (filters)."""
        col = self.collection(name, cfg)
        if n <= 0 or (ids is not None and not ids):
            return []
        # No count() first: it cost 20 ms a query at 140k vectors, and chroma (1.x) returns what
        # it has when asked for more.
        kwargs = {"query_embeddings": [vector.tolist()], "n_results": n, "include": ["distances"]}
        if ids is not None:
            kwargs["ids"] = ids
            kwargs["n_results"] = min(n, len(ids))
        res = col.query(**kwargs)
        return list(zip(res["ids"][0], res["distances"][0]))
