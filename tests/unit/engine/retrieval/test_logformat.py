"""Log format detection, record grouping, times, levels and sources."""

from datetime import datetime, timezone

from engine.retrieval.logformat import TimeContext, detect, parse_records
from retrieval_corpus import JAVA, PYTHON, SYSLOG, access_lines

UTC_CTX = TimeContext()


def records(text, **kw):
    lines = text.splitlines()
    return parse_records(lines, 1, detect(lines), **kw)


def test_java_stack_trace_stays_in_its_record():
    recs = records(JAVA)
    assert [(r.line_start, r.line_end) for r in recs] == [(1, 1), (2, 2), (3, 9), (10, 10), (11, 11)]
    err = recs[2]
    assert err.level == "ERROR" and "Caused by" in err.text and err.text.endswith("... 3 more")
    assert recs[4].level == "WARNING"


def test_python_traceback_stays_in_its_record():
    recs = records(PYTHON)
    assert [(r.line_start, r.line_end) for r in recs] == [(1, 1), (2, 6), (7, 7), (8, 8)]
    assert recs[1].level == "ERROR" and recs[1].text.splitlines()[-1].startswith("ConnectionResetError")
    assert recs[0].source.get("logger") == "app.sync"


def test_iso_time_is_normalized_to_utc():
    r = parse_records(["2024-06-21T16:47:48.250+02:00 ERROR svc: x"], 1, None)[0]
    assert r.ts == "2024-06-21T14:47:48.250Z"
    assert r.epoch == datetime(2024, 6, 21, 14, 47, 48, 250000, tzinfo=timezone.utc).timestamp()


def test_syslog_without_year_takes_the_mtime_year_and_rolls_back():
    lines = ["Dec 31 23:59:00 host app[1]: last of the year", "Jan  1 00:00:05 host app[1]: first of the year"]
    mtime = datetime(2024, 1, 1, 0, 1).timestamp()
    recs = parse_records(lines, 1, detect(lines), TimeContext(mtime))
    assert recs[0].ts.startswith("2023-12-31") and recs[1].ts.startswith("2024-01-01")
    assert recs[0].source == {"host": "host", "program": "app", "pid": 1}


def test_syslog_sources_and_levels():
    recs = records(SYSLOG)
    assert len(recs) == 3 and recs[1].source["program"] == "sshd" and recs[1].source["pid"] == 2204
    five = parse_records(['<11>1 2024-06-21T10:00:00Z db-1 postgres 77 - - could not connect'], 1,
                         detect(['<11>1 2024-06-21T10:00:00Z db-1 postgres 77 - - x']))[0]
    assert five.level == "ERROR" and five.source["host"] == "db-1" and five.ts == "2024-06-21T10:00:00Z"


def test_access_log_level_from_status_and_json_lines():
    recs = records(access_lines(100))
    assert len(recs) == 100 and recs[0].level == "ERROR" and recs[1].level == "INFO"
    assert recs[0].ts == "2024-06-21T11:00:00Z"
    j = parse_records(['{"ts": 1718988468000, "severity": "warn", "msg": "disk", "host": "h1"}'], 1, jsonl=True)[0]
    assert j.ts == "2024-06-21T16:47:48Z" and j.level == "WARNING" and j.source["host"] == "h1"


def test_other_formats_are_recognised():
    samples = {
        "nginx-error": '2024/06/21 16:47:48 [error] 1234#0: *1 open() "/x" failed',
        "apache-error": "[Fri Jun 21 16:47:48.123456 2024] [core:error] [pid 35708] [client 1.2.3.4] denied",
        "windows": "6/21/2024 4:47:48 PM Error Service Control Manager 7000",
        "python-basic": "ERROR:root:something broke",
    }
    for name, line in samples.items():
        fmt = detect([line, line])
        assert fmt is not None and fmt.name == name, (name, fmt)
    win = parse_records([samples["windows"]], 1, detect([samples["windows"]]))[0]
    assert win.level == "ERROR" and "T16:47:48" in datetime.fromtimestamp(win.epoch).isoformat()


def test_journald_export():
    text = "__REALTIME_TIMESTAMP=1718988468000000\nPRIORITY=3\n_HOSTNAME=h\nSYSLOG_IDENTIFIER=kernel\nMESSAGE=oops\n\n" \
           "__REALTIME_TIMESTAMP=1718988469000000\nPRIORITY=6\nMESSAGE=fine\n"
    recs = parse_records(text.splitlines(), 1, None)
    assert [(r.line_start, r.line_end, r.level) for r in recs] == [(1, 5, "ERROR"), (7, 9, "INFO")]
    assert recs[0].ts == "2024-06-21T16:47:48Z" and recs[0].source["program"] == "kernel"


def test_mixed_formats_in_one_file_split_on_any_header():
    lines = (PYTHON + SYSLOG).splitlines()
    recs = parse_records(lines, 1, detect(lines))
    assert len(recs) == 7 and recs[-1].source.get("program") == "CRON"


def test_stanza_files_keep_each_stanza_as_one_timed_record():
    """apt's history.log: blank-line separated stanzas, a time on the first line (two spaces
    between date and time), one Install: line that can run to kilobytes."""
    from engine.retrieval.logformat import TimeContext, parse_records

    packages = ", ".join(f"lib{i}-dev:amd64 (1.{i}-2, automatic)" for i in range(300))
    text = (
        "\n"
        "Start-Date: 2025-06-24  14:36:25\n"
        "Commandline: apt-get -qqy upgrade\n"
        "Upgrade: libudev1:amd64 (252.36-1, 252.38-1)\n"
        "End-Date: 2025-06-24  14:36:25\n"
        "\n"
        "Start-Date: 2025-06-24  14:36:29\n"
        "Commandline: apt-get install -qqy curl\n"
        f"Install: {packages}\n"
        "End-Date: 2025-06-24  14:37:04\n")
    recs = parse_records(text.split("\n"), 1, None, TimeContext())
    assert [(r.line_start, r.line_end) for r in recs] == [(2, 5), (7, 10)]
    assert recs[1].ts.startswith("2025-06-24T14:36:29") and "lib299-dev" in recs[1].text
    # Ordinary text with blank lines is not taken for stanzas.
    prose = "A note\nabout things\n\nAnother note\nwith two lines\n".split("\n")
    assert [(r.line_start, r.line_end) for r in parse_records(prose, 1, None, TimeContext())] == \
        [(1, 1), (2, 2), (4, 4), (5, 5)]
