"""Log records: recognise common log formats, group lines into records, read each record's time,
level and source.

A record starts at a line that looks like a header of the file's format (a timestamp, a syslog
priority, an access-log prefix ...); every line that does not is a continuation of the record
before it. That keeps Java stack traces ("\\tat ...", "Caused by: ..."), Python tracebacks
and indented continuations inside their record without knowing each language.

Time policy (documented for users, relied on by query parsing):
- Timestamps with a zone or offset are converted to UTC.
- Timestamps without a zone are taken as the local time zone of this machine (logs are
  usually written by the machine that reads them), then converted to UTC.
- Syslog (RFC 3164) has no year: we use the year of the file's mtime, and roll back one year
  when that would put the record more than a day after the mtime (a December line in a
  file last written in January).
All times are stored as UTC ISO 8601 strings ("2024-06-21T16:47:48Z") and epoch seconds.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LEVEL_RANK = {lv: i for i, lv in enumerate(LEVELS)}

_LEVEL_WORDS = {
    "trace": "DEBUG", "debug": "DEBUG", "dbg": "DEBUG", "fine": "DEBUG", "finer": "DEBUG",
    "finest": "DEBUG", "verbose": "DEBUG", "info": "INFO", "information": "INFO",
    "informational": "INFO", "notice": "INFO", "note": "INFO", "inf": "INFO", "warn": "WARNING", "warning": "WARNING",
    "wrn": "WARNING", "error": "ERROR", "err": "ERROR", "severe": "ERROR", "failure": "ERROR",
    "crit": "CRITICAL", "critical": "CRITICAL", "fatal": "CRITICAL", "alert": "CRITICAL",
    "emerg": "CRITICAL", "emergency": "CRITICAL", "panic": "CRITICAL",
}
# syslog severities 0..7
_SYSLOG_SEV = ["CRITICAL", "CRITICAL", "CRITICAL", "ERROR", "WARNING", "INFO", "INFO", "DEBUG"]
_LEVEL_RE = re.compile(r"\b(" + "|".join(sorted(_LEVEL_WORDS, key=len, reverse=True)) + r")\b", re.I)

MONTHS = {m: i + 1 for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}


def _utc(secs: float) -> tuple[str, float] | None:
    """Epoch seconds as (UTC ISO 8601, seconds); None for a value no calendar holds (a record
    stamped 1e17 keeps its text and loses only its time, and the file is still indexed)."""
    try:
        return datetime.fromtimestamp(secs, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), float(secs)
    except (OverflowError, OSError, ValueError):
        return None


def _digits(s: str) -> bool:
    """Plain 0-9 digits: str.isdigit() also says yes to "²", which int() refuses."""
    return s.isascii() and s.isdigit()


def normalize_level(word: str | int | None) -> str | None:
    if word is None:
        return None
    if isinstance(word, int) or (isinstance(word, str) and _digits(word)):
        n = int(word)
        return _SYSLOG_SEV[n] if 0 <= n <= 7 else None
    return _LEVEL_WORDS.get(str(word).strip().lower())


@dataclass
class Record:
    line_start: int
    line_end: int
    text: str
    ts: str | None = None          # UTC ISO 8601
    epoch: float | None = None
    level: str | None = None
    source: dict = field(default_factory=dict)
    message: str = ""              # the header's message part, for template mining


# ---------------------------------------------------------------------------- time parsing

_ISO = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})(?:T| {1,2})(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
    r"(?:[.,](?P<f>\d{1,9}))?\s?(?P<tz>Z|[+-]\d{2}:?\d{2}|UTC|GMT)?")


class TimeContext:
    """What a file tells us about its missing year and zone (see the module's time policy)."""

    def __init__(self, mtime: float | None = None):
        self.mtime = mtime
        self.local = datetime.now().astimezone().tzinfo

    def finish(self, y, mo, d, h, mi, s, frac="", tz=None) -> tuple[str, float] | None:
        try:
            micro = int((frac or "0")[:6].ljust(6, "0"))
            tzinfo = _tz(tz) or self.local
            if y is None:
                y = self._year_for(int(mo), int(d))
            dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), micro, tzinfo=tzinfo)
        except (ValueError, OverflowError):
            return None
        dt = dt.astimezone(timezone.utc)
        return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{dt.microsecond // 1000:03d}" if dt.microsecond else "") + "Z", dt.timestamp()

    def _year_for(self, mo: int, d: int) -> int:
        ref = datetime.fromtimestamp(self.mtime) if self.mtime else datetime.now()
        try:
            if datetime(ref.year, mo, d) > ref + timedelta(days=1):
                return ref.year - 1
        except ValueError:
            pass
        return ref.year


def _tz(tz: str | None):
    if not tz:
        return None
    if tz in ("Z", "UTC", "GMT"):
        return timezone.utc
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0)))


