"""Pure parts of the daemon-log generator: reading timestamps as each format writes them, finding the
line each driven event left, and building labelled questions from those lines.

An event (from the driver) says where its line must be (host, log file, a unique marker such as a
client IP or a URL path) and which values a question may ask for. Questions only state what the
line itself says: the date and time are read from the line, and every answer is checked to occur in
the accepted lines before it is kept.
"""

from __future__ import annotations

import calendar
import datetime as dt
import gzip
import os
import random
import re

MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}
UTC = dt.timezone.utc

# (regex, what the groups are); a year-less stamp gets its year from the driver's clock
_TS = [
    (re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)"), "Ymd"),            # RFC 3339
    (re.compile(r"^\[\w{3} (\w{3}) (\d\d) (\d\d):(\d\d):(\d\d)\.\d+ (\d{4})\]"), "apache"),
    (re.compile(r"\[(\d\d)/(\w{3})/(\d{4}):(\d\d):(\d\d):(\d\d)"), "clf"),            # access logs
    (re.compile(r"^\w{3} (\w{3}) ([ \d]\d) (\d\d):(\d\d):(\d\d) (\d{4}) "), "ctime"),  # vsftpd, xferlog
    (re.compile(r"^(\w{3}) ([ \d]\d) (\d\d):(\d\d):(\d\d) "), "syslog"),             # syslog, dovecot
    (re.compile(r"^(\d{4})[-/](\d\d)[-/](\d\d) ([ \d]\d):(\d\d):(\d\d)"), "Ymd"),     # nginx, mariadb, pg, lighttpd
    (re.compile(r"^(\d\d)(\d\d)(\d\d) ([ \d]\d):(\d\d):(\d\d)\t"), "ymd"),            # mariadb general log
    (re.compile(r"^\[?(\d{10})(?:\.\d+)?\]?:? "), "epoch"),                           # squid, unbound, mosquitto
    (re.compile(r"^__REALTIME_TIMESTAMP=(\d{10})\d{6}$"), "epoch"),                  # journalctl -o export
]


def parse_ts(line: str, year_hint: int | None = None) -> tuple[dt.datetime, bool] | None:
    """The timestamp a line starts with (or, for access logs, carries in brackets), as UTC, and
    whether the line itself states the year."""
    for rx, kind in _TS:
        m = rx.search(line) if kind == "clf" else rx.match(line)
        if not m:
            continue
        g = m.groups()
        if kind == "Ymd":
            y, mo, d, H, M, S, has_year = int(g[0]), int(g[1]), int(g[2]), int(g[3]), int(g[4]), int(g[5]), True
        elif kind == "ymd":
            y, mo, d, H, M, S, has_year = 2000 + int(g[0]), int(g[1]), int(g[2]), int(g[3]), int(g[4]), int(g[5]), True
        elif kind == "apache":
            y, mo, d, H, M, S, has_year = int(g[5]), MONTHS[g[0]], int(g[1]), int(g[2]), int(g[3]), int(g[4]), True
        elif kind == "clf":
            y, mo, d, H, M, S, has_year = int(g[2]), MONTHS[g[1]], int(g[0]), int(g[3]), int(g[4]), int(g[5]), True
        elif kind == "ctime":
            y, mo, d, H, M, S, has_year = int(g[5]), MONTHS[g[0]], int(g[1]), int(g[2]), int(g[3]), int(g[4]), True
        elif kind == "syslog":
            if g[0] not in MONTHS or year_hint is None:
                continue
            y, mo, d, H, M, S, has_year = year_hint, MONTHS[g[0]], int(g[1]), int(g[2]), int(g[3]), int(g[4]), False
        else:
            return dt.datetime.fromtimestamp(int(g[0]), UTC), True
        try:
            return dt.datetime(y, mo, d, H, M, S, tzinfo=UTC), has_year
        except ValueError:
            return None
    return None


