"""`lantern index` and `lantern search` as a person runs them: real engine process, real embedder,
real chromadb and FTS5, logs generated here."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow

JAVA = """2024-06-21 16:47:47,002 INFO  [main] com.acme.Web - GET /orders 200 from 10.0.0.8
2024-06-21 16:47:48,123 ERROR [pool-1] com.acme.OrderService - failed to place order
java.lang.IllegalStateException: order store unavailable
\tat com.acme.OrderService.place(OrderService.java:42)
Caused by: java.sql.SQLException: ORA-00942: table or view does not exist
\t... 3 more
2024-06-21 16:47:49,001 INFO  [main] com.acme.Web - GET /orders 200 from 10.0.0.9
"""


def lantern(*args, data_dir, timeout=180, **kw):
    return subprocess.run([sys.executable, "-m", "app.main", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=timeout, **kw)


def test_index_then_search_json(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text(JAVA)
    (logs / "blob.dat").write_bytes(bytes(range(256)) * 4)
    r = lantern("index", str(logs), "--json", data_dir=tmp_path / "data")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["files"] == 1 and summary["chunks"] >= 1 and summary["seconds"] > 0
    assert summary["skipped"][0]["path"] == str(logs / "blob.dat") and "binary" in summary["skipped"][0]["reason"]
    assert "read" in r.stderr or "embed" in r.stderr  # progress went to stderr

    queries = tmp_path / "q.txt"
    queries.write_text("ORA-00942\n10.0.0.9\nwhy could the order not be placed\n")
    r = lantern("search", "--queries", str(queries), "-k", "2", "--json", data_dir=tmp_path / "data")
    assert r.returncode == 0, r.stderr
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert [o["query"] for o in out] == ["ORA-00942", "10.0.0.9", "why could the order not be placed"]
    first = out[0]["hits"][0]
    assert set(first) == {"path", "line_start", "line_end", "page", "score", "text", "heading"}
    assert first["heading"] == ""      # a log record has no section
    assert (first["path"], first["line_start"], first["line_end"]) == (str(logs / "app.log"), 2, 6)
    assert (out[1]["hits"][0]["line_start"], out[1]["hits"][0]["line_end"]) == (7, 7)
    assert out[2]["hits"][0]["line_start"] == 2

    r = lantern("search", "order", "--level", "error", "--since", "2024-06-21T00:00:00", "--file", "*.log",
                data_dir=tmp_path / "data")
    assert r.returncode == 0 and f"{logs / 'app.log'}:2-6" in r.stdout, r.stdout + r.stderr
    r = lantern("search", "x", "--level", "loud", data_dir=tmp_path / "data")
    assert r.returncode == 1 and "Unknown level" in r.stderr and "Traceback" not in r.stderr

    # `ask` answers from the index by default once there is one, citing like search does.
    r = lantern("ask", "why could the order not be placed?", "--json", "--max-tokens", "16", "--seed", "1",
                data_dir=tmp_path / "data")
    assert r.returncode == 0, r.stderr
    cites = json.loads(r.stdout)["citations"]
    assert cites and set(cites[0]) == {"path", "line_start", "line_end", "page", "heading", "score", "text"}
    assert (cites[0]["path"], cites[0]["line_start"], cites[0]["line_end"]) == (str(logs / "app.log"), 2, 6)
    assert "[1] " + str(logs / "app.log") + ":2-6" in r.stderr


def _corpus(root: Path, files: int, lines: int) -> None:
    root.mkdir()
    for f in range(files):
        (root / f"svc{f}.log").write_text("".join(
            f"2024-06-21 11:{i // 60 % 60:02d}:{i % 60:02d},000 INFO  [w{f}] svc{f}.Worker - job {f}-{i} done "
            f"for host h{i % 7}.example in {i % 13} ms\n" for i in range(lines)))


def _chunk_state(data_dir: Path):
    import sqlite3

    db = sqlite3.connect(data_dir / "manifest.sqlite")
    rows = db.execute("SELECT id, path, line_start, line_end, embedded FROM chunks ORDER BY path, line_start").fetchall()
    fts = db.execute("SELECT count(*) FROM chunks_fts").fetchone()[0]
    db.close()
    return rows, fts


def test_kill_9_during_indexing_then_rerun_loses_and_duplicates_nothing(tmp_path):
    corpus = tmp_path / "corpus"
    _corpus(corpus, files=60, lines=80)
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "app.main", "--data-dir", str(data), "index", str(corpus)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = False
    for line in proc.stderr:
        if ("read" in line and "read 0/" not in line) or "embed" in line:
            for child in psutil.Process(proc.pid).children(recursive=True):
                os.kill(child.pid, signal.SIGKILL)  # the engine, mid-write
            killed = True
            break
    proc.communicate(timeout=60)
    assert killed and proc.returncode != 0
    partial, _ = _chunk_state(data)

    r = lantern("index", str(corpus), data_dir=data)
    assert r.returncode == 0, r.stderr
    rows, fts = _chunk_state(data)
    assert len(partial) < len(rows)
    assert len({c[0] for c in rows}) == len(rows) == fts and all(c[4] == 1 for c in rows)

    fresh = tmp_path / "fresh"
    assert lantern("index", str(corpus), data_dir=fresh).returncode == 0
    clean, _ = _chunk_state(fresh)
    assert [c[:4] for c in rows] == [c[:4] for c in clean]  # same chunks, same ids, nothing missing
    import chromadb

    client = chromadb.PersistentClient(path=str(data / "chroma"))
    assert sum(c.count() for c in client.list_collections()) == len(rows)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chroma_server_mode(tmp_path):
    chroma = Path(sys.executable).with_name("chroma")
    if not chroma.exists():
        pytest.skip(f"the chroma CLI is not installed next to {sys.executable}; pip install chromadb")
    port = _free_port()
    server = subprocess.Popen([str(chroma), "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        logs = tmp_path / "logs"
        logs.mkdir()
        (logs / "app.log").write_text(JAVA)
        url = f"http://127.0.0.1:{port}"
        r = lantern("index", str(logs), "--chroma-url", url, data_dir=tmp_path / "data")
        assert r.returncode == 0, r.stderr
        assert not (tmp_path / "data" / "chroma").exists()  # vectors went to the server
        r = lantern("search", "table does not exist", "--chroma-url", url, "--json", data_dir=tmp_path / "data")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["hits"][0]["line_start"] == 2
    finally:
        server.terminate()
        server.wait(10)
