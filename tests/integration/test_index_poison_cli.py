"""`lantern index` on a folder with files it must leave out: the run ends well, each left-out
file is printed with its reason, and the good file is searchable."""

import gzip
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def lantern(*args, data_dir, timeout=180):
    return subprocess.run([sys.executable, "-m", "app.main", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=timeout)


def test_index_prints_each_left_out_file_with_its_reason(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a1-unbalanced.csv").write_text('time,msg\n2024-01-01 10:00:00,"start\n' + "x" * 200_000 + "\n")
    # a rotated log cut short in the copy
    (logs / "a2-truncated.log.gz").write_bytes(gzip.compress(b"2024-06-21 10:00:00 INFO line one\n" * 200)[:60])
    os.symlink("/", logs / "z")
    (logs / "z-good.log").write_text("2024-06-21 10:00:00 INFO service started kumquat-7731 on node-3\n")
    r = lantern("index", str(logs), data_dir=tmp_path / "data")
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["files"] == 1 and len(summary["skipped"]) == 3
    assert f"skipped {logs / 'a1-unbalanced.csv'}: a CSV field is larger than the field limit" in r.stderr
    assert f"skipped {logs / 'a2-truncated.log.gz'}: the compressed file is truncated or damaged" in r.stderr
    assert f"skipped {logs / 'z'}: a symbolic link to /, outside the folder you added" in r.stderr
    r = lantern("search", "kumquat-7731", "--json", data_dir=tmp_path / "data")
    assert r.returncode == 0 and json.loads(r.stdout.splitlines()[0])["hits"][0]["path"] == str(logs / "z-good.log")
