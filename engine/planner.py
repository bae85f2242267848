"""Offload planning: how many layers go to the GPU and how much memory a model will take.

Everything here is arithmetic on GGUF metadata (``engine.gguf.ModelInfo``) and on the free
memory the devices report, done before llama.cpp sees the file, so a model that cannot fit
is refused with numbers instead of crashing the engine half-way through a load.

The estimate, per device, is weights + KV cache + compute buffer:

- weights: the tensor bytes of the layers placed there. llama.cpp's ``n_gpu_layers = k``
  puts the last ``k`` repeating layers on the GPU and, when ``k > n_layers``, the output
  layer too; the token embeddings always stay in RAM. A model with tied embeddings gets a
  GPU copy of them as its output layer.
- KV cache: ``2 * n_layer * n_ctx * n_embd_gqa * bytes`` (K and V; ``n_embd_gqa`` is the
  per-head key/value length times ``head_count_kv``), with ``n_ctx`` rounded up to 256 cells
  as llama.cpp does. It sits with its layer.
- compute buffer: llama.cpp sizes it for the worst batch (``n_batch`` = 512 tokens). On a
  GPU, where the whole reservation is committed, we use Ollama's formula (llm/memory.go):
  ``max(4*B*(1 + 4*E + C*(1 + H)), 4*B*(E + V))`` bytes for B batch tokens, E embedding
  length, C context, H heads, V vocabulary: the attention scores of a full batch against the
  whole context, or the logits of a batch, whichever is larger. On SmolLM2-135M it gives 97
  and 165 MiB where llama.cpp reserves 99 and 166 MiB (n_ctx 2048 and 8192).
  In RAM only touched pages count, and bench/memory.py taught us two things: the logits
  term never gets touched (a chat asks for one output per batch), and with the context full
  the attention part costs 1.5x the formula (the scores and their softmax are both live):
  ``6*B*(1 + 4*E + C*(1 + H))``. That is what the CPU estimate uses; it was fitted on the
  default model (within 2% of measured RSS at 2048 and 8192), so other models may differ.

Weights are memory-mapped; llama.cpp reads them all at load (so they are in RSS at once),
and the KV cache is cleared at load (so it is too). RSS right after a load misses most of
the compute buffer, which only a long prompt against a full context touches.
"""

from __future__ import annotations

import logging
import math
import platform
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field

from engine.gguf import ModelInfo
from engine.protocol import EngineError, ErrorKind

log = logging.getLogger(__name__)

MiB = 1 << 20
GiB = 1 << 30
N_BATCH = 512
MIN_CTX = 512
DEFAULT_CTX = 4096
CTX_STEP = 256
# Bytes per element of a KV cache type (block types: bytes per block / elements per block).
KV_TYPES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q5_1": 24 / 32, "q5_0": 22 / 32,
            "q4_1": 20 / 32, "q4_0": 18 / 32}
# What a loaded context costs beyond weights, KV and compute (the output buffer, the graph,
# the tokenizer's tables, allocator slack), measured on the CPU build with bench/memory.py.
CPU_OVERHEAD = 24 * MiB
GPU_OVERHEAD = 256 * MiB     # the CUDA/Metal context and cuBLAS workspace before any tensor
VRAM_MARGIN_FRACTION = 0.10
VRAM_MARGIN_BYTES = 512 * MiB


def fmt_bytes(n: float) -> str:
    return f"{n / GiB:.1f} GiB" if abs(n) >= GiB else f"{n / MiB:.0f} MiB"


# ---------------------------------------------------------------------------- devices

@dataclass(frozen=True)
class Device:
    kind: str            # cpu | cuda | metal
    name: str
    total_bytes: int
    free_bytes: int
    index: int = 0
    unified: bool = False   # shares RAM with the CPU (Apple Silicon)

    def to_dict(self) -> dict:
        return asdict(self)


