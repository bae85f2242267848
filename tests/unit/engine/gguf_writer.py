"""A tiny GGUF writer for tests: builds valid files, and broken ones on purpose.

Only what the tests need: metadata of every value type, tensor infos, tensor data filled
with zeros, and raw overrides (counts, types, offsets) to make hostile files.
"""

from __future__ import annotations

import struct
from pathlib import Path

TYPE_IDS = {"u8": 0, "i8": 1, "u16": 2, "i16": 3, "u32": 4, "i32": 5, "f32": 6, "bool": 7,
            "str": 8, "arr": 9, "u64": 10, "i64": 11, "f64": 12}
FORMATS = {"u8": "<B", "i8": "<b", "u16": "<H", "i16": "<h", "u32": "<I", "i32": "<i", "f32": "<f",
           "bool": "<?", "u64": "<Q", "i64": "<q", "f64": "<d"}
# ggml type id -> (block elements, block bytes), the few the tests use
GGML = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 8: (32, 34), 12: (256, 144), 30: (1, 2)}


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def _value(vtype: str, value) -> bytes:
    if vtype == "str":
        return _str(value)
    if vtype.startswith("arr:"):
        item = vtype[4:]
        body = b"".join(_value(item, v) for v in value)
        return struct.pack("<IQ", TYPE_IDS[item], len(value)) + body
    return struct.pack(FORMATS[vtype], value)


class GGUFWriter:
    def __init__(self, version: int = 3, alignment: int = 32):
        self.version = version
        self.alignment = alignment
        self.kv: list[bytes] = []
        self.tensors: list[tuple[str, tuple[int, ...], int]] = []
        self.n_kv_override: int | None = None
        self.n_tensors_override: int | None = None

    def add(self, key: str, vtype: str, value) -> "GGUFWriter":
        tid = TYPE_IDS["arr"] if vtype.startswith("arr:") else TYPE_IDS[vtype]
        self.kv.append(_str(key) + struct.pack("<I", tid) + _value(vtype, value))
        return self

    def add_raw(self, raw: bytes) -> "GGUFWriter":
        self.kv.append(raw)
        return self

    def tensor(self, name: str, dims: tuple[int, ...], ggml_type: int = 0) -> "GGUFWriter":
        self.tensors.append((name, dims, ggml_type))
        return self

    @staticmethod
    def nbytes(dims, ggml_type: int) -> int:
        n = 1
        for d in dims:
            n *= d
        block, size = GGML[ggml_type]
        return n // block * size

    def build(self, offsets: dict[str, int] | None = None, type_override: dict[str, int] | None = None) -> bytes:
        offsets = offsets or {}
        type_override = type_override or {}
        n_kv = len(self.kv) if self.n_kv_override is None else self.n_kv_override
        n_t = len(self.tensors) if self.n_tensors_override is None else self.n_tensors_override
        out = bytearray(b"GGUF" + struct.pack("<IQQ", self.version, n_t, n_kv))
        for kv in self.kv:
            out += kv
        off = 0
        sizes = []
        for name, dims, gtype in self.tensors:
            size = self.nbytes(dims, gtype)
            out += _str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
            out += struct.pack("<IQ", type_override.get(name, gtype), offsets.get(name, off))
            sizes.append(size)
            off += size + (-size % self.alignment)
        out += b"\0" * (-len(out) % self.alignment)
        for size in sizes:
            out += b"\0" * (size + (-size % self.alignment))
        return bytes(out)

    def write(self, path: Path, **kw) -> Path:
        path.write_bytes(self.build(**kw))
        return path


def tiny_llama(n_layers: int = 2, n_embd: int = 64, vocab: int = 32, ctx: int = 256) -> GGUFWriter:
    """A small but complete llama-shaped model description (weights are zeros)."""
    w = GGUFWriter()
    w.add("general.architecture", "str", "llama")
    w.add("general.name", "str", "Tiny Test Llama")
    w.add("general.file_type", "u32", 1)
    w.add("llama.block_count", "u32", n_layers)
    w.add("llama.context_length", "u32", ctx)
    w.add("llama.embedding_length", "u32", n_embd)
    w.add("llama.feed_forward_length", "u32", n_embd * 2)
    w.add("llama.attention.head_count", "u32", 4)
    w.add("llama.attention.head_count_kv", "u32", 2)
    w.add("llama.rope.freq_base", "f32", 10000.0)
    w.add("tokenizer.ggml.tokens", "arr:str", [f"t{i}" for i in range(vocab)])
    w.add("tokenizer.chat_template", "str", "{{ messages }}")
    w.tensor("token_embd.weight", (n_embd, vocab), 1)
    for i in range(n_layers):
        w.tensor(f"blk.{i}.attn_norm.weight", (n_embd,), 0)
        w.tensor(f"blk.{i}.attn_q.weight", (n_embd, n_embd), 1)
        w.tensor(f"blk.{i}.ffn_up.weight", (n_embd, n_embd * 2), 1)
    w.tensor("output_norm.weight", (n_embd,), 0)
    w.tensor("output.weight", (n_embd, vocab), 1)
    return w


def with_chat_template(src: Path, dst: Path, template: str) -> Path:
    """A copy of the real GGUF ``src`` whose ``tokenizer.chat_template`` is ``template``
    (weights and everything else unchanged; the data section re-aligned)."""
    data = Path(src).read_bytes()
    pos = 24
    n_tensors, n_kv = struct.unpack_from("<QQ", data, 8)
    alignment = 32

    def skip_value(p: int, vtype: int) -> tuple[int, object]:
        if vtype == TYPE_IDS["str"]:
            (n,) = struct.unpack_from("<Q", data, p)
            return p + 8 + n, data[p + 8:p + 8 + n]
        if vtype == TYPE_IDS["arr"]:
            item, count = struct.unpack_from("<IQ", data, p)
            p += 12
            for _ in range(count):
                p, _ = skip_value(p, item)
            return p, None
        fmt = FORMATS[next(k for k, v in TYPE_IDS.items() if v == vtype)]
        return p + struct.calcsize(fmt), struct.unpack_from(fmt, data, p)[0]

    kvs = []
    for _ in range(n_kv):
        (n,) = struct.unpack_from("<Q", data, pos)
        key = data[pos + 8:pos + 8 + n].decode()
        (vtype,) = struct.unpack_from("<I", data, pos + 8 + n)
        end, value = skip_value(pos + 12 + n, vtype)
        if key == "general.alignment":
            alignment = value
        kvs.append((key, data[pos:end]))
        pos = end
    infos_start = pos
    for _ in range(n_tensors):
        (n,) = struct.unpack_from("<Q", data, pos)
        pos += 8 + n
        (n_dims,) = struct.unpack_from("<I", data, pos)
        pos += 4 + 8 * n_dims + 4 + 8
    infos = data[infos_start:pos]
    data_start = pos + (-pos % alignment)
    new_kv = _str("tokenizer.chat_template") + struct.pack("<I", TYPE_IDS["str"]) + _str(template)
    body = b"".join(new_kv if k == "tokenizer.chat_template" else raw for k, raw in kvs)
    if not any(k == "tokenizer.chat_template" for k, _ in kvs):
        body += new_kv
        n_kv += 1
    head = data[:8] + struct.pack("<QQ", n_tensors, n_kv) + body + infos
    head += b"\0" * (-len(head) % alignment)
    Path(dst).write_bytes(head + data[data_start:])
    return Path(dst)
