"""The GGUF reader on the real default model and on a zoo of broken and hostile files."""

from __future__ import annotations

import os
import pickle
import struct
import time
import tracemalloc

import pytest

from engine import gguf, models
from tests.unit.engine.gguf_writer import GGUFWriter, tiny_llama


def test_default_model_matches_what_llama_cpp_reports():
    # llama.cpp on this file: arch llama, n_layer 30, n_ctx_train 8192, n_embd 576,
    # n_head 9, n_head_kv 3, n_vocab 49152, n_params 134515008, model size 96576768 bytes.
    info = gguf.inspect(models.default_model_path())
    assert info.architecture == "llama"
    assert info.block_count == 30 and len(info.layer_bytes) == 30
    assert info.context_length == 8192
    assert info.embedding_length == 576
    assert (info.head_count, info.head_count_kv) == (9, 3)
    assert info.vocab_size == 49152
    assert info.n_params == 134_515_008
    assert info.tensor_bytes == 96_576_768
    assert info.file_type == "Q4_1"
    assert info.has_chat_template
    assert sum(info.layer_bytes) + info.other_bytes == info.tensor_bytes
    assert len(set(info.layer_bytes)) == 1  # identical blocks
    # tied embeddings: the output projection is token_embd (Q8_0, 49152 x 576)
    assert info.output_bytes == 49152 * 576 // 32 * 34


def test_default_model_keeps_only_the_length_of_its_vocabulary():
    g = gguf.read_gguf(models.default_model_path())
    assert g.metadata["tokenizer.ggml.tokens"] == gguf.ArrayInfo("string", 49152)
    assert g.metadata["tokenizer.ggml.merges"] == gguf.ArrayInfo("string", 48900)
    assert g.metadata["general.languages"] == ["en"]
    assert g.data_offset % g.alignment == 0


def test_native_ggml_agrees_on_type_sizes():
    """Our block table against ggml's own, where the library exposes it."""
    try:
        import ctypes

        from llama_cpp import llama_cpp as lib
        blck, tsize = lib._lib.ggml_blck_size, lib._lib.ggml_type_size
    except (ImportError, AttributeError):
        pytest.skip("ggml type traits are not exported by this llama.cpp build")
    blck.argtypes = tsize.argtypes = [ctypes.c_int]
    blck.restype = ctypes.c_int64
    tsize.restype = ctypes.c_size_t
    for tid, (name, block, size) in gguf.GGML_TYPES.items():
        assert (blck(tid), tsize(tid)) == (block, size), name


def test_tiny_model_summary(tmp_path):
    info = gguf.inspect(tiny_llama(n_layers=3).write(tmp_path / "tiny.gguf"))
    assert (info.architecture, info.name, info.file_type) == ("llama", "Tiny Test Llama", "F16")
    assert info.block_count == 3 and info.vocab_size == 32 and info.context_length == 256
    per_layer = 64 * 4 + 64 * 64 * 2 + 64 * 128 * 2
    assert info.layer_bytes == [per_layer] * 3
    assert info.other_bytes == 64 * 32 * 2 * 2 + 64 * 4
    assert info.output_bytes == 64 * 32 * 2
    assert gguf.ModelInfo.from_dict(info.to_dict()) == info


def test_every_value_type_is_read(tmp_path):
    w = GGUFWriter()
    for vtype, value in [("u8", 250), ("i8", -5), ("u16", 65000), ("i16", -300), ("u32", 7), ("i32", -7),
                         ("f32", 0.5), ("bool", True), ("str", "héllo"), ("u64", 2**40), ("i64", -2**40),
                         ("f64", 0.25), ("arr:i32", [1, 2, 3]), ("arr:str", ["a", "b"])]:
        w.add(f"test.{vtype}", vtype, value)
    g = gguf.read_gguf(w.write(tmp_path / "values.gguf"))
    assert g.metadata["test.u8"] == 250 and g.metadata["test.i64"] == -2**40
    assert g.metadata["test.str"] == "héllo" and g.metadata["test.bool"] is True
    assert g.metadata["test.arr:i32"] == [1, 2, 3] and g.metadata["test.arr:str"] == ["a", "b"]
    assert g.tensors == []


def _kv_header(n_kv: int, n_tensors: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, n_kv)


def _cut(data: bytes, at: int) -> bytes:
    return data[:at]