def _ram() -> tuple[int, int]:
    try:
        import psutil
        vm = psutil.virtual_memory()
        return vm.total, vm.available
    except Exception:  # psutil missing: plan as if a modest machine
        return 8 * GiB, 4 * GiB


def cpu_device() -> Device:
    total, free = _ram()
    return Device("cpu", platform.processor() or platform.machine() or "CPU", total, free)


def _nvml_devices() -> list[Device] | None:
    try:
        import pynvml  # from nvidia-ml-py, optional
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            found = []
            for i in range(pynvml.nvmlDeviceGetCount()):
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                mem = pynvml.nvmlDeviceGetMemoryInfo(h)
                name = pynvml.nvmlDeviceGetName(h)
                name = name.decode() if isinstance(name, bytes) else str(name)
                found.append(Device("cuda", name, int(mem.total), int(mem.free), index=i))
            return found
        finally:
            pynvml.nvmlShutdown()
    except Exception as e:  # no driver, no permission: fall back to nvidia-smi
        log.info("NVML unavailable: %s", e)
        return None


def parse_nvidia_smi(text: str) -> list[Device]:
    """Rows of ``nvidia-smi --query-gpu=index,name,memory.total,memory.free --format=csv,noheader,nounits``."""
    found = []
    for line in text.strip().splitlines():
        parts = [x.strip() for x in line.split(",")]
        if len(parts) != 4:
            continue
        try:
            found.append(Device("cuda", parts[1], int(float(parts[2]) * MiB), int(float(parts[3]) * MiB),
                                index=int(parts[0])))
        except ValueError:
            continue  # "[N/A]" on some virtual GPUs
    return found


def _nvidia_smi_devices() -> list[Device]:
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name,memory.total,memory.free",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as e:
        log.info("nvidia-smi failed: %s", e)
        return []
    return parse_nvidia_smi(out.stdout) if out.returncode == 0 else []


def _apple_device() -> list[Device]:
    if sys.platform != "darwin" or platform.machine() != "arm64":
        return []
    total, free = _ram()
    # Metal lets one process wire about 2/3 of RAM on small Macs and 3/4 on large ones
    # (recommendedMaxWorkingSetSize); the rest is the system's.
    share = 0.75 if total > 36 * GiB else 2 / 3
    return [Device("metal", "Apple Silicon GPU (Metal)", int(total * share), int(min(free, total * share)),
                   unified=True)]


def find_devices() -> list[Device]:
    """The CPU (always first) and the GPUs this machine reports, with their free memory."""
    gpus = _nvml_devices()
    if gpus is None:
        gpus = _nvidia_smi_devices()
    if not gpus:
        gpus = _apple_device()
    return [cpu_device(), *gpus]


# ---------------------------------------------------------------------------- estimates

def kv_cache_bytes(info: ModelInfo, n_ctx: int, kv_type: str = "f16", n_layers: int | None = None) -> int:
    per = KV_TYPES[kv_type]
    cells = math.ceil(n_ctx / CTX_STEP) * CTX_STEP
    layers = info.n_layers if n_layers is None else n_layers
    k = info.head_dim_k * info.head_count_kv
    v = info.head_dim_v * info.head_count_kv
    return int(layers * cells * (k + v) * per)


def compute_bytes(info: ModelInfo, n_ctx: int, n_batch: int = N_BATCH) -> int:
    b = min(n_batch, n_ctx)
    e, h, v = info.embedding_length, max(info.head_count, 1), info.vocab_size
    return max(4 * b * (1 + 4 * e + n_ctx * (1 + h)), 4 * b * (e + v))


def cpu_compute_bytes(info: ModelInfo, n_ctx: int, n_batch: int = N_BATCH) -> int:
    """The compute buffer's pages a full context actually touches in RAM (see the module doc)."""
    b = min(n_batch, n_ctx)
    return 6 * b * (1 + 4 * info.embedding_length + n_ctx * (1 + max(info.head_count, 1)))


