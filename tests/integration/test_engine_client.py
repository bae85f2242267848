"""EngineClient against the real engine process: handshake, streaming, crash and restart."""

import os
import signal
import sys
import textwrap

import pytest

from ui.client import EngineClient

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def client(qtbot, tmp_path):
    c = EngineClient(engine_log_path=str(tmp_path / "engine.log"))
    with qtbot.waitSignal(c.model_loaded, timeout=60_000):
        c.load_model(n_ctx=2048)
    yield c
    c.stop()


def test_streams_a_reply_through_the_process(qtbot, client):
    batches = []
    client.tokens_received.connect(lambda rid, text: batches.append((rid, text)))
    with qtbot.waitSignal(client.reply_finished, timeout=60_000) as done:
        rid = client.chat(QUESTION, {"temperature": 0, "max_tokens": 40})
    got_rid, fields = done.args
    assert got_rid == rid
    assert "Paris" in fields["text"]
    assert "".join(t for r, t in batches if r == rid) == fields["text"], "batched tokens add up, in order"
    assert client.state == "ready"


def test_kill_minus_nine_mid_reply_is_survived(qtbot, client):
    old_pid = client.pid
    assert old_pid > 0
    rid = client.chat([{"role": "user", "content": "Write a long story about a lighthouse."}],
                      {"temperature": 0.7, "max_tokens": 1500})
    with qtbot.waitSignal(client.tokens_received, timeout=60_000):
        pass
    failures, tails = [], []
    client.request_failed.connect(lambda r, kind, msg: failures.append((r, kind, msg)))
    client.engine_crashed.connect(tails.append)
    with qtbot.waitSignals([client.engine_crashed, client.engine_started, client.model_loaded], timeout=60_000,
                           order="strict"):
        os.kill(old_pid, signal.SIGKILL)
    assert (rid, "interrupted") in [(r, k) for r, k, _ in failures]
    tail = tails[0]
    assert "engine" in tail and ("crashed" in tail or "code" in tail), tail
    assert client.pid != old_pid
    # The restarted engine has the model back and answers.
    with qtbot.waitSignal(client.reply_finished, timeout=60_000) as done:
        client.chat(QUESTION, {"temperature": 0, "max_tokens": 40})
    assert "Paris" in done.args[1]["text"]


def test_cancel_reaches_the_process(qtbot, client):
    rid = client.chat([{"role": "user", "content": "Write a long story about a lighthouse."}],
                      {"temperature": 0.7, "max_tokens": 1500})
    with qtbot.waitSignal(client.tokens_received, timeout=60_000):
        pass
    with qtbot.waitSignal(client.reply_cancelled, timeout=5_000) as cancelled:
        client.cancel(rid)
    assert cancelled.args[0] == rid and cancelled.args[1]


def test_bad_model_fails_as_data_and_previous_model_stays(qtbot, client, tmp_path):
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_text("hello")
    with qtbot.waitSignal(client.request_failed, timeout=30_000) as failed:
        client.load_model(str(bogus), n_ctx=2048)
    _, kind, message = failed.args
    assert kind == "unsupported_format" and "not-a-model.gguf" in message
    with qtbot.waitSignal(client.reply_finished, timeout=60_000) as done:
        client.chat(QUESTION, {"temperature": 0, "max_tokens": 40})
    assert "Paris" in done.args[1]["text"]


def fake_engine(tmp_path, version: str, token_override: str | None = None) -> str:
    """A stand-in interpreter that runs a fake engine speaking another protocol version."""
    script = tmp_path / "fake_engine.py"
    script.write_text(textwrap.dedent(f"""
        import os, socket, json, sys
        s = socket.create_connection(("127.0.0.1", int(os.environ["LANTERN_ENGINE_PORT"])))
        token = {token_override!r} or os.environ["LANTERN_ENGINE_TOKEN"]
        s.sendall((json.dumps({{"type": "hello", "id": "x", "token": token, "version": {version!r}, "pid": os.getpid()}}) + "\\n").encode())
        reply = s.makefile("rb").readline()
        sys.stderr.write("fake engine got: " + reply.decode())
        sys.exit(0 if json.loads(reply)["accepted"] else 3)
    """))
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {script}\n")
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.mark.parametrize("version, token, reason", [
    ("99.0", None, "does not match"),
    ("1.0", "forged-token", "wrong token"),
])
def test_engine_with_wrong_version_or_token_is_refused(qtbot, tmp_path, version, token, reason):
    c = EngineClient(python=fake_engine(tmp_path, version, token))
    started = []
    c.engine_started.connect(started.append)
    with qtbot.waitSignal(c.engine_crashed, timeout=20_000) as crashed:
        c.start()
    c.stop()
    assert not started
    assert reason in crashed.args[0]


def test_restart_after_a_refused_model_reloads_the_last_good_one(qtbot, client, tmp_path):
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"GGUF" + b"\x00" * 10)
    with qtbot.waitSignal(client.request_failed, timeout=30_000):
        client.load_model(str(bogus), n_ctx=2048)
    loaded = []
    client.model_loaded.connect(loaded.append)
    with qtbot.waitSignal(client.model_loaded, timeout=60_000):
        os.kill(client.pid, signal.SIGKILL)
    assert loaded[0]["path"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