def parse_iso(text: str, ctx: TimeContext) -> tuple[str, float] | None:
    m = _ISO.search(text)
    if not m:
        return None
    g = m.groupdict()
    return ctx.finish(g["y"], g["mo"], g["d"], g["h"], g["mi"], g["s"], g["f"], g["tz"])


# ---------------------------------------------------------------------------- formats

@dataclass
class LogFormat:
    name: str
    header: re.Pattern
    parse: callable  # (match, ctx) -> dict(ts, epoch, level, source, message)


def _iso_parse(m, ctx):
    g = m.groupdict()
    t = ctx.finish(g["y"], g["mo"], g["d"], g["h"], g["mi"], g["s"], g.get("f"), g.get("tz"))
    rest = g.get("rest") or ""
    lv = _LEVEL_RE.search(rest[:60])
    source = {}
    py = re.match(r"\s*-\s*([\w.]+)\s+-\s+\w+\s+-", rest)  # Python's "%(asctime)s - %(name)s - %(levelname)s -"
    if py:
        source["logger"] = py.group(1)
    lg = None if py else re.match(r"\s*(?:\[[^\]]*\]\s*)?(?:[A-Za-z]+\s+)?(?:\[[^\]]*\]\s*)?([\w$]+(?:\.[\w$]+)+|[\w-]+(?=:|\s-\s))", rest)
    if lg is not None and not normalize_level(lg.group(1)):
        source["logger"] = lg.group(1)
    return {"t": t, "level": normalize_level(lv.group(1)) if lv else None, "source": source, "message": rest}


def _syslog3164(m, ctx):
    g = m.groupdict()
    t = ctx.finish(None, MONTHS[g["mon"].lower()[:3]], g["d"], g["h"], g["mi"], g["s"], g.get("f"))
    pri = int(g["pri"]) if g.get("pri") else None
    msg = g["rest"]
    lv = normalize_level(pri % 8) if pri is not None else None
    if lv is None:
        w = _LEVEL_RE.search(msg[:40])
        lv = normalize_level(w.group(1)) if w else None
    src = {"host": g["host"], "program": g["prog"]}
    if g.get("pid"):
        src["pid"] = int(g["pid"])
    return {"t": t, "level": lv, "source": src, "message": msg}


def _syslog5424(m, ctx):
    g = m.groupdict()
    t = ctx.finish(g["y"], g["mo"], g["d"], g["h"], g["mi"], g["s"], g.get("f"), g.get("tz"))
    src = {k: g[k] for k in ("host", "prog") if g.get(k) and g[k] != "-"}
    if "prog" in src:
        src["program"] = src.pop("prog")
    if g.get("pid") and _digits(g["pid"]):
        src["pid"] = int(g["pid"])
    return {"t": t, "level": normalize_level(int(g["pri"]) % 8), "source": src, "message": g["rest"]}


def _access(m, ctx):
    g = m.groupdict()
    t = ctx.finish(g["y"], MONTHS[g["mon"].lower()], g["d"], g["h"], g["mi"], g["s"], None, g["tz"])
    status = int(g["status"])
    level = "ERROR" if status >= 500 else "WARNING" if status >= 400 else "INFO"
    return {"t": t, "level": level, "source": {"host": g["client"]}, "message": g["rest"]}


