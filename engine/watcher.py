"""Watching indexed sources: new files and appended lines are indexed while the engine runs.

A poll of stat() results, not inotify/FSEvents: it works the same on every OS and on network
and container mounts where change notifications never arrive, and the indexer's manifest
already turns "something changed" into reading only what changed. Each root an index job
names is watched on its own; when its snapshot (path -> size, mtime, inode) differs from the
one taken when it was last indexed, an incremental IndexPaths is queued with an id starting
``watch-`` so the UI can tell it from the person's own jobs.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from engine import protocol as p

log = logging.getLogger(__name__)

POLL_S = 2.0
# A job that failed (a full disk, an unreadable index) is not repeated at the next change of a
# busy log: the root waits this long first.
FAILED_BACKOFF_S = 300.0
# A poll of a huge tree costs real I/O; wait at least this many times the last poll's duration.
BACKOFF = 20

Snapshot = dict[str, tuple[int, int, int]]
Key = tuple[str, str, str]   # data_dir, chroma_url, collection


@dataclass
class _Root:
    key: Key
    path: str
    snapshot: Snapshot
    exclude: set[str] = field(default_factory=set)
    enabled: bool = True
    busy: bool = True           # an index job for it is queued or running
    next_poll: float = 0.0


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def snapshot(root: str, exclude: set[str]) -> Snapshot:
    """Size, mtime and inode of every file under ``root`` (or of ``root`` itself): the files the
    indexer's walk finds, so the two agree on what is inside (links out of the folder and link
    loops are not followed, deep trees end)."""
    from engine.retrieval.indexer import IndexReport, walk

    out: Snapshot = {}
    report = IndexReport()
    for path in walk([root], report, sorted(exclude)):
        try:
            st = os.stat(path)
        except OSError:
            continue
        out[path] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


class Watcher:
    """Polls watched roots on a thread of its own; ``submit`` queues the index job it builds."""

    def __init__(self, submit: Callable[[p.IndexPaths], None], interval: float = POLL_S):
        self._submit = submit
        self.interval = interval
        self._roots: dict[tuple[Key, str], _Root] = {}
        self._jobs: dict[str, tuple[Key, list[str]]] = {}   # request id -> roots it indexes
        self._disabled: set[Key] = set()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def key(cmd) -> Key:
        return (cmd.data_dir, cmd.chroma_url, cmd.collection or "default")

    # ------------------------------------------------------------------ from the index thread

    def before_index(self, cmd: p.IndexPaths) -> bool:
        """Snapshot the roots now, before the job reads them: a change made while it runs is
        then seen by the next poll instead of being lost. False: a watch job whose root was
        removed or switched off since it was queued, to be dropped."""
        key = self.key(cmd)
        roots = [os.path.abspath(os.path.expanduser(str(x))) for x in cmd.paths]
        own = str(cmd.id).startswith(p.WATCH_ID_PREFIX)
        with self._lock:
            if own:
                old = self._roots.get((key, roots[0])) if roots else None
                if old is None or not old.enabled:
                    return False
                # Removals made after this job was queued apply to it too.
                cmd.exclude = sorted(old.exclude)
            self._jobs[cmd.id] = (key, roots)
            for r in roots:
                old = self._roots.get((key, r))
                # The person adding a folder again means all of it: earlier removals inside end.
                exclude = old.exclude if (old is not None and own) else {str(x) for x in cmd.exclude}
                enabled = old.enabled if old is not None else key not in self._disabled
                self._roots[(key, r)] = _Root(key, r, {}, exclude, enabled)
        snaps = {r: snapshot(r, self._roots[(key, r)].exclude) for r in roots}
        with self._lock:
            for r, snap in snaps.items():
                if (key, r) in self._roots:
                    self._roots[(key, r)].snapshot = snap
        self._start()
        return True

    def after_index(self, cmd: p.IndexPaths, failed: bool = False) -> None:
        with self._lock:
            key, roots = self._jobs.pop(cmd.id, (None, []))
            for r in roots:
                root = self._roots.get((key, r))
                if root is not None:
                    root.busy = False
                    root.next_poll = time.monotonic() + (FAILED_BACKOFF_S if failed else self.interval)
        if failed and roots:
            log.warning("indexing %s failed; watching it again in %d s", ", ".join(roots), FAILED_BACKOFF_S)

    def removed(self, cmd: p.RemoveSources) -> None:
        """Removed paths stop being watched: a removed root goes, a removed file or folder
        inside a watched root is left out of its next index runs."""
        key = self.key(cmd)
        gone = [os.path.abspath(os.path.expanduser(str(x))) for x in cmd.paths]
        with self._lock:
            for (k, r), root in list(self._roots.items()):
                if k != key:
                    continue
                for g in gone:
                    if _under(r, g):
                        del self._roots[(k, r)]
                        break
                    if _under(g, r):
                        root.exclude.add(g)
                        root.snapshot = {f: v for f, v in root.snapshot.items() if not _under(f, g)}

    def restore(self, data_dir: str, chroma_url: str, roots: list[tuple[str, str, list[str]]]) -> None:
        """Roots indexed in an earlier run. Their empty snapshot makes the first poll queue an
        incremental index, which also catches up on what changed while the app was closed."""
        with self._lock:
            for collection, path, exclude in roots:
                key = (data_dir, chroma_url, collection)
                if (key, path) not in self._roots:
                    self._roots[(key, path)] = _Root(key, path, {}, set(exclude), key not in self._disabled,
                                                     busy=False)
        self._start()

    def set_enabled(self, cmd: p.WatchSources) -> p.WatchState:
        key = self.key(cmd)
        wanted = {os.path.abspath(os.path.expanduser(str(x))) for x in cmd.paths}
        with self._lock:
            if not wanted:
                (self._disabled.discard if cmd.enabled else self._disabled.add)(key)
            for (k, r), root in self._roots.items():
                if k == key and (not wanted or r in wanted):
                    root.enabled = bool(cmd.enabled)
            roots = [{"path": r, "enabled": root.enabled} for (k, r), root in sorted(self._roots.items())
                     if k == key]
        return p.WatchState(id=cmd.id, collection=key[2], roots=roots)

    # ------------------------------------------------------------------ polling

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._loop, name="engine-watcher", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval / 4):
            try:
                self.poll()
            except Exception:  # a bug here must not end watching for the rest of the run
                log.exception("watching sources failed once; trying again at the next poll")

    def poll(self) -> list[str]:
        """Check the roots that are due; queue an index job for each that changed."""
        now = time.monotonic()
        with self._lock:
            due = [r for r in self._roots.values() if r.enabled and not r.busy and r.next_poll <= now]
        queued = []
        for root in due:
            t0 = time.monotonic()
            snap = snapshot(root.path, root.exclude)
            took = time.monotonic() - t0
            with self._lock:
                if self._roots.get((root.key, root.path)) is not root or root.busy:
                    continue   # removed or re-indexed while we looked
                root.next_poll = time.monotonic() + max(self.interval, BACKOFF * took)
                if snap == root.snapshot:
                    continue
                root.busy = True
            data_dir, chroma_url, collection = root.key
            cmd = p.IndexPaths(id=f"{p.WATCH_ID_PREFIX}{next(self._ids)}", paths=[root.path],
                               collection=collection, data_dir=data_dir, chroma_url=chroma_url,
                               exclude=sorted(root.exclude))
            log.info("%s changed; indexing what is new (%s)", root.path, cmd.id)
            self._submit(cmd)
            queued.append(cmd.id)
        return queued
