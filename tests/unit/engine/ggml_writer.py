"""Write a tiny but real GGML GPT-2 file: the legacy format's exact layout, random weights.

Layout (as ggml's GPT-2 converter wrote it): magic 'ggml' (0x67676d6c, little-endian), six
int32 hyper-parameters (n_vocab, n_ctx, n_embd, n_head, n_layer, ftype), the vocabulary as
int32 count + (uint32 length, bytes) per token, then tensors as (int32 n_dims, int32
name length, int32 type, int32 dims..., name, data) until the end of the file.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def write_gpt2(path: Path, n_vocab: int = 96, n_ctx: int = 128, n_embd: int = 32, n_head: int = 4,
               n_layer: int = 2, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(struct.pack("<I", 0x67676D6C))
        f.write(struct.pack("<6i", n_vocab, n_ctx, n_embd, n_head, n_layer, 0))  # ftype 0: f32
        f.write(struct.pack("<i", n_vocab))
        for i in range(n_vocab):  # printable ASCII, one character per token
            tok = bytes([32 + i % 95])
            f.write(struct.pack("<I", len(tok)) + tok)

        def tensor(name: str, shape: list[int]) -> None:
            data = (rng.standard_normal(int(np.prod(shape))) * 0.2).astype("<f4")
            if name.endswith("/g"):
                data[:] = 1.0  # layer-norm gains
            raw = name.encode()
            f.write(struct.pack("<3i", len(shape), len(raw), 0))
            f.write(struct.pack(f"<{len(shape)}i", *shape))
            f.write(raw)
            f.write(data.tobytes())

        tensor("model/ln_f/g", [n_embd])
        tensor("model/ln_f/b", [n_embd])
        tensor("model/wte", [n_embd, n_vocab])
        tensor("model/wpe", [n_embd, n_ctx])
        for i in range(n_layer):
            h = f"model/h{i}/"
            for n in ("ln_1/g", "ln_1/b", "ln_2/g", "ln_2/b"):
                tensor(h + n, [n_embd])
            tensor(h + "attn/c_attn/w", [n_embd, 3 * n_embd])
            tensor(h + "attn/c_attn/b", [3 * n_embd])
            tensor(h + "attn/c_proj/w", [n_embd, n_embd])
            tensor(h + "attn/c_proj/b", [n_embd])
            tensor(h + "mlp/c_fc/w", [n_embd, 4 * n_embd])
            tensor(h + "mlp/c_fc/b", [4 * n_embd])
            tensor(h + "mlp/c_proj/w", [4 * n_embd, n_embd])
            tensor(h + "mlp/c_proj/b", [n_embd])
    return path