def _apache_error(m, ctx):
    g = m.groupdict()
    t = ctx.finish(g["y"], MONTHS[g["mon"].lower()], g["d"], g["h"], g["mi"], g["s"], g.get("f"))
    src = {"program": g["module"] or "apache"}
    if g.get("pid"):
        src["pid"] = int(g["pid"])
    return {"t": t, "level": normalize_level(g["lvl"]), "source": src, "message": g["rest"]}


def _nginx_error(m, ctx):
    g = m.groupdict()
    t = ctx.finish(g["y"], g["mo"], g["d"], g["h"], g["mi"], g["s"])
    return {"t": t, "level": normalize_level(g["lvl"]), "source": {"program": "nginx", "pid": int(g["pid"])},
            "message": g["rest"]}


def _windows(m, ctx):
    g = m.groupdict()
    h = int(g["h"])
    if g.get("ampm"):
        h = h % 12 + (12 if g["ampm"].upper() == "PM" else 0)
    t = ctx.finish(g["y"], g["mo"], g["d"], h, g["mi"], g["s"])
    lv = _LEVEL_RE.search(g["rest"][:40])
    return {"t": t, "level": normalize_level(lv.group(1)) if lv else None, "source": {}, "message": g["rest"]}


def _generic(m, ctx):
    """Formats whose header is a time, maybe a level, a host and a program: one reader for the
    named groups they share (y or yy, mo or mon, d, h, mi, s, f, tz; or epoch)."""
    g = m.groupdict()
    if g.get("epoch"):
        t = _utc(float(g["epoch"]))
    else:
        y = g.get("y") or (f"20{g['yy']}" if g.get("yy") else None)
        mo = g.get("mo") or MONTHS[g["mon"].lower()[:3]]
        t = ctx.finish(y, mo, g["d"], g["h"], g["mi"], g["s"], g.get("f"), g.get("tz"))
    rest = g.get("rest") or ""
    level = normalize_level(g["lvl"]) if g.get("lvl") else None
    if level is None:
        lv = _LEVEL_RE.search(rest[:60])
        level = normalize_level(lv.group(1)) if lv else None
    src = {}
    if g.get("host"):
        src["host"] = g["host"]
    if g.get("prog"):
        src["program"] = g["prog"]
    if g.get("pid") and _digits(g["pid"]):
        src["pid"] = int(g["pid"])
    return {"t": t, "level": level, "source": src, "message": rest}


_CUPS_LEVELS = {"D": "DEBUG", "d": "DEBUG", "I": "INFO", "N": "INFO", "W": "WARNING", "E": "ERROR",
                "C": "CRITICAL", "A": "CRITICAL", "X": "CRITICAL"}


def _cups(m, ctx):
    out = _generic(m, ctx)
    out["level"] = _CUPS_LEVELS.get(m.group("clv"))
    return out


def _python_plain(m, ctx):
    return {"t": None, "level": normalize_level(m.group("lvl")), "source": {"logger": m.group("logger")},
            "message": m.group("rest")}