def _zoo(tmp_path):
    """(file name, bytes, expected reason, words in the message)."""
    good = tiny_llama(n_layers=2).build()
    w = tiny_llama(n_layers=2)
    header_end = 24
    kv_end = len(b"".join(w.kv)) + header_end
    first_tensor_info = kv_end + 8 + len("token_embd.weight") + 4
    pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n" + b"x" * 2000
    pickled = pickle.dumps({"state_dict": list(range(500))})
    huge_kv = tiny_llama()
    huge_kv.n_kv_override = 2**40
    huge_t = tiny_llama()
    huge_t.n_tensors_override = 2**33
    long_str = _kv_header(1) + struct.pack("<Q", 5) + b"hello" + struct.pack("<IQ", 8, 2**40) + b"x" * 100
    bad_vtype = _kv_header(1) + struct.pack("<Q", 5) + b"hello" + struct.pack("<I", 13) + b"\0" * 100
    bad_items = _kv_header(1) + struct.pack("<Q", 5) + b"hello" + struct.pack("<IIQ", 9, 99, 2) + b"\0" * 100
    big_array = _kv_header(1) + struct.pack("<Q", 5) + b"hello" + struct.pack("<IIQ", 9, 4, 2**30) + b"\0" * 100
    return [
        ("empty.gguf", b"", "not_gguf", "only 0 bytes"),
        ("head.gguf", _cut(good, 12), "not_gguf", "only 12 bytes"),
        ("mid-kv.gguf", _cut(good, header_end + 40), "truncated", "truncated"),
        ("mid-kv2.gguf", _cut(good, kv_end - 5), "truncated", "truncated"),
        ("mid-tensor-info.gguf", _cut(good, first_tensor_info + 3), "truncated", "truncated"),
        ("mid-data.gguf", _cut(good, len(good) - 100), "truncated", "past the end"),
        ("random.gguf", os.urandom(64 * 1024), "not_gguf", "not a GGUF model"),
        ("paper.gguf", pdf, "not_gguf", "b'%PDF'"),
        ("weights.bin", pickled, "not_gguf", "not a GGUF model"),
        ("weights.gguf", pickled, "not_gguf", "not a GGUF model"),
        ("legacy.gguf", b"tjgg" + b"\0" * 100, "legacy_ggml", "legacy GGML (ggjt)"),
        ("v99.gguf", b"GGUF" + struct.pack("<IQQ", 99, 0, 0), "bad_version", "version 99"),
        ("many-kv.gguf", huge_kv.build(), "too_many", "corrupt GGUF header"),
        ("many-tensors.gguf", huge_t.build(), "too_many", "corrupt GGUF header"),
        ("long-string.gguf", long_str, "too_long", "1099511627776 bytes"),
        ("bad-value-type.gguf", bad_vtype, "bad_value", "unknown value type 13"),
        ("bad-item-type.gguf", bad_items, "bad_value", "unknown item type 99"),
        ("big-array.gguf", big_array, "too_many", "claims 1073741824 items"),
        ("offset.gguf", tiny_llama().build(offsets={"output.weight": 10**9}), "bad_layout", "output.weight"),
        ("bad-type.gguf", tiny_llama().build(type_override={"blk.0.attn_q.weight": 77}), "bad_type",
         "unknown ggml type 77"),
        ("block.gguf", GGUFWriter().tensor("w", (33, 2), 2).build(), "bad_tensor", "not a multiple"),
        ("template.gguf", GGUFWriter().add("tokenizer.chat_template", "str", "x" * (2 << 20)).build(),
         "too_long", "tokenizer.chat_template"),
        ("dup.gguf", GGUFWriter().add("a", "u8", 1).add("a", "u8", 2).build(), "bad_value", "appears twice"),
        ("align.gguf", GGUFWriter().add("general.alignment", "u32", 24).build(), "bad_value", "power of two"),
    ]


ZOO_NAMES = [z[0] for z in _zoo(None)]


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_bad_files_are_refused_fast_small_and_by_name(tmp_path, name):
    _, content, reason, words = next(z for z in _zoo(tmp_path) if z[0] == name)
    f = tmp_path / name
    f.write_bytes(content)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(gguf.GGUFError) as e:
            gguf.inspect(f)
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert e.value.reason == reason, e.value.message
    assert words in e.value.message
    assert name in e.value.message
    assert e.value.kind == "unsupported_format"
    assert elapsed < 1.0
    assert peak < 32 * 2**20


def test_truncation_anywhere_is_refused(tmp_path):
    """Every cut of a small valid file is refused, never crashes and never passes."""
    good = tiny_llama(n_layers=1, n_embd=32, vocab=8).build()
    f = tmp_path / "cut.gguf"
    for at in range(0, len(good) - 1, 7):
        f.write_bytes(good[:at])
        with pytest.raises(gguf.GGUFError) as e:
            gguf.inspect(f)
        assert e.value.reason in ("truncated", "not_gguf"), (at, e.value.message)
    f.write_bytes(good)
    assert gguf.inspect(f).block_count == 1


def test_missing_and_directory(tmp_path):
    with pytest.raises(gguf.GGUFError) as e:
        gguf.inspect(tmp_path / "gone.gguf")
    assert e.value.kind == "model_not_found" and "gone.gguf" in e.value.message
    with pytest.raises(gguf.GGUFError) as e:
        gguf.inspect(tmp_path)
    assert e.value.kind == "bad_input"


def test_default_model_is_read_quickly_and_without_the_vocabulary():
    path = models.default_model_path()
    t0 = time.perf_counter()
    gguf.inspect(path)
    elapsed = time.perf_counter() - t0
    tracemalloc.start()
    try:
        gguf.inspect(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 8 * 2**20, peak
