"""The data dir lock and engine.json, with the lock held by a real second process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from engine import residency as r

HOLDER = textwrap.dedent("""
    import sys, time
    from engine import residency as r
    lock = r.DataDirLock(sys.argv[1])
    lock.acquire()
    lock.publish(r.EngineInfo(pid=__import__("os").getpid(), port=1, token="t", protocol="1.6", mode="cli",
                              data_dir=lock.data_dir))
    print("locked", flush=True)
    time.sleep(60)
""")


@pytest.fixture
def holder(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_locker_is_refused_with_the_holders_pid_and_the_data_dir(tmp_path, holder):
    assert r.engine_running(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(r.DataDirBusy) as e:
        r.DataDirLock(tmp_path).acquire(wait_s=0.3)
    assert time.monotonic() - t0 < 5
    assert f"pid {holder.pid}" in str(e.value) and str(tmp_path) in str(e.value)
    assert e.value.info.mode == r.CLI


def test_the_lock_is_released_when_its_process_dies(tmp_path, holder):
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert not r.engine_running(tmp_path)
    lock = r.DataDirLock(tmp_path)
    lock.acquire(wait_s=0)
    assert lock.held
    lock.release()


def test_engine_json_is_private_and_removed_by_its_writer(tmp_path):
    lock = r.DataDirLock(tmp_path)
    lock.acquire()
    info = r.EngineInfo(pid=os.getpid(), port=4242, token="secret", protocol="1.6", mode=r.SERVE,
                        data_dir=str(tmp_path))
    lock.publish(info)
    assert (tmp_path / r.INFO_NAME).stat().st_mode & 0o777 == 0o600
    back = r.read_info(tmp_path)
    assert (back.pid, back.port, back.token, back.mode) == (os.getpid(), 4242, "secret", r.SERVE)
    assert r.engine_running(tmp_path)   # flock is per open file: the probe sees our own lock too
    lock.release()
    assert r.read_info(tmp_path) is None and not r.engine_running(tmp_path)


def test_unreadable_engine_json_reads_as_none(tmp_path):
    (tmp_path / r.INFO_NAME).write_text("{not json")
    assert r.read_info(tmp_path) is None
    (tmp_path / r.INFO_NAME).write_text('{"pid": "x"}')
    assert r.read_info(tmp_path) is None