_TIME = r"(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?"
FORMATS = [
    LogFormat("syslog-rfc5424", re.compile(
        r"^<(?P<pri>\d{1,3})>1 (?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})T" + _TIME +
        r"(?P<tz>Z|[+-]\d{2}:\d{2})? (?P<host>\S+) (?P<prog>\S+) (?P<pid>\S+) \S+ (?P<rest>.*)$"), _syslog5424),
    LogFormat("syslog-rfc3164", re.compile(
        r"^(?:<(?P<pri>\d{1,3})>)?(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<d>\d{1,2}) " + _TIME +
        r" (?P<host>[\w.:-]*[\w.-]) (?P<prog>[^\s:\[]+)(?:\[(?P<pid>\d+)\])?: ?(?P<rest>.*)$"), _syslog3164),
    # rsyslog's RFC 3339 file format: "2014-07-02T13:07:50.123456+02:00 host program[pid]: message"
    LogFormat("syslog-iso", re.compile(
        r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})T" + _TIME + r"(?P<tz>Z|[+-]\d{2}:\d{2})? "
        r"(?P<host>[\w.:-]+) (?P<prog>[^\s:\[]+)(?:\[(?P<pid>\d+)\])?: ?(?P<rest>.*)$"), _generic),
    LogFormat("access-log", re.compile(
        r'^(?P<client>\S+) \S+ \S+ \[(?P<d>\d{2})/(?P<mon>[A-Z][a-z]{2})/(?P<y>\d{4}):' + _TIME +
        r' (?P<tz>[+-]\d{4})\] "(?P<rest>[^"]*" (?P<status>\d{3}) .*)$'), _access),
    LogFormat("apache-error", re.compile(
        r"^\[[A-Z][a-z]{2} (?P<mon>[A-Z][a-z]{2}) (?P<d>\d{2}) " + _TIME +
        r" (?P<y>\d{4})\] \[(?:(?P<module>\w*):)?(?P<lvl>\w+)\](?: \[pid (?P<pid>\d+)(?::tid \d+)?\])? ?(?P<rest>.*)$"),
        _apache_error),
    LogFormat("nginx-error", re.compile(
        r"^(?P<y>\d{4})/(?P<mo>\d{2})/(?P<d>\d{2}) (?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2}) \[(?P<lvl>\w+)\] "
        r"(?P<pid>\d+)#\d+: (?P<rest>.*)$"), _nginx_error),
    # ISO/RFC 3339 first on the line (optionally in brackets): Python logging, log4j/logback,
    # Go, Rust, most application logs.
    LogFormat("iso-timestamp", re.compile(
        r"^\[?(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})[T ]" + _TIME +
        r"\s?(?P<tz>Z|[+-]\d{2}:?\d{2}|UTC)?\]?(?P<rest>.*)$"), _iso_parse),
    # ctime first: vsftpd, xferlog, FreeRADIUS ("Tue Mar 14 10:00:00 2009 [pid 3] ...")
    LogFormat("ctime", re.compile(
        r"^\[?[A-Z][a-z]{2} (?P<mon>[A-Z][a-z]{2}) {1,2}(?P<d>\d{1,2}) " + _TIME +
        r" (?P<y>\d{4})\]?(?P<rest>.*)$"), _generic),
    # BIND, Tomcat: "14-Mar-2009 10:00:00.123 ..."
    LogFormat("day-mon-year", re.compile(
        r"^(?P<d>\d{1,2})-(?P<mon>[A-Z][a-z]{2})-(?P<y>\d{4}) " + _TIME + r"(?P<rest>.*)$"), _generic),
    # Redis: "1234:M 14 Mar 2009 10:00:00.123 * Ready to accept connections"
    LogFormat("redis", re.compile(
        r"^(?P<pid>\d+):[A-Z] (?P<d>\d{1,2}) (?P<mon>[A-Z][a-z]{2}) (?P<y>\d{4}) " + _TIME +
        r" (?P<rest>.*)$"), _generic),
    # CUPS: "E [14/Mar/2009:10:00:00 +0000] ..."
    LogFormat("cups", re.compile(
        r"^(?P<clv>[DdINWECAX]) \[(?P<d>\d{2})/(?P<mon>[A-Z][a-z]{2})/(?P<y>\d{4}):" + _TIME +
        r" (?P<tz>[+-]\d{4})\] (?P<rest>.*)$"), _cups),
    # Seconds since the epoch: Squid ("1236000000.123    456 10.0.0.5 TCP_MISS/200 ..."), Mosquitto
    # (in brackets: Unbound, "[1531378249] unbound[4609:0] info: ...")
    LogFormat("epoch", re.compile(r"^\[?(?P<epoch>1\d{9})(?:\.\d{1,6})?\]?:? +(?P<rest>.*)$"), _generic),
    # MySQL before 5.7: "090314 10:00:00 [Note] ..."; the day may be space-padded in the time
    LogFormat("mysql-old", re.compile(
        r"^(?P<yy>\d{2})(?P<mo>\d{2})(?P<d>\d{2}) {1,2}(?P<h>\d{1,2}):(?P<mi>\d{2}):(?P<s>\d{2})"
        r"(?: \[(?P<lvl>\w+)\])?(?P<rest>.*)$"), _generic),
    # A syslog time with no host: Dovecot's own log ("Mar 14 10:00:00 imap-login: Info: ...")
    LogFormat("syslog-nohost", re.compile(
        r"^(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<d>\d{1,2}) " + _TIME + r" (?P<prog>[\w./-]+?)(?:\((?P<pid>\d+)\))?:"
        r" (?:(?P<lvl>Info|Warning|Error|Fatal|Panic|Debug): )?(?P<rest>.*)$"), _generic),
    LogFormat("windows", re.compile(
        r"^(?P<mo>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4}),? (?P<h>\d{1,2}):(?P<mi>\d{2}):(?P<s>\d{2})"
        r"(?: ?(?P<ampm>[AaPp][Mm]))?(?P<rest>.*)$"), _windows),
    LogFormat("python-basic", re.compile(
        r"^(?P<lvl>DEBUG|INFO|WARNING|ERROR|CRITICAL):(?P<logger>[\w.]+):(?P<rest>.*)$"), _python_plain),
]


