"""Logs collected over many years from many daemons: time is evidence, identifiers match whole
and in parts, the program a question names is favoured, and "X just after Y" finds Y first."""

from __future__ import annotations

import os
import random
from datetime import datetime

import pytest

from engine.retrieval import lexical, query

NOW = datetime(2026, 12, 2, 12, 0)


# ---------------------------------------------------------------------------- question parsing

@pytest.mark.parametrize("question, month, day, year, clock", [
    ("Which IP caused the postfix failure logged on April 7 at 03:10:56?", 4, 7, None, (11456, 11457)),
    ("what did sshd log on 7 Apr 03:10", 4, 7, None, (11400, 11460)),
    ("anything on the 7th of April around 3:10am", 4, 7, None, (10800, 12000)),
    ("Tue Mar 14 10:00:00 2009 [pid 3] [ftp] FAIL LOGIN", 3, 14, 2009, (36000, 36001)),
    ('10.1.1.5 - - [14/Jul/2014:10:00:00 +0000] "GET /x HTTP/1.1" 404', 7, 14, 2014, (36000, 36001)),
    ("14-Jul-2014 10:00:00.123 client @0x7f 10.1.1.5#53", 7, 14, 2014, (36000, 36001)),
    # A pasted line that lost its day: a month and a clock, not "July 14 at 16:55".
    ("Jul 14:16:55 raid5 named[3935]: client 10.1.1.5#53", 7, None, None, (51415, 51416)),
    ("what happened at 13:07:50", None, None, None, (47270, 47271)),
])
def test_times_are_read_as_a_person_writes_them(question, month, day, year, clock):
    w = query.parse(question, NOW).when
    assert (w.month, w.day, w.year, w.clock) == (month, day, year, clock)


def test_time_words_stay_in_the_lexical_query_and_only_what_no_record_holds_goes():
    i = query.parse("Which IP caused the postfix failure logged on April 7 at 3:10:56?", NOW)
    terms = [lexical.decode(t) for t in lexical.match_terms(i.text)]
    assert "03:10:56" in terms and "postfix" in terms
    assert not {"which", "caused", "logged", "7"} & set(terms)


def test_grades_reward_what_matches_and_never_exclude():
    w = query.parse("on April 7 at 03:10:56", NOW).when
    at = datetime(2011, 4, 7, 3, 10, 56).timestamp()
    assert w.grade(at) == 1.0                                           # any year
    assert 0 < w.grade(datetime(2011, 4, 7, 9, 0).timestamp()) < 1      # right day, other time
    assert 0 < w.grade(datetime(2011, 5, 7, 3, 10, 56).timestamp()) < w.grade(datetime(2011, 4, 7, 9, 0).timestamp())
    assert w.grade(datetime(2011, 5, 9, 8, 0).timestamp()) == 0.0
    # one window per year the sources hold
    assert len(w.windows(range(2008, 2026))) == 18


def test_around_a_minute_is_most_likely_that_minute():
    # "around 9:08am" looks ten minutes either side, but 9:08 itself beats 9:07 and 9:09
    w = query.parse("the failed login on the 18th of March around 9:08am", NOW).when
    at = lambda h, m, s: w.grade(datetime(2013, 3, 18, h, m, s).timestamp())
    assert at(9, 8, 52) == at(9, 8, 0) == 1.0
    assert 1.0 > at(9, 7, 59) > at(9, 4, 0) > 0.5
    assert 1.0 > at(9, 9, 6) > at(9, 15, 0) > 0.5
    assert at(9, 30, 0) < 0.5                                      # outside the window: the day only


@pytest.mark.parametrize("question, kind", [
    ("Which IP caused the MQTT connection that mosquitto refused?", "ip"),
    ("From which client IP did the failed IMAP login come at 08:27?", "ip"),
    ("What was the source address of the request squid denied?", "ip"),
    ('"Jul 14:16:55 raid5 named[3935]: client" - which IP was this?', "ip"),
    ("Which MQTT client id belongs to the client that connected?", None),
    ("Which user name was used in the failed SSH login?", None),
    ("what did 10.0.0.5 do on December 25", None),
])
def test_what_kind_of_value_a_question_asks_for(question, kind):
    assert query.asks(question) == kind


def test_a_record_stating_the_asked_address_beats_its_neighbour():
    # mosquitto logs a refused client on two lines; only the first names the address
    from engine.retrieval import ranking
    named = ranking.Features(words=0.4, meaning=0.5, time=1.0, field=1.0, level=0.0,
                             answer=ranking.states("ip", "1527462275: New connection from 127.98.177.241:42581 on port 1883."))
    other = ranking.Features(words=0.55, meaning=0.5, time=1.0, field=1.0, level=0.0,
                             answer=ranking.states("ip", "1527462275: Client <unknown> disconnected, not authorised."))
    assert named.answer == 1.0 and other.answer == 0.0
    assert named.score > other.score
    assert ranking.states("ip", "client ::ffff:10.0.0.5 rejected") == 1.0
    assert ranking.states("ip", "version 1.2.3 started") == 0.0
    assert ranking.states(None, "from 10.0.0.5") == 0.0


