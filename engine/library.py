"""The model library: the GGUF files a person added, with their metadata and checksums.

One SQLite file (``models.sqlite`` in the data dir). A row per model file: where it is,
its size and mtime when we read it, its sha256 (computed only when asked, and kept while
size and mtime stay the same: hashing a 40 GB file takes minutes), and the
``engine.gguf.ModelInfo`` summary as JSON, so listing a library never re-reads the files.

Files are recognised by content (the GGUF magic), not by extension, because the big model
stores name theirs differently: Ollama keeps ``blobs/sha256-<hex>`` files and names them in
``manifests/<registry>/<namespace>/<model>/<tag>`` JSON; LM Studio and GPT4All keep plain
``.gguf`` files in folders. Adding a folder walks it and reads the Ollama manifests it finds.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from engine import gguf
from engine.models import sha256_file
from engine.protocol import EngineError, ErrorKind

log = logging.getLogger(__name__)

OLLAMA_MODEL_MEDIA = "application/vnd.ollama.image.model"
OLLAMA_DEFAULT_REGISTRY = "registry.ollama.ai"
MAX_MANIFEST_BYTES = 1 << 20
MAX_SCAN_FILES = 200_000       # a folder walk stops here rather than run for an hour
# Architectures that are GGUF but not a chat model on their own (vision projectors).
NOT_LANGUAGE_MODELS = {"clip"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    path TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT,
    sha256_key TEXT,              -- "size:mtime_ns" the sha256 was computed for
    info TEXT NOT NULL,           -- ModelInfo as JSON
    added_at REAL NOT NULL
);
"""


@dataclass
class Entry:
    path: str
    name: str
    source: str                   # file | ollama
    size: int
    mtime_ns: int
    sha256: str | None
    info: gguf.ModelInfo
    exists: bool = True

    def to_dict(self) -> dict:
        i = self.info
        return {"name": self.name, "path": self.path, "source": self.source, "size": self.size,
                "sha256": self.sha256, "exists": self.exists, "architecture": i.architecture,
                "file_type": i.file_type, "n_params": i.n_params, "context_length": i.context_length,
                "block_count": i.block_count}


@dataclass
class AddReport:
    added: list[Entry] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (path, reason)


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == gguf.GGUF_MAGIC
    except OSError:
        return False


# ---------------------------------------------------------------------------- Ollama

def ollama_names(models_dir: Path) -> dict[str, str]:
    """Blob path -> "name:tag" from the manifests under ``models_dir`` (an Ollama
    ``models`` folder with ``manifests/`` and ``blobs/``). Bad manifests are skipped."""
    names: dict[str, str] = {}
    manifests = models_dir / "manifests"
    if not manifests.is_dir():
        return names
    for root, _dirs, files in os.walk(manifests):
        for fname in files:
            mpath = Path(root) / fname
            rel = mpath.relative_to(manifests).parts   # registry, namespace, model, tag
            if len(rel) != 4:
                continue
            try:
                if mpath.stat().st_size > MAX_MANIFEST_BYTES:
                    continue
                data = json.loads(mpath.read_text(encoding="utf-8"))
            except (OSError, ValueError) as e:
                log.info("skipping Ollama manifest %s: %s", mpath, e)
                continue
            layers = data.get("layers") if isinstance(data, dict) else None
            for layer in layers if isinstance(layers, list) else []:
                if not isinstance(layer, dict) or layer.get("mediaType") != OLLAMA_MODEL_MEDIA:
                    continue
                digest = str(layer.get("digest", ""))
                algo, _, hexdigest = digest.partition(":")
                if algo != "sha256" or not hexdigest.isalnum():
                    continue
                blob = models_dir / "blobs" / f"sha256-{hexdigest}"
                registry, namespace, model, tag = rel
                short = model if namespace == "library" else f"{namespace}/{model}"
                if registry != OLLAMA_DEFAULT_REGISTRY:
                    short = f"{registry}/{namespace}/{model}"
                names[os.path.abspath(blob)] = f"{short}:{tag}"
    return names


def _ollama_root(folder: Path) -> Path | None:
    """The Ollama ``models`` folder at, inside or above ``folder`` (~/.ollama, ~/.ollama/models
    or ~/.ollama/models/blobs)."""
    for cand in (folder, folder / "models", folder.parent):
        if (cand / "manifests").is_dir() and (cand / "blobs").is_dir():
            return cand
    return None


# ---------------------------------------------------------------------------- library

