"""The pure parts of bench/daemon_logs.py (timestamps, locating an event's line, building questions),
on lines the real daemons wrote during a run of the generator. No root, no daemons."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import random
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))

from bench.daemon_logs import format_of  # noqa: E402
from bench.daemons import questions as Q  # noqa: E402

UTC = dt.timezone.utc

# (line as written, year hint for year-less stamps, expected UTC time)
STAMPED = [
    ("Mar 20 02:55:32 gw1 sshd[24922]: Failed password for invalid user steam2604 from 127.250.226.129 port 33473 ssh2",
     2016, dt.datetime(2016, 3, 20, 2, 55, 32)),
    ("2018-03-27T02:38:07.818518+00:00 db1 sshd[27217]: Failed password for invalid user admin542 from 127.97.192.145 port 47567 ssh2",
     None, dt.datetime(2018, 3, 27, 2, 38, 7)),
    ('127.239.141.90 - bob [19/Jan/2018:09:27:48 +0000] "GET /admin/raven-3854.html HTTP/1.1" 401 179 "-" "python-requests/2.28.1"',
     None, dt.datetime(2018, 1, 19, 9, 27, 48)),
    ('2018/01/19 09:26:36 [error] 25737#25737: *2 access forbidden by rule, client: 127.110.55.70, server: web1.example.lan, request: "GET /private/ember-6223.tar.gz HTTP/1.1", host: "127.0.0.1:8080"',
     None, dt.datetime(2018, 1, 19, 9, 26, 36)),
    ('[Sun Sep 23 14:35:11.873414 2018] [auth_basic:error] [pid 25983:tid 25983] [client 127.23.252.194:41486] AH01617: user dave: authentication failure for "/secure/topaz-5562.html": Password Mismatch',
     None, dt.datetime(2018, 9, 23, 14, 35, 11)),
    ("2018-09-23 14:34:31: (mod_auth.c.850) password doesn't match for /members/pebble-5915.html username: svc-report IP: 127.54.79.52",
     None, dt.datetime(2018, 9, 23, 14, 34, 31)),
    ('Fri Jul 20 21:42:34 2018 [pid 26340] [erin] FAIL LOGIN: Client "127.5.16.179"', None, dt.datetime(2018, 7, 20, 21, 42, 34)),
    ("Fri Jul 20 21:43:41 2018 1 127.36.67.253 3500 /pub/release-notes.txt b _ o a willow-6527@example.com ftp 0 * c",
     None, dt.datetime(2018, 7, 20, 21, 43, 41)),
    ("180327  2:37:33\t     4 Connect\tguest123303@127.137.105.234 on crm using TCP/IP", None, dt.datetime(2018, 3, 27, 2, 37, 33)),
    ("[1506166906] unbound[27295:0] info: 127.188.180.231 quartz-8082.www.example.lan. A IN", None,
     dt.datetime(2017, 9, 23, 11, 41, 46)),
    ("1662778259.536      2 127.217.46.198 TCP_DENIED/403 3444 GET http://127.0.0.1:9/blocked/quartz-9929 - HIER_NONE/- text/html",
     None, dt.datetime(2022, 9, 10, 2, 50, 59)),
    ("1506166859: New connection from 127.149.110.250:34543 on port 1883.", None, dt.datetime(2017, 9, 23, 11, 40, 59)),
    ("Oct 31 07:24:32 imap-login: Info: Disconnected: Aborted login by logging out (auth failed, 1 attempts in 0 secs): user=<hadoop1112>, method=PLAIN, rip=127.99.88.109, lip=127.0.0.1, session=<7l8ls6BhMY9/Y1ht>",
     2010, dt.datetime(2010, 10, 31, 7, 24, 32)),
]


def test_timestamps_as_each_daemon_writes_them():
    for line, year, want in STAMPED:
        got = Q.parse_ts(line, year)
        assert got is not None, line
        assert got[0] == want.replace(tzinfo=UTC), line
        assert got[1] == (year is None), line       # syslog-style stamps carry no year


def test_mariadb_general_log_line_without_stamp_takes_the_one_above(tmp_path):
    (tmp_path / "db1").mkdir()
    (tmp_path / "db1" / "mysql.log").write_text(
        "180327  2:37:33\t     4 Connect\tguest123303@127.137.105.234 on crm using TCP/IP\n"
        "\t\t     4 Connect\tAccess denied for user 'guest123303'@'127.137.105.234' (using password: YES)\n")
    c = Q.Corpus(str(tmp_path))
    assert Q.line_time(c, "db1/mysql.log", 1, 2018)[0] == dt.datetime(2018, 3, 27, 2, 37, 33, tzinfo=UTC)


JOURNAL_RECORD = """__CURSOR=s=1042315cc38a4c4b8f787ac7905b0770;i=1;b=0025628b3b51431789b93966d4c82412;m=ef40507d;t=48ce8098b64ab;x=d3d40139bd56839c
__REALTIME_TIMESTAMP=1280828127274155
__MONOTONIC_TIMESTAMP=4013248637
_BOOT_ID=0025628b3b51431789b93966d4c82412
_HOSTNAME=vm
PRIORITY=6
_TRANSPORT=stdout
SYSLOG_IDENTIFIER=mosquitto
_COMM=mosquitto
MESSAGE=1280828970: New client connected from 127.195.118.245:56779 as plug-zephyr-362 (p2, c1, k60, u'deploy').
"""


def test_journal_export_record_takes_the_time_journald_stamped(tmp_path):
    (tmp_path / "ns1").mkdir()
    (tmp_path / "ns1" / "journal.export").write_text(JOURNAL_RECORD)
    c = Q.Corpus(str(tmp_path))
    t, has_year = Q.line_time(c, "ns1/journal.export", 9, None)
    assert has_year and t == dt.datetime(2010, 8, 3, 9, 35, 27, tzinfo=UTC)
    assert format_of("ns1/var/log/journal.export") == "journald-export"


AUTH_OLD = [  # auth.log.2.gz (older)
    "Mar 20 02:55:32 gw1 sshd[24922]: Invalid user steam2604 from 127.250.226.129 port 33473",
    "Mar 20 02:55:32 gw1 sshd[24922]: Failed password for invalid user steam2604 from 127.250.226.129 port 33473 ssh2",
    "Mar 20 02:55:32 gw1 sshd[24922]: Connection closed by invalid user steam2604 127.250.226.129 port 33473 [preauth]",
    "Mar 20 02:57:42 gw1 sshd[24949]: Failed password for invalid user jenkins1562 from 127.104.107.172 port 38457 ssh2",
]
AUTH_NEW = [  # auth.log (newest)
    "Mar 20 02:55:32 gw1 sshd[30001]: Failed password for invalid user ftpuser515 from 127.149.101.167 port 46877 ssh2",
    "Mar 20 02:55:40 gw1 sudo:     root : PWD=/ ; USER=backup ; COMMAND=/usr/bin/test -e /srv/orion-12",
    "Mar 20 02:55:44 gw1 sshd[30002]: Failed password for alice from 127.9.9.9 port 41000 ssh2",
]


def _corpus(tmp_path) -> Q.Corpus:
    d = tmp_path / "gw1" / "var" / "log"
    d.mkdir(parents=True)
    (d / "auth.log").write_text("\n".join(AUTH_NEW) + "\n")
    (d / "auth.log.1").write_text("")
    with gzip.open(d / "auth.log.2.gz", "wt") as f:
        f.write("\n".join(AUTH_OLD) + "\n")
    return Q.Corpus(str(tmp_path))


def _ev(seq, kind, marker, year, month, day, h, m, s, **fields):
    t = dt.datetime(year, month, day, h, m, s, tzinfo=UTC).timestamp()
    return {"host": "gw1", "kind": kind, "program": "sudo" if kind == "sudo-command" else "sshd",
            "format": "sshd-syslog", "file": "var/log/auth.log", "marker": marker,
            "ask": list(fields), "fields": fields, "fake_time": t, "seq": seq}


def test_locate_in_rotations_and_accepted_lines(tmp_path):
    c = _corpus(tmp_path)
    ev = _ev(0, "ssh-invalid-user", " 127.250.226.129 port ", 2016, 3, 20, 2, 55, 32,
             ip="127.250.226.129", user="steam2604")
    hit = Q.locate(c, ev)
    assert hit["path"] == "gw1/var/log/auth.log.2.gz"
    assert hit["index"] == 1                              # the "Failed password" line, not the first hit
    # every line of that attempt names the IP: all three are accepted, 1-based
    assert Q.accepted(hit, c.lines(hit["path"]), "127.250.226.129") == [[1, 1], [2, 2], [3, 3]]
    # the user name is on all three as well; a marker that is not there is not found
    ev2 = dict(ev, marker=" 127.250.226.1 port ")
    assert Q.locate(c, ev2) is None


def test_questions_state_the_lines_time_and_their_answers_are_in_the_lines(tmp_path):
    c = _corpus(tmp_path)
    events = [
        _ev(0, "ssh-invalid-user", " 127.250.226.129 port ", 2016, 3, 20, 2, 55, 32, ip="127.250.226.129", user="steam2604"),
        _ev(1, "ssh-invalid-user", " 127.104.107.172 port ", 2016, 3, 20, 2, 57, 42, ip="127.104.107.172", user="jenkins1562"),
        _ev(0, "ssh-invalid-user", " 127.149.101.167 port ", 2021, 3, 20, 2, 55, 32, ip="127.149.101.167", user="ftpuser515"),
        _ev(1, "sudo-command", "/srv/orion-12", 2021, 3, 20, 2, 55, 40, command="/srv/orion-12"),
        _ev(2, "ssh-failed-password", " 127.9.9.9 port ", 2021, 3, 20, 2, 55, 44, ip="127.9.9.9", user="alice"),
    ]
    events[2]["host"] = events[3]["host"] = events[4]["host"] = "gw1"
    for e in events[2:]:
        e["seq"] += 10
    events[4]["after_anchor"] = events[3]["seq"]
    qs, stats = Q.build(c, events, seed=3)
    assert stats["located"] == 5 and stats["not_found"] == 0 and stats["time_mismatch"] == 0
    by_id = {q["id"]: q for q in qs}
    for q in qs:
        lines = c.lines(q["path"])
        assert any(q["answer"] in lines[a - 1] for a, b in q["accept"])
        assert q["line_start"] == q["accept"][0][0] or [q["line_start"], q["line_end"]] in q["accept"]
    # two invalid-user attempts on Mar 20 at 02:55:32, years apart: the same second in a year-less
    # question cannot tell them apart, so no "words" question names that second
    words = [q for q in qs if q["kind"] == "words"]
    for q in words:
        if q["answer"] in ("127.250.226.129", "steam2604", "127.149.101.167", "ftpuser515"):
            raise AssertionError(f"ambiguous time-only question kept: {q['question']}")
    # the sshd failure right after the sudo command has a vague question naming the command
    vague = [q for q in qs if q["kind"] == "vague"]
    assert vague and "/srv/orion-12" in vague[0]["question"]
    assert vague[0]["answer"] in ("127.9.9.9", "alice")
    assert "gw1-0012-vague" in by_id


def test_words_question_gives_date_without_year_and_the_lines_time():
    t = dt.datetime(2013, 4, 7, 3, 10, 56, tzinfo=UTC)
    phrases = [p for p, _ in Q.when_phrases(t)]
    assert "on April 7 at 03:10:56" in phrases
    assert "on the 7th of April at 3:10:56 am" in phrases
    assert all("2013" not in p for p in phrases)


def test_quote_leaves_out_the_answer():
    line = 'Fri Jul 20 21:42:34 2018 [pid 26340] [erin] FAIL LOGIN: Client "127.5.16.179"'
    for seed in range(20):
        got = Q.quote_of(line, "erin", random.Random(seed))
        if got:
            text, frags = got
            assert "erin" not in text
            assert all(f in line for f in frags)


def test_quote_uniqueness_is_counted_over_the_corpus(tmp_path):
    c = _corpus(tmp_path)
    files = c.all_files()
    assert c.count_lines_with(["Mar 20 02:55:32 gw1 sshd[", "Failed password for invalid user"], files) == 2
    assert c.count_lines_with(["Mar 20 02:57:42", "jenkins1562"], files) == 1


def test_formats_of_rotated_files():
    assert format_of("web1/var/log/auth.log.2.gz") == "sshd-rfc3339"
    assert format_of("gw1/var/log/auth.log.1") == "sshd-syslog"
    assert format_of("web2/var/log/apache2/error.log") == "apache-error"
    assert format_of("ns1/var/log/squid/access.log.3.gz") == "squid-access"


def test_one_request_in_two_files_is_answered_by_either_line(tmp_path):
    # nginx writes a 404 into access.log and error.log; both name the client, so a question about
    # the request accepts either line, and only lines that state the answer
    d = tmp_path / "web1" / "var" / "log" / "nginx"
    d.mkdir(parents=True)
    (d / "access.log").write_text(
        '127.1.2.3 - - [19/Jan/2018:09:27:48 +0000] "GET /docs/amber-1.html HTTP/1.1" 404 153 "-" "curl/7.88"\n')
    (d / "error.log").write_text(
        '2018/01/19 09:26:00 [error] 1#1: *1 open() "/var/www/x" failed, client: 127.9.9.9, server: web1\n'
        '2018/01/19 09:27:48 [error] 1#1: *2 open() "/var/www/docs/amber-1.html" failed (2: No such file or '
        'directory), client: 127.1.2.3, server: web1, request: "GET /docs/amber-1.html HTTP/1.1"\n')
    c = Q.Corpus(str(tmp_path))
    t = dt.datetime(2018, 1, 19, 9, 27, 48, tzinfo=UTC).timestamp()
    base = {"host": "web1", "program": "nginx", "kind": "http-404", "ask": ["ip"], "fake_time": t,
            "fields": {"ip": "127.1.2.3", "path": "/docs/amber-1.html"}}
    events = [dict(base, seq=0, format="nginx-access", file="var/log/nginx/access.log", marker=" /docs/amber-1.html "),
              dict(base, seq=1, format="nginx-error", file="var/log/nginx/error.log", marker="client: 127.1.2.3,")]
    qs, stats = Q.build(c, events, seed=1)
    assert stats["located"] == 2 and qs
    for q in qs:
        other = "web1/var/log/nginx/error.log" if q["path"].endswith("access.log") else "web1/var/log/nginx/access.log"
        assert q["also"] == [{"path": other, "accept": [[2, 2]] if other.endswith("error.log") else [[1, 1]]}]
    # a client that made no request at that second in the other file adds nothing
    events[1]["fields"] = {"ip": "127.9.9.9"}
    events[1]["marker"] = "client: 127.9.9.9,"
    events[1]["fake_time"] = dt.datetime(2018, 1, 19, 9, 26, 0, tzinfo=UTC).timestamp()
    qs, _ = Q.build(c, events, seed=1)
    assert all(q["also"] == [] for q in qs)


def test_lines_a_daemon_writes_beside_the_recorded_one_answer_too(tmp_path):
    # a failed vsftpd login is also PAM's authentication failure in auth.log, same second, same client
    d = tmp_path / "ftp1" / "var" / "log"
    d.mkdir(parents=True)
    (d / "vsftpd.log").write_text('Mon Nov 23 01:24:41 2009 [pid 20000] [carol] FAIL LOGIN: Client "127.171.223.76"\n')
    (d / "auth.log").write_text(
        "Nov 23 01:24:41 ftp1 vsftpd: pam_unix(lantern-vsftpd:auth): authentication failure; logname= uid=0 "
        "euid=0 tty=ftp ruser=carol rhost=127.171.223.76  user=carol\n"
        "Nov 23 01:29:00 ftp1 vsftpd: pam_unix(lantern-vsftpd:auth): authentication failure; logname= uid=0 "
        "euid=0 tty=ftp ruser=carol rhost=127.171.223.76  user=carol\n")
    c = Q.Corpus(str(tmp_path))
    t = dt.datetime(2009, 11, 23, 1, 24, 41, tzinfo=UTC)
    ev = {"host": "ftp1", "kind": "ftp-login-failed", "program": "vsftpd", "format": "vsftpd", "seq": 0,
          "file": "var/log/vsftpd.log", "marker": '"127.171.223.76"', "ask": ["ip", "user"],
          "fields": {"ip": "127.171.223.76", "user": "carol"}, "fake_time": t.timestamp()}
    qs, _ = Q.build(c, [ev], seed=2)
    assert qs and all(q["also"] == [{"path": "ftp1/var/log/auth.log", "accept": [[1, 1]]}] for q in qs)
