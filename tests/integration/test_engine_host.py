"""The engine's host over a real `python -m engine`: several clients, each answered on its own
connection, a token to get in, and a second engine for the same data dir refused at start."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from app.engine_process import EngineProcess
from engine import protocol as p
from engine import residency
from engine.channel import ENV_DATA_DIR, ENV_MODE, ENV_PORT, ENV_TOKEN, AttachRefused, LineChannel

pytestmark = pytest.mark.slow


def _until(chan: LineChannel, rid: str) -> list[p.Message]:
    got = []
    for msg in chan:
        got.append(msg)
        if msg.id == rid and p.ends_request(msg):
            return got
    raise AssertionError(f"the connection closed before {rid} ended: {got}")


def test_clients_get_their_own_answers_and_a_second_engine_is_refused(tmp_path):
    data = tmp_path / "data"
    with EngineProcess(log_path=tmp_path / "engine.log", data_dir=data, keep_alive_s=30) as first:
        info = residency.read_info(data)
        assert info.pid == first.pid and info.mode == residency.CLI and info.port > 0

        other = LineChannel.attach(info.port, info.token)
        mine, theirs = p.ListCollections(data_dir=str(data)), p.GetStatus()
        first.send(mine)
        other.send(theirs)
        got = _until(other, theirs.id)
        assert [type(m) for m in got] == [p.Status] and got[0].pid == first.pid   # not the other's answer
        assert isinstance(first.call(p.GetStatus()), p.Status)
        assert [type(e) for e in first.events(mine.id)] == [p.CollectionList]

        # A request id already in flight is refused; a cancel of another client's request is ignored.
        assert isinstance(first.call(p.LoadModel(n_ctx=512)), p.ModelLoaded)
        slow = p.Chat(messages=[{"role": "user", "content": "Write a long story about a lighthouse."}],
                      sampling={"temperature": 0.7, "max_tokens": 1500, "seed": 1})
        stream = first.events(first.send(slow))
        assert isinstance(next(stream), p.Token)   # the engine has it (clients' lines race otherwise)
        other.send(p.Cancel(target=slow.id))
        other.send(p.GetStatus(id=slow.id))
        got = _until(other, slow.id)
        assert isinstance(got[-1], p.Failed) and "already in use" in got[-1].message
        time.sleep(0.5)
        status = p.GetStatus()
        other.send(status)
        assert _until(other, status.id)[-1].state == "generating"   # the other client's cancel was ignored
        first.send(p.Cancel(target=slow.id))
        assert isinstance(list(stream)[-1], p.Cancelled)

        # A command naming a data dir another engine holds is refused, naming it.
        held = tmp_path / "held"
        lock = residency.DataDirLock(held)
        lock.acquire()
        try:
            ev = first.call(p.ListSources(data_dir=str(held)))
            assert isinstance(ev, p.Failed) and str(held) in ev.message and ev.kind == p.ErrorKind.BUSY
        finally:
            lock.release()
        other.close()

        with pytest.raises(AttachRefused, match="wrong token"):
            LineChannel.attach(info.port, "not-the-token")

        # A second engine for the same data dir exits at once with 75, before any heavy import.
        env = dict(os.environ, **{ENV_PORT: "1", ENV_TOKEN: "t", ENV_DATA_DIR: str(data), ENV_MODE: "cli"})
        t0 = time.monotonic()
        second = subprocess.run([sys.executable, "-m", "engine"], env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == residency.EXIT_DATA_DIR_BUSY
        assert f"pid {first.pid}" in second.stderr and str(data) in second.stderr
        assert time.monotonic() - t0 < 10

        # A client that attaches shares the engine; Shutdown from it stops a CLI-mode engine.
        with EngineProcess(log_path=tmp_path / "engine.log", data_dir=data, keep_alive_s=30) as again:
            assert again.attached and again.pid == first.pid
            again.send(p.Shutdown())
        assert first.proc.wait(timeout=60) == 0
    assert not residency.engine_running(data) and residency.read_info(data) is None


def test_a_kept_engine_stops_on_its_own_after_keep_alive(tmp_path):
    data = tmp_path / "data"
    with EngineProcess(log_path=tmp_path / "engine.log", data_dir=data, keep_alive_s=1.5) as engine:
        assert isinstance(engine.call(p.ListCollections(data_dir=str(data))), p.CollectionList)
        proc = engine.proc
    assert proc.poll() is None                     # kept for the next verb ...
    assert proc.wait(timeout=30) == 0              # ... and gone, in order, once no one came
    assert not residency.engine_running(data) and residency.read_info(data) is None
    assert "no client for 1.5 s" in (tmp_path / "engine.log").read_text()


def test_keep_alive_setting_is_read_from_the_environment_then_settings(monkeypatch, tmp_path):
    from app.engine_process import DEFAULT_KEEP_ALIVE_S, EngineUnavailable, keep_alive_s
    from app.settings import Settings

    settings = Settings(tmp_path / "settings.toml")
    monkeypatch.delenv("LANTERN_ENGINE_KEEP_ALIVE_S", raising=False)
    assert keep_alive_s(settings) == DEFAULT_KEEP_ALIVE_S == 600
    settings.set("engine", "keep_alive_s", 30)
    assert keep_alive_s(settings) == 30
    monkeypatch.setenv("LANTERN_ENGINE_KEEP_ALIVE_S", "0")
    assert keep_alive_s(settings) == 0
    monkeypatch.setenv("LANTERN_ENGINE_KEEP_ALIVE_S", "ten minutes")
    with pytest.raises(EngineUnavailable, match="LANTERN_ENGINE_KEEP_ALIVE_S"):
        keep_alive_s(settings)
