"""Fixtures for retrieval tests: one real embedder for the run, a fresh index per test."""

from __future__ import annotations

import pytest

from engine.retrieval.embedder import MiniLMEmbedder
from engine.retrieval.indexer import Indexer
from engine.retrieval.manifest import Manifest
from engine.retrieval.retriever import Retriever
from engine.retrieval.vectorstore import VectorStore


@pytest.fixture(scope="session")
def embedder():
    # Loading takes seconds (torch import); every test shares the one model.
    return MiniLMEmbedder()


class Index:
    def __init__(self, data_dir, embedder):
        self.manifest = Manifest(data_dir / "manifest.sqlite")
        self.store = VectorStore(data_dir / "chroma")
        self.embedder = embedder
        self.retriever = Retriever(self.manifest, self.store, embedder)

    def index(self, *paths, collection="default"):
        return Indexer(self.manifest, self.store, self.embedder).index([str(p) for p in paths], collection)

    def search(self, q, k=5, **filters):
        from engine.retrieval.retriever import Filters
        return self.retriever.search(q, k, Filters(**filters))

    def chunks(self, collection="default"):
        return self.manifest.db.execute(
            "SELECT id, path, line_start, line_end, embedded FROM chunks WHERE collection=? ORDER BY path, line_start",
            (collection,)).fetchall()

    def vector_count(self, collection="default"):
        return self.store.count(collection, self.embedder.config)


@pytest.fixture
def index(tmp_path, embedder):
    idx = Index(tmp_path / "data", embedder)
    yield idx
    idx.manifest.close()
