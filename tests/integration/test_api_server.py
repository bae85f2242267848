"""`lantern serve`'s OpenAI-compatible HTTP API, driven by the official openai client and by raw
HTTP, against a real `lantern serve` subprocess on 127.0.0.1 with the real default model and
embedder. One server for the whole module (the model loads once)."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from app import engine_cli
from app.paths import Paths
from engine import residency
from tests.conftest import wait_until


pytestmark = pytest.mark.slow

MAX_QUEUE = 2


def _cmd(data_dir, *args):
    return [sys.executable, "-m", "app.main", "--data-dir", str(data_dir), *args]


class Server:
    def __init__(self, root: Path):
        self.data = root / "data"
        self.logs = root / "logs"
        self.logs.mkdir(parents=True)
        (self.logs / "auth.log").write_text(
            "".join(f"2024-03-0{d} 10:0{d}:00 web1 sshd[{100 + d}]: Accepted publickey for deploy from 10.0.0.{d}\n"
                    for d in range(1, 8))
            + "2024-03-09 11:12:13 web1 sshd[999]: Failed password for root from 203.0.113.77 port 2222\n",
            encoding="utf-8")
        self.err = open(root / "serve.err", "w+", encoding="utf-8")
        env = dict(os.environ, LANTERN_ENGINE_KEEP_ALIVE_S="0")
        self.proc = subprocess.Popen(_cmd(self.data, "serve", "--port", "0", "--max-queue", str(MAX_QUEUE)),
                                     stdout=subprocess.DEVNULL, stderr=self.err, env=env)
        found = {}

        def announced() -> bool:
            self.err.seek(0)
            m = re.search(r"API at (http://127\.0\.0\.1:(\d+)/v1)", self.err.read())
            if m:
                found.update(url=m.group(1), port=int(m.group(2)))
            return bool(m) or self.proc.poll() is not None
        assert wait_until(announced, 90) and found, self.stderr()
        self.url, self.port = found["url"], found["port"]
        self.token = (self.data / "api_token").read_text().strip()
        r = subprocess.run(_cmd(self.data, "index", str(self.logs)), capture_output=True, text=True, timeout=300,
                           env=env)
        assert r.returncode == 0, r.stderr

    def stderr(self, tail: int = 4000) -> str:
        self.err.seek(0)
        text = self.err.read()
        return text[-tail:] if tail else text

    def client(self, **kw):
        return openai.OpenAI(base_url=self.url, api_key=self.token, max_retries=0, timeout=120, **kw)

    def raw(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            token: str | None = "same"):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        h = {"Content-Type": "application/json"}
        if token:
            h["Authorization"] = f"Bearer {self.token if token == 'same' else token}"
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
        return resp, data

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("api"))
    yield s
    s.stop()


def _error(data: bytes) -> dict:
    body = json.loads(data)
    assert set(body) == {"error"} and {"message", "type", "code"} <= set(body["error"])
    return body["error"]


# ---------------------------------------------------------------------------- with the openai client

def test_models_lists_the_default_model_and_the_token_file_is_private(server):
    ids = [m.id for m in server.client().models.list().data]
    from engine.models import default_model_path
    assert ids == [default_model_path().name]
    assert os.stat(server.data / "api_token").st_mode & 0o777 == 0o600
    assert residency.read_info(server.data).mode == residency.SERVE   # the API is a client of that engine


def test_chat_non_streaming_honours_seed_max_tokens_and_stop(server):
    client = server.client()
    ask = dict(model="any", messages=[{"role": "user", "content": "Count from 1 to 20, separated by commas."}],
               temperature=0, seed=7, max_tokens=30)
    whole = client.chat.completions.create(**ask)
    text = whole.choices[0].message.content
    assert whole.usage.completion_tokens <= 30 and whole.usage.prompt_tokens > 0
    assert whole.usage.total_tokens == whole.usage.prompt_tokens + whole.usage.completion_tokens
    assert whole.choices[0].finish_reason in ("stop", "length")
    assert client.chat.completions.create(**ask).choices[0].message.content == text   # seeded: the same

    short = client.chat.completions.create(**dict(ask, max_tokens=3))
    assert short.usage.completion_tokens <= 3 and short.choices[0].finish_reason == "length"

    words = re.findall(r"\w+", text)
    assert len(words) >= 3, text
    stop = words[2]
    stopped = client.chat.completions.create(**dict(ask, stop=[stop]))
    assert stopped.choices[0].message.content == text[:text.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"


def test_chat_streaming_is_the_same_answer_in_pieces_with_usage(server):
    client = server.client()
    ask = dict(model="any", messages=[{"role": "user", "content": "Name three colours."}], temperature=0, seed=3,
               max_tokens=24)
    whole = client.chat.completions.create(**ask)
    chunks = list(client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert sum(1 for p in pieces if p) >= 2
    assert "".join(pieces) == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == \
        [whole.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_max_tokens_above_the_cap_is_a_clear_400(server):
    with pytest.raises(openai.BadRequestError) as e:
        server.client().chat.completions.create(model="any", messages=[{"role": "user", "content": "hi"}],
                                                max_tokens=100_000)
    assert "at most 4096" in str(e.value)


def test_embeddings_are_the_embedders_vectors(server):
    client = server.client()
    texts = ["ssh login failed for root", "authentication failure for the root user", "banana bread recipe"]
    got = client.embeddings.create(model="any", input=texts)    # the client asks for base64 and decodes it
    vecs = [d.embedding for d in got.data]
    assert [len(v) for v in vecs] == [384] * 3 and got.usage.prompt_tokens > 0
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    assert abs(dot(vecs[0], vecs[0]) - 1) < 1e-3
    assert dot(vecs[0], vecs[1]) > dot(vecs[0], vecs[2]) + 0.2
    resp, data = server.raw("POST", "/v1/embeddings", json.dumps({"input": texts[0], "encoding_format": "float"}).encode())
    assert resp.status == 200
    assert json.loads(data)["data"][0]["embedding"] == pytest.approx(vecs[0], abs=1e-6)


def test_search_returns_the_hits_of_lantern_search_json(server):
    body = server.client().post("/search", cast_to=object, body={"query": "failed password root", "k": 3})
    cli = subprocess.run(_cmd(server.data, "search", "failed password root", "-k", "3", "--json"), capture_output=True,
                         text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert body["results"] == [json.loads(cli.stdout)]
    top = body["results"][0]["hits"][0]
    assert top["path"] == str(server.logs / "auth.log") and top["line_start"] == 8


def test_chat_with_collections_answers_from_sources_with_citations(server):
    client = server.client()
    ask = dict(model="any", messages=[{"role": "user", "content": "Which IP address failed the password for root?"}],
               temperature=0, seed=1, max_tokens=60, extra_body={"collections": ["default"]})
    whole = client.chat.completions.create(**ask)
    cites = whole.model_extra["citations"]
    assert cites and cites[0]["path"] == str(server.logs / "auth.log")
    assert any(c["line_start"] == 8 for c in cites) and all("score" in c and "page" in c for c in cites)
    assert "203.0.113.77" in whole.choices[0].message.content
    chunks = list(client.chat.completions.create(**ask, stream=True))
    streamed = [c.model_extra.get("citations") for c in chunks if c.model_extra.get("citations")]
    assert streamed == [cites]


# ---------------------------------------------------------------------------- raw HTTP: the guards

def test_no_token_or_a_wrong_one_is_401_in_openais_error_shape(server):
    for token in (None, "wrong-token-wrong-token"):
        for method, path, body in (("GET", "/v1/models", None), ("POST", "/v1/search", b'{"query": "x"}')):
            resp, data = server.raw(method, path, body, token=token)
            assert resp.status == 401
            assert _error(data)["type"] == "authentication_error"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url, api_key="nope", max_retries=0).models.list()


def test_a_host_header_other_than_loopback_is_refused(server):
    resp, data = server.raw("GET", "/v1/models", headers={"Host": f"attacker.example:{server.port}"})
    assert resp.status == 403 and _error(data)["code"] == "bad_host"
    resp, _ = server.raw("GET", "/v1/models", headers={"Host": f"localhost:{server.port}"})
    assert resp.status == 200


def test_no_cors_headers_even_for_a_preflight(server):
    headers = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    for method in ("OPTIONS", "GET"):
        resp, _ = server.raw(method, "/v1/models", headers=headers)
        assert not [h for h in resp.headers if h.lower().startswith("access-control-")]


def test_an_oversized_body_is_refused_before_it_is_read(server):
    big = 2 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {server.token}\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {big}\r\n\r\n").encode())
        s.sendall(b"{" + b" " * 1000)   # most of the body is never sent: the answer comes anyway
        answer = s.makefile("rb").read()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413") and _error(body)["code"] == "request_too_large"


def _start_stream(server, read_first: bool = True) -> socket.socket:
    """A long streaming chat on a raw socket (this seed makes the default model write 864 tokens,
    40 s here under load), read up to its first event; the caller closes it."""
    body = json.dumps({"messages": [{"role": "user", "content": "Write a very long story about a lighthouse keeper."}],
                       "max_tokens": 1500, "seed": 1, "temperature": 0.8, "stream": True}).encode()
    s = socket.create_connection(("127.0.0.1", server.port), timeout=120)
    s.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
               f"Authorization: Bearer {server.token}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    if not read_first:
        return s
    reader = s.makefile("rb")
    assert reader.readline().startswith(b"HTTP/1.1 200")
    while not reader.readline().startswith(b"data: "):
        pass
    reader.close()
    return s


def _leave(s: socket.socket) -> None:
    s.shutdown(socket.SHUT_RDWR)
    s.close()


def _engine_state(server) -> str:
    return engine_cli.status(Paths(data_dir=server.data)).get("state", "")


def test_a_client_that_disconnects_mid_stream_cancels_its_generation(server):
    cancels = server.stderr(tail=0).count("cancelling")
    s = _start_stream(server)
    assert wait_until(lambda: _engine_state(server) == "generating", 30)
    _leave(s)
    # The whole answer takes tens of seconds: the engine stopped because the client left.
    assert wait_until(lambda: _engine_state(server) == "idle", 10), server.stderr()
    assert server.stderr(tail=0).count("cancelling") > cancels


def test_an_overloaded_queue_answers_429_and_frees_when_clients_leave(server):
    held = [_start_stream(server, read_first=False) for _ in range(MAX_QUEUE)]   # one runs, one waits
    try:
        assert wait_until(lambda: _engine_state(server) == "generating", 30)
        resp, data = server.raw("POST", "/v1/embeddings", b'{"input": "x"}')
        assert resp.status == 429 and resp.getheader("Retry-After")
        assert _error(data)["type"] == "rate_limit_error"
    finally:
        for s in held:
            _leave(s)
    assert wait_until(lambda: server.raw("POST", "/v1/embeddings", b'{"input": "x"}')[0].status == 200, 20)
    assert wait_until(lambda: _engine_state(server) == "idle", 10)
