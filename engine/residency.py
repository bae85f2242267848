"""One writer per data dir: the engine's lock on it, and the file that tells clients how to reach it.

chromadb's PersistentClient and the manifest's write paths are not safe for two processes at
once (two ``lantern index`` runs three seconds apart left an hnsw segment no later run could
open). So exactly one engine process works in a data dir at a time:

- ``engine.lock``: the engine holds an exclusive ``flock`` on it for as long as it lives. The
  kernel releases it when the process dies, however it dies, so there is never a stale lock to
  clean up. The file itself stays (unlinking a lock file races with the next locker).
- ``engine.json`` (mode 0600): how to reach the engine holding the lock: its loopback port, a
  per-run token, its pid, protocol version and mode. The window, the CLI verbs and
  ``lantern serve`` read it and connect instead of starting a second engine.

Pure Python, no heavy imports: the window and the CLI use it too (to find a running engine).
"""

from __future__ import annotations

import errno
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

LOCK_NAME = "engine.lock"
INFO_NAME = "engine.json"

# Exit status of an engine that found its data dir taken by another engine (EX_TEMPFAIL): its
# parent connects to that engine instead, or says so; it does not restart it as a crash.
EXIT_DATA_DIR_BUSY = 75

# Modes of an engine process, written in engine.json:
WINDOW = "window"   # owned by a window: it ends when the window's connection closes
CLI = "cli"         # started by a CLI verb: it ends when no client has been connected for a while
SERVE = "serve"     # `lantern serve`: runs until stopped (Ctrl+C, SIGTERM, `lantern engine stop`)
MODES = (WINDOW, CLI, SERVE)


class DataDirBusy(RuntimeError):
    """Another live engine holds the data dir's lock."""

    def __init__(self, data_dir: str, info: "EngineInfo | None"):
        self.data_dir = data_dir
        self.info = info
        who = f"a Lantern engine (pid {info.pid}, {describe_mode(info.mode)})" if info else "another Lantern engine"
        super().__init__(f"{who} already works in the data dir {data_dir}; only one may write it at a time.")


def describe_mode(mode: str) -> str:
    return {WINDOW: "the window's", CLI: "kept by the command line", SERVE: "`lantern serve`"}.get(mode, mode)


@dataclass
class EngineInfo:
    pid: int
    port: int
    token: str
    protocol: str
    mode: str
    data_dir: str
    host: str = "127.0.0.1"
    started_at: float = field(default_factory=time.time)
    keep_alive_s: float = 0.0   # CLI mode: how long it stays with no client connected

    @classmethod
    def from_dict(cls, d: dict) -> "EngineInfo":
        return cls(pid=int(d["pid"]), port=int(d["port"]), token=str(d["token"]), protocol=str(d["protocol"]),
                   mode=str(d.get("mode", "")), data_dir=str(d.get("data_dir", "")),
                   host=str(d.get("host", "127.0.0.1")), started_at=float(d.get("started_at", 0.0)),
                   keep_alive_s=float(d.get("keep_alive_s", 0.0)))


def canonical(data_dir: str | os.PathLike) -> str:
    return os.path.realpath(os.path.expanduser(str(data_dir)))


def lock_path(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / LOCK_NAME


def info_path(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / INFO_NAME


class DataDirLock:
    """The exclusive lock of one data dir, held by the engine process until it closes or dies."""

    def __init__(self, data_dir: str | os.PathLike):
        self.data_dir = canonical(data_dir)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, wait_s: float = 2.0) -> None:
        """Take the lock or raise DataDirBusy. ``wait_s`` covers a client's momentary probe
        (``engine_running``) and an engine that is closing; a live engine keeps it for good."""
        import fcntl

        os.makedirs(self.data_dir, exist_ok=True)
        # O_CLOEXEC (Python's default): a child process we start must not inherit the lock.
        fd = os.open(lock_path(self.data_dir), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise DataDirBusy(self.data_dir, read_info(self.data_dir)) from None
                time.sleep(0.05)
        self._fd = fd
        try:   # for a person looking at the file; the lock is what counts
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass

    def publish(self, info: EngineInfo) -> None:
        """Write engine.json (0600, atomically) so clients can find this engine."""
        assert self.held, "publish only under the lock"
        write_info(self.data_dir, info)

    def release(self) -> None:
        if self._fd is None:
            return
        info = read_info(self.data_dir)
        if info is not None and info.pid == os.getpid():
            try:
                info_path(self.data_dir).unlink()
            except OSError:
                pass
        os.close(self._fd)    # closing the descriptor releases the flock
        self._fd = None


def write_info(data_dir: str | os.PathLike, info: EngineInfo) -> None:
    target = info_path(data_dir)
    tmp = target.with_name(f".{INFO_NAME}.{os.getpid()}.tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(asdict(info), f)
    os.replace(tmp, target)


def read_info(data_dir: str | os.PathLike) -> EngineInfo | None:
    """What engine.json says, or None when it is missing or unreadable. It may be stale (an
    engine killed with -9 cannot remove it): check ``engine_running`` or just connect."""
    try:
        with open(info_path(data_dir), encoding="utf-8") as f:
            return EngineInfo.from_dict(json.load(f))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def engine_running(data_dir: str | os.PathLike) -> bool:
    """Whether some process holds the data dir's lock (a momentary shared-lock probe)."""
    import fcntl

    try:
        fd = os.open(lock_path(data_dir), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