def read_lines(path: str) -> list[str]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        return f.read().split("\n")


def rotated(corpus: str, rel: str) -> list[str]:
    """rel and its rotations that exist (rel, rel.1, rel.2.gz, ...), relative to corpus."""
    out = [rel] if os.path.exists(os.path.join(corpus, rel)) else []
    i = 1
    while True:
        for cand in (f"{rel}.{i}", f"{rel}.{i}.gz"):
            if os.path.exists(os.path.join(corpus, cand)):
                out.append(cand)
                break
        else:
            return out
        i += 1


class Corpus:
    """Lines of every file under a corpus dir, decompressed, loaded once."""

    def __init__(self, root: str):
        self.root = root
        self.files: dict[str, list[str]] = {}
        self.text: dict[str, str] = {}
        self._all: list[str] | None = None

    def lines(self, rel: str) -> list[str]:
        if rel not in self.files:
            self.files[rel] = read_lines(os.path.join(self.root, rel))
            self.text[rel] = "\n".join(self.files[rel])
        return self.files[rel]

    def all_files(self) -> list[str]:
        if self._all is None:
            out = []
            for d, _, names in os.walk(self.root):
                for n in names:
                    out.append(os.path.relpath(os.path.join(d, n), self.root))
            self._all = sorted(out)
        return self._all

    def count_lines_with(self, fragments: list[str], files: list[str]) -> int:
        """How many lines (in files) contain all fragments, in order."""
        key = max(fragments, key=len)
        n = 0
        for rel in files:
            self.lines(rel)
            text = self.text[rel]
            start = 0
            while True:
                i = text.find(key, start)
                if i < 0:
                    break
                a = text.rfind("\n", 0, i) + 1
                b = text.find("\n", i)
                b = len(text) if b < 0 else b
                if _in_order(text[a:b], fragments):
                    n += 1
                start = b + 1
        return n


def _in_order(line: str, fragments: list[str]) -> bool:
    pos = 0
    for f in fragments:
        i = line.find(f, pos)
        if i < 0:
            return False
        pos = i + len(f)
    return True


# which line of an event is "its" line (the others with the marker may also be accepted)
PRIMARY = {
    "ssh-invalid-user": r"Failed password for invalid user ",
    "ssh-failed-password": r"Failed password for ",
    "ssh-accepted": r"Accepted password for ",
    "sudo-command": r"COMMAND=",
    "postfix-unknown-recipient": r"NOQUEUE: reject: RCPT",
    "postfix-accepted": r": from=<",
    "postfix-sasl-failed": r"SASL \w+ authentication failed",
    "dovecot-auth-failed": r"imap-login: .*auth failed",
    "dovecot-login": r"imap-login: Info: Login: ",
    "http-404": r'" 404 |open\(\) .* failed|File does not exist',
    "http-probe": r'HTTP/1\.[01]" \d{3} ',
    "http-ok": r'" 200 ',
    "http-denied": r'" 403 |forbidden by rule|client denied',
    "http-auth-failed": r'" 401 |password mismatch|was not found in|authentication failure|user .* not found|password doesn\'t match',
    "haproxy-denied": r" 403 ",
    "haproxy-pass": r" 200 ",
    "ftp-login-failed": r"FAIL LOGIN",
    "ftp-anon-login": r"OK LOGIN",
    "ftp-download": r" o a ",
    "ftp-upload": r"OK UPLOAD| i r ",
    "mysql-access-denied": r"Access denied for user",
    "mysql-connect": r" Connect\t",
    "postgres-auth-failed": r"FATAL: ",
    "postgres-connect": r"connection authorized",
    "dns-query": r" IN$",
    "squid-denied": r"TCP_DENIED/403",
    "squid-miss": r"/503 ",
    "mqtt-denied": r"New connection from",
    "mqtt-connect": r"New client connected from",
    "cups-request": r'HTTP/1\.[01]" \d{3} ',
}

