"""The local OpenAI-compatible HTTP API of `lantern serve`.

One more client of the data dir's one engine (engine/host.py): every HTTP request attaches to
the engine's loopback port with the per-run token of engine.json, sends one protocol command
and turns the events that answer it into OpenAI's JSON (or server-sent events). No second
engine, no llama.cpp here: the lock, the routing, the model and the embedder are the engine's.

Secure by default:

- a bearer token on every endpoint: ``--token`` or a random one kept in ``<data dir>/api_token``
  (mode 0600), compared in constant time; 401 without it;
- the ``Host`` header must name loopback (127.0.0.1, localhost, [::1]) unless ``--host`` named
  another address to bind: a web page cannot reach the API through DNS rebinding;
- no CORS headers at all: a browser page on another origin cannot read an answer;
- request bodies over ``max_body`` bytes are refused (413) before they are read, and
  ``max_tokens`` above ``max_tokens_cap`` is refused (400);
- at most ``max_queue`` engine requests at once; more get 429 with Retry-After.

A client that goes away (its socket closes) has its generation cancelled: the request's engine
connection sends Cancel, so the one model is free for the next client.

Standard library only (http.server); the engine side is engine/protocol.py and engine/channel.py.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import json
import logging
import os
import queue
import secrets
import select
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from engine import protocol as p
from engine.channel import AttachRefused, LineChannel

log = logging.getLogger("lantern.api")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
TOKEN_NAME = "api_token"
MAX_BODY = 1 << 20              # 1 MiB of JSON: far more than a long chat history
MAX_TOKENS_CAP = 4096
MAX_QUEUE = 8                   # engine requests in flight (running + waiting) before 429
REQUEST_TIMEOUT_S = 600.0       # one request's longest wait for its engine answer
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
SEARCH_FIELDS = ("queries", "query", "k", "collection", "level", "since", "until", "file_glob")
CITATION_FIELDS = ("n", "path", "line_start", "line_end", "page", "heading", "score", "text")


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


# Engine error kinds as HTTP statuses.
_KIND_STATUS = {
    p.ErrorKind.BAD_INPUT: 400, p.ErrorKind.CONTEXT_OVERFLOW: 400, p.ErrorKind.UNSUPPORTED_FORMAT: 400,
    p.ErrorKind.MODEL_NOT_FOUND: 404, p.ErrorKind.NO_MODEL: 503, p.ErrorKind.BUSY: 503,
    p.ErrorKind.OUT_OF_MEMORY: 503, p.ErrorKind.INTERRUPTED: 503,
}


def _engine_error(ev: p.Failed) -> ApiError:
    status = _KIND_STATUS.get(ev.kind, 500)
    return ApiError(status, ev.message, "invalid_request_error" if status < 500 else "server_error", ev.kind)


# ---------------------------------------------------------------------------- the token

def token_path(data_dir) -> Path:
    return Path(data_dir) / TOKEN_NAME


def load_or_create_token(data_dir) -> str:
    """The API token kept in the data dir (0600), made on first use."""
    path = token_path(data_dir)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if os.stat(path).st_mode & 0o077:
            os.chmod(path, 0o600)   # readable by others: close it again
            log.warning("%s was readable by other users; made it 0600", path)
        token = path.read_text(encoding="utf-8").strip()
        if len(token) >= 16:
            return token
        raise ApiError(500, f"The API token file {path} is empty or too short (under 16 characters); delete it "
                            f"and start `lantern serve` again to make a new one, or pass --token.")
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------------------- engine access

class Engine:
    """How the API reaches the data dir's engine: one attached connection per request."""

    def __init__(self, port: int, token: str, data_dir: str, settings=None, max_queue: int = MAX_QUEUE,
                 locate=None):
        self.port, self.token, self.data_dir = port, token, data_dir
        # The window's engine may restart (a crash): then where it listens is read from
        # engine.json at each request.
        self.locate = locate
        self.settings = settings
        self._slots = threading.BoundedSemaphore(max_queue)
        self.max_queue = max_queue
        self._load_lock = threading.Lock()

    def slot(self):
        if not self._slots.acquire(blocking=False):
            raise ApiError(429, f"The engine has {self.max_queue} requests queued already; try again shortly.",
                           "rate_limit_error", "queue_full", headers={"Retry-After": "2"})
        return _Release(self._slots)

    def open(self) -> LineChannel:
        try:
            if self.locate is not None:
                self.port, self.token = self.locate()
            return LineChannel.attach(self.port, self.token)
        except (OSError, AttachRefused) as e:
            raise ApiError(503, f"The Lantern engine does not answer ({e}); it may be stopping.", "server_error",
                           "engine_unavailable") from None

    def call(self, cmd: p.Command, timeout: float = 120.0) -> p.Event:
        """Send one command on a short-lived connection and return its final event."""
        chan = self.open()
        try:
            chan.send(cmd)
            deadline = time.monotonic() + timeout
            for ev in chan:
                if ev.id == cmd.id and p.ends_request(ev):
                    return ev
                if time.monotonic() > deadline:
                    break
        finally:
            chan.close()
        raise ApiError(503, "The Lantern engine closed the connection before answering.", "server_error",
                       "engine_unavailable")

    def status(self) -> p.Status:
        ev = self.call(p.GetStatus())
        if isinstance(ev, p.Failed):
            raise _engine_error(ev)
        return ev

    def ensure_model(self) -> p.Status:
        """The engine's loaded model; the one in settings (or the default) is loaded first if none is."""
        with self._load_lock:
            st = self.status()
            if st.model_path:
                return st
            s = self.settings
            load = p.LoadModel(path=s.get("model", "path") if s else "",
                               n_ctx=int(s.get("chat", "n_ctx")) if s else 4096,
                               n_gpu_layers=int(s.get("model", "n_gpu_layers") or 0) if s else 0,
                               n_threads=int(s.get("model", "n_threads") or 0) if s else 0)
            ev = self.call(load, timeout=REQUEST_TIMEOUT_S)
            if isinstance(ev, p.Failed):
                raise _engine_error(ev)
            return self.status()


