"""Reading the user's files: decide what a file is by its content, decode it, and never let one
bad file stop a run.

A file is text if its first block decodes as text (the extension is only a hint for the
structure: markdown, HTML, CSV, JSON). ``.gz`` files are read through gzip, so rotated logs
(``app.log.2.gz``) are indexed like the others; every offset in this package counts bytes of
the *decompressed* stream. Invalid bytes are replaced, never fatal. Files we cannot read
raise ``SkipFile`` with a reason a person can act on.
"""

from __future__ import annotations

import errno
import gzip
import logging
import os
import re
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

HEAD_BYTES = 8192
# One line longer than this is not a log line or prose: a minified bundle, a base64 blob, a
# database. Embedding or citing it is useless, so the file is skipped with that reason.
MAX_LINE_BYTES = 1 << 20
# Larger files are read up to here; the rest waits for a later run (the offset says where).
MAX_READ_BYTES = 256 << 20

# Rotation suffixes: app.log.1, app.log.2.gz, app.log-20240101, app.log.2024-01-01.gz
_ROTATED = re.compile(r"(\.\d{1,3}|[.-]\d{8}|[.-]\d{4}-\d{2}-\d{2})?(\.gz)?$")

KINDS = ("text", "markdown", "html", "csv", "json", "jsonl", "pdf", "docx")
# Binary formats with a parser of their own (engine.retrieval.pdf / .word); they have pages or
# blocks instead of byte lines, and are always redone whole.
DOCUMENT_KINDS = frozenset({"pdf", "docx"})
# Kinds that grow at the end and are read from the stored offset; the others are redone whole.
APPENDABLE = frozenset({"text", "jsonl"})


class SkipFile(Exception):
    """This file is left out of the index; ``reason`` says why, in words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Loaded:
    """Decoded lines of a file (or of its tail from an offset)."""
    lines: list[str]          # without line ends
    first_line: int           # 1-based number of lines[0]
    encoding: str
    end_offset: int           # decompressed byte offset reached
    complete: bool = True     # False when MAX_READ_BYTES cut the read short


def stream_name(path: str) -> str:
    """The log stream a file belongs to: app.log.2.gz and app.log.1 are both ``app.log``."""
    p = Path(path)
    base = _ROTATED.sub("", p.name) or p.name
    return str(p.with_name(base))


def is_gzip(path: str) -> bool:
    return path.endswith(".gz")


def check_regular(path: str) -> os.stat_result:
    """stat() the file, turning each way it can be unreadable into a SkipFile reason."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SkipFile("the file was deleted or moved before it could be read") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise SkipFile("symbolic link loop; fix or remove the link") from None
        if e.errno == errno.EACCES:
            raise SkipFile("permission denied; give your user read access to index it") from None
        raise SkipFile(f"cannot read it: {e.strerror}") from None
    if stat.S_ISFIFO(st.st_mode):
        raise SkipFile("a named pipe (FIFO), not a file; reading it could block forever")
    if stat.S_ISSOCK(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        raise SkipFile("a device or socket, not a regular file")
    if not stat.S_ISREG(st.st_mode):
        raise SkipFile("not a regular file")
    return st


def read_bytes(path: str, offset: int = 0, limit: int = MAX_READ_BYTES) -> bytes:
    """Bytes of the (decompressed) file from ``offset``, at most ``limit``."""
    try:
        if is_gzip(path):
            with gzip.open(path, "rb") as f:
                # gzip streams cannot seek cheaply; reading and dropping is what seek does anyway.
                if offset:
                    f.seek(offset)
                data = f.read(limit)
                if len(data) < limit:
                    f.read(1)  # gzip only notices a cut-off stream when asked to read past it
                return data
        # O_NONBLOCK: if a FIFO replaced the file between stat() and here, open() must not hang.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise SkipFile("not a regular file")
            f.seek(offset)
            return f.read(limit)
    except FileNotFoundError:
        raise SkipFile("the file was deleted while it was being read") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise SkipFile(f"the compressed file is truncated or damaged ({e}); "
                       f"re-copy it or remove it from the folder") from None
    except PermissionError:
        raise SkipFile("permission denied; give your user read access to index it") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise SkipFile("symbolic link loop; fix or remove the link") from None
        raise SkipFile(f"cannot read it: {e.strerror or e}") from None


def detect_encoding(head: bytes) -> str:
    """The encoding of a file from its first block, or SkipFile if it is binary."""
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if not head:
        return "utf-8"
    if b"\x00" in head:
        raise SkipFile("binary content (NUL bytes), not text")
    # Control characters other than tab/newline/CR/form-feed/escape mean a binary format.
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27))
    if controls > len(head) * 0.05:
        raise SkipFile("binary content, not text")
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as e:
        # A multi-byte character cut by the end of the block is still UTF-8.
        if e.start >= len(head) - 3:
            return "utf-8"
    from charset_normalizer import from_bytes

    best = from_bytes(head).best()
    return best.encoding if best is not None else "latin-1"


