"""One engine per data dir, as people hit it: real engine processes, real CLI subprocesses, the
real window client, the real embedder and chromadb.

Two `lantern index` runs a few seconds apart used to start two engines writing one chromadb
directory, which corrupted it for every later search; now the second run talks to the first's
engine. CLI verbs reuse a running engine (the window's, or the one the previous verb kept), and
killing an engine hands the data dir back at once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app import paths as app_paths
from app.conversations import STREAMING, ConversationStore
from engine import residency
from tests.conftest import wait_until

pytestmark = pytest.mark.slow

KEEP = "LANTERN_ENGINE_KEEP_ALIVE_S"


def _cmd(data_dir, *args):
    return [sys.executable, "-m", "app.main", "--data-dir", str(data_dir), *args]


def lantern(*args, data_dir, keep_alive: float = 0, timeout=300, **kw):
    env = dict(os.environ, **{KEEP: f"{keep_alive:g}"})
    return subprocess.run(_cmd(data_dir, *args), capture_output=True, text=True, timeout=timeout, env=env, **kw)


def popen(*args, data_dir, keep_alive: float = 0):
    env = dict(os.environ, **{KEEP: f"{keep_alive:g}"})
    return subprocess.Popen(_cmd(data_dir, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)


def _logs(root: Path, name: str, files: int, lines: int) -> Path:
    root.mkdir()
    for f in range(files):
        (root / f"{name}{f}.log").write_text("".join(
            f"2024-06-21 11:{i // 60 % 60:02d}:{i % 60:02d},000 INFO  [w{f}] {name}{f}.Worker - job {name}-{f}-{i} "
            f"done for host h{i % 7}.{name}.example in {i % 13} ms\n" for i in range(lines)))
    return root


def _engine_starts(data_dir: Path) -> int:
    return (data_dir / "logs" / "engine.log").read_text(errors="replace").count("engine ready")


def _stop_engine(data_dir: Path) -> None:
    r = lantern("engine", "stop", data_dir=data_dir)
    assert r.returncode == 0, r.stderr


def test_two_index_runs_three_seconds_apart_have_one_writer(tmp_path):
    first_logs = _logs(tmp_path / "alpha", "alpha", files=30, lines=60)
    second_logs = _logs(tmp_path / "beta", "beta", files=10, lines=60)
    data = tmp_path / "data"
    first = popen("index", str(first_logs), data_dir=data)
    # The second run starts as soon as the first's engine holds the dir, not a fixed 3 s later:
    # the first run alone can end within 3 s, and then there is nothing to share.
    wait_until(lambda: residency.engine_running(data), 60)
    second = lantern("index", str(second_logs), data_dir=data)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 0, second.stderr
    assert json.loads(out)["files"] == 30 and json.loads(second.stdout)["files"] == 10
    log = (data / "logs" / "engine.log").read_text(errors="replace")
    assert _engine_starts(data) == 1, log           # the second run used the first's engine
    assert "(attached, pid " in log
    assert not residency.engine_running(data)       # keep-alive 0: it stopped after both, in order

    r = lantern("search", "--queries", "-", "--json", "-k", "1", data_dir=data,
                input="job alpha-29-59\njob beta-9-59\n")
    assert r.returncode == 0, r.stderr
    hits = [json.loads(line)["hits"][0] for line in r.stdout.splitlines()]
    assert hits[0]["path"] == str(first_logs / "alpha29.log") and hits[0]["line_start"] <= 60 <= hits[0]["line_end"]
    assert hits[1]["path"] == str(second_logs / "beta9.log")

    # The store is intact: every chunk the manifest has is in chroma once, and it opens cleanly.
    db = sqlite3.connect(data / "manifest.sqlite")
    chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
    db.close()
    import chromadb

    client = chromadb.PersistentClient(path=str(data / "chroma"))
    assert sum(c.count() for c in client.list_collections()) == chunks > 0


def test_repeated_search_reuses_the_running_engine_and_stop_hands_the_dir_back(tmp_path):
    logs = _logs(tmp_path / "logs", "svc", files=3, lines=40)
    data = tmp_path / "data"
    assert lantern("index", str(logs), data_dir=data).returncode == 0
    assert not residency.engine_running(data)

    t0 = time.perf_counter()
    cold = lantern("search", "job svc-1-17", "--json", "-k", "1", data_dir=data, keep_alive=120)
    cold_s = time.perf_counter() - t0
    assert cold.returncode == 0, cold.stderr
    info = residency.read_info(data)
    assert info is not None and info.mode == residency.CLI and residency.pid_alive(info.pid)
    assert oct((data / "engine.json").stat().st_mode & 0o777) == "0o600"

    t0 = time.perf_counter()
    second = popen("search", "job svc-1-17", "--json", "-k", "1", data_dir=data, keep_alive=120)
    out, err = second.communicate(timeout=120)
    warm_s = time.perf_counter() - t0
    assert second.returncode == 0, err
    assert json.loads(out)["hits"] == json.loads(cold.stdout)["hits"]
    assert residency.read_info(data).pid == info.pid
    assert _engine_starts(data) == 2                # the index run's engine, then this one: no third
    assert f"(attached, pid {second.pid}) connected" in (data / "logs" / "engine.log").read_text()
    print(f"\nlantern search: first {cold_s:.2f} s (engine start + embedder), repeated {warm_s:.2f} s")
    assert warm_s < cold_s / 2, (cold_s, warm_s)

    status = lantern("engine", "status", "--json", data_dir=data)
    assert json.loads(status.stdout)["pid"] == info.pid
    _stop_engine(data)
    assert not residency.engine_running(data) and not (data / "engine.json").exists()
    assert wait_until(lambda: not residency.pid_alive(info.pid) or _zombie(info.pid))

    # A window opened on a data dir whose engine the command line kept takes it over.
    from app.gui import data_dir_taken

    assert lantern("search", "job svc-0-1", "-k", "1", data_dir=data, keep_alive=120).returncode == 0
    assert residency.engine_running(data)
    assert data_dir_taken(app_paths.resolve(data)) == ""
    assert not residency.engine_running(data)


def _zombie(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_killing_the_engine_releases_the_lock(tmp_path):
    logs = _logs(tmp_path / "logs", "svc", files=2, lines=20)
    data = tmp_path / "data"
    r = lantern("index", str(logs), data_dir=data, keep_alive=120)
    assert r.returncode == 0, r.stderr
    info = residency.read_info(data)
    assert residency.engine_running(data)
    with pytest.raises(residency.DataDirBusy, match=str(data)):
        residency.DataDirLock(data).acquire(wait_s=0.2)
    os.kill(info.pid, signal.SIGKILL)
    assert wait_until(lambda: not residency.engine_running(data), timeout=5)
    # engine.json is stale now; the next verb sees through it and starts a new engine.
    r = lantern("search", "job svc-1-3", "--json", "-k", "1", data_dir=data)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["hits"][0]["path"] == str(logs / "svc1.log")
    assert _engine_starts(data) == 2


def test_cli_uses_the_windows_engine_while_the_window_keeps_working(qtbot, tmp_path):
    from app.gui import data_dir_taken, engine_env
    from ui.client import EngineClient

    logs = _logs(tmp_path / "logs", "svc", files=2, lines=30)
    data = tmp_path / "data"
    assert lantern("index", str(logs), data_dir=data).returncode == 0
    paths = app_paths.resolve(data)
    client = EngineClient(engine_log_path=str(paths.engine_log), extra_env=engine_env(paths))
    try:
        with qtbot.waitSignal(client.model_loaded, timeout=120_000):
            client.load_model(n_ctx=2048)
        window_pid = client.pid
        assert residency.read_info(data).mode == residency.WINDOW
        seen_by_window = []
        client.search_result.connect(lambda rid, fields: seen_by_window.append(rid))
        replies = []
        client.reply_finished.connect(lambda rid, fields: replies.append(rid))

        cli = popen("search", "job svc-0-11", "--json", "-k", "1", data_dir=data)
        # The window chats while the CLI's search comes and goes on the same engine.
        with qtbot.waitSignal(client.reply_finished, timeout=120_000):
            chat_id = client.chat([{"role": "user", "content": "Say hi."}], {"temperature": 0, "max_tokens": 8})
        qtbot.waitUntil(lambda: cli.poll() is not None, timeout=120_000)
        out, err = cli.communicate()
        assert cli.returncode == 0, err
        assert json.loads(out)["hits"][0]["path"] == str(logs / "svc0.log")
        assert replies == [chat_id] and seen_by_window == []   # events went to their own client
        assert client.pid == window_pid and _engine_starts(data) == 2   # no engine of the CLI's own
        assert f"(attached, pid {cli.pid}) connected" in paths.engine_log.read_text()

        # After the CLI left, the window's connection still works.
        with qtbot.waitSignal(client.search_result, timeout=60_000) as got:
            rid = client.search(["job svc-1-5"], k=1, data_dir=str(data))
        assert got.args[0] == rid and got.args[1]["hits"][0]["path"] == str(logs / "svc1.log")

        # The CLI may not swap the window's model, nor stop its engine.
        other = tmp_path / "other.gguf"
        other.write_bytes(b"GGUF")
        r = lantern("ask", "hi", "--model", str(other), "--no-sources", data_dir=data)
        assert r.returncode == 1 and "The window has" in r.stderr, r.stderr
        r = lantern("engine", "stop", data_dir=data)
        assert r.returncode == 1 and "close the window" in r.stderr
        assert client.pid == window_pid

        # A second window on the data dir explains itself and opens nothing: the first window's
        # live reply stays live (the second never opens the conversation store).
        store = ConversationStore(paths.conversations_db)
        cid = store.create_conversation().id
        store.add_message(cid, "assistant", "half a rep", status=STREAMING)
        store.close()
        with qtbot.waitSignal(client.show_requested, timeout=10_000):   # the first window comes forward
            assert str(data) in data_dir_taken(paths)
        with qtbot.waitSignal(client.show_requested, timeout=10_000):
            second = lantern(data_dir=data, timeout=60)
        assert second.returncode == 1 and "already open" in second.stderr and str(data) in second.stderr
        assert "brought to the front" in second.stderr
        db = sqlite3.connect(paths.conversations_db)
        assert db.execute("SELECT status FROM messages").fetchall() == [(STREAMING,)]
        db.close()
    finally:
        client.stop()
    assert wait_until(lambda: not residency.engine_running(data), timeout=30)


def test_lantern_serve_is_the_engine_verbs_use_and_stops_in_order_on_sigterm(tmp_path):
    logs = _logs(tmp_path / "logs", "svc", files=2, lines=20)
    data = tmp_path / "data"
    serve = subprocess.Popen(_cmd(data, "serve", "--port", "0"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: residency.read_info(data) is not None, timeout=60), serve.stderr.read()
        info = residency.read_info(data)
        assert info.pid == serve.pid and info.mode == residency.SERVE
        r = lantern("index", str(logs), data_dir=data)
        assert r.returncode == 0, r.stderr
        r = lantern("search", "job svc-1-3", "--json", "-k", "1", data_dir=data)
        assert r.returncode == 0 and json.loads(r.stdout)["hits"][0]["path"] == str(logs / "svc1.log")
        assert residency.read_info(data).pid == serve.pid      # both verbs used it

        again = lantern("serve", "--port", "0", data_dir=data, timeout=60)
        assert again.returncode == residency.EXIT_DATA_DIR_BUSY
        assert f"pid {serve.pid}" in again.stderr and str(data) in again.stderr

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=120) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
    assert not residency.engine_running(data) and residency.read_info(data) is None
