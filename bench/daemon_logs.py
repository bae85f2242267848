"""A retrieval benchmark corpus of real logs written by real daemons over many years, with labelled
questions whose ground truth is what this driver caused.

What it does: installs (apt-get, nothing autostarts) and runs real daemons on loopback only, one
simulated server at a time: gw1 (sshd, sudo, cups), mx1 (postfix, dovecot), web1 (nginx behind haproxy),
web2 (apache2, lighttpd), ftp1 (vsftpd), db1 (mariadb, postgresql), ns1 (unbound, squid,
mosquitto, and a standalone systemd-journald exported with journalctl -o export), each with its
own rsyslogd (auth.log, mail.log, haproxy.log, syslog; RFC 3339 stamps on
web1 and db1). All of them run under one shared fake clock (libfaketime, see daemons/system.py)
that the driver moves forward through episodes on random days from 2008 to 2025; in each episode
it causes events from many 127.x.y.z source addresses (failed logins, 404s, rejected mail, denied
proxy requests ...), sometimes a sudo command followed seconds later by another event (for the
"vague" questions). Between segments of the timeline real logrotate rotates and gzips the logs.
Every log line is written by a daemon; the driver only causes events and records them.

Afterwards the logs are copied to DIR/corpus/<host>/var/log/..., each driven event's line is found
by its unique marker, and DIR/questions.json gets questions of three kinds ("words": program, date
without year, time; "quote": a pasted part of the line; "vague": "just after the sudo command ...").
DIR/manifest.json lists formats, files, line counts, the year range and counts by kind;
DIR/events.json is the driver's own record.

Run (as root, Debian 12): python3 bench/daemon_logs.py --out DIR [--seed N] [--episodes N]
Takes about 15 minutes on 2 cores with the defaults (60 episodes per host: about 6,500 events,
41,000 lines in 139 files of which 20,000 are the journal export, 1,200 questions); most of it is
ssh handshakes and daemon start-ups.
--questions-only rebuilds questions.json and manifest.json from an existing DIR in seconds. Needs root, apt access
to the Debian archive for the first run, and free loopback ports 21, 25, 143, 1883, 2222, 3128,
631, 3306, 5353, 5433, 8080-8082, 8090. Re-runnable: it kills the daemons of an interrupted run first,
and its own daemons at the end, also on error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.daemons import questions, system  # noqa: E402
from bench.daemons.base import PASSWORD, USERS, Host, Names  # noqa: E402
from bench.daemons.infra import DbHost, FtpHost, GatewayHost, NsHost  # noqa: E402
from bench.daemons.mail import MailHost  # noqa: E402
from bench.daemons.web import ApacheHost, NginxHost  # noqa: E402

YEARS = (2008, 2025)


HOSTS = [GatewayHost, MailHost, NginxHost, ApacheHost, FtpHost, DbHost, NsHost]

FORMATS = [  # (host, file name, format) for the manifest; rotated copies share the format
    ("web1", "auth.log", "sshd-rfc3339"), ("db1", "auth.log", "sshd-rfc3339"), ("*", "auth.log", "sshd-syslog"),
    ("web1", "syslog", "syslog-rfc3339"), ("db1", "syslog", "syslog-rfc3339"), ("*", "syslog", "syslog"),
    ("*", "mail.log", "postfix-syslog"), ("*", "dovecot.log", "dovecot"), ("*", "haproxy.log", "haproxy-rfc3339"),
    ("*", "nginx/access.log", "nginx-access"), ("*", "nginx/error.log", "nginx-error"),
    ("*", "apache2/access.log", "apache-access"), ("*", "apache2/error.log", "apache-error"),
    ("*", "lighttpd/access.log", "lighttpd-access"), ("*", "lighttpd/error.log", "lighttpd-error"),
    ("*", "vsftpd.log", "vsftpd"), ("*", "xferlog", "xferlog"), ("*", "mysql/error.log", "mariadb-error"),
    ("*", "mysql/mysql.log", "mariadb-general"), ("*", "postgresql-15-main.log", "postgresql"),
    ("*", "unbound/unbound.log", "unbound"), ("*", "squid/access.log", "squid-access"),
    ("*", "squid/cache.log", "squid-cache"), ("*", "mosquitto/mosquitto.log", "mosquitto"),
    ("*", "journal.export", "journald-export"), ("*", "cups/access_log", "cups-access"), ("*", "cups/error_log", "cups-error"), ("*", "dpkg.log", "dpkg"), ("*", "apt/history.log", "apt-history"),
]


def format_of(rel: str) -> str:
    host = rel.split("/", 1)[0]
    base = rel
    for suffix in (".gz",):
        base = base[: -len(suffix)] if base.endswith(suffix) else base
    parts = base.rsplit(".", 1)
    if len(parts) == 2 and parts[1].isdigit():
        base = parts[0]
    for h, name, fmt in FORMATS:
        if (h == "*" or h == host) and base.endswith("/" + name):
            return fmt
    return "other"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def episode_times(rng: random.Random, n: int) -> list[float]:
    lo = dt.datetime(YEARS[0], 1, 1, tzinfo=dt.timezone.utc).timestamp()
    hi = dt.datetime(YEARS[1], 12, 20, tzinfo=dt.timezone.utc).timestamp()
    span = (hi - lo) / n
    # one episode per slice of the span, so every year gets some; random day and time inside it
    return [lo + i * span + rng.uniform(0.05, 0.95) * span for i in range(n)]


def setup_users() -> None:
    for u in USERS:
        if system.sh(["id", u], check=False).returncode != 0:
            system.sh(["useradd", "-m", "-s", "/bin/bash", u])
        subprocess_input(["chpasswd"], f"{u}:{PASSWORD}\n")
    system.sh(["ssh-keygen", "-A"])


def subprocess_input(argv: list[str], data: str) -> None:
    import subprocess
    subprocess.run(argv, input=data, text=True, check=True)


def run_host(host: Host, clock: system.Clock, times: list[float], segments: int) -> None:
    host.prepare()
    chunks = [times[i * len(times) // segments:(i + 1) * len(times) // segments] for i in range(segments)]
    rot_conf = os.path.join(host.state, "logrotate.conf")
    rot_state = os.path.join(host.state, "logrotate.state")
    for k, chunk in enumerate(chunks):
        clock.reset(chunk[0] - 600)        # no faked daemon runs now: the clock may jump anywhere
        host.start()
        try:
            for t in chunk:
                clock.set(t)
                host.clock_moved()
                host.episode()
        finally:
            host.stop()
        if k < len(chunks) - 1:
            system.logrotate(rot_conf, rot_state, [host.logpath(p) for p in host.log_files()])
        log(f"{host.name}: segment {k + 1}/{segments} done, {len(host.events)} events so far")
    host.finish()


def collect(out: str, hosts: list[Host]) -> str:
    corpus = system.fresh_dir(os.path.join(out, "corpus"))
    for h in hosts:
        src = os.path.join(h.root, "var", "log")
        shutil.copytree(src, os.path.join(corpus, h.name, "var", "log"))
    # the build machine's own package logs (real, written by dpkg and apt)
    for src, rel in (("/var/log/dpkg.log", "build1/var/log/dpkg.log"),
                     ("/var/log/apt/history.log", "build1/var/log/apt/history.log")):
        if os.path.exists(src):
            os.makedirs(os.path.dirname(os.path.join(corpus, rel)), exist_ok=True)
            shutil.copyfile(src, os.path.join(corpus, rel))
    for d, _, names in os.walk(corpus):
        for n in names:
            os.chmod(os.path.join(d, n), 0o644)
    return corpus


def manifest(corpus: questions.Corpus, qs: list[dict], stats: dict, seconds: float) -> dict:
    files = []
    per_format: dict[str, dict] = {}
    years: dict[int, int] = {}
    for rel in corpus.all_files():
        lines = [x for x in corpus.lines(rel) if x]
        fmt = format_of(rel)
        files.append({"path": rel, "format": fmt, "lines": len(lines)})
        f = per_format.setdefault(fmt, {"files": 0, "lines": 0})
        f["files"] += 1
        f["lines"] += len(lines)
    outside = 0
    for rel in corpus.all_files():
        if rel.startswith("build1/"):            # the build machine's own package logs: today
            continue
        for line in corpus.lines(rel):
            got = questions.parse_ts(line)       # lines that state their year
            if got:
                years[got[0].year] = years.get(got[0].year, 0) + 1
                outside += not (YEARS[0] <= got[0].year <= YEARS[1])
    by_kind: dict[str, int] = {}
    by_fmt: dict[str, int] = {}
    for q in qs:
        by_kind[q["kind"]] = by_kind.get(q["kind"], 0) + 1
        by_fmt[q["format"]] = by_fmt.get(q["format"], 0) + 1
    inside = [y for y in years if YEARS[0] <= y <= YEARS[1]]
    return {"formats": per_format, "files": files, "lines_by_year": dict(sorted(years.items())),
            "year_range": [min(inside), max(inside)] if inside else None,
            # a few shutdown lines are stamped from a signal handler, where the fake clock does not
            # reach: real time (years counted over the simulated hosts, not build1)
            "lines_stamped_outside_range": outside,
            "questions": len(qs), "questions_by_kind": by_kind,
            "questions_by_format": dict(sorted(by_fmt.items())), "locate_stats": stats,
            "run_seconds": round(seconds), "gz_files": sum(1 for f in files if f["path"].endswith(".gz"))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--episodes", type=int, default=60, help="episodes per host")
    ap.add_argument("--per-format-kind", type=int, default=25,
                    help="at most this many questions per (format, kind)")
    ap.add_argument("--segments", type=int, default=4, help="rotations per host = segments - 1")
    ap.add_argument("--hosts", default="", help="comma-separated subset (default: all)")
    ap.add_argument("--no-install", action="store_true")
    ap.add_argument("--questions-only", action="store_true",
                    help="rebuild questions.json and manifest.json from an existing DIR (corpus + events.json)")
    args = ap.parse_args(argv)
    out = os.path.abspath(args.out)
    if args.questions_only:
        with open(os.path.join(out, "events.json")) as f:
            events = json.load(f)
        write_questions(out, events, args.seed, 0.0, args.per_format_kind)
        return 0
    if os.geteuid() != 0:
        ap.error("must run as root (it installs and starts daemons)")
    t0 = time.time()
    os.makedirs(out, exist_ok=True)
    if not args.no_install:
        log("installing packages")
        system.install()
    for d in ([os.path.join(system.BASE, "run", n) for n in os.listdir(os.path.join(system.BASE, "run"))]
              if os.path.isdir(os.path.join(system.BASE, "run")) else []):
        if os.path.isdir(d):
            system.kill_leftovers(d)
    system.sh(["postfix", "stop"], check=False)
    shutil.rmtree(system.BASE, ignore_errors=True)
    setup_users()
    clock = system.Clock()
    rng = random.Random(args.seed)
    names = Names(rng)
    chosen = [h for h in HOSTS if not args.hosts or h.name in args.hosts.split(",")]
    hosts = [cls(names, random.Random(rng.random()), clock, log) for cls in chosen]
    try:
        for h in hosts:
            log(f"{h.name}: start")
            run_host(h, clock, episode_times(h.rng, args.episodes), args.segments)
    finally:
        for h in hosts:
            h.stop()
        clock.reset(time.time())
    events = [e for h in hosts for e in h.events]
    corpus_dir = collect(out, hosts)
    with open(os.path.join(out, "events.json"), "w") as f:
        json.dump(events, f, indent=1)
    log(f"{len(events)} events from {corpus_dir}; building questions")
    write_questions(out, events, args.seed, time.time() - t0, args.per_format_kind)
    return 0


def write_questions(out: str, events: list[dict], seed: int, seconds: float, cap: int) -> None:
    corpus = questions.Corpus(os.path.join(out, "corpus"))
    qs, stats = questions.build(corpus, events, seed=seed, per_format_kind=cap)
    with open(os.path.join(out, "questions.json"), "w") as f:
        json.dump(qs, f, indent=1)
    man = manifest(corpus, qs, stats, seconds)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1)
    log(f"{len(qs)} questions {man['questions_by_kind']}; {len(man['formats'])} formats; "
        f"{len(man['files'])} files; {stats}; {man['run_seconds']} s")


if __name__ == "__main__":
    sys.exit(main())