# derived answers: parsed from the primary line
DERIVED = {"queue_id": re.compile(r"\]: ([0-9A-F]{8,12}): from=<")}


def locate(corpus: Corpus, ev: dict) -> dict | None:
    """Find the event's line: the rotation of its file holding the marker, the primary line, and
    the accepted lines (the primary plus the event's other lines that also hold the answer)."""
    base = os.path.join(ev["host"], ev["file"])
    rx = re.compile(PRIMARY[ev["kind"]])
    for rel in rotated(corpus.root, base):
        lines = corpus.lines(rel)
        hits = [i for i, line in enumerate(lines) if ev["marker"] in line]
        prim = [i for i in hits if rx.search(lines[i])]
        if not prim:
            continue
        i = prim[0]
        answers = dict(ev["fields"])
        for name, drx in DERIVED.items():
            m = drx.search(lines[i])
            if m:
                answers[name] = m.group(1)
        return {"path": rel, "index": i, "line": lines[i], "hits": hits, "answers": answers}
    return None


def line_time(corpus: Corpus, rel: str, index: int, year_hint: int) -> tuple[dt.datetime, bool] | None:
    """The timestamp of a line, or of the nearest line above it that has one (multi-line records,
    the MariaDB general log which stamps only the first line of each second)."""
    lines = corpus.lines(rel)
    for j in range(index, max(-1, index - 50), -1):
        got = parse_ts(lines[j], year_hint)
        if got:
            return got
    return None


# ----- phrasing

DESC = {
    "ssh-invalid-user": "the SSH login attempt for a user that does not exist",
    "ssh-failed-password": "the failed SSH password login for an existing account",
    "ssh-accepted": "the successful SSH password login",
    "postfix-unknown-recipient": "the mail postfix rejected because the recipient was unknown",
    "postfix-accepted": "the message postfix accepted for local delivery",
    "postfix-sasl-failed": "the failed SASL authentication against postfix",
    "dovecot-auth-failed": "the failed IMAP login to dovecot",
    "dovecot-login": "the successful IMAP login to dovecot",
    "http-404": "the request that got a 404 from {program}",
    "http-probe": "the scanner-style request to {program}",
    "http-ok": "the request {program} answered with 200",
    "http-denied": "the request {program} refused with 403",
    "http-auth-failed": "the failed HTTP basic-auth login on {program}",
    "haproxy-denied": "the request haproxy blocked with 403",
    "haproxy-pass": "the request haproxy passed to the backend",
    "ftp-login-failed": "the failed FTP login to vsftpd",
    "ftp-anon-login": "the anonymous FTP login to vsftpd",
    "ftp-download": "the anonymous FTP download",
    "ftp-upload": "the FTP upload",
    "mysql-access-denied": "the MariaDB login that was denied",
    "mysql-connect": "the MariaDB client connection over TCP",
    "postgres-auth-failed": "the failed PostgreSQL password login",
    "postgres-connect": "the PostgreSQL connection that was authorized",
    "dns-query": "the DNS query for a name under example.lan",
    "squid-denied": "the request squid denied",
    "squid-miss": "the request squid could not fetch (503)",
    "mqtt-denied": "the MQTT connection that mosquitto refused as not authorised",
    "mqtt-connect": "the MQTT client that connected to mosquitto",
    "cups-request": "the web request to the CUPS print server",
}

# kinds a question's description cannot tell apart (both are 404s); a question about one must not
# match a record of the other at the stated time
KIND_GROUP = {"http-probe": "http-404"}

