"""Downloading a GGUF model from a Hugging Face style hub, or from a plain URL.

Pure Python (urllib, hashlib) on purpose: nothing native touches a downloaded file until it
has been verified and added to the library, and the CLI and the window can both run a
download without starting the engine process (whose single worker would otherwise be
blocked for the minutes a download takes, and whose restart after a crash would kill it).

The hub is asked for the repo's file list (``/api/models/{repo}?blobs=true``, whose
``siblings`` carry ``rfilename``, ``size`` and ``lfs.sha256``; or the ``tree/main`` listing,
whose entries carry ``path``, ``size`` and ``lfs.oid``). The file is written to
``<name>.part`` next to its final place and resumed with an HTTP Range request when a
``.part`` is already there. It becomes the real file only after its size and sha256 match
what the hub lists; on a mismatch nothing is kept, since resuming a corrupt file can only
make it worse.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from engine.protocol import EngineError, ErrorKind

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
ENV_ENDPOINT = "LANTERN_HF_ENDPOINT"
CHUNK = 1 << 20
PROGRESS_EVERY_S = 0.25
TIMEOUT_S = 30.0
USER_AGENT = "lantern-model-download/1"
# Quantizations tried, in order, when a repo holds several GGUF files and none was named:
# Q4_K_M is the usual best size/quality trade-off for chat on a laptop.
PREFERRED_QUANTS = ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q4_0", "Q8_0")
_SHARD = re.compile(r"-\d{5}-of-\d{5}\.gguf$", re.IGNORECASE)
_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class DownloadCancelled(Exception):
    """The person cancelled; the ``.part`` file is kept so the next try resumes."""


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class DownloadProgress:
    name: str
    done: int
    total: int | None
    rate: float                # bytes per second over this transfer
    eta_s: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def hub_endpoint(setting: str | None = None) -> str:
    """The environment wins over the setting, so a test or a mirror can be picked per run."""
    return (os.environ.get(ENV_ENDPOINT) or setting or DEFAULT_ENDPOINT).rstrip("/")


def is_url(ref: str) -> bool:
    return urllib.parse.urlparse(ref).scheme in ("http", "https")


# ---------------------------------------------------------------------------- the hub

def _get_json(url: str, timeout: float) -> object:
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read(8 << 20).decode("utf-8"))


def _http_error(e: Exception, what: str) -> EngineError:
    if isinstance(e, urllib.error.HTTPError):
        if e.code in (401, 403):
            return EngineError(ErrorKind.MODEL_NOT_FOUND,
                               f"{what}: the server refused access (HTTP {e.code}). The repo may be gated or "
                               "private; accept its licence on the hub, or download the file by hand.")
        if e.code == 404:
            return EngineError(ErrorKind.MODEL_NOT_FOUND,
                               f"{what}: not found (HTTP 404). Check the spelling of the repo id (org/name) "
                               "or the URL.")
        return EngineError(ErrorKind.INTERRUPTED, f"{what}: HTTP {e.code} {e.reason}. Try again later.")
    reason = getattr(e, "reason", e)
    return EngineError(ErrorKind.INTERRUPTED, f"{what}: cannot reach the server ({reason}). "
                                              f"Check the network, or set {ENV_ENDPOINT} to a mirror.")


def _files_from_listing(data: object) -> list[tuple[str, int | None, str | None]]:
    """(name, size, sha256) from either hub listing shape; anything malformed is skipped."""
    items = data.get("siblings") if isinstance(data, dict) else data
    out = []
    for it in items if isinstance(items, list) else []:
        if not isinstance(it, dict):
            continue
        name = it.get("rfilename") or (it.get("path") if it.get("type", "file") == "file" else None)
        if not isinstance(name, str):
            continue
        lfs = it.get("lfs") if isinstance(it.get("lfs"), dict) else {}
        sha = lfs.get("sha256") or lfs.get("oid")
        size = lfs.get("size", it.get("size"))
        out.append((name, size if isinstance(size, int) else None,
                    sha.lower() if isinstance(sha, str) and re.fullmatch(r"[0-9a-fA-F]{64}", sha) else None))
    return out


def list_repo(repo: str, endpoint: str, revision: str = "main", timeout: float = TIMEOUT_S) -> list[RemoteFile]:
    if not _REPO_ID.match(repo):
        raise EngineError(ErrorKind.BAD_INPUT, f"'{repo}' is not a repo id (org/name) or an http(s) URL.")
    quoted = urllib.parse.quote(repo, safe="/")
    listing = None
    try:
        listing = _get_json(f"{endpoint}/api/models/{quoted}?blobs=true", timeout)
    except urllib.error.HTTPError as e:
        if e.code != 404:
            raise _http_error(e, f"Listing {repo}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise _http_error(e, f"Listing {repo}") from None
    files = _files_from_listing(listing)
    if not files:   # older hubs and mirrors only answer the tree listing
        try:
            files = _files_from_listing(_get_json(f"{endpoint}/api/models/{quoted}/tree/{revision}", timeout))
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise _http_error(e, f"Listing {repo}") from None
    return [RemoteFile(name, f"{endpoint}/{quoted}/resolve/{revision}/{urllib.parse.quote(name)}", size, sha)
            for name, size, sha in files]


def choose_gguf(files: list[RemoteFile], pattern: str | None, repo: str) -> RemoteFile:
    ggufs = [f for f in files if f.name.lower().endswith(".gguf") and "mmproj" not in f.name.lower()]
    if not ggufs:
        raise EngineError(ErrorKind.MODEL_NOT_FOUND, f"{repo} has no GGUF files. Look for a repo whose name "
                                                     "ends in -GGUF (they hold the quantized files).")
    if pattern:
        exact = [f for f in ggufs if f.name == pattern or Path(f.name).name == pattern]
        ggufs = exact or [f for f in ggufs if pattern.lower() in f.name.lower()]
        if not ggufs:
            raise EngineError(ErrorKind.MODEL_NOT_FOUND, f"No GGUF file in {repo} matches '{pattern}'. "
                                                         f"It has: {', '.join(f.name for f in files if f.name.endswith('.gguf'))}.")
    whole = [f for f in ggufs if not _SHARD.search(f.name)]
    if not whole:
        raise EngineError(ErrorKind.UNSUPPORTED_FORMAT, f"{ggufs[0].name} is split into shards; Lantern "
                                                        "downloads single-file models only. Pick a smaller quantization.")
    if len(whole) == 1:
        return whole[0]
    for quant in PREFERRED_QUANTS:
        hits = [f for f in whole if quant.lower() in f.name.lower()]
        if len(hits) == 1:
            return hits[0]
    raise EngineError(ErrorKind.BAD_INPUT, f"{repo} has {len(whole)} GGUF files; name one with --file: "
                                           f"{', '.join(f.name for f in whole)}.")


def resolve(ref: str, pattern: str | None = None, endpoint: str | None = None, sha256: str | None = None,
            timeout: float = TIMEOUT_S) -> RemoteFile:
    """The one file a repo id (with an optional name pattern) or a URL stands for."""
    if is_url(ref):
        name = Path(urllib.parse.unquote(urllib.parse.urlparse(ref).path)).name
        if not name:
            raise EngineError(ErrorKind.BAD_INPUT, f"The URL {ref} does not end in a file name.")
        return RemoteFile(name, ref, None, sha256.lower() if sha256 else None)
    remote = choose_gguf(list_repo(ref, hub_endpoint(endpoint), timeout=timeout), pattern, ref)
    return RemoteFile(remote.name, remote.url, remote.size, (sha256 or remote.sha256 or "").lower() or None)


# ---------------------------------------------------------------------------- the transfer

def _hash_existing(path: Path, h, cancel: threading.Event | None) -> int:
    done = 0
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled()
            h.update(block)
            done += len(block)
    return done


def download(remote: RemoteFile, dest_dir: Path, *, progress: Callable[[DownloadProgress], None] | None = None,
             cancel: threading.Event | None = None, timeout: float = TIMEOUT_S) -> Path:
    """Fetch ``remote`` into ``dest_dir`` and return the verified file's path."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / Path(remote.name).name
    part = final.with_name(final.name + ".part")
    if final.exists():
        raise EngineError(ErrorKind.BAD_INPUT, f"{final} already exists; remove it first or add it with "
                                               "`lantern models add`.")
    h = hashlib.sha256()
    offset = _hash_existing(part, h, cancel) if part.exists() else 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(remote.url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset and remote.size == offset:
            resp = None     # the .part is already whole; only the check remains
        else:
            raise _http_error(e, f"Downloading {remote.name}") from None
    except (urllib.error.URLError, OSError) as e:
        raise _http_error(e, f"Downloading {remote.name}") from None
    if resp is not None:
        with resp:
            if offset and resp.status != 206:
                log.info("server ignored the Range request for %s; starting again", remote.name)
                offset, h = 0, hashlib.sha256()
            length = resp.headers.get("Content-Length")
            total = remote.size or (offset + int(length) if length and length.isdigit() else None)
            log.info("downloading %s from byte %d of %s", remote.url, offset, total)
            _copy(resp, part, offset, total, h, remote.name, progress, cancel)
    _verify(part, remote, h.hexdigest())
    os.replace(part, final)
    return final


def _copy(resp, part: Path, offset: int, total: int | None, h, name: str,
          progress: Callable[[DownloadProgress], None] | None, cancel: threading.Event | None) -> None:
    start, last, done = time.monotonic(), 0.0, offset
    with open(part, "ab" if offset else "wb") as out:
        while True:
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled()
            try:
                block = resp.read(CHUNK)
            except (OSError, http.client.HTTPException) as e:   # a dropped connection: the .part stays
                raise _http_error(e, f"Downloading {name}") from None
            if not block:
                break
            out.write(block)
            h.update(block)
            done += len(block)
            now = time.monotonic()
            if progress is not None and (now - last >= PROGRESS_EVERY_S or done == total):
                last = now
                rate = (done - offset) / max(now - start, 1e-6)
                eta = (total - done) / rate if total and rate > 0 else None
                progress(DownloadProgress(name, done, total, rate, eta))


def _verify(part: Path, remote: RemoteFile, digest: str) -> None:
    size = part.stat().st_size
    if remote.size is not None and size != remote.size:
        if size < remote.size:   # a short read: keep it, the next try resumes
            raise EngineError(ErrorKind.INTERRUPTED, f"The download of {remote.name} stopped at {size} of "
                                                     f"{remote.size} bytes; run it again to resume.")
        part.unlink(missing_ok=True)
        raise EngineError(ErrorKind.BAD_INPUT, f"{remote.name} is {size} bytes but the hub lists {remote.size}; "
                                               "the download was discarded.")
    if remote.sha256 and digest != remote.sha256:
        part.unlink(missing_ok=True)
        raise EngineError(ErrorKind.BAD_INPUT, f"{remote.name} failed its checksum (sha256 {digest}, expected "
                                               f"{remote.sha256}); the download was discarded. Try again; if it "
                                               "repeats, the mirror or the network alters the file.")
    with open(part, "rb") as f:
        if f.read(4) != b"GGUF":
            part.unlink(missing_ok=True)
            raise EngineError(ErrorKind.UNSUPPORTED_FORMAT, f"{remote.name} is not a GGUF model file (it may be "
                                                            "an error page); the download was discarded.")
    if not remote.sha256:
        log.warning("no sha256 known for %s; kept without a checksum check (sha256 %s)", remote.name, digest)