def partial_compute_bytes(info: ModelInfo, n_ctx: int, n_batch: int = N_BATCH) -> int:
    """The GPU's share when only some layers are there (Ollama's partial-offload graph)."""
    b = min(n_batch, n_ctx)
    e, h, hkv, v = info.embedding_length, max(info.head_count, 1), info.head_count_kv, info.vocab_size
    return 4 * b * e + max(
        4 * b * (1 + e + max(n_ctx, e)) + e * e * 9 // 16 + 4 * n_ctx * (b * h + info.head_dim_k * hkv),
        4 * b * (e + v) + e * v * 105 // 128,
    )


@dataclass
class Plan:
    n_gpu_layers: int          # llama.cpp's meaning: n_layers + 1 puts everything on the GPU
    n_ctx: int
    n_layers: int
    kv_type: str
    ram_bytes: int
    vram_bytes: int
    gpu: str = ""              # the GPU used, empty when CPU only
    breakdown: dict = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def estimate(info: ModelInfo, n_ctx: int, n_gpu_layers: int, kv_type: str = "f16") -> dict:
    """Bytes per device for a layer split: {ram: {...}, vram: {...}} with weights/kv/compute."""
    n = info.n_layers
    on_gpu = max(0, min(n_gpu_layers, n))
    output_on_gpu = n_gpu_layers > n
    gpu_layer_ids = range(n - on_gpu, n)
    layer_w = info.layer_bytes or [0] * n
    w_gpu = sum(layer_w[i] for i in gpu_layer_ids if i < len(layer_w))
    w_cpu = sum(layer_w) - w_gpu + info.other_bytes
    if output_on_gpu:
        w_gpu += info.output_bytes
        if not info.tied_embeddings:  # else the GPU gets a copy and token_embd stays in RAM
            w_cpu -= info.output_bytes
    kv_gpu = kv_cache_bytes(info, n_ctx, kv_type, on_gpu)
    kv_cpu = kv_cache_bytes(info, n_ctx, kv_type, n - on_gpu)
    if on_gpu == 0 and not output_on_gpu:
        c_gpu, c_cpu = 0, cpu_compute_bytes(info, n_ctx)
    elif on_gpu == n and output_on_gpu:
        c_gpu, c_cpu = compute_bytes(info, n_ctx), 4 * N_BATCH * info.embedding_length
    else:
        c_gpu, c_cpu = partial_compute_bytes(info, n_ctx), cpu_compute_bytes(info, n_ctx)
    ram = {"weights": w_cpu, "kv_cache": kv_cpu, "compute": c_cpu, "overhead": CPU_OVERHEAD}
    vram = {"weights": w_gpu, "kv_cache": kv_gpu, "compute": c_gpu,
            "overhead": GPU_OVERHEAD if (on_gpu or output_on_gpu) else 0}
    return {"ram": ram, "vram": vram}


