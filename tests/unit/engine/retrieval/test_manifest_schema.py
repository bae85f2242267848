"""The manifest's schema version is checked before anything is written to it."""

import sqlite3
import subprocess
import sys

import pytest

from engine.protocol import EngineError, ErrorKind
from engine.retrieval.manifest import SCHEMA_VERSION, Manifest


def _newer_manifest(path, version):
    m = Manifest(path)
    m.db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(version),))
    m.db.execute("DROP TABLE roots")   # a table this version would create again if it wrote
    m.close()


def test_a_newer_manifest_is_refused_by_name_and_left_untouched(tmp_path):
    data = tmp_path / "data dir"
    path = data / "manifest.sqlite"
    _newer_manifest(path, SCHEMA_VERSION + 1)

    with pytest.raises(EngineError) as e:
        Manifest(path)
    assert e.value.kind == ErrorKind.INDEX_IO and e.value.environment
    assert str(data) in e.value.message and "newer Lantern" in e.value.message
    assert f"schema {SCHEMA_VERSION + 1}" in e.value.message and "--data-dir" in e.value.message

    db = sqlite3.connect(path)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "roots" not in tables          # nothing was created in the newer file
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == str(SCHEMA_VERSION + 1)


def test_an_unreadable_schema_value_is_refused_too(tmp_path):
    path = tmp_path / "manifest.sqlite"
    _newer_manifest(path, "two")
    with pytest.raises(EngineError, match="schema two"):
        Manifest(path)


def test_the_current_schema_and_a_fresh_file_open(tmp_path):
    path = tmp_path / "manifest.sqlite"
    Manifest(path).close()
    m = Manifest(path)
    assert m.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == str(SCHEMA_VERSION)
    m.close()


@pytest.mark.slow
def test_cli_search_on_a_newer_index_says_so_without_a_traceback(tmp_path):
    data = tmp_path / "data"
    _newer_manifest(data / "manifest.sqlite", SCHEMA_VERSION + 1)
    r = subprocess.run([sys.executable, "-m", "app.main", "--data-dir", str(data), "search", "anything"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode != 0
    assert "newer Lantern" in r.stderr and str(data) in r.stderr, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
