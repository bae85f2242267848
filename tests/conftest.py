"""Fixtures shared by all test folders: the real default model, driven in-process."""

from __future__ import annotations

import os
import queue
import threading
import time

import pytest

# Qt tests run without a screen; set before any Qt import anywhere in the run.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# A CLI verb run by a test stops its engine when it ends, as before engines were kept for the next
# verb; the tests of that keeping set it themselves.
os.environ.setdefault("LANTERN_ENGINE_KEEP_ALIVE_S", "0")

from engine import protocol as p  # noqa: E402
from engine.service import EngineService  # noqa: E402

FINAL = p.FINAL_EVENTS   # the events that end a request: the engine's routing and the CLI read it too



def wait_until(pred, timeout: float = 10.0, step: float = 0.05) -> bool:
    """Poll ``pred`` until it holds or ``timeout`` passes; whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()

class ServiceHarness:
    """An EngineService in this process with its events collected per request."""

    def __init__(self):
        self._lock = threading.Lock()
        self.events: dict[str, list[p.Event]] = {}
        self._queues: dict[str, queue.Queue] = {}
        self.service = EngineService(self._emit)

    def _emit(self, ev: p.Event) -> None:
        with self._lock:
            self.events.setdefault(ev.id, []).append(ev)
            q = self._queues.setdefault(ev.id, queue.Queue())
        q.put(ev)

    def queue_for(self, rid: str) -> queue.Queue:
        with self._lock:
            return self._queues.setdefault(rid, queue.Queue())

    def send(self, cmd: p.Command) -> str:
        self.queue_for(cmd.id)
        self.service.handle(cmd)
        return cmd.id

    def wait(self, rid: str, timeout: float = 120.0) -> p.Event:
        q = self.queue_for(rid)
        while True:
            ev = q.get(timeout=timeout)
            if isinstance(ev, FINAL):
                return ev

    def call(self, cmd: p.Command, timeout: float = 120.0) -> p.Event:
        return self.wait(self.send(cmd), timeout)

    def tokens(self, rid: str) -> list[p.Token]:
        return [e for e in self.events.get(rid, []) if isinstance(e, p.Token)]


@pytest.fixture(scope="session")
def engine():
    """One in-process engine with the default model loaded, shared by the run (loading is cheap,
    but the KV cache and threads are not worth setting up per test)."""
    h = ServiceHarness()
    loaded = h.call(p.LoadModel(n_ctx=2048))
    assert isinstance(loaded, p.ModelLoaded), loaded
    yield h
    h.service.close()


def chat(engine: ServiceHarness, text: str, system: str | None = None, **sampling) -> p.Event:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    return engine.call(p.Chat(messages=messages, sampling=sampling))