ASK = {
    "ip": ["Which IP address was behind {desc}", "From which client IP did {desc} come",
           "What was the source address of {desc}", "Which IP caused {desc}"],
    "user": ["Which user name was used in {desc}", "What account name appears in {desc}",
             "Which user tried {desc}"],
    "status": ["What HTTP status code did {program} send for {desc}", "Which status did {program} return for {desc}"],
    "queue_id": ["What queue ID did postfix give {desc}", "Which postfix queue id belongs to {desc}"],
    "recipient": ["Which recipient address was rejected in {desc}", "What was the rejected recipient in {desc}"],
    "database": ["Which database was named in {desc}", "What database did {desc} ask for"],
    "client_id": ["What client id did {desc} use", "Which MQTT client id belongs to {desc}"],
    "file": ["Which file was transferred in {desc}", "What file did {desc} involve"],
    "name": ["Which host name was looked up in {desc}", "What name was queried in {desc}"],
}
ASK_NOUN = {"ip": "which IP was this", "user": "which user name was it", "status": "what status was returned",
            "queue_id": "what queue id", "recipient": "which recipient", "database": "which database",
            "client_id": "which client id", "file": "which file",
            "name": "which name was looked up"}

# status asks describe the request without giving its status away
NEUTRAL = {"http-404": "the request from {ip}", "http-probe": "the request from {ip}",
           "http-ok": "the request from {ip}", "http-denied": "the request from {ip}",
           "http-auth-failed": "the request from {ip}", "haproxy-denied": "the request from {ip} through haproxy",
           "haproxy-pass": "the request from {ip} through haproxy", "squid-denied": "the proxy request from {ip}",
           "squid-miss": "the proxy request from {ip}", "cups-request": "the request for {path}"}


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 11 <= n % 100 <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def when_phrases(t: dt.datetime) -> list[tuple[str, str]]:
    """Ways a person states a date without its year and a time: (phrase, granularity)."""
    h12 = t.hour % 12 or 12
    ampm = "am" if t.hour < 12 else "pm"
    month, mon = calendar.month_name[t.month], calendar.month_abbr[t.month]
    return [
        (f"on {month} {t.day} at {t:%H:%M:%S}", "s"),
        (f"on {t.day} {mon} {t:%H:%M:%S}", "s"),
        (f"on the {_ordinal(t.day)} of {month} at {h12}:{t:%M:%S} {ampm}", "s"),
        (f"at {t:%H:%M:%S} on {mon} {t.day}", "s"),
        (f"on {t.day} {mon} {t:%H:%M}", "m"),
        (f"on the {_ordinal(t.day)} of {month} around {h12}:{t:%M}{ampm}", "m"),
    ]


def same_time(a: dt.datetime, b: dt.datetime, gran: str) -> bool:
    ka = (a.month, a.day, a.hour, a.minute) + ((a.second,) if gran == "s" else ())
    kb = (b.month, b.day, b.hour, b.minute) + ((b.second,) if gran == "s" else ())
    return ka == kb


def accepted(hit: dict, lines: list[str], answer: str) -> list[list[int]]:
    """1-based inclusive ranges: the primary line, plus the event's other lines holding the answer."""
    idx = sorted({hit["index"]} | {i for i in hit["hits"] if answer in lines[i]})
    return [[i + 1, i + 1] for i in idx]


def answer_alts(field: str, value: str) -> list[str]:
    if field == "ip":
        return [f"::ffff:{value}"]
    if field == "recipient":
        return [f"<{value}>", value.split("@")[0]]
    if field == "command":
        return []
    return []