class ModelPlanner:
    """Chooses ``n_gpu_layers`` and ``n_ctx`` for a model on these devices."""

    def __init__(self, devices: list[Device] | None = None,
                 margin_fraction: float = VRAM_MARGIN_FRACTION, margin_bytes: int = VRAM_MARGIN_BYTES):
        self.devices = find_devices() if devices is None else devices
        self.margin_fraction = margin_fraction
        self.margin_bytes = margin_bytes

    @property
    def gpu(self) -> Device | None:
        gpus = [d for d in self.devices if d.kind != "cpu"]
        return max(gpus, key=lambda d: d.free_bytes) if gpus else None

    @property
    def ram_free(self) -> int:
        cpus = [d for d in self.devices if d.kind == "cpu"]
        return cpus[0].free_bytes if cpus else _ram()[1]

    def vram_usable(self) -> int:
        g = self.gpu
        return 0 if g is None else max(0, int(g.free_bytes * (1 - self.margin_fraction)) - self.margin_bytes)

    def plan(self, info: ModelInfo, n_ctx: int | None = None, *, n_gpu_layers: int | None = None,
             kv_type: str = "f16", fit_context: bool = False) -> Plan:
        if kv_type not in KV_TYPES:
            raise EngineError(ErrorKind.BAD_INPUT, f"Unknown KV cache type '{kv_type}'; use one of "
                                                   f"{', '.join(KV_TYPES)}.")
        n = info.n_layers
        name = info.path.rsplit("/", 1)[-1]
        reasons: list[str] = []
        train = info.context_length or 0
        if n_gpu_layers is not None and not (-1 <= n_gpu_layers <= n + 1):
            raise EngineError(ErrorKind.BAD_INPUT, f"GPU layers must be between 0 and {n + 1} for '{name}' "
                                                   f"({n} layers + the output layer), or -1 for all.")
        if n_ctx is None:
            n_ctx = min(DEFAULT_CTX, train) if train else DEFAULT_CTX
            if fit_context and train:
                n_ctx = self._largest_context(info, kv_type, n_gpu_layers, reasons) or n_ctx
        elif train and n_ctx > train:
            reasons.append(f"context capped at the model's training length {train} (asked {n_ctx})")
            n_ctx = train
        n_ctx = max(MIN_CTX, n_ctx)

        usable = self.vram_usable()
        g = self.gpu
        if n_gpu_layers is not None:
            layers = n + 1 if n_gpu_layers == -1 else n_gpu_layers
            reasons.append(f"GPU layers set by hand: {layers} of {n + 1}")
            if layers and g is None:
                reasons.append("no GPU was found; llama.cpp keeps the layers on the CPU unless its build has one")
        elif g is None:
            layers = 0
            reasons.append("no GPU found: everything runs on the CPU")
        else:
            layers = self._fit_layers(info, n_ctx, kv_type, usable)
            reasons.append(f"{g.name} has {fmt_bytes(g.free_bytes)} free; keeping {self.margin_fraction:.0%} + "
                           f"{fmt_bytes(self.margin_bytes)} spare leaves {fmt_bytes(usable)}")
            full = _total(estimate(info, n_ctx, n + 1, kv_type)["vram"])
            if layers > n:
                reasons.append(f"all {n} layers and the output fit on the GPU ({fmt_bytes(full)})")
            else:
                part = _total(estimate(info, n_ctx, layers, kv_type)["vram"]) if layers else 0
                reasons.append(f"the whole model needs {fmt_bytes(full)} of GPU memory, more than "
                               f"{fmt_bytes(usable)}: {layers} of {n} layers go to the GPU ({fmt_bytes(part)}), "
                               "the rest run on the CPU")

        est = estimate(info, n_ctx, layers, kv_type)
        ram, vram = _total(est["ram"]), _total(est["vram"])
        if self._ram_need(est) > self.ram_free:
            fitted = self._fit_ram_context(info, layers, kv_type)
            if not fitted:
                self._refuse_ram(info, name, self._ram_need(est), kv_type, layers)
            reasons.append(f"context lowered from {n_ctx} to {fitted} tokens to fit in "
                           f"{fmt_bytes(self.ram_free)} of available RAM")
            n_ctx = fitted
            est = estimate(info, n_ctx, layers, kv_type)
            ram, vram = _total(est["ram"]), _total(est["vram"])
        kv = est["ram"]["kv_cache"] + est["vram"]["kv_cache"]
        reasons.append(f"context {n_ctx} tokens: KV cache {fmt_bytes(kv)} "
                       f"({kv_type}), compute buffer {fmt_bytes(est['ram']['compute'] + est['vram']['compute'])}")
        reasons.append(f"RAM: {fmt_bytes(ram)} of {fmt_bytes(self.ram_free)} available")
        return Plan(n_gpu_layers=layers, n_ctx=n_ctx, n_layers=n, kv_type=kv_type, ram_bytes=ram,
                    vram_bytes=vram, gpu=g.name if (g and layers) else "", breakdown=est, reasons=reasons)

    def _fit_layers(self, info: ModelInfo, n_ctx: int, kv_type: str, usable: int) -> int:
        best = 0
        for k in range(1, info.n_layers + 2):
            if _total(estimate(info, n_ctx, k, kv_type)["vram"]) > usable:
                break
            best = k
        return best

    def _largest_context(self, info: ModelInfo, kv_type: str, n_gpu_layers: int | None,
                         reasons: list[str]) -> int:
        """The longest context (a multiple of 256, up to the training length) that fits: on
        the GPU with every layer when there is one, in RAM otherwise."""
        n = info.n_layers
        g = self.gpu
        layers = (n + 1 if n_gpu_layers in (None, -1) else n_gpu_layers) if g else 0

        def fits(c: int) -> bool:
            est = estimate(info, c, layers, kv_type)
            return _total(est["vram"]) <= self.vram_usable() and _total(est["ram"]) <= self.ram_free

        lo, hi = MIN_CTX // CTX_STEP, info.context_length // CTX_STEP
        if hi < lo or not fits(lo * CTX_STEP):
            return 0
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(mid * CTX_STEP) else (lo, mid - 1)
        best = lo * CTX_STEP
        where = "on the GPU" if g else "in RAM"
        reasons.append(f"largest context that fits {where}: {best} tokens (model trained on {info.context_length})")
        return best

    def _ram_need(self, est: dict) -> int:
        g = self.gpu
        return _total(est["ram"]) + (_total(est["vram"]) if g is not None and g.unified else 0)

    def _fit_ram_context(self, info: ModelInfo, layers: int, kv_type: str) -> int:
        lo, hi = MIN_CTX // CTX_STEP, max(MIN_CTX, info.context_length or DEFAULT_CTX) // CTX_STEP
        if self._ram_need(estimate(info, lo * CTX_STEP, layers, kv_type)) > self.ram_free:
            return 0
        while lo < hi:
            mid = (lo + hi + 1) // 2
            ok = self._ram_need(estimate(info, mid * CTX_STEP, layers, kv_type)) <= self.ram_free
            lo, hi = (mid, hi) if ok else (lo, mid - 1)
        return lo * CTX_STEP

    def _refuse_ram(self, info: ModelInfo, name: str, need: int, kv_type: str, layers: int) -> None:
        at_min = _total(estimate(info, MIN_CTX, layers, kv_type)["ram"])
        raise EngineError(
            ErrorKind.OUT_OF_MEMORY,
            f"'{name}' needs about {fmt_bytes(need)} of RAM ({fmt_bytes(at_min)} even with a {MIN_CTX}-token "
            f"context) but only {fmt_bytes(self.ram_free)} is available. Close other programs, lower the "
            "context length, or choose a smaller (more quantized) model.",
        )

    def reduced(self, info: ModelInfo, plan: Plan) -> Plan | None:
        """A smaller plan to retry with after a load ran out of memory (see ``smaller_load``)."""
        smaller = smaller_load(info.n_layers, plan.n_ctx, plan.n_gpu_layers)
        if smaller is None:
            return None
        n_ctx, layers = smaller
        return self.plan(info, n_ctx, n_gpu_layers=layers, kv_type=plan.kv_type)


def smaller_load(n_layers: int, n_ctx: int, n_gpu_layers: int) -> tuple[int, int] | None:
    """(n_ctx, n_gpu_layers) to retry with after an out-of-memory load: three quarters of
    the GPU layers when some were offloaded (the GPU is the usual culprit, and the context
    is what the person asked for), else half the context; None when already at the floor."""
    if n_gpu_layers != 0:
        layers = n_layers + 1 if n_gpu_layers < 0 else n_gpu_layers
        return n_ctx, layers * 3 // 4
    if n_ctx > MIN_CTX:
        return max(MIN_CTX, n_ctx // 2), 0
    return None


def _total(part: dict) -> int:
    return int(sum(part.values()))
