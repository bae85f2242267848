"""GPU layers for a load that asked the engine to choose (``LoadModel.n_gpu_layers == -1``).

The engine plans, not the window, because only the engine's process knows which llama.cpp
build (CPU, CUDA, Metal) will run the model, and the free GPU memory it sees is what counts.
The plan is arithmetic on the GGUF header (``engine.planner``); a model that cannot fit is
refused here with numbers, before llama.cpp allocates anything.
"""

from __future__ import annotations

import logging

from engine import gguf
from engine.planner import ModelPlanner, fmt_bytes

log = logging.getLogger(__name__)

AUTO = -1


def planned_layers(path: str, n_ctx: int, planner: ModelPlanner | None = None) -> tuple[int, str]:
    """(n_gpu_layers, a note for the person with the estimate)."""
    info = gguf.inspect(path)
    plan = (planner or ModelPlanner()).plan(info, n_ctx)
    where = f"{plan.n_gpu_layers} of {plan.n_layers + 1} layers on {plan.gpu}" if plan.n_gpu_layers else "CPU only"
    note = f"Planned: {where}; estimated RAM {fmt_bytes(plan.ram_bytes)}"
    if plan.vram_bytes:
        note += f", GPU memory {fmt_bytes(plan.vram_bytes)}"
    if plan.n_ctx != n_ctx:
        note += f"; the estimate is for {plan.n_ctx} tokens of context"
    log.info("%s: %s", path, note)
    return plan.n_gpu_layers, note + "."