def quote_of(line: str, answer: str, rng: random.Random) -> tuple[str, list[str]] | None:
    """A part of the line as a person would paste it, without the answer: returns the quote and
    the fragments (in order) it was cut from, for the uniqueness check."""
    i = line.find(answer)
    if i < 0:
        return None
    before, after = line[:i], line[i + len(answer):]
    style = rng.choice(["elide", "elide", "prefix", "noyear"])
    if style == "prefix" and len(before.strip()) >= 25:
        frag = before.rstrip()
        return frag + " ...", [frag]
    if style == "noyear":         # the stamp without its year, as pasted from a narrow column
        m = re.match(r"^\w{3} (\w{3} [ \d]\d \d\d:\d\d:\d\d) \d{4}( .*)$", before) or \
            re.match(r"^\d{4}-(\d\d-\d\dT\d\d:\d\d:\d\d)\.\d+\+00:00( .*)$", before) or \
            re.match(r"^\d{4}[-/](\d\d[-/]\d\d \d\d:\d\d:\d\d)(\S* .*)$", before)
        if m and len(m.group(2).strip()) >= 10:
            a, b = m.group(1), m.group(2).rstrip()
            return f"{a}{b} ...", [a, b]
    a, b = before.rstrip(), after.strip()[:80].rstrip()
    frags = [x for x in (a, b) if x]
    if not a or len(a) < 12:
        return None
    return (f"{a} ... {b}" if b else f"{a} ..."), frags


def build(corpus: Corpus, events: list[dict], seed: int = 7, verify_span: float = 90.0,
          per_format_kind: int | None = None) -> tuple[list[dict], dict]:
    """Questions for located events: words / quote / vague, at most per_format_kind of each kind
    per format (a seeded sample). Returns (questions, stats)."""
    rng = random.Random(seed)
    stats = {"events": len(events), "located": 0, "not_found": 0, "time_mismatch": 0,
             "ambiguous": 0, "not_unique_quote": 0}
    found: list[tuple[dict, dict, dt.datetime, bool]] = []
    by_seq: dict[tuple[str, int], tuple[dict, dict, dt.datetime, bool]] = {}
    for ev in events:
        if ev["kind"] not in PRIMARY:
            continue
        hit = locate(corpus, ev)
        if not hit:
            stats["not_found"] += 1
            continue
        fake = dt.datetime.fromtimestamp(ev["fake_time"], UTC)
        got = line_time(corpus, hit["path"], hit["index"], fake.year)
        if not got or abs((got[0] - fake).total_seconds()) > verify_span:
            stats["time_mismatch"] += 1     # the line's own stamp must agree with the driver's clock
            continue
        stats["located"] += 1
        rec = (ev, hit, got[0], got[1])
        found.append(rec)
        by_seq[(ev["host"], ev["seq"])] = rec

    by_host_ip: dict[tuple[str, str], list[tuple[dict, dict, dt.datetime, bool]]] = {}
    for rec in found:
        if rec[0]["fields"].get("ip"):
            by_host_ip.setdefault((rec[0]["host"], rec[0]["fields"]["ip"]), []).append(rec)

    by_program: dict[str, list[tuple[dict, dict, dt.datetime, bool]]] = {}
    for rec in found:
        by_program.setdefault(rec[0]["program"], []).append(rec)

    questions: list[dict] = []
    kinds_cycle = ["words", "quote"]
    for n, (ev, hit, t, _) in enumerate(found):
        if ev["kind"] == "sudo-command":
            continue
        lines = corpus.lines(hit["path"])
        choices = []
        if "after_anchor" in ev and (ev["host"], ev["after_anchor"]) in by_seq:
            choices.append("vague")
        choices.append(kinds_cycle[n % 2])
        for kind in choices:
            fields = [f for f in ev["ask"] if f in hit["answers"] and f in ASK]
            if not fields:
                continue
            field = rng.choice(fields)
            if field == "status" and kind == "vague":
                field = "ip"
            answer = str(hit["answers"][field])
            if answer not in hit["line"]:
                continue
            program = ev["program"]
            desc = (NEUTRAL.get(ev["kind"], DESC[ev["kind"]]) if field == "status" else DESC[ev["kind"]])
            desc = desc.format(program=program, **{k: v for k, v in hit["answers"].items() if k != "program"})
            q = None
            if kind == "words":
                q = _words(rng, ev, t, field, answer, desc, by_program[program], stats)
            elif kind == "quote":
                q = _quote(rng, corpus, ev, hit, field, answer, stats)
            else:
                anchor = by_seq[(ev["host"], ev["after_anchor"])]
                q = _vague(rng, ev, anchor, t, field, answer, desc)
            if not q:
                continue
            acc = accepted(hit, lines, answer)
            for a, b in acc:
                assert any(answer in lines[i - 1] for i in range(a, b + 1)), (answer, hit["path"], a)
            also = _same_action(corpus, ev, hit, t, answer, by_host_ip)
            questions.append({
                "id": f"{ev['host']}-{ev['seq']:04d}-{kind}", "kind": kind, "format": ev["format"],
                "program": program, "host": ev["host"], "path": hit["path"], "accept": acc,
                "line_start": hit["index"] + 1, "line_end": hit["index"] + 1, "question": q,
                "answer": answer, "answer_alts": answer_alts(field, answer), "asks": field,
                "also": also,
                "event": ev["kind"], "timestamp": t.isoformat(),
            })
    if per_format_kind:
        groups: dict[tuple[str, str], list[dict]] = {}
        for q in questions:
            groups.setdefault((q["format"], q["kind"]), []).append(q)
        questions = []
        for key in sorted(groups):
            g = groups[key]
            questions += rng.sample(g, per_format_kind) if len(g) > per_format_kind else g
        questions.sort(key=lambda q: q["id"])
    validate(corpus, questions)
    return questions, stats


