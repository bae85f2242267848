"""A hardened, pure-Python reader of GGUF metadata, and the model summary built from it.

Why not let llama.cpp read the file: a damaged or hostile GGUF can make native code abort
or allocate without bound, and the model library reads every file a person drops on it,
in the window's own process. This reader touches only the header, the metadata and the
tensor table, checks every length against what is left of the file before reading it, caps
every count, and keeps only the lengths of big arrays (a vocabulary is 50k-250k strings
that nothing here needs). A refused file gets a GGUFError that names the file and the
problem, in milliseconds.

The checks mirror llama.cpp's own loader (ggml/src/gguf.cpp) where they matter: unique
non-empty keys, a power-of-two uint32 ``general.alignment``, tensor names shorter than 64
bytes, at most 4 dimensions, a known ggml type whose block size divides the row, and tensor
data laid out back to back (each padded to the alignment) inside the file. A file that
passes here is one llama.cpp will at least start to load.
"""

from __future__ import annotations

import os
import re
import struct
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.protocol import EngineError, ErrorKind

GGUF_MAGIC = b"GGUF"
LEGACY_MAGICS = {b"lmgg": "ggml", b"fmgg": "ggmf", b"tjgg": "ggjt"}  # little-endian on disk
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32

# Caps. Real models have a few dozen keys and at most a few thousand tensors; the caps are
# far above that and low enough that a hostile count fails fast instead of looping.
MAX_KV = 1 << 16
MAX_TENSORS = 1 << 16
MAX_KEY_BYTES = 4096
MAX_STRING_BYTES = 16 << 20
MAX_TEMPLATE_BYTES = 1 << 20
MAX_ARRAY_ITEMS = 1 << 24
KEEP_ARRAY_ITEMS = 1024   # longer arrays (token lists, merges) are kept as their length only
MAX_NAME_BYTES = 63       # llama.cpp's GGML_MAX_NAME is 64 including the NUL
MAX_DIMS = 4
MAX_LAYERS = 1 << 12

# ggml type id -> (name, elements per block, bytes per block); from ggml's type traits.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292), 16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50), 20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136), 24: ("I8", 1, 1), 25: ("I16", 1, 2),
    26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8), 29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66), 39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36), 41: ("Q1_0", 128, 18), 42: ("Q2_0", 64, 18),
}

# general.file_type (llama_ftype) -> the name people know the quantization by.
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0", 41: "Q2_0",
}

# GGUF metadata value types: id -> (name, struct format or None for string/array).
_U8, _I8, _U16, _I16, _U32, _I32, _F32, _BOOL, _STR, _ARR, _U64, _I64, _F64 = range(13)
_SCALARS: dict[int, struct.Struct] = {
    _U8: struct.Struct("<B"), _I8: struct.Struct("<b"), _U16: struct.Struct("<H"),
    _I16: struct.Struct("<h"), _U32: struct.Struct("<I"), _I32: struct.Struct("<i"),
    _F32: struct.Struct("<f"), _BOOL: struct.Struct("<?"), _U64: struct.Struct("<Q"),
    _I64: struct.Struct("<q"), _F64: struct.Struct("<d"),
}
VALUE_TYPE_NAMES = {_U8: "uint8", _I8: "int8", _U16: "uint16", _I16: "int16", _U32: "uint32",
                    _I32: "int32", _F32: "float32", _BOOL: "bool", _STR: "string", _ARR: "array",
                    _U64: "uint64", _I64: "int64", _F64: "float64"}

_U32S = struct.Struct("<I")
_U64S = struct.Struct("<Q")
_LAYER_RE = re.compile(r"^blk\.(\d+)\.")


class GGUFError(EngineError):
    """A file that is not a usable GGUF model. ``reason`` is a short stable code for tests
    and the library (truncated, not_gguf, legacy_ggml, bad_version, too_many, too_long,
    bad_value, bad_tensor, bad_type, bad_layout, unreadable)."""

    def __init__(self, reason: str, message: str, kind: str = ErrorKind.UNSUPPORTED_FORMAT):
        super().__init__(kind, message)
        self.reason = reason