def detect(lines: list[str], sample: int = 200) -> LogFormat | None:
    """The format whose header matches most of the first non-blank lines, if any matches enough."""
    probe = [ln for ln in lines[:sample * 2] if ln.strip()][:sample]
    if not probe:
        return None
    best, best_hits = None, 0
    for fmt in FORMATS:
        hits = sum(1 for ln in probe if fmt.header.match(ln))
        if hits > best_hits:
            best, best_hits = fmt, hits
    # Continuation lines (stack traces) can outnumber headers; a tenth of the lines is enough.
    return best if best_hits >= max(1, len(probe) // 10) else None


def _is_continuation(line: str) -> bool:
    return (line[:1] in (" ", "\t") or line.startswith(("Caused by:", "Traceback (most recent", "...", "During handling"))
            or not line.strip())


def parse_records(lines: list[str], first_line: int = 1, fmt: LogFormat | None = None,
                  ctx: TimeContext | None = None, jsonl: bool = False) -> list[Record]:
    """Group ``lines`` into records. With no format, a record is a line plus its indented or
    traceback continuation lines, so plain text still cites tight line ranges."""
    ctx = ctx or TimeContext()
    if jsonl:
        return [_json_record(ln, first_line + i, ctx) for i, ln in enumerate(lines) if ln.strip()]
    if fmt is None and any(ln.startswith("__REALTIME_TIMESTAMP=") for ln in lines[:50]):
        return _journal_records(lines, first_line, ctx)
    if fmt is None and _is_stanzas(lines, ctx):
        return _stanza_records(lines, first_line, ctx)
    records: list[Record] = []
    cur: list[str] = []
    cur_start = first_line
    cur_info: dict | None = None

    def flush(_end_line: int) -> None:
        while cur and not cur[-1].strip():
            cur.pop()
        if cur:
            info = cur_info or {}
            t = info.get("t")
            records.append(Record(cur_start, cur_start + len(cur) - 1, "\n".join(cur),
                                  t[0] if t else None, t[1] if t else None, info.get("level"),
                                  info.get("source") or {}, info.get("message") or cur[0]))

    for i, line in enumerate(lines):
        n = first_line + i
        if not cur and not line.strip():
            continue
        m, mfmt = (fmt.header.match(line), fmt) if fmt else (None, None)
        if m is None and fmt is not None and line[:1].isalnum():
            # Mixed files (an app log with syslog lines pasted in): any known header starts a record.
            m, mfmt = _any_header(line)
        if m is not None or (fmt is None and not _is_continuation(line)) or not cur:
            flush(n - 1)
            cur, cur_start = [line], n
            cur_info = mfmt.parse(m, ctx) if m else _guess(line, ctx)
        else:
            cur.append(line)
    flush(first_line + len(lines) - 1)
    return [r for r in records if r.text.strip()]


def _blocks(lines: list[str]) -> list[tuple[int, int]]:
    """(first, last) indexes of the blank-line separated blocks of ``lines``."""
    out, start = [], None
    for i, line in enumerate(lines):
        if line.strip():
            if start is None:
                start = i
        elif start is not None:
            out.append((start, i - 1))
            start = None
    if start is not None:
        out.append((start, len(lines) - 1))
    return out


def _is_stanzas(lines: list[str], ctx: TimeContext) -> bool:
    """A file of blank-line separated, multi-line records that each start with a time (apt's
    history.log: Start-Date, Commandline, Install, End-Date). Read line by line, such a record
    falls apart into lines with no time, and chunks cut it anywhere."""
    blocks = _blocks(lines[:2000])
    if len(blocks) < 2:
        return False
    multi = [b for b in blocks if b[1] > b[0]]
    timed = sum(1 for a, _ in multi if parse_iso(lines[a][:60], ctx))
    return len(multi) >= 0.6 * len(blocks) and timed >= 0.8 * len(multi) and not any(
        _any_header(lines[a])[0] for a, _ in blocks[:20])


def _stanza_records(lines: list[str], first_line: int, ctx: TimeContext) -> list[Record]:
    out = []
    for a, b in _blocks(lines):
        block = lines[a:b + 1]
        info = _guess(block[0], ctx)
        t = info.get("t")
        out.append(Record(first_line + a, first_line + b, "\n".join(block), t[0] if t else None,
                          t[1] if t else None, info.get("level"), {}, block[0]))
    return out


def _any_header(line: str):
    for f in FORMATS:
        m = f.header.match(line)
        if m:
            return m, f
    return None, None


def _guess(line: str, ctx: TimeContext) -> dict:
    """Time and level of a line outside any known format (plain text, odd log lines)."""
    t = parse_iso(line[:40], ctx)
    lv = _LEVEL_RE.search(line[:80])
    return {"t": t, "level": normalize_level(lv.group(1)) if lv and lv.group(1).isupper() else None,
            "message": line}


_JSON_TIME = ("@timestamp", "timestamp", "time", "ts", "datetime", "date", "asctime", "t")
_JSON_LEVEL = ("level", "lvl", "severity", "levelname", "log.level", "loglevel", "priority")
_JSON_MSG = ("message", "msg", "text", "log", "event")


def _json_record(line: str, n: int, ctx: TimeContext) -> Record:
    rec = Record(n, n, line, message=line)
    try:
        obj = json.loads(line)
    except ValueError:
        return rec
    if not isinstance(obj, dict):
        return rec
    for k in _JSON_TIME:
        v = obj.get(k)
        if isinstance(v, str):
            t = parse_iso(v, ctx)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            t = _utc(v / 1000 if v > 1e11 else v)  # milliseconds since the epoch are common
        else:
            continue
        if t:
            rec.ts, rec.epoch = t
            break
    for k in _JSON_LEVEL:
        if k in obj:
            rec.level = normalize_level(obj[k])
            break
    for k in _JSON_MSG:
        if isinstance(obj.get(k), str):
            rec.message = obj[k]
            break
    for k, dest in (("logger", "logger"), ("name", "logger"), ("host", "host"), ("hostname", "host"),
                    ("pid", "pid"), ("service", "program"), ("app", "program")):
        if k in obj and dest not in rec.source and isinstance(obj[k], (str, int)):
            rec.source[dest] = obj[k]
    return rec


def _journal_records(lines: list[str], first_line: int, ctx: TimeContext) -> list[Record]:
    """journalctl -o export: KEY=value lines, one blank line between entries."""
    out, start, fields = [], None, {}

    def flush(end):
        if start is None:
            return
        rec = Record(start, end, "\n".join(lines[start - first_line:end - first_line + 1]))
        us = fields.get("__REALTIME_TIMESTAMP", "")
        t = _utc(int(us) / 1e6) if _digits(us) else None
        if t:
            rec.ts, rec.epoch = t
        rec.level = normalize_level(fields.get("PRIORITY"))
        rec.message = fields.get("MESSAGE", "")
        for k, dest in (("_HOSTNAME", "host"), ("SYSLOG_IDENTIFIER", "program"), ("_PID", "pid")):
            if k in fields:
                rec.source[dest] = int(fields[k]) if dest == "pid" and _digits(fields[k]) else fields[k]
        out.append(rec)

    for i, line in enumerate(lines):
        n = first_line + i
        if not line.strip():
            flush(n - 1)
            start, fields = None, {}
            continue
        if start is None:
            start = n
        k, _, v = line.partition("=")
        fields[k] = v
    flush(first_line + len(lines) - 1)
    return out