class ModelLibrary:
    def __init__(self, db_path: str | os.PathLike):
        self.db_path = Path(db_path)
        try:
            self._db = sqlite3.connect(self.db_path)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as e:
            raise EngineError(ErrorKind.INDEX_IO, f"Cannot open the model library {self.db_path}: {e}. "
                                                  "Check that the data folder is writable.") from None

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ adding

    def scan(self, target: Path) -> Iterator[tuple[Path, str, str]]:
        """(file, name, source) for every GGUF file at or under ``target``."""
        if target.is_file():
            # a single Ollama blob still gets its manifest name
            names = ollama_names(target.parent.parent) if target.parent.name == "blobs" else {}
            name = names.get(os.path.abspath(target))
            yield target, name or target.stem, "ollama" if name else "file"
            return
        ollama = _ollama_root(target)
        names = ollama_names(ollama) if ollama else {}
        seen = 0
        for root, dirs, files in os.walk(target):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") or d in (".ollama", ".lmstudio", ".cache"))
            for fname in sorted(files):
                seen += 1
                if seen > MAX_SCAN_FILES:
                    log.warning("stopped scanning %s after %d files", target, MAX_SCAN_FILES)
                    return
                p = Path(root) / fname
                if not p.is_file() or not is_gguf(p):
                    continue
                key = os.path.abspath(p)
                if key in names:
                    yield p, names[key], "ollama"
                else:
                    yield p, p.stem, "file"

    def add(self, targets: list[str | os.PathLike]) -> AddReport:
        report = AddReport()
        for t in targets:
            target = Path(t).expanduser()
            if not target.exists():
                report.skipped.append((str(target), f"{target} does not exist"))
                continue
            found = False
            for path, name, source in self.scan(target):
                found = True
                try:
                    report.added.append(self._add_file(path, name, source))
                except EngineError as e:
                    report.skipped.append((str(path), e.message))
            if not found and target.is_dir():
                report.skipped.append((str(target), f"no GGUF model files found in {target}"))
        return report

    def _add_file(self, path: Path, name: str, source: str) -> Entry:
        key = os.path.abspath(path)
        info = gguf.inspect(key)
        if info.architecture in NOT_LANGUAGE_MODELS:
            raise EngineError(ErrorKind.UNSUPPORTED_FORMAT,
                              f"'{path.name}' is a {info.architecture} vision projector, not a language model.")
        st = path.stat()
        old = self._row(key)
        sha = old["sha256"] if old and old["sha256_key"] == f"{st.st_size}:{st.st_mtime_ns}" else None
        if source == "ollama" and sha is None:
            sha = Path(key).name.removeprefix("sha256-") or None   # Ollama names blobs by their digest
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO models (path, name, source, size, mtime_ns, sha256, sha256_key, info, added_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, name, source, st.st_size, st.st_mtime_ns, sha,
                 f"{st.st_size}:{st.st_mtime_ns}" if sha else None,
                 json.dumps(info.to_dict()), old["added_at"] if old else time.time()))
        return self._entry(self._row(key))

    # ------------------------------------------------------------------ reading

    def _row(self, path: str) -> dict | None:
        cur = self._db.execute("SELECT path, name, source, size, mtime_ns, sha256, sha256_key, info, added_at "
                               "FROM models WHERE path = ?", (path,))
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([c[0] for c in cur.description], row))

    def _entry(self, row: dict) -> Entry:
        info = gguf.ModelInfo.from_dict(json.loads(row["info"]))
        try:
            st = os.stat(row["path"])
            exists = True
            stale = (st.st_size, st.st_mtime_ns) != (row["size"], row["mtime_ns"])
        except OSError:
            exists, stale = False, False
        sha = row["sha256"] if row["sha256_key"] == f"{row['size']}:{row['mtime_ns']}" and not stale else None
        return Entry(row["path"], row["name"], row["source"], row["size"], row["mtime_ns"], sha, info, exists)

    def entries(self) -> list[Entry]:
        cur = self._db.execute("SELECT path FROM models ORDER BY name COLLATE NOCASE, path")
        return [self._entry(self._row(p)) for (p,) in cur.fetchall()]

    def find(self, ref: str) -> Entry | None:
        """A model by path (any spelling of it) or by name (exact, then unique prefix)."""
        row = self._row(os.path.abspath(os.path.expanduser(ref)))
        if row:
            return self._entry(row)
        matches = [e for e in self.entries() if e.name == ref] or \
                  [e for e in self.entries() if e.name.lower().startswith(ref.lower())]
        return matches[0] if len(matches) == 1 else None

    def refresh(self, entry: Entry) -> Entry:
        """Re-read a file whose size or mtime changed since it was added."""
        try:
            st = os.stat(entry.path)
        except OSError:
            return entry
        if (st.st_size, st.st_mtime_ns) == (entry.size, entry.mtime_ns):
            return entry
        return self._add_file(Path(entry.path), entry.name, entry.source)

    def sha256(self, entry: Entry) -> str:
        """The file's sha256, computed once per (size, mtime) and kept."""
        if entry.sha256:
            return entry.sha256
        st = os.stat(entry.path)
        digest = sha256_file(Path(entry.path))
        with self._db:
            self._db.execute("UPDATE models SET sha256 = ?, sha256_key = ? WHERE path = ?",
                             (digest, f"{st.st_size}:{st.st_mtime_ns}", entry.path))
        entry.sha256 = digest
        return digest

    def remove(self, entry: Entry) -> None:
        with self._db:
            self._db.execute("DELETE FROM models WHERE path = ?", (entry.path,))
