import json

import pytest

from engine import protocol as p

ALL_MESSAGES = [
    p.Hello(token="t", pid=7),
    p.Welcome(accepted=False, reason="r"),
    p.LoadModel(path="/m.gguf", n_ctx=1024, n_gpu_layers=3, n_threads=2),
    p.Chat(messages=[{"role": "user", "content": "héllo\nworld"}], sampling={"temperature": 0.0}),
    p.Cancel(target="abc"),
    p.GetStatus(),
    p.Shutdown(),
    p.ModelLoaded(id="1", path="/m", name="M", n_ctx=2048, n_ctx_train=8192, size_bytes=5,
                  chat_template="model", template_note="", load_ms=1.5),
    p.ContextTrimmed(id="1", dropped_messages=2, prompt_tokens=100, n_ctx=512),
    p.Token(id="1", text="Pa", index=0),
    p.Done(id="1", text="Paris", finish_reason="stop", prompt_tokens=3, completion_tokens=2,
           ttft_ms=1.0, tokens_per_s=9.5, model="M"),
    p.Cancelled(id="1", text="Pa", completion_tokens=1),
    p.Failed(id="1", kind=p.ErrorKind.UNSUPPORTED_FORMAT, message="x", environment=True),
    p.Status(id="1", state="idle", model="M", model_path="/m", pid=3, rss_bytes=10),
    p.Embed(texts=["a", "b"]),
    p.Embeddings(id="1", vectors=[[0.5, -0.25]], model="E", tokens=4),
]


@pytest.mark.parametrize("msg", ALL_MESSAGES, ids=lambda m: m.TYPE)
def test_every_message_round_trips(msg):
    line = p.encode(msg)
    assert line.endswith(b"\n") and line.count(b"\n") == 1, "one message, one line, even with newlines inside"
    assert p.decode(line) == msg


def test_commands_get_unique_request_ids():
    ids = {p.GetStatus().id for _ in range(100)}
    assert len(ids) == 100


def test_unknown_fields_are_ignored_for_forward_compatibility():
    data = json.loads(p.encode(p.Token(id="9", text="x", index=1)))
    data["added_in_1_1"] = {"anything": True}
    assert p.decode(json.dumps(data)) == p.Token(id="9", text="x", index=1)


@pytest.mark.parametrize("line, why", [
    (b"not json\n", "not JSON"),
    (b"[1, 2]\n", "JSON object"),
    (b'{"type": "launch_missiles", "id": "1"}\n', "unknown message type"),
    (b'{"id": "1"}\n', "unknown message type"),
    (b'{"type": "token", "id": "1", "text": 5, "index": 0}\n', "must be str"),
    (b'{"type": "load_model", "id": "1", "n_ctx": "big"}\n', "must be int"),
    (b'\xff\xfe{}\n', "not UTF-8"),
])
def test_bad_lines_raise_protocol_error(line, why):
    with pytest.raises(p.ProtocolError, match=why):
        p.decode(line)


def test_handshake_accepts_same_major_version_and_right_token():
    hello = p.Hello(token="secret", version=p.PROTOCOL_VERSION.split(".")[0] + ".99")
    assert p.answer_hello(hello, "secret").accepted


def test_handshake_refuses_other_major_version():
    major = int(p.PROTOCOL_VERSION.split(".")[0])
    welcome = p.answer_hello(p.Hello(token="secret", version=f"{major + 1}.0"), "secret")
    assert not welcome.accepted
    assert "does not match" in welcome.reason


def test_handshake_refuses_wrong_token_and_wrong_first_message():
    assert not p.answer_hello(p.Hello(token="guess"), "secret").accepted
    assert not p.answer_hello(p.GetStatus(), "secret").accepted


def test_errors_cross_as_data_with_kind_and_cause():
    env = p.EngineError(p.ErrorKind.MODEL_NOT_FOUND, "no such file")
    bug = p.EngineError(p.ErrorKind.INTERNAL, "oops")
    assert env.environment and not bug.environment
    failed = p.decode(p.encode(p.Failed.from_error("r1", env)))
    assert (failed.id, failed.kind, failed.message, failed.environment) == ("r1", "model_not_found", "no such file", True)


def test_sampling_validation_names_the_setting():
    p.Sampling().validate()
    with pytest.raises(p.EngineError, match="temperature"):
        p.Sampling(temperature=-1).validate()
    with pytest.raises(p.EngineError, match="max tokens"):
        p.Sampling(max_tokens=0).validate()
    assert p.Sampling.from_dict({"top_k": 5, "bogus": 1}).top_k == 5


def test_sampling_stop_strings_are_checked_and_end_a_request_with_embeddings():
    assert p.Sampling.from_dict({"stop": ["\n\n", "END"]}).stop == ["\n\n", "END"]
    for bad in (["a"] * 5, [""], "END", [3]):
        with pytest.raises(p.EngineError, match="stop"):
            p.Sampling(stop=bad).validate()
    assert p.ends_request(p.Embeddings(id="1"))
