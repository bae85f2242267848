"""Where Lantern keeps its files. Everything lives under one data dir, which ``--data-dir``
(or LANTERN_DATA_DIR) overrides, for tests and for portable use from a USB stick."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "Lantern"
ENV_DATA_DIR = "LANTERN_DATA_DIR"


class DataDirError(RuntimeError):
    """The data dir cannot be created or written; the message says which and what to do."""


@dataclass(frozen=True)
class Paths:
    data_dir: Path

    @property
    def conversations_db(self) -> Path:
        return self.data_dir / "conversations.sqlite"

    @property
    def settings_file(self) -> Path:
        return self.data_dir / "settings.toml"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def engine_log(self) -> Path:
        return self.logs_dir / "engine.log"

    @property
    def app_log(self) -> Path:
        return self.logs_dir / "lantern.log"


def default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def resolve(data_dir: str | os.PathLike | None = None) -> Paths:
    """Pick the data dir, create it and prove it is writable, or raise DataDirError."""
    chosen = data_dir or os.environ.get(ENV_DATA_DIR) or default_data_dir()
    root = Path(chosen).expanduser().resolve()
    paths = Paths(root)
    try:
        for d in (root, paths.logs_dir, paths.models_dir):
            d.mkdir(parents=True, exist_ok=True)
        # mkdir succeeds on an existing read-only dir; only a real write proves we can save.
        with tempfile.NamedTemporaryFile(dir=root, prefix=".write-test-"):
            pass
    except OSError as e:
        raise DataDirError(
            f"Lantern cannot write to its data folder {root}: {e.strerror or e}. "
            f"Make it writable, or start Lantern with --data-dir pointing at a folder you own."
        ) from None
    return paths
