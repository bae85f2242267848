"""Loading files: text by content, encodings, gzip, and the zoo of files that must be skipped."""

import gzip
import os

import pytest

from engine.retrieval import loaders
from engine.retrieval.loaders import SkipFile


def test_encodings_are_detected_and_bad_bytes_do_not_abort(tmp_path):
    f = tmp_path / "latin.log"
    f.write_bytes("2024-06-21 10:00:00 INFO caf\u00e9 cr\u00e8me br\u00fbl\u00e9e ordered\n".encode("latin-1") * 20)
    loaded = loaders.load_lines(str(f))
    assert "café" in loaded.lines[0] and len(loaded.lines) == 20
    g = tmp_path / "mixed.log"
    g.write_bytes(b"ok line\n\xff\xfe broken \xc3 bytes\nlast\n")
    loaded = loaders.load_lines(str(g), encoding="utf-8")
    assert len(loaded.lines) == 3 and "\ufffd" in loaded.lines[1]
    u16 = tmp_path / "win.txt"
    u16.write_text("hello\r\nworld\r\n", encoding="utf-16")
    assert loaders.load_lines(str(u16)).lines == ["hello", "world"]


def test_kind_is_decided_by_content(tmp_path):
    f = tmp_path / "no-extension"
    f.write_text("plain text\n")
    assert loaders.classify(str(f), f.read_bytes()) == "text"
    j = tmp_path / "events.log"
    j.write_text('{"a": 1}\n{"a": 2}\n')
    assert loaders.classify(str(j), j.read_bytes()) == "jsonl"
    png = tmp_path / "image.log"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(SkipFile, match="binary"):
        loaders.classify(str(png), png.read_bytes())


def test_gzip_and_offsets(tmp_path):
    f = tmp_path / "app.log.2.gz"
    with gzip.open(f, "wb") as z:
        z.write(b"line one\nline two\nline three\n")
    loaded = loaders.load_lines(str(f), offset=9, first_line=2)
    assert loaded.lines == ["line two", "line three"] and loaded.first_line == 2 and loaded.end_offset == 29
    assert loaders.stream_name(str(f)) == str(tmp_path / "app.log")
    assert loaders.stream_name(str(tmp_path / "app.log.1")) == str(tmp_path / "app.log")


def test_bad_file_zoo_gives_reasons(tmp_path):
    trunc = tmp_path / "cut.log.gz"
    whole = gzip.compress(b"".join(b"line %d\n" % i for i in range(20000)))
    trunc.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(SkipFile, match="truncated or damaged"):
        loaders.load_lines(str(trunc))
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b"a" * (loaders.MAX_LINE_BYTES + 10) + b"\n")
    with pytest.raises(SkipFile, match="line 1 is"):
        loaders.load_lines(str(huge))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(SkipFile, match="FIFO"):
        loaders.check_regular(str(fifo))
    loop = tmp_path / "loop"
    os.symlink(loop, loop)
    with pytest.raises(SkipFile, match="link loop"):
        loaders.check_regular(str(loop))
    with pytest.raises(SkipFile, match="deleted"):
        loaders.read_bytes(str(tmp_path / "gone.log"))