def test_relations_name_the_anchor_event():
    r = query.parse("the ssh login that failed just after the disk filled up", NOW).relation
    assert r is not None and r.after and r.anchor == "the disk filled up" and r.target == "the ssh login that failed"
    assert query.parse("what happened after lunch", NOW).relation is None   # too short to find anything
    # The anchor's clause first: it ends at a comma or at the verb that starts the target's.
    r = query.parse("On web2, just after the sudo command that tested /srv/umber-8394, there was the failed "
                    "HTTP basic-auth login on apache. Which IP was this?", NOW).relation
    assert r.anchor == "the sudo command that tested /srv/umber-8394"
    assert r.target.startswith("On web2,") and "basic-auth login on apache" in r.target and "sudo" not in r.target
    r = query.parse("A few seconds after an admin ran sudo against /srv/juniper-3608 on db1 we saw the MariaDB "
                    "login that was denied.", NOW).relation
    assert r.anchor == "an admin ran sudo against /srv/juniper-3608 on db1"
    assert r.target == "the MariaDB login that was denied."


# ---------------------------------------------------------------------------- formats

@pytest.mark.parametrize("line, fmt, when", [
    ('Tue Mar 14 10:00:00 2009 [pid 3] [ftp] FAIL LOGIN: Client "10.0.0.5"', "ctime", datetime(2009, 3, 14, 10)),
    ("14-Mar-2009 10:00:00.123 client @0x7f 10.0.0.5#53 (a.example): query: a.example IN A +", "day-mon-year",
     datetime(2009, 3, 14, 10, 0, 0, 123000)),
    ("1236000000.123    456 10.0.0.5 TCP_DENIED/403 3444 GET http://x/ - HIER_NONE/- text/html", "epoch", None),
    ("[1531378249] unbound[4609:0] info: 10.0.0.5 lagoon.example.lan. TXT IN", "epoch", None),
    ("Mar 14 10:00:00 imap-login: Info: Login: user=<bob>, method=PLAIN, rip=10.0.0.5", "syslog-nohost", None),
    ("2014-07-02T13:07:50.123456+00:00 mx1 postfix/smtpd[123]: connect from unknown[10.0.0.5]", "syslog-iso",
     None),
])
def test_daemon_headers_are_recognised(line, fmt, when):
    from engine.retrieval.logformat import TimeContext, _any_header

    m, found = _any_header(line)
    assert found is not None and found.name == fmt
    info = found.parse(m, TimeContext())
    assert info["t"] is not None
    if when is not None:
        assert abs(info["t"][1] - when.astimezone().timestamp()) < 0.01


# ---------------------------------------------------------------------------- tokens

def test_identifiers_match_whole_and_in_parts():
    toks = set(lexical.tokens(
        "2014-07-02T13:07:50.123Z client 10.1.2.3#53 ::ffff:10.9.8.7 [14/Jul/2014:10:00:00 +0000] "
        "bob@mx1.example.org mx1.example.org:25"))
    for t in ("13:07:50", "13:07", "2014-07-02", "10.1.2.3", "10.1.2.3#53", "10.9.8.7", "10:00:00",
              "bob@mx1.example.org", "mx1.example.org", "mx1.example.org:25", "bob"):
        assert t in toks, t
    assert "53" not in toks and "10" not in toks   # no octets or short numbers on their own


# ---------------------------------------------------------------------------- search

SSHD = "{mon} {day:>2} {t} {host} sshd[{pid}]: Failed password for invalid user {user} from {ip} port {port} ssh2"
POSTFIX = ("{mon} {day:>2} {t} {host} postfix/smtpd[{pid}]: warning: unknown[{ip}]: SASL LOGIN authentication "
           "failed: authentication failure")
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


