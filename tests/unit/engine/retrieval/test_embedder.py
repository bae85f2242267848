"""The embedder: the int8 graph against the float model on real sentences, rows kept in order,
the graph made, checked and refused, and the indexer's embedding step (each text once, slices)."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest

from engine.protocol import EngineError
from engine.retrieval import embedder as emb_mod
from engine.retrieval.embedder import MiniLMEmbedder
from engine.retrieval.indexer import EMBED_SLICE, EMBED_SLICE_CHARS, embed_slices

# Passages from the R manuals (R-exts, R-admin) and a few log lines; a question for each,
# worded as a reader would, not with the passage's words.
PASSAGES = [
    "Packages can register the native routines they contain in an initialization function "
    "R_init_pkg called when the shared object is loaded.",
    "The DESCRIPTION file contains basic information about the package in Debian Control File format.",
    "R CMD check runs a series of checks on a package source tree and reports problems found.",
    "To build R from source you need a C compiler, a Fortran compiler and the readline library.",
    "sshd[411]: Failed password for invalid user admin from 203.0.113.9 port 52144 ssh2",
    "kernel: Out of memory: Killed process 4312 (java) total-vm:8123456kB, anon-rss:2048000kB",
]
QUESTIONS = [
    "how does a package make its C routines known to R when its shared library loads",
    "which file holds a package's name, version and maintainer",
    "which command checks a package's source tree and reports the problems it finds",
    "what tools do I need to compile R myself",
    "someone tried to log in over ssh with a wrong password",
    "a process was killed because the machine ran out of RAM",
]


@pytest.fixture(scope="module")
def float_model():
    return MiniLMEmbedder(backend="torch")


def test_the_default_embedder_is_the_int8_graph_with_the_float_models_ranking(embedder, float_model):
    assert embedder.embed_documents(["x"]).shape == (1, 384)
    assert embedder.backend == "onnx-int8"
    p8, pf = embedder.embed_documents(PASSAGES), float_model.embed_documents(PASSAGES)
    q8, qf = embedder.embed_documents(QUESTIONS), float_model.embed_documents(QUESTIONS)
    assert np.allclose(np.linalg.norm(p8, axis=1), 1.0, atol=1e-4)
    # The same vector, nearly: cosine to the float model's vector of the same text.
    assert np.min(np.sum(p8 * pf, axis=1)) > 0.97
    assert np.min(np.sum(q8 * qf, axis=1)) > 0.97
    s8, sf = q8 @ p8.T, qf @ pf.T
    # Each question finds its passage first with both, and the scores agree within a few hundredths.
    assert list(np.argmax(s8, axis=1)) == list(range(len(QUESTIONS)))
    assert list(np.argmax(sf, axis=1)) == list(range(len(QUESTIONS)))
    assert np.max(np.abs(s8 - sf)) < 0.06
    # A query is embedded like a document (MiniLM has no query prefix).
    assert np.allclose(embedder.embed_query(QUESTIONS[0]), q8[0], atol=1e-5)


def test_rows_come_back_in_the_order_of_the_texts(embedder):
    # Texts are sorted by length inside; each row must still be its own text's, and a text's
    # vector does not depend on the texts embedded with it.
    texts = PASSAGES + QUESTIONS + ["short", "a much longer line " * 40, ""]
    alone = np.stack([embedder.embed_query(t) for t in texts])
    order = list(range(len(texts)))
    random.Random(7).shuffle(order)
    together = embedder.embed_documents([texts[i] for i in order])
    assert np.allclose(together, alone[order], atol=1e-5)


def test_long_texts_are_cut_at_what_the_model_reads(embedder):
    base = "The DESCRIPTION file contains basic information about the package. " * 30   # > 256 word pieces
    a, b = embedder.embed_documents([base, base + " Completely different words about tape cartridges."])
    assert float(a @ b) > 0.999   # the tail past 256 word pieces is not read


def test_an_unknown_backend_is_refused_with_the_setting_named(monkeypatch):
    monkeypatch.setenv(emb_mod.ENV_BACKEND, "gpu-fp4")
    with pytest.raises(EngineError, match="LANTERN_EMBED_BACKEND"):
        MiniLMEmbedder()


@pytest.mark.slow
def test_a_graph_that_strays_from_the_float_model_is_refused_and_torch_runs(tmp_path, monkeypatch, caplog):
    # A fresh cache: the graph is made here (export, quantization, check); the check is made
    # impossible to pass, so nothing is kept and the float model answers.
    monkeypatch.setenv(emb_mod.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.setattr(emb_mod, "MIN_COSINE", 1.01)
    e = MiniLMEmbedder()
    with caplog.at_level(logging.WARNING, logger="engine.retrieval.embedder"):
        v = e.embed_query("the backup job failed")
    assert e.backend == "torch"
    assert "strays from the float model" in caplog.text
    assert not list((tmp_path / "cache").glob("*.onnx"))   # neither the graph nor a half-written file
    assert v.shape == (384,)
    # With the check passable the same cache gets its graph, and the next embedder loads it.
    monkeypatch.setattr(emb_mod, "MIN_COSINE", 0.97)
    again = MiniLMEmbedder()
    w = again.embed_query("the backup job failed")
    assert again.backend == "onnx-int8"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [emb_mod.graph_path(emb_mod._packaged_model_path()).name]
    assert float(v @ w) > 0.97


def test_embed_slices_group_like_lengths_and_bound_each_call():
    rng = random.Random(3)
    texts = [("w" * rng.randint(5, 1200)) + str(i) for i in range(300)]
    parts = embed_slices(texts)
    assert sorted(t for p in parts for t in p) == sorted(texts)         # each text once
    assert all(len(p) <= EMBED_SLICE for p in parts)
    assert all(sum(map(len, p)) <= EMBED_SLICE_CHARS or len(p) == 1 for p in parts)
    flat = [len(t) for p in parts for t in p]
    assert flat == sorted(flat)
    assert embed_slices([]) == []


class CountingEmbedder:
    """The real embedder, with a record of every text it was asked to embed (a narrow seam)."""

    def __init__(self, inner):
        self.inner, self.config, self.calls = inner, inner.config, []

    def embed_documents(self, texts):
        self.calls.append(list(texts))
        return self.inner.embed_documents(texts)

    def embed_query(self, text):
        return self.inner.embed_query(text)


def test_the_indexer_embeds_each_document_text_once(tmp_path, embedder):
    fpdf = pytest.importorskip("fpdf", reason="fpdf2 (a dev dependency) writes the test PDF")
    from engine.retrieval.indexer import Indexer
    from engine.retrieval.manifest import Manifest
    from engine.retrieval.vectorstore import VectorStore

    doc = fpdf.FPDF()
    doc.set_font("Helvetica", size=11)
    for page in range(6):
        doc.add_page()
        for i in range(30):
            doc.cell(0, 6, f"Page {page} paragraph {i}: {PASSAGES[(page + i) % len(PASSAGES)][:70]}",
                     new_x="LMARGIN", new_y="NEXT")
    docs = tmp_path / "docs"
    docs.mkdir()
    doc.output(str(docs / "manual.pdf"))
    data = tmp_path / "data"
    manifest, store = Manifest(data / "manifest.sqlite"), VectorStore(data / "chroma")
    counting = CountingEmbedder(embedder)
    try:
        report = Indexer(manifest, store, counting).index([str(docs)])
        sent = [t for call in counting.calls for t in call]
        distinct = {t for (texts,) in manifest.db.execute("SELECT embed_texts FROM chunks")
                    for t in __import__("json").loads(texts)}
        assert report.chunks_added > 6
        assert len(sent) == len(set(sent)) == len(distinct) == report.templates_embedded
        assert store.count("default", embedder.config) == manifest.chunk_count("default") == report.embedded
        # Indexing it again embeds nothing; neither does the same text in a new file (the cache).
        counting.calls.clear()
        Indexer(manifest, store, counting).index([str(docs)])
        (docs / "copy.pdf").write_bytes((docs / "manual.pdf").read_bytes())
        Indexer(manifest, store, counting).index([str(docs)])
        assert counting.calls == []
    finally:
        manifest.close()