class _Release:
    def __init__(self, sem):
        self._sem = sem

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._sem.release()


class Request:
    """One engine request of one HTTP request: events in a queue (a reader thread), and
    the HTTP client's socket watched so that its going away cancels the request."""

    def __init__(self, engine: Engine, cmd: p.Command, client: socket.socket):
        self.cmd = cmd
        self.client = client
        self.chan = engine.open()
        self.events: queue.Queue = queue.Queue()
        self.cancelled = False
        self.chan.send(cmd)
        threading.Thread(target=self._read, name=f"api-engine-{cmd.id}", daemon=True).start()

    def _read(self) -> None:
        for ev in self.chan:
            if ev.id == self.cmd.id:
                self.events.put(ev)
                if p.ends_request(ev):
                    break
        self.events.put(None)

    def client_gone(self) -> bool:
        """Whether the HTTP client closed its side (readable with nothing to read)."""
        try:
            readable, _, _ = select.select([self.client], [], [], 0)
            if not readable:
                return False
            return self.client.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def __iter__(self):
        """The request's events until its final one; stops (after cancelling) when the client left."""
        deadline = time.monotonic() + REQUEST_TIMEOUT_S
        while True:
            try:
                ev = self.events.get(timeout=0.2)
            except queue.Empty:
                if self.client_gone():
                    self.cancel("the client closed the connection")
                    return
                if time.monotonic() > deadline:
                    self.cancel("it took longer than the API's request limit")
                    raise ApiError(504, f"No answer within {REQUEST_TIMEOUT_S:.0f} s.", "server_error", "timeout")
                continue
            if ev is None:
                raise ApiError(503, "The Lantern engine closed the connection before answering (is it stopping?).",
                               "server_error", "engine_unavailable")
            yield ev
            if p.ends_request(ev):
                return

    def cancel(self, why: str) -> None:
        if self.cancelled:
            return
        self.cancelled = True
        log.info("cancelling %s: %s", self.cmd.id, why)
        try:
            self.chan.send(p.Cancel(target=self.cmd.id))
        except OSError:
            pass   # the engine cancels the requests of a connection that closes, too

    def close(self) -> None:
        self.chan.close()


# ---------------------------------------------------------------------------- OpenAI shapes

def _text_of(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):   # [{"type": "text", "text": ...}, ...]
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise ApiError(400, "Only text message parts are supported (no images or audio).", param="messages")
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise ApiError(400, "A message's content must be a string or a list of text parts.", param="messages")