# the most seconds between two lines one action wrote into two files (a web server's access and
# error log stamp the same request a moment apart)
SAME_ACTION_S = 2


# lines an action writes to another file that the driver does not record as events of their own:
# (file, line pattern with the client's {ip})
WRITES_ALSO = {
    "ftp-download": [("var/log/vsftpd.log", r'OK DOWNLOAD: Client "{ip}"')],
    "ftp-login-failed": [("var/log/auth.log", r"vsftpd: pam_unix\([^)]*:auth\): authentication failure;.* rhost={ip}(?!\d)")],
}


def _written_also(corpus: Corpus, ev: dict, t: dt.datetime, answer: str) -> list[dict]:
    ip = ev["fields"].get("ip")
    out = []
    for file, pattern in WRITES_ALSO.get(ev["kind"], []) if ip else []:
        rx = re.compile(pattern.format(ip=re.escape(ip)))
        for rel in rotated(corpus.root, os.path.join(ev["host"], file)):
            lines = corpus.lines(rel)
            idx = [i for i, line in enumerate(lines) if answer in line and rx.search(line)]
            idx = [i for i in idx if (got := line_time(corpus, rel, i, t.year))
                   and abs((got[0] - t).total_seconds()) <= SAME_ACTION_S]
            if idx:
                out.append({"path": rel, "accept": [[i + 1, i + 1] for i in idx]})
    return out


def _same_action(corpus: Corpus, ev: dict, hit: dict, t: dt.datetime, answer: str,
                 by_host_ip: dict) -> list[dict]:
    """The other lines one request left in other files of the same host (an nginx 404 is a line
    in access.log and one in error.log, both with the client's IP): {path, accept} for those
    that state the answer. The question describes the action, so either line answers it; the
    driver recorded both as events of the same kind, client and second (a login and the
    download after it are two actions), or the daemon writes the second line itself
    (``WRITES_ALSO``: vsftpd's own line for a download xferlog records, PAM's for a failed login)."""
    ip = ev["fields"].get("ip")
    if not ip:
        return []
    out = _written_also(corpus, ev, t, answer)
    for oev, ohit, ot, _ in by_host_ip.get((ev["host"], ip), []):
        if oev is ev or oev["kind"] != ev["kind"] or ohit["path"] == hit["path"] \
                or abs((ot - t).total_seconds()) > SAME_ACTION_S:
            continue
        olines = corpus.lines(ohit["path"])
        idx = sorted(i for i in {ohit["index"], *ohit["hits"]} if answer in olines[i])
        if idx:
            out.append({"path": ohit["path"], "accept": [[i + 1, i + 1] for i in idx]})
    return out