@pytest.fixture
def years_of_logs(tmp_path):
    """auth.log and mail.log of two hosts, 2009-2024, the same failures again and again from
    other addresses (yearless syslog: one file per year, its mtime in that year, as rotation
    leaves them). Returns the folder and the planted records."""
    rng = random.Random(3)
    root = tmp_path / "hosts"
    planted = {}
    for year in range(2009, 2025):
        for host, name, tpl in (("gw1", "auth.log", SSHD), ("mx1", "mail.log", POSTFIX)):
            d = root / host / str(year)
            d.mkdir(parents=True, exist_ok=True)
            lines = []
            for _ in range(30):
                when = datetime(year, rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                                rng.randint(0, 59), rng.randint(0, 59))
                lines.append((when, tpl.format(mon=MONTHS[when.month - 1], day=when.day, t=when.strftime("%H:%M:%S"),
                                               host=host, pid=rng.randint(1000, 30000),
                                               user=rng.choice(["oracle", "test", "admin", "guest"]),
                                               ip=f"10.{rng.randint(0, 250)}.{rng.randint(0, 250)}.{rng.randint(1, 250)}",
                                               port=rng.randint(30000, 60000))))
            if year == 2013 and host == "mx1":
                lines.append((datetime(2013, 4, 7, 3, 10, 56), POSTFIX.format(
                    mon="Apr", day=7, t="03:10:56", host=host, pid=4242, ip="10.77.66.55")))
            if year == 2013 and host == "gw1":
                lines.append((datetime(2013, 4, 7, 3, 10, 57), SSHD.format(
                    mon="Apr", day=7, t="03:10:57", host=host, pid=4243, user="oracle", ip="10.11.12.13", port=4000)))
                lines.append((datetime(2013, 9, 2, 22, 0, 1), f"Sep  2 22:00:01 {host} kernel: [12.5] EXT4-fs warning "
                              "(device sda1): ext4_dx_add_entry: Directory index full!"))
                lines.append((datetime(2013, 9, 2, 22, 0, 40), SSHD.format(
                    mon="Sep", day=2, t="22:00:40", host=host, pid=4300, user="backup", ip="10.99.1.2", port=4100)))
            lines.sort()
            path = d / name
            path.write_text("".join(line + "\n" for _, line in lines))
            last = lines[-1][0].timestamp()
            os.utime(path, (last, last))
            for n, (_, line) in enumerate(lines, 1):
                for ip in ("10.77.66.55", "10.11.12.13", "10.99.1.2"):
                    if ip in line:
                        planted[ip] = (str(path), n)
                if "Directory index full" in line:
                    planted["disk"] = (str(path), n)
    return root, planted


def test_many_years_of_many_daemons(index, years_of_logs):
    root, planted = years_of_logs
    index.index(root)

    def first(q):
        hits = index.search(q, k=5)
        return (hits[0].path, hits[0].line_start) if hits else None

    # In words, with a date without a year: the named daemon's record at that second, out of
    # sixteen years of the same failures (an sshd failure one second later is not it).
    assert first("Which IP caused the postfix failure logged on April 7 at 03:10:56?") == planted["10.77.66.55"]
    assert first("which address failed ssh login on 7 Apr 03:10:57") == planted["10.11.12.13"]
    # A pasted part of the line, its day missing: found, not confined to "July 14".
    assert first("Apr 03:10:56 mx1 postfix/smtpd[4242]: warning: unknown") == planted["10.77.66.55"]
    # A clock alone matches the clock inside the line.
    assert first("postfix 03:10:56") == planted["10.77.66.55"]
    # A date that matches nothing does not confine the search: the words still find the record.
    assert first("10.77.66.55 on December 25") == planted["10.77.66.55"]
    # "just after" finds the anchor first, then the failure closest after it.
    assert first("the ssh login that failed just after the directory index was full") == planted["10.99.1.2"]


def test_just_after_an_event_whose_year_the_index_had_to_guess(index, tmp_path):
    # auth.log's lines carry no year and the file was last written in 2021, so its January line
    # reads as 2021; the proxy logged the request in 2014 (epoch stamps). "Just after" the sudo
    # command still finds the proxy's line seconds later, by date and clock in any year.
    root = tmp_path / "ns1"
    (root / "squid").mkdir(parents=True)
    auth = root / "auth.log"
    auth.write_text(
        "Jan 22 20:40:01 ns1 CRON[311]: pam_unix(cron:session): session opened for user root\n"
        "Jan 22 20:42:50 ns1 sudo:     root : PWD=/root ; USER=backup ; COMMAND=/usr/bin/test -e /srv/comet-7629\n"
        "Jan 22 20:42:50 ns1 sudo: pam_unix(sudo:session): session opened for user backup(uid=34) by (uid=0)\n"
        "Mar  3 10:00:00 ns1 sshd[5]: Server listening on 0.0.0.0 port 22.\n")
    t = datetime(2021, 3, 3, 10, 0).timestamp()
    os.utime(auth, (t, t))
    at = datetime(2014, 1, 22, 20, 42, 56).timestamp()
    (root / "squid" / "access.log").write_text("".join(
        f"{e:.3f}      0 {ip} TCP_DENIED/403 3446 GET http://127.0.0.1:9/blocked/{name} - HIER_NONE/- text/html\n"
        for e, ip, name in sorted([(at - 86400 * 40, "127.9.9.1", "a-1"), (at, "127.118.12.53", "kestrel-4344"),
                                   (at + 86400 * 3, "127.9.9.2", "b-2"), (at + 3600 * 5, "127.9.9.3", "c-3")])))
    index.index(root)
    hits = index.search("Right after someone used sudo to check /srv/comet-7629 on ns1, squid logged the "
                        "request squid denied. Which IP was this?", k=3)
    assert hits and "127.118.12.53" in hits[0].text
    assert query.states_year("1390423376.932      0 127.118.12.53 TCP_DENIED/403")
    assert query.states_year("2014-01-22T20:42:50.1+00:00 db1 sudo: x")
    assert not query.states_year("Jan 22 20:42:50 ns1 sudo:     root : PWD=/root")