@dataclass(frozen=True)
class ArrayInfo:
    """A metadata array too long to keep: its element type and length only."""
    item_type: str
    length: int


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dims: tuple[int, ...]
    ggml_type: int
    offset: int       # relative to the start of the data section
    n_elements: int
    n_bytes: int

    @property
    def type_name(self) -> str:
        return GGML_TYPES[self.ggml_type][0]


@dataclass
class GGUFFile:
    path: Path
    size: int
    version: int
    metadata: dict
    tensors: list[TensorInfo]
    alignment: int
    data_offset: int


@dataclass
class ModelInfo:
    """What the library, the planner and the person need to know about a model file."""
    path: str
    size: int
    gguf_version: int = 3
    architecture: str = ""
    name: str = ""
    n_params: int = 0
    file_type: str = ""            # Q4_K_M, Q8_0 ...
    context_length: int = 0
    block_count: int = 0
    embedding_length: int = 0
    feed_forward_length: int = 0
    head_count: int = 0
    head_count_kv: int = 0
    key_length: int = 0            # per head; 0: embedding_length / head_count
    value_length: int = 0
    vocab_size: int = 0
    expert_count: int = 0
    has_chat_template: bool = False
    tensor_bytes: int = 0
    layer_bytes: list[int] = field(default_factory=list)   # weights of blk.N, index N
    other_bytes: int = 0                                   # embeddings, output, norms
    output_bytes: int = 0          # the output projection (token_embd when tied)
    tied_embeddings: bool = False  # no output.weight: the output reuses token_embd
    n_tensors: int = 0
    n_kv: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelInfo":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def n_layers(self) -> int:
        return self.block_count or len(self.layer_bytes)

    @property
    def head_dim_k(self) -> int:
        if self.key_length:
            return self.key_length
        return self.embedding_length // self.head_count if self.head_count else 0

    @property
    def head_dim_v(self) -> int:
        if self.value_length:
            return self.value_length
        return self.head_dim_k


# ---------------------------------------------------------------------------- reading

class _Cursor:
    """Bounded reads from a file through a small window: every read is checked against the
    file's size first, so a hostile length fails before anything is allocated for it."""

    CHUNK = 1 << 20

    def __init__(self, f, size: int, label: str):
        self._f = f
        self.size = size
        self.label = label
        self.pos = 0
        self._buf = b""
        self._base = 0

    def truncated(self, what: str) -> GGUFError:
        return GGUFError("truncated", f"'{self.label}' is truncated: the file ends (at byte {self.size}) in the "
                                      f"middle of {what}. It is probably an incomplete download; download it again.")

    def _window(self, n: int, what: str) -> tuple[bytes, int]:
        if n > self.size - self.pos:
            raise self.truncated(what)
        off = self.pos - self._base
        if off < 0 or off + n > len(self._buf):
            self._f.seek(self.pos)
            self._buf = self._f.read(max(n, self.CHUNK))
            self._base = self.pos
            off = 0
            if len(self._buf) < n:  # the file shrank while we read it
                raise self.truncated(what)
        return self._buf, off

    def unpack(self, st: struct.Struct, what: str):
        buf, off = self._window(st.size, what)
        self.pos += st.size
        return st.unpack_from(buf, off)

    def u32(self, what: str) -> int:
        return self.unpack(_U32S, what)[0]

    def u64(self, what: str) -> int:
        return self.unpack(_U64S, what)[0]

    def raw(self, n: int, what: str) -> bytes:
        buf, off = self._window(n, what)
        self.pos += n
        return buf[off:off + n]

    def skip(self, n: int, what: str) -> None:
        if n > self.size - self.pos:
            raise self.truncated(what)
        self.pos += n

    def string(self, limit: int, what: str, keep: bool = True) -> str:
        n = self.u64(f"the length of {what}")
        if n > limit:
            raise GGUFError("too_long", f"'{self.label}' is not a usable GGUF model: {what} claims {n} bytes, "
                                        f"more than the {limit}-byte limit. The file is corrupt.")
        if not keep:
            self.skip(n, what)
            return ""
        return self.raw(n, what).decode("utf-8", errors="replace")


