"""A small stand-in for the Hugging Face hub on 127.0.0.1: the listing API and file
downloads with Range support, recording every request so tests can check the offsets."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeHub:
    def __init__(self):
        self.files: dict[str, dict[str, bytes]] = {}      # repo -> name -> bytes
        self.listed_sha: dict[tuple[str, str], str] = {}  # overrides of the listed sha256
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_after: int | None = None                 # drop the connection after N body bytes, once
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "FakeHub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _siblings(self, repo: str) -> list[dict]:
        return [{"rfilename": n, "size": len(b),
                 "lfs": {"sha256": self.listed_sha.get((repo, n), hashlib.sha256(b).hexdigest()), "size": len(b)}}
                for n, b in self.files[repo].items()]

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):   # keep test output quiet
                pass

            def do_GET(self):
                hub.requests.append((self.path, self.headers.get("Range")))
                m = re.match(r"^/api/models/([^/]+/[^/?]+)(?:\?blobs=true)?$", self.path)
                if m and m.group(1) in hub.files:
                    return self._json({"id": m.group(1), "siblings": hub._siblings(m.group(1))})
                m = re.match(r"^/([^/]+/[^/]+)/resolve/main/(.+)$", self.path)
                if m and m.group(2) in hub.files.get(m.group(1), {}):
                    return self._file(hub.files[m.group(1)][m.group(2)])
                self.send_error(404, "Repository not found")

            def _json(self, obj):
                body = json.dumps(obj).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _file(self, data: bytes):
                start = 0
                rng = self.headers.get("Range")
                if rng and (m := re.match(r"bytes=(\d+)-$", rng)):
                    start = int(m.group(1))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if hub.cut_after is not None:
                    cut, hub.cut_after = hub.cut_after, None
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        return Handler