def load_lines(path: str, offset: int = 0, first_line: int = 1, encoding: str | None = None) -> Loaded:
    """Decode the file from ``offset`` into lines. Bytes that do not decode become U+FFFD."""
    data = read_bytes(path, offset)
    complete = len(data) < MAX_READ_BYTES
    if encoding is None:
        encoding = detect_encoding(read_bytes(path, 0, HEAD_BYTES) if offset else data[:HEAD_BYTES])
    if encoding.startswith("utf-16") or encoding.startswith("utf-32"):
        # Newline bytes are not single bytes here; decode whole (these files are redone whole).
        text = data.decode(encoding, errors="replace")
        lines = text.splitlines()
        _check_line_lengths(lines, first_line)
        return Loaded(lines, first_line, encoding, offset + len(data), complete)
    if not complete:
        # Stop at the last complete line so the next run continues at a line boundary.
        cut = data.rfind(b"\n") + 1
        data = data[:cut] if cut else data
    raw = data.split(b"\n")
    if raw and raw[-1] == b"":
        raw.pop()
    codec = "utf-8" if encoding == "utf-8-sig" and offset else encoding
    lines = []
    for i, b in enumerate(raw):
        if len(b) > MAX_LINE_BYTES:
            raise SkipFile(f"line {first_line + i} is {len(b) // 1024} KiB long; this is not a text or "
                           f"log file Lantern can cite (limit {MAX_LINE_BYTES // 1024} KiB per line)")
        lines.append(b.decode(codec, errors="replace").rstrip("\r"))
    return Loaded(lines, first_line, encoding, offset + len(data), complete)


def _check_line_lengths(lines: list[str], first_line: int) -> None:
    for i, line in enumerate(lines):
        if len(line) > MAX_LINE_BYTES:
            raise SkipFile(f"line {first_line + i} is too long to be a text or log line")


def classify(path: str, head: bytes) -> str:
    """One of KINDS, from the extension (structure) and the content (text or not)."""
    # Checked by magic before the text test, which would call these binary.
    if head.lstrip().startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"PK\x03\x04") and path.lower().endswith((".docx", ".docm")):
        return "docx"
    detect_encoding(head)  # raises SkipFile for binary content, whatever the name says
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    name = _ROTATED.sub("", name) or name
    ext = Path(name).suffix
    if ext in (".md", ".markdown", ".rst"):
        return "markdown"
    if ext in (".html", ".htm", ".xhtml"):
        return "html"
    if ext in (".csv", ".tsv"):
        return "csv"
    if ext in (".jsonl", ".ndjson"):
        return "jsonl"
    stripped = head.lstrip()
    if ext == ".json" or stripped[:1] in (b"{", b"["):
        # One JSON object per line is JSON-lines whatever the name; anything else is a document.
        first = stripped.split(b"\n", 1)[0].strip()
        if first.startswith(b"{") and first.endswith(b"}") and stripped.count(b"\n{") >= 1:
            return "jsonl"
        return "json" if ext == ".json" else "text"
    if stripped[:15].lower().startswith((b"<!doctype html", b"<html")):
        return "html"
    return "text"


def head_of(path: str) -> bytes:
    return read_bytes(path, 0, HEAD_BYTES)
