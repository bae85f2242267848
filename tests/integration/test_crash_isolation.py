"""A file whose reader crashes the engine process natively: the engine comes back once, the file
is skipped with the reason (never read again until it changes), everything else is indexed and
searchable, and chat goes on. The seam (tests/seams/sitecustomize.py, on PYTHONPATH only here)
makes the line reader SIGKILL its own process on the file named crash.log."""

import os
from pathlib import Path

import pytest

from ui.client import EngineClient

pytestmark = pytest.mark.slow

SEAMS = Path(__file__).resolve().parents[1] / "seams"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_a_file_that_kills_the_engine_is_skipped_and_chat_goes_on(qtbot, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a-good.log").write_text("2024-06-21 10:00:00 INFO service started kumquat-7731 on node-3\n")
    (logs / "crash.log").write_text("2024-06-21 10:00:01 INFO the reader dies on this file\n")
    (logs / "z-good.log").write_text("2024-06-21 10:00:02 WARN retrying upload to bucket quince-88\n")
    data = str(tmp_path / "data")
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(SEAMS), os.environ.get("PYTHONPATH", "")])),
           "LANTERN_TEST_CRASH_FILE": "crash.log"}
    client = EngineClient(engine_log_path=str(tmp_path / "engine.log"), extra_env=env)
    try:
        with qtbot.waitSignal(client.model_loaded, timeout=60_000):
            client.load_model(n_ctx=2048)
        failures, crashes = [], []
        client.request_failed.connect(lambda rid, kind, msg: failures.append((rid, kind)))
        client.engine_crashed.connect(crashes.append)
        # As the window does after every start: watch (and catch up on) what was indexed before.
        client.engine_started.connect(lambda _pid: client.watch_sources("default", data))
        done = []
        client.index_finished.connect(done.append)
        with qtbot.waitSignals([client.engine_crashed, client.engine_started, client.model_loaded],
                               timeout=90_000, order="strict"):
            rid = client.index_paths([str(logs)], "default", data)
        # The job goes to the restarted engine again, which reads crash.log in a child first:
        # the child dies, the engine does not, and the file is skipped with the reason.
        qtbot.waitUntil(lambda: any(d["id"] == rid for d in done), timeout=90_000)
        assert not failures
        summary = next(d for d in done if d["id"] == rid)["summary"]
        reasons = {os.path.basename(s["path"]): s["reason"] for s in summary["skipped"]}
        assert list(reasons) == ["crash.log"] and "SIGKILL" in reasons["crash.log"], summary
        assert summary["files"] == 2 and len(crashes) == 1
        hits = {}
        client.search_result.connect(lambda r, ev: hits.setdefault(ev["query"], ev["hits"]))
        client.search(["kumquat-7731", "quince-88"], 1, "default", data)
        qtbot.waitUntil(lambda: len(hits) == 2, timeout=60_000)
        assert hits["kumquat-7731"][0]["path"] == str(logs / "a-good.log")
        assert hits["quince-88"][0]["path"] == str(logs / "z-good.log")
        with qtbot.waitSignal(client.reply_finished, timeout=60_000) as reply:
            client.chat(QUESTION, {"temperature": 0, "max_tokens": 40})
        assert "Paris" in reply.args[1]["text"]
        # The person adding the folder again does not bring the crash back: crash.log is
        # remembered as skipped until it changes.
        with qtbot.waitSignal(client.index_finished, timeout=60_000,
                              check_params_cb=lambda d: not d["id"].startswith("watch-")) as again:
            client.index_paths([str(logs)], "default", data)
        assert [os.path.basename(s["path"]) for s in again.args[0]["summary"]["skipped"]] == ["crash.log"]
        assert len(crashes) == 1
    finally:
        client.stop()