def chat_messages(body: dict) -> list[dict]:
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ApiError(400, "'messages' must be a non-empty list of {role, content}.", param="messages")
    out = []
    for m in msgs:
        if not isinstance(m, dict):
            raise ApiError(400, "Each message must be an object with role and content.", param="messages")
        role = m.get("role")
        role = "system" if role == "developer" else role
        if role not in ("system", "user", "assistant"):
            raise ApiError(400, f"Message role {role!r} is not supported; use system, user or assistant.",
                           param="messages")
        out.append({"role": role, "content": _text_of(m.get("content"))})
    return out


def _number(body: dict, name: str, kind=float):
    v = body.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (kind is int and not float(v).is_integer()):
        raise ApiError(400, f"'{name}' must be {'an integer' if kind is int else 'a number'}.", param=name)
    return kind(v)


def sampling(body: dict, defaults: dict, cap: int) -> dict:
    """OpenAI's sampling parameters as the engine's Sampling; Lantern's chat settings fill the rest."""
    s = {k: defaults[k] for k in ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens")
         if k in defaults}
    s["seed"] = -1
    temperature = _number(body, "temperature")
    if temperature is not None:
        if not 0 <= temperature <= 2:
            raise ApiError(400, "'temperature' must be between 0 and 2.", param="temperature")
        s["temperature"] = temperature
    top_p = _number(body, "top_p")
    if top_p is not None:
        if not 0 < top_p <= 1:
            raise ApiError(400, "'top_p' must be above 0 and at most 1.", param="top_p")
        s["top_p"] = top_p
    seed = _number(body, "seed", int)
    if seed is not None:
        s["seed"] = seed % (2 ** 31)
    name = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _number(body, name, int)
    if max_tokens is not None:
        if max_tokens < 1:
            raise ApiError(400, f"'{name}' must be at least 1.", param=name)
        if max_tokens > cap:
            raise ApiError(400, f"'{name}' is {max_tokens}; this server allows at most {cap} "
                                f"(lantern serve --max-tokens-cap).", param=name)
        s["max_tokens"] = max_tokens
    s["max_tokens"] = min(int(s.get("max_tokens", cap)), cap)
    stop = body.get("stop")
    if stop is not None:
        stop = [stop] if isinstance(stop, str) else stop
        if not isinstance(stop, list) or len(stop) > p.MAX_STOP_STRINGS or \
                not all(isinstance(x, str) and x for x in stop):
            raise ApiError(400, f"'stop' must be a string or a list of at most {p.MAX_STOP_STRINGS} non-empty strings.",
                           param="stop")
        s["stop"] = stop
    n = body.get("n", 1)
    if n != 1:
        raise ApiError(400, "Only n=1 is supported (one model, one reply at a time).", param="n")
    return s


def citations(ev: p.Citations | None) -> list[dict]:
    return [{k: c.get(k) for k in CITATION_FIELDS} for c in (ev.citations if ev else [])]


def collections_of(body: dict) -> list[str] | None:
    """Lantern's addition: ``collections`` answers from the person's indexed sources."""
    value = body.get("collections")
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(c, str) and c for c in value):
        raise ApiError(400, "'collections' must be a collection name or a non-empty list of them "
                            "(see `lantern search --collection`).", param="collections")
    return value


# ---------------------------------------------------------------------------- the HTTP side

class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, engine: Engine, api_token: str, check_host: bool, max_body: int = MAX_BODY,
                 max_tokens_cap: int = MAX_TOKENS_CAP):
        self.engine = engine
        self.api_token = api_token
        self.check_host = check_host
        self.max_body = max_body
        self.max_tokens_cap = max_tokens_cap
        super().__init__(addr, Handler)


class _ApiServer6(ApiServer):
    address_family = socket.AF_INET6


class Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"
    server_version = "Lantern"
    sys_version = ""
    timeout = 120   # seconds a client may stall sending its request or reading an answer

    def log_message(self, fmt, *args):
        log.info("%s %s", self.address_string(), fmt % args)

    # -------------------------------------------------------------- plumbing

    def _send_json(self, status: int, obj: dict, headers: dict | None = None) -> None:
        data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, e: ApiError) -> None:
        if e.status in (400, 411, 413) and self.command == "POST":
            self.close_connection = True   # the body may not have been read
        try:
            self._send_json(e.status, e.body(), e.headers)
        except OSError:
            pass

    def _check(self) -> None:
        if self.server.check_host:
            host = (self.headers.get("Host") or "").strip()
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name.lower() not in LOOPBACK_NAMES:
                raise ApiError(403, f"Host {host!r} is not this machine's loopback name; this server answers "
                                    f"only http://127.0.0.1 or http://localhost (start it with --host to serve "
                                    f"other names).", "permission_error", "bad_host")
        auth = self.headers.get("Authorization") or ""
        scheme, _, given = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                 self.server.api_token.encode()):
            raise ApiError(401, "Missing or wrong API token: send 'Authorization: Bearer <token>' with the token "
                                "from the data dir's api_token file (or the one given to lantern serve --token).",
                           "authentication_error", "invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    def _body(self) -> dict:
        if self.headers.get("Transfer-Encoding"):
            raise ApiError(411, "Send the body with a Content-Length (chunked bodies are not accepted).")
        length = self.headers.get("Content-Length")
        if length is None:
            raise ApiError(411, "A POST needs a Content-Length header.")
        try:
            n = int(length)
        except ValueError:
            raise ApiError(400, "The Content-Length header is not a number.") from None
        if n > self.server.max_body:
            raise ApiError(413, f"The request body is {n} bytes; this server accepts at most {self.server.max_body}.",
                           code="request_too_large")
        raw = self.rfile.read(n)
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"The request body is not JSON: {e}.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "The request body must be a JSON object.")
        return body

    def handle_expect_100(self):
        """A client that waits for '100 Continue' before sending its body is refused first when its
        Host, token or size is wrong, so an oversized body is never sent at all."""
        try:
            self._check()
            length = self.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > self.server.max_body:
                raise ApiError(413, f"The request body is {length} bytes; this server accepts at most "
                                    f"{self.server.max_body}.", code="request_too_large")
        except ApiError as e:
            self.close_connection = True
            self._send_json(e.status, e.body(), e.headers)
            return False
        return super().handle_expect_100()

    def do_GET(self):
        self._route({"/v1/models": self.models})

    def do_POST(self):
        self._route({"/v1/chat/completions": self.chat, "/v1/embeddings": self.embeddings, "/v1/search": self.search},
                    post=True)

    def do_OPTIONS(self):   # no CORS: a preflight gets no Access-Control-* headers
        self._route({})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS

    def _route(self, routes: dict, post: bool = False) -> None:
        try:
            self._check()
            path = self.path.split("?", 1)[0].rstrip("/")
            handler = routes.get(path)
            if handler is None:
                raise ApiError(404, f"No endpoint {self.command} {path}; see GET /v1/models, POST /v1/chat/completions, "
                                    f"/v1/embeddings and /v1/search.", code="not_found")
            if post:
                handler(self._body())
            else:
                handler()
        except ApiError as e:
            self._error(e)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:   # a bug: say so in the same shape
            log.exception("API request %s %s", self.command, self.path)
            self._error(ApiError(500, f"Internal error in Lantern's API server: {type(e).__name__}: {e}",
                                 "server_error", "internal"))

    # -------------------------------------------------------------- endpoints

    def models(self) -> None:
        st = self.server.engine.status()
        path = st.model_path
        if not path:
            s = self.server.engine.settings
            path = (s.get("model", "path") if s else "") or ""
            if not path:
                from engine.models import default_model_path
                path = str(default_model_path())
        data = [{"id": Path(path).name, "object": "model", "created": int(_mtime(path)), "owned_by": "lantern",
                 "loaded": bool(st.model_path)}]
        self._send_json(200, {"object": "list", "data": data})

    def chat(self, body: dict) -> None:
        engine = self.server.engine
        messages = chat_messages(body)
        settings = engine.settings
        defaults = settings.chat_defaults() if settings else {}
        samp = sampling(body, defaults, self.server.max_tokens_cap)
        cols = collections_of(body)
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage")) if stream else False
        with engine.slot():
            st = engine.ensure_model()
            model_id = Path(st.model_path).name
            cmd = p.Chat(messages=messages, sampling=samp, use_sources=cols is not None, collections=cols or [],
                         data_dir=engine.data_dir if cols is not None else "")
            req = Request(engine, cmd, self.connection)
            try:
                if stream:
                    self._chat_stream(req, model_id, include_usage, cols is not None)
                else:
                    self._chat_whole(req, model_id, cols is not None)
            finally:
                req.close()

    def _chat_whole(self, req: Request, model_id: str, sourced: bool) -> None:
        cites = done = None
        for ev in req:
            if isinstance(ev, p.Citations):
                cites = ev
            elif isinstance(ev, p.Failed):
                raise _engine_error(ev)
            elif isinstance(ev, p.Cancelled):
                if req.cancelled:
                    return
                raise ApiError(503, "The engine stopped before answering.", "server_error", "cancelled")
            elif isinstance(ev, p.Done):
                done = ev
        if done is None:
            return   # the client left; nothing to answer
        out = {
            "id": f"chatcmpl-{req.cmd.id}", "object": "chat.completion", "created": int(time.time()),
            "model": model_id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": done.text},
                         "finish_reason": done.finish_reason, "logprobs": None}],
            "usage": _usage(done),
        }
        if sourced:
            out["citations"] = citations(cites)
        self._send_json(200, out)

    def _chat_stream(self, req: Request, model_id: str, include_usage: bool, sourced: bool) -> None:
        base = {"id": f"chatcmpl-{req.cmd.id}", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model_id}
        started = False

        def chunk(delta: dict, finish=None, **extra) -> dict:
            return dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
                        **extra)

        def start() -> None:
            nonlocal started
            if started:
                return
            started = True
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self._event(chunk({"role": "assistant", "content": ""}))

        try:
            for ev in req:
                if isinstance(ev, p.Failed):
                    if not started:
                        raise _engine_error(ev)
                    self._event(_engine_error(ev).body())
                    break
                if isinstance(ev, p.Cancelled):
                    if req.cancelled:
                        return
                    if not started:
                        raise ApiError(503, "The engine stopped before answering.", "server_error", "cancelled")
                    self._event(ApiError(503, "The engine stopped before answering.", "server_error",
                                         "cancelled").body())
                    break
                if isinstance(ev, p.Citations):
                    start()
                    self._event(chunk({}, citations=citations(ev)))
                elif isinstance(ev, p.Token):
                    start()
                    self._event(chunk({"content": ev.text}))
                elif isinstance(ev, p.Done):
                    start()
                    self._event(chunk({}, ev.finish_reason))
                    if include_usage:
                        self._event(dict(base, choices=[], usage=_usage(ev)))
            if started:
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
        except OSError:   # a broken pipe or a reset: the client went away
            req.cancel("the client closed the connection while the answer streamed")

    def _event(self, obj: dict) -> None:
        self.wfile.write(b"data: " + json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n\n")
        self.wfile.flush()

    def embeddings(self, body: dict) -> None:
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise ApiError(400, "'input' must be a string or a non-empty list of strings (token arrays are not "
                                "accepted).", param="input")
        if len(texts) > 2048:
            raise ApiError(400, f"'input' has {len(texts)} texts; at most 2048 per request.", param="input")
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise ApiError(400, "'encoding_format' must be 'float' or 'base64'.", param="encoding_format")
        ev = self._one(p.Embed(texts=texts))
        data = []
        for i, v in enumerate(ev.vectors):
            emb = base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() if fmt == "base64" else v
            data.append({"object": "embedding", "index": i, "embedding": emb})
        self._send_json(200, {"object": "list", "data": data, "model": ev.model,
                              "usage": {"prompt_tokens": ev.tokens, "total_tokens": ev.tokens}})

    def search(self, body: dict) -> None:
        unknown = set(body) - set(SEARCH_FIELDS)
        if unknown:
            raise ApiError(400, f"Unknown field(s) {', '.join(sorted(unknown))}; /v1/search takes "
                                f"{', '.join(SEARCH_FIELDS)}.")
        queries = body.get("queries", [body["query"]] if "query" in body else None)
        if not isinstance(queries, list) or not queries or not all(isinstance(q, str) and q.strip() for q in queries):
            raise ApiError(400, "Give 'query' (a string) or 'queries' (a list of strings).", param="query")
        k = _number(body, "k", int)
        if k is not None and not 1 <= k <= 100:
            raise ApiError(400, "'k' must be between 1 and 100.", param="k")
        opts = {f: body[f] for f in ("collection", "level", "since", "until", "file_glob") if f in body}
        for f, v in opts.items():
            if not isinstance(v, str):
                raise ApiError(400, f"'{f}' must be a string.", param=f)
        cmd = p.Search(queries=queries, k=k or 5, data_dir=self.server.engine.data_dir, **opts)
        results = []
        with self.server.engine.slot():
            req = Request(self.server.engine, cmd, self.connection)
            try:
                for ev in req:
                    if isinstance(ev, p.SearchResult):
                        results.append({"query": ev.query, "hits": ev.hits})   # as `lantern search --json`
                    elif isinstance(ev, p.Failed):
                        raise _engine_error(ev)
                    elif isinstance(ev, p.Cancelled):
                        raise ApiError(503, "The engine stopped before answering.", "server_error", "cancelled")
            finally:
                req.close()
        self._send_json(200, {"object": "search.results", "results": results})

    def _one(self, cmd: p.Command) -> p.Event:
        with self.server.engine.slot():
            req = Request(self.server.engine, cmd, self.connection)
            try:
                last = None
                for ev in req:
                    last = ev
                if isinstance(last, p.Failed):
                    raise _engine_error(last)
                if last is None or isinstance(last, p.Cancelled):
                    raise ApiError(503, "The engine stopped before answering.", "server_error", "cancelled")
                return last
            finally:
                req.close()


def _usage(done: p.Done) -> dict:
    return {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens,
            "total_tokens": done.prompt_tokens + done.completion_tokens}


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


# ---------------------------------------------------------------------------- starting it

def start(host: str, port: int, engine_port: int, engine_token: str, data_dir: str, settings=None,
          token: str = "", host_given: bool = False, max_tokens_cap: int = MAX_TOKENS_CAP,
          max_queue: int = MAX_QUEUE, locate=None) -> ApiServer:
    """Bind and serve on a thread; raises OSError when the address is taken."""
    api_token = token or load_or_create_token(data_dir)
    engine = Engine(engine_port, engine_token, data_dir, settings, max_queue=max_queue, locate=locate)
    check_host = not (host_given and not is_loopback(host))
    cls = _ApiServer6 if ":" in host else ApiServer
    server = cls((host, port), engine, api_token, check_host, max_tokens_cap=max_tokens_cap)
    threading.Thread(target=server.serve_forever, name="api-http", daemon=True).start()
    return server


def url(server: ApiServer) -> str:
    host, port = server.server_address[:2]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/v1"


class LocalApi:
    """The window's switch for the API: off by default (``[api] enabled`` in settings.toml), on
    loopback only, in the window's process, reaching the window's engine through engine.json."""

    def __init__(self, data_dir, settings):
        self.data_dir = str(data_dir)
        self.settings = settings
        self.server: ApiServer | None = None
        self.error = ""

    @property
    def enabled(self) -> bool:
        return bool(self.settings.get("api", "enabled"))

    @property
    def port(self) -> int:
        port = self.settings.get("api", "port")
        return DEFAULT_PORT if port is None else int(port)

    @property
    def running(self) -> bool:
        return self.server is not None

    @property
    def url(self) -> str:
        return url(self.server) if self.server else f"http://{DEFAULT_HOST}:{self.port}/v1"

    def token(self) -> str:
        return load_or_create_token(self.data_dir)

    def _locate(self) -> tuple[int, str]:
        from engine import residency

        info = residency.read_info(self.data_dir)
        if info is None:
            raise OSError(f"no engine.json in {self.data_dir}: the engine is not running")
        return info.port, info.token

    def start(self) -> bool:
        """Serve now (if not already); False with ``error`` set when it cannot."""
        if self.server is not None:
            return True
        try:
            self.server = start(DEFAULT_HOST, self.port, 0, "", self.data_dir, self.settings, locate=self._locate)
        except (OSError, ApiError) as e:
            self.error = (f"Cannot serve on {DEFAULT_HOST}:{self.port}: {getattr(e, 'strerror', None) or e}. "
                          f"Choose another port ([api] port in settings.toml) or stop what uses it.")
            log.warning("%s", self.error)
            return False
        self.error = ""
        log.info("local API server at %s", self.url)
        return True

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def set_enabled(self, on: bool) -> bool:
        """Switch and remember it; returns whether the wish holds (serving when on)."""
        self.settings.set("api", "enabled", bool(on))
        try:
            self.settings.save()
        except OSError as e:
            log.warning("could not save settings: %s", e)
        if on:
            return self.start()
        self.stop()
        return True
