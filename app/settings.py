"""Application settings: a versioned TOML file with migrations.

Per-conversation settings (system prompt, sampling, context length) live with the
conversation in SQLite; this file holds the app-wide ones and the defaults new conversations
start from.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any, Callable

import tomli_w

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI (declared for < 3.11)
    import tomli as tomllib

log = logging.getLogger(__name__)

SETTINGS_VERSION = 2

# Plain on purpose: the 135M default model answers this one correctly and loses the thread
# with longer ones (measured: a two-sentence persona prompt turned "capital of France" into
# a description of the persona).
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

DEFAULTS: dict[str, Any] = {
    "version": SETTINGS_VERSION,
    "model": {
        "path": "",          # empty: the default model shipped with Lantern
        "n_gpu_layers": 0,
        "n_threads": 0,      # 0: one per physical core
        "hf_endpoint": "",   # empty: https://huggingface.co (LANTERN_HF_ENDPOINT overrides)
    },
    "chat": {
        "system_prompt": DEFAULT_SYSTEM_PROMPT,
        "temperature": 0.7,
        "top_p": 0.95,
        "top_k": 40,
        "min_p": 0.05,
        "repeat_penalty": 1.1,
        "max_tokens": 1024,
        "n_ctx": 4096,
        "seed": -1,
    },
    "ui": {
        "window_geometry": "",
        "sidebar_width": 260,
    },
    "sources": {
        "collection": "default",   # the one the Sources panel shows and adds to
        "unwatched": [],           # collections whose watching the person turned off
    },
}


def _v1_to_v2(data: dict) -> dict:
    # Version 1 kept the model path at the top level as "model_path".
    data = copy.deepcopy(data)
    path = data.pop("model_path", "")
    data.setdefault("model", {})["path"] = path
    data["version"] = 2
    return data


MIGRATIONS: dict[int, Callable[[dict], dict]] = {1: _v1_to_v2}


def _merge(defaults: dict, data: dict) -> dict:
    out = copy.deepcopy(defaults)
    for k, v in data.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def migrate(data: dict) -> dict:
    version = int(data.get("version", 1))
    if version > SETTINGS_VERSION:
        raise ValueError(f"settings version {version} is newer than this Lantern understands ({SETTINGS_VERSION})")
    while version < SETTINGS_VERSION:
        data = MIGRATIONS[version](data)
        version = int(data["version"])
    return data


class Settings:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.problem = ""  # set when the file was unreadable and defaults were used
        self.data = self._read()

    def _read(self) -> dict:
        if not self.path.exists():
            return copy.deepcopy(DEFAULTS)
        try:
            with open(self.path, "rb") as f:
                raw = tomllib.load(f)
            return _merge(DEFAULTS, migrate(raw))
        except (OSError, ValueError, tomllib.TOMLDecodeError) as e:
            # Never lose the person's file: keep it aside and start from defaults.
            backup = self.path.with_suffix(".toml.bad")
            try:
                os.replace(self.path, backup)
            except OSError:
                backup = self.path
            self.problem = f"Settings file {self.path} could not be read ({e}); it was kept as {backup} and defaults are used."
            log.warning(self.problem)
            return copy.deepcopy(DEFAULTS)

    def get(self, section: str, key: str) -> Any:
        return self.data.get(section, {}).get(key, DEFAULTS.get(section, {}).get(key))

    def set(self, section: str, key: str, value: Any) -> None:
        self.data.setdefault(section, {})[key] = value

    def chat_defaults(self) -> dict:
        return dict(self.data["chat"])

    def save(self) -> None:
        # Write then rename, so a crash mid-write leaves the old file, never half a file.
        tmp = self.path.with_suffix(".toml.tmp")
        with open(tmp, "wb") as f:
            tomli_w.dump(self.data, f)
        os.replace(tmp, self.path)