def read_gguf(path: str | os.PathLike) -> GGUFFile:
    """Read and check the metadata and tensor table of ``path``; raise GGUFError if unusable."""
    p = Path(path)
    label = p.name
    if not p.exists():
        raise GGUFError("missing", f"Model file not found: {p}. Check the path or choose another file.",
                        kind=ErrorKind.MODEL_NOT_FOUND)
    if not p.is_file():
        raise GGUFError("not_a_file", f"{p} is not a file. Choose a .gguf model file.", kind=ErrorKind.BAD_INPUT)
    try:
        with open(p, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            return _read(_Cursor(f, size, label), p)
    except OSError as e:
        raise GGUFError("unreadable", f"Cannot read '{label}': {e.strerror or e}.",
                        kind=ErrorKind.MODEL_NOT_FOUND) from None


def _bad(c: _Cursor, reason: str, problem: str) -> GGUFError:
    return GGUFError(reason, f"'{c.label}' is not a usable GGUF model: {problem}. "
                             "The file is damaged or not a model; re-download it or choose another file.")


def _read(c: _Cursor, path: Path) -> GGUFFile:
    if c.size < 24:
        raise GGUFError("not_gguf", f"'{c.label}' is not a GGUF model: the file is only {c.size} bytes long. "
                                    "Choose a .gguf model file (a complete download).")
    magic = c.raw(4, "the header")
    if magic in LEGACY_MAGICS:
        raise GGUFError("legacy_ggml", f"'{c.label}' is a legacy GGML ({LEGACY_MAGICS[magic]}) model, which this "
                                       "build cannot load yet. Use a GGUF version of the model.")
    if magic != GGUF_MAGIC:
        raise GGUFError("not_gguf", f"'{c.label}' is not a GGUF model (it starts with {magic!r}, not b'GGUF'). "
                                    "Choose a .gguf model file.")
    version = c.u32("the header")
    if version not in SUPPORTED_VERSIONS:
        raise GGUFError("bad_version", f"'{c.label}' is GGUF version {version}; Lantern reads versions "
                                       f"{', '.join(map(str, SUPPORTED_VERSIONS))}. Convert or re-download the model.")
    n_tensors = c.u64("the header")
    n_kv = c.u64("the header")
    # Each entry takes some bytes: a KV at least 8 (key length) + 1 + 4 (type) + 1, a tensor
    # info at least 8 + 1 + 4 (n_dims) + 4 (type) + 8 (offset). Counts past the caps are
    # corruption; counts that merely do not fit are what a cut-off download looks like.
    if n_kv > MAX_KV:
        raise _bad(c, "too_many", f"it has a corrupt GGUF header ({n_kv} metadata entries, at most {MAX_KV})")
    if n_tensors > MAX_TENSORS:
        raise _bad(c, "too_many", f"it has a corrupt GGUF header ({n_tensors} tensors, at most {MAX_TENSORS})")
    if n_kv * 14 + n_tensors * 25 > c.size - c.pos:
        raise c.truncated(f"the {n_kv} metadata entries and {n_tensors} tensor descriptions its header announces")
    metadata: dict = {}
    for i in range(n_kv):
        key = c.string(MAX_KEY_BYTES, f"the name of metadata entry {i}")
        if not key:
            raise _bad(c, "bad_value", f"metadata entry {i} has an empty name")
        if key in metadata:
            raise _bad(c, "bad_value", f"metadata key '{key}' appears twice")
        metadata[key] = _read_value(c, key)

    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 \
            or alignment & (alignment - 1) or alignment > 1 << 20:
        raise _bad(c, "bad_value", f"general.alignment is {alignment!r}, not a power of two")

    tensors: list[TensorInfo] = []
    seen: set[str] = set()
    for i in range(n_tensors):
        tensors.append(_read_tensor_info(c, i, seen))

    data_offset = c.pos + (-c.pos % alignment) if n_tensors else c.pos
    expected = 0
    for t in tensors:
        if t.offset != expected:
            raise _bad(c, "bad_layout", f"tensor '{t.name}' starts at data offset {t.offset}, expected {expected}")
        expected += t.n_bytes + (-t.n_bytes % alignment)
        if data_offset + t.offset + t.n_bytes > c.size:
            raise GGUFError("truncated", f"'{c.label}' is truncated: tensor '{t.name}' ends at byte "
                                         f"{data_offset + t.offset + t.n_bytes}, past the end of the "
                                         f"{c.size}-byte file. Download it again.")
    return GGUFFile(path=path, size=c.size, version=version, metadata=metadata, tensors=tensors,
                    alignment=alignment, data_offset=data_offset)


def _read_value(c: _Cursor, key: str):
    vtype = c.u32(f"the type of '{key}'")
    if vtype == _ARR:
        return _read_array(c, key)
    return _read_scalar(c, key, vtype)


def _string_limit(key: str) -> int:
    return MAX_TEMPLATE_BYTES if key.startswith("tokenizer.chat_template") else MAX_STRING_BYTES


def _read_scalar(c: _Cursor, key: str, vtype: int):
    if vtype == _STR:
        return c.string(_string_limit(key), f"the value of '{key}'")
    st = _SCALARS.get(vtype)
    if st is None:
        raise _bad(c, "bad_value", f"metadata '{key}' has unknown value type {vtype}")
    return c.unpack(st, f"the value of '{key}'")[0]


def _read_array(c: _Cursor, key: str):
    item_type = c.u32(f"the item type of '{key}'")
    n = c.u64(f"the length of '{key}'")
    if item_type == _ARR:
        raise _bad(c, "bad_value", f"metadata '{key}' is an array of arrays, which llama.cpp does not read")
    if item_type != _STR and item_type not in _SCALARS:
        raise _bad(c, "bad_value", f"metadata array '{key}' has unknown item type {item_type}")
    min_item = 8 if item_type == _STR else _SCALARS[item_type].size
    if n > MAX_ARRAY_ITEMS:
        raise _bad(c, "too_many", f"metadata array '{key}' claims {n} items (at most {MAX_ARRAY_ITEMS})")
    if n * min_item > c.size - c.pos:
        raise c.truncated(f"the {n} items of '{key}'")
    keep = n <= KEEP_ARRAY_ITEMS
    what = f"the items of '{key}'"
    if item_type == _STR:
        limit = _string_limit(key)
        items = [c.string(limit, what, keep=keep) for _ in range(n)] if keep else _skip_strings(c, n, limit, what)
    elif keep:
        st = _SCALARS[item_type]
        items = [c.unpack(st, what)[0] for _ in range(n)]
    else:
        c.skip(n * min_item, what)
        items = None
    return items if keep else ArrayInfo(VALUE_TYPE_NAMES[item_type], n)


def _skip_strings(c: _Cursor, n: int, limit: int, what: str) -> None:
    """Walk ``n`` length-prefixed strings without decoding them (a vocabulary: ~50 ms)."""
    for _ in range(n):
        length = c.u64(what)
        if length > limit:
            raise _bad(c, "too_long", f"one of {what} claims {length} bytes")
        c.skip(length, what)
    return None


def _read_tensor_info(c: _Cursor, i: int, seen: set[str]) -> TensorInfo:
    what = f"the description of tensor {i}"
    n = c.u64(what)
    if n > MAX_NAME_BYTES:
        raise _bad(c, "too_long", f"tensor {i} has a {n}-byte name (llama.cpp allows {MAX_NAME_BYTES})")
    name = c.raw(n, what).decode("utf-8", errors="replace")
    if name in seen:
        raise _bad(c, "bad_tensor", f"tensor name '{name}' appears twice")
    seen.add(name)
    n_dims = c.u32(what)
    if n_dims > MAX_DIMS:
        raise _bad(c, "bad_tensor", f"tensor '{name}' has {n_dims} dimensions (at most {MAX_DIMS})")
    dims = tuple(c.u64(what) for _ in range(n_dims))
    n_elements = 1
    for d in dims:
        if d >= 1 << 62:
            raise _bad(c, "bad_tensor", f"tensor '{name}' has an impossible shape {dims}")
        n_elements *= d
    if n_elements >= 1 << 62:
        raise _bad(c, "bad_tensor", f"tensor '{name}' has an impossible shape {dims}")
    gtype = c.u32(what)
    if gtype not in GGML_TYPES:
        raise _bad(c, "bad_type", f"tensor '{name}' has unknown ggml type {gtype}")
    tname, block, type_size = GGML_TYPES[gtype]
    if dims and dims[0] % block:
        raise _bad(c, "bad_tensor", f"tensor '{name}' has rows of {dims[0]} elements, not a multiple of "
                                    f"the {tname} block size {block}")
    offset = c.u64(what)
    return TensorInfo(name, dims, gtype, offset, n_elements, n_elements // block * type_size)


# ---------------------------------------------------------------------------- summary

def _int(meta: dict, key: str) -> int:
    v = meta.get(key)
    if isinstance(v, list):  # per-layer values (some hybrid models): the largest is the safe one
        v = max((x for x in v if isinstance(x, (int, float))), default=0)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return 0
    return max(0, int(v))


def summarize(g: GGUFFile) -> ModelInfo:
    meta = g.metadata
    arch = meta.get("general.architecture")
    arch = arch if isinstance(arch, str) else ""
    name = meta.get("general.name")
    name = name if isinstance(name, str) and name.strip() else g.path.stem
    block_count = _int(meta, f"{arch}.block_count")

    n_layers = min(block_count, MAX_LAYERS) if block_count else 0
    layer_totals: dict[int, int] = {}
    other = 0
    by_type: Counter = Counter()
    for t in g.tensors:
        m = _LAYER_RE.match(t.name)
        idx = int(m.group(1)) if m else -1
        if 0 <= idx < (n_layers or MAX_LAYERS):
            layer_totals[idx] = layer_totals.get(idx, 0) + t.n_bytes
        else:
            other += t.n_bytes
        if len(t.dims) >= 2:
            by_type[t.type_name] += t.n_bytes
    size = max(layer_totals, default=-1) + 1
    layer_bytes = [layer_totals.get(i, 0) for i in range(max(n_layers, size))]
    tensors = {t.name: t for t in g.tensors}
    out = tensors.get("output.weight") or tensors.get("token_embd.weight")

    ftype = meta.get("general.file_type")
    if isinstance(ftype, int) and not isinstance(ftype, bool) and ftype in FILE_TYPES:
        file_type = FILE_TYPES[ftype]
    else:
        file_type = by_type.most_common(1)[0][0] if by_type else ""

    vocab = _int(meta, f"{arch}.vocab_size")
    tokens = meta.get("tokenizer.ggml.tokens")
    if not vocab and tokens is not None:
        vocab = tokens.length if isinstance(tokens, ArrayInfo) else len(tokens)
    return ModelInfo(
        path=str(g.path), size=g.size, gguf_version=g.version, architecture=arch, name=name,
        n_params=sum(t.n_elements for t in g.tensors), file_type=file_type,
        context_length=_int(meta, f"{arch}.context_length"), block_count=block_count,
        embedding_length=_int(meta, f"{arch}.embedding_length"),
        feed_forward_length=_int(meta, f"{arch}.feed_forward_length"),
        head_count=_int(meta, f"{arch}.attention.head_count"),
        head_count_kv=_int(meta, f"{arch}.attention.head_count_kv") or _int(meta, f"{arch}.attention.head_count"),
        key_length=_int(meta, f"{arch}.attention.key_length"),
        value_length=_int(meta, f"{arch}.attention.value_length"),
        vocab_size=vocab, expert_count=_int(meta, f"{arch}.expert_count"),
        has_chat_template=isinstance(meta.get("tokenizer.chat_template"), str)
        and bool(meta["tokenizer.chat_template"].strip()),
        tensor_bytes=sum(t.n_bytes for t in g.tensors), layer_bytes=layer_bytes, other_bytes=other,
        output_bytes=out.n_bytes if out else 0, tied_embeddings="output.weight" not in tensors,
        n_tensors=len(g.tensors), n_kv=len(meta),
    )


def inspect(path: str | os.PathLike) -> ModelInfo:
    """Read ``path`` and summarize it; raise GGUFError (an EngineError) if it is not usable."""
    return summarize(read_gguf(path))
