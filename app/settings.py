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
    "api": {
        "enabled": False,   # the window's local OpenAI-compatible API server (Settings › Local API server)
        "port": 8765,       # on 127.0.0.1; 0: any free port
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


def _merge(defaults: dict, data: dict, ignored: list[str] | None = None, where: str = "") -> dict:
    """``defaults`` overlaid with ``data``. A value of the wrong kind for a known setting (text
    where a number belongs) is left out and its name added to ``ignored``; unknown settings
    are kept as they are (a newer version's, or the person's)."""
    out = copy.deepcopy(defaults)
    for k, v in data.items():
        name = f"{where}{k}"
        known = out.get(k)
        if isinstance(known, dict):
            if isinstance(v, dict):
                out[k] = _merge(known, v, ignored, f"{name}.")
            elif ignored is not None:
                ignored.append(name)
        elif k in out and not _same_kind(known, v):
            if ignored is not None:
                ignored.append(name)
        else:
            out[k] = v
    return out


def _same_kind(default, value) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float)) and (isinstance(default, float) or isinstance(value, int))
    return isinstance(value, type(default))


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
        self.read_only = False  # a newer version's file: read, never written over
        self.data = self._read()

    def _read(self) -> dict:
        if not self.path.exists():
            return copy.deepcopy(DEFAULTS)
        try:
            with open(self.path, "rb") as f:
                raw = tomllib.load(f)
            version = raw.get("version", 1)
            if isinstance(version, int) and not isinstance(version, bool) and version > SETTINGS_VERSION:
                return self._read_newer(raw, version)
            ignored: list[str] = []
            data = _merge(DEFAULTS, migrate(raw), ignored)
            if ignored:
                self.problem = (f"Some settings in {self.path} have values this Lantern cannot use "
                                f"({', '.join(ignored)}); their defaults are used instead.")
                log.warning(self.problem)
            return data
        except (OSError, ValueError, TypeError, tomllib.TOMLDecodeError) as e:
            # Never lose the person's file: keep it aside and start from defaults.
            backup = self.path.with_suffix(".toml.bad")
            try:
                os.replace(self.path, backup)
            except OSError:
                backup = self.path
            self.problem = f"Settings file {self.path} could not be read ({e}); it was kept as {backup} and defaults are used."
            log.warning(self.problem)
            return copy.deepcopy(DEFAULTS)

    def _read_newer(self, raw: dict, version: int) -> dict:
        """A file from a newer Lantern: use every setting this version knows, keep the file
        exactly as it is (the newer version will want all of it back), and save nothing."""
        self.read_only = True
        data = _merge(DEFAULTS, raw)
        data["version"] = SETTINGS_VERSION
        self.problem = (f"Settings file {self.path} was written by a newer version of Lantern (settings version "
                        f"{version}; this one reads {SETTINGS_VERSION}). The settings this version knows are used; "
                        "the file is left as it is, so changes made now last until Lantern closes.")
        log.warning(self.problem)
        return data

    def get(self, section: str, key: str) -> Any:
        return self.data.get(section, {}).get(key, DEFAULTS.get(section, {}).get(key))

    def set(self, section: str, key: str, value: Any) -> None:
        self.data.setdefault(section, {})[key] = value

    def chat_defaults(self) -> dict:
        return dict(self.data["chat"])

    def save(self) -> None:
        if self.read_only:
            log.info("not saving settings over %s, written by a newer Lantern", self.path)
            return
        # Write then rename, so a crash mid-write leaves the old file, never half a file.
        tmp = self.path.with_suffix(".toml.tmp")
        with open(tmp, "wb") as f:
            tomli_w.dump(self.data, f)
        os.replace(tmp, self.path)