def validate(corpus: Corpus, qs: list[dict]) -> None:
    """Re-read every question's lines: the answer is in an accepted line, the ranges are inside
    the file, and a "words" question names the day, month and time its line states."""
    for q in qs:
        lines = corpus.lines(q["path"])
        assert all(1 <= a <= b <= len(lines) for a, b in q["accept"]), q["id"]
        assert any(q["answer"] in lines[i - 1] for a, b in q["accept"] for i in range(a, b + 1)), q["id"]
        for other in q.get("also", []):
            olines = corpus.lines(other["path"])
            assert all(q["answer"] in olines[a - 1] for a, _ in other["accept"]), q["id"]
        t = dt.datetime.fromisoformat(q["timestamp"])
        got = line_time(corpus, q["path"], q["line_start"] - 1, t.year)
        assert got and got[0] == t, q["id"]
        if q["kind"] == "words":
            text = q["question"]
            assert str(t.day) in text and (calendar.month_name[t.month] in text or calendar.month_abbr[t.month] in text), q["id"]
            assert f"{t:%M}" in text, q["id"]
            assert str(t.year) not in text, q["id"]
        if q["kind"] == "quote":
            quoted = q["question"].split('"', 1)[1].rsplit('"', 1)[0]
            assert q["answer"] not in quoted, q["id"]


def _ask(rng: random.Random, field: str, desc: str, program: str) -> str:
    return rng.choice(ASK[field]).format(desc=desc, program=program)


def _words(rng, ev, t, field, answer, desc, same_program, stats) -> str | None:
    phrases = when_phrases(t)
    rng.shuffle(phrases)
    for when, gran in phrases:          # in random order; a minute-level one only when unambiguous
        clash = [r for r in same_program
                 if r[0] is not ev and same_time(r[2], t, gran)
                 and KIND_GROUP.get(r[0]["kind"], r[0]["kind"]) == KIND_GROUP.get(ev["kind"], ev["kind"])
                 and str(r[1]["answers"].get(field, "")) != answer
                 and r[1]["answers"].get("ip") != ev["fields"].get("ip")]   # the same action in another file
        if clash:
            continue
        if rng.random() < 0.5:
            return f"{_ask(rng, field, desc, ev['program'])} {when}?"
        where = f" on {ev['host']}" if rng.random() < 0.4 else ""
        return f"{when[0].upper() + when[1:]}{where}, {ev['program']} logged {desc}. " \
               f"{ASK_NOUN[field][0].upper() + ASK_NOUN[field][1:]}?"
    stats["ambiguous"] += 1
    return None


def _quote(rng, corpus: Corpus, ev, hit, field, answer, stats) -> str | None:
    got = quote_of(hit["line"], answer, rng)
    if not got:
        return None
    text, frags = got
    if any(answer in f for f in frags):
        return None
    if corpus.count_lines_with(frags, corpus.all_files()) != 1:     # one record in the whole corpus
        stats["not_unique_quote"] += 1
        return None
    lead = rng.choice(["Got this alert: ", "From the logs on " + ev["host"] + ": ", "", "Seen in " + ev["program"] + "'s log: "])
    return f'{lead}"{text}" - {ASK_NOUN[field]}?'


def _vague(rng, ev, anchor, t, field, answer, desc) -> str | None:
    aev, _, at, _ = anchor
    if not (0 <= (t - at).total_seconds() <= 20):
        return None
    cmd = aev["fields"]["command"]
    lead = rng.choice([
        f"Right after someone used sudo to check {cmd} on {ev['host']}, {ev['program']} logged {desc}.",
        f"On {ev['host']}, just after the sudo command that tested {cmd}, there was {desc}.",
        f"A few seconds after an admin ran sudo against {cmd} on {ev['host']} we saw {desc}.",
    ])
    return f"{lead} {ASK_NOUN[field][0].upper() + ASK_NOUN[field][1:]}?"
