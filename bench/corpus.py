"""A realistic log corpus, generated deterministically, with planted incidents and questions.

Five services in five formats, each repeating a handful of message templates with varying
ids, IPs, durations and sizes, like real services do:

  logs/syslog/messages-NNNN.log       BSD syslog (sshd, CRON, systemd, kernel, postfix)
  logs/nginx/access-NNNN.log          nginx combined access log with request time
  logs/payment-svc/app-NNNN.log       Python logging, with tracebacks
  logs/order-svc/server-NNNN.log      log4j, with Java stack traces and "Caused by:"
  logs/inventory/events-NNNN.jsonl    JSON lines
  docs/...                            markdown runbooks, an HTML page, a CSV and a JSON file

Files are cut in parts (--part-mb) the way rotation cuts them, so a bench can index a corpus
file by file and stop at a time budget. All logs span 2024-03-01 00:00 to 2024-03-03 00:00
(timestamps carry no zone: read as local time, as a log reader would) and get that mtime, so
year-less syslog lines land in 2024.

Incidents are planted at fixed times whatever the size; questions.json holds, for each, a few
questions (identifier lookups, time windows, paraphrases) with the file and exact line range
that answers them. queries.json holds identifiers seen in ordinary lines, for latency runs.

Usage: python bench/corpus.py OUT_DIR [--mb 200] [--seed 7] [--part-mb 16]
Prints one JSON object (files, bytes, lines, questions).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid
from datetime import datetime, timedelta

START = datetime(2024, 3, 1, 0, 0, 0)
SPAN_S = 2 * 86400
SHARES = {"syslog": 0.15, "nginx": 0.35, "python": 0.20, "log4j": 0.20, "jsonl": 0.10}
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()

HOSTS = [f"web-{i:02d}" for i in range(1, 9)] + [f"db-{i:02d}" for i in range(1, 4)] + ["log-02", "lb-01"]
USERS = ["deploy", "ubuntu", "backup", "monitor", "jenkins"]
PATHS = ["/api/v1/products/{n}", "/api/v1/cart", "/api/v1/users/{n}/orders", "/static/js/app.{h}.js",
         "/api/v1/search?q=item{n}", "/healthz", "/api/v1/checkout", "/images/p/{n}.webp", "/login"]
# SSH key fingerprints: one per deploy key, so a few distinct values for all lines.
KEYS = ["Xk3vP0qL9sWm2Ty7Hd8Jc4Nf6Rb1Zg5Ae0Uo2Ii7Kw", "q9Lr2Vb7Tn4Hs8Dm1Fc6Xz3Wp0Gj5Ky2Ue9Ao4Ri8S",
        "Mb5Wq2Zt8Rk1Yn4Hv7Jc0Ls3Pg6Fd9Xe2Ua5To8Iy", "Hc7Ns0Vq4Tk9Lm2Rp6Wz1Yb5Gd8Jf3Xa0Ue7Ko4Si"]
AGENTS = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/122.0 Safari/537.36",
          "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_3) AppleWebKit/605.1.15 Version/17.3 Safari/605.1.15",
          "curl/8.5.0", "kube-probe/1.29", "okhttp/4.12.0"]


def uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def ip(rng: random.Random, private: bool = True) -> str:
    if private:
        return f"10.{rng.randint(0, 40)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    return f"{rng.choice([81, 92, 145, 176, 185, 212])}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def py_ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S") + f",{t.microsecond // 1000:03d}"


def syslog_ts(t: datetime) -> str:
    return f"{MONTHS[t.month - 1]} {t.day:2d} {t.strftime('%H:%M:%S')}"


def nginx_ts(t: datetime) -> str:
    return f"{t.day:02d}/{MONTHS[t.month - 1]}/{t.year}:{t.strftime('%H:%M:%S')} +0000"


# ---------------------------------------------------------------------------- ordinary lines
# Each returns a list of lines (one record; several lines for a trace).

def syslog_line(rng, t, ids):
    h = rng.choice(HOSTS)
    r = rng.random()
    if r < 0.3:
        a = ip(rng)
        ids.add(("ip", a))
        return [f"{syslog_ts(t)} {h} sshd[{rng.randint(1000, 65000)}]: Accepted publickey for {rng.choice(USERS)} "
                f"from {a} port {rng.randint(30000, 65000)} ssh2: RSA SHA256:{KEYS[rng.randrange(len(KEYS))]}"]
    if r < 0.5:
        return [f"{syslog_ts(t)} {h} CRON[{rng.randint(1000, 65000)}]: (root) CMD (/usr/local/bin/rotate-metrics "
                f"--keep {rng.randint(3, 14)} >/dev/null 2>&1)"]
    if r < 0.65:
        u = rng.choice(["logrotate.service", "apt-daily.service", "node-exporter.service", "fstrim.service"])
        return [f"{syslog_ts(t)} {h} systemd[1]: Started {u} - {u.split('.')[0]} job run {rng.randint(1, 9999)}."]
    if r < 0.8:
        qid = f"{rng.getrandbits(40):010X}"
        return [f"{syslog_ts(t)} {h} postfix/smtp[{rng.randint(1000, 65000)}]: {qid}: to=<ops{rng.randint(1, 40)}"
                f"@example.com>, relay=mx.example.com[{ip(rng)}]:25, delay={rng.random() * 3:.2f}, status=sent (250 2.0.0 OK)"]
    if r < 0.805:
        # Container starts: a random interface name each time, as on a real node (rare).
        return [f"{syslog_ts(t)} {h} kernel: [{rng.randint(1000, 900000)}.{rng.randint(0, 999999):06d}] "
                f"eth0: renamed from veth{rng.getrandbits(28):07x}"]
    if r < 0.9:
        return [f"{syslog_ts(t)} {h} kernel: [UFW BLOCK] IN=eth0 OUT= SRC={ip(rng, False)} DST={ip(rng)} LEN=44 "
                f"TTL={rng.randint(30, 250)} PROTO=TCP SPT={rng.randint(1024, 65000)} DPT={rng.choice([23, 3389, 5900, 8080])}"]
    return [f"{syslog_ts(t)} {h} sshd[{rng.randint(1000, 65000)}]: Connection closed by {ip(rng)} port "
            f"{rng.randint(30000, 65000)} [preauth]"]


def nginx_line(rng, t, ids):
    a = ip(rng, private=rng.random() < 0.3)
    p = rng.choice(PATHS).format(n=rng.randint(1, 99999), h=f"{rng.getrandbits(32):08x}")
    method = "POST" if p in ("/api/v1/cart", "/api/v1/checkout", "/login") else "GET"
    status = rng.choices([200, 304, 404, 301, 500], [85, 6, 6, 2, 1])[0]
    if rng.random() < 0.01:
        ids.add(("ip", a))
    return [f'{a} - - [{nginx_ts(t)}] "{method} {p} HTTP/1.1" {status} {rng.randint(200, 90000)} '
            f'"https://shop.example.com/" "{rng.choice(AGENTS)}" {rng.random() * 0.4:.3f}']


PY_TRACE_RESET = [
    "Traceback (most recent call last):",
    '  File "/srv/payment_svc/client.py", line 88, in post',
    "    resp = self.session.post(url, json=body, timeout=self.timeout)",
    '  File "/srv/.venv/lib/python3.11/site-packages/requests/adapters.py", line 501, in send',
    "    raise ConnectionError(err, request=request)",
    "requests.exceptions.ConnectionError: ('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))",
]


def python_line(rng, t, ids):
    r = rng.random()
    o = uid(rng)
    if rng.random() < 0.002:
        ids.add(("uuid", o))
    if r < 0.45:
        return [f"{py_ts(t)} INFO payment_svc.api: charge accepted order_id={o} amount={rng.randint(1, 900)}."
                f"{rng.randint(0, 99):02d} EUR card=****{rng.randint(1000, 9999)} in {rng.randint(40, 900)} ms"]
    if r < 0.75:
        return [f"{py_ts(t)} INFO payment_svc.client: POST https://bank-gw.internal/v2/authorize -> 200 in "
                f"{rng.randint(30, 700)} ms (attempt 1)"]
    if r < 0.9:
        return [f"{py_ts(t)} DEBUG payment_svc.cache: token cache hit merchant={rng.randint(100, 999)} "
                f"ttl={rng.randint(1, 3600)}s"]
    if r < 0.995:
        return [f"{py_ts(t)} WARNING payment_svc.api: slow request GET /v1/payments/{o} took {rng.randint(1000, 4000)} ms"]
    return [f"{py_ts(t)} WARNING payment_svc.client: retrying POST https://bank-gw.internal/v2/authorize "
            f"after connection reset (attempt {rng.randint(1, 2)})"] + PY_TRACE_RESET


def java_trace(exc: str, frames: list[str], cause: str | None = None, cause_frames: list[str] = ()) -> list[str]:
    out = [exc] + [f"\tat {f}" for f in frames]
    if cause:
        out += [f"Caused by: {cause}"] + [f"\tat {f}" for f in cause_frames] + [f"\t... {len(frames)} more"]
    return out


def log4j_line(rng, t, ids):
    thread = f"http-nio-8080-exec-{rng.randint(1, 40)}"
    o = uid(rng)
    if rng.random() < 0.002:
        ids.add(("uuid", o))
    r = rng.random()
    if r < 0.5:
        return [f"{py_ts(t)} INFO  [{thread}] c.e.orders.OrderController - Created order {o} for customer "
                f"{rng.randint(1000, 99999)} total={rng.randint(5, 2000)}.{rng.randint(0, 99):02d} items={rng.randint(1, 9)}"]
    if r < 0.8:
        return [f"{py_ts(t)} DEBUG [{thread}] c.e.orders.repo.OrderRepository - Loaded order {o} in "
                f"{rng.randint(1, 80)} ms"]
    if r < 0.995:
        return [f"{py_ts(t)} INFO  [scheduling-1] c.e.orders.jobs.ShipmentSync - Synced {rng.randint(0, 300)} "
                f"shipments from carrier {rng.choice(['DHL', 'UPS', 'GLS'])} in {rng.randint(100, 9000)} ms"]
    return [f"{py_ts(t)} WARN  [{thread}] c.e.orders.client.PricingClient - Pricing lookup failed for order {o}, "
            f"using cached price"] + java_trace(
        "java.net.SocketTimeoutException: Read timed out",
        ["java.base/sun.nio.ch.NioSocketImpl.timedRead(NioSocketImpl.java:288)",
         "org.apache.http.impl.io.SessionInputBufferImpl.fillBuffer(SessionInputBufferImpl.java:153)",
         "com.example.orders.client.PricingClient.lookup(PricingClient.java:61)"])


def jsonl_line(rng, t, ids):
    sku = f"SKU-{rng.randint(10000, 99999)}"
    if rng.random() < 0.003:
        ids.add(("sku", sku))
    ev = rng.choice(["stock_updated", "stock_updated", "reservation_created", "reservation_released"])
    return [json.dumps({"ts": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}", "level": "info",
                        "service": "inventory", "event": ev, "sku": sku,
                        "warehouse": rng.choice(["WH-US-1", "WH-US-2", "WH-EU-1", "WH-EU-2"]),
                        "delta": rng.randint(-5, 20), "request_id": uid(rng)}, separators=(",", ":"))]


# ---------------------------------------------------------------------------- planted incidents

def T(h, m, s, day=1, ms=0) -> datetime:
    return datetime(2024, 3, day, h, m, s, ms * 1000)


ORDER_UUID = "3f2a9c1e-7b44-4d2a-9e51-0c8d6b7a2f13"
PAY_UUID = "b71e05d2-4c3f-4a8e-8d90-5e6f1a2b3c4d"
BRUTE_IP = "203.0.113.77"


def incidents() -> dict[str, list[dict]]:
    """Per stream: planted records, each with its time, lines, and questions about it."""
    py = [
        {"t": T(10, 0, 2, ms=117), "lines": [
            f"2024-03-01 10:00:02,117 ERROR payment_svc.client: timeout calling bank-gw POST "
            f"https://bank-gw.internal/v2/authorize after 5000 ms order_id={PAY_UUID}",
            "Traceback (most recent call last):",
            '  File "/srv/payment_svc/client.py", line 88, in post',
            "    resp = self.session.post(url, json=body, timeout=self.timeout)",
            '  File "/srv/.venv/lib/python3.11/site-packages/requests/adapters.py", line 713, in send',
            "    raise ReadTimeout(e, request=request)",
            "requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='bank-gw.internal', port=443): "
            "Read timed out. (read timeout=5.0)"],
         "q": [("payment-svc timeout calling bank-gw at 2024-03-01 10:00:02", "time"),
               (PAY_UUID, "identifier"),
               ("why did the payment service fail to get an answer from the bank gateway on March 1st around 10:00?",
                "paraphrase"),
               ("requests ReadTimeout bank-gw.internal read timeout=5.0", "identifier")]},
        {"t": T(14, 22, 40, ms=503), "lines": [
            "2024-03-01 14:22:40,503 ERROR payment_svc.refunds: refund failed for refund_id=RF-20240301-0042",
            "Traceback (most recent call last):",
            '  File "/srv/payment_svc/refunds.py", line 141, in process_refund',
            "    currency = payload['currency']",
            "KeyError: 'currency'"],
         "q": [("RF-20240301-0042", "identifier"),
               ("KeyError currency in refunds", "identifier"),
               ("a refund crashed because the request had no currency field", "paraphrase")]},
        {"t": T(18, 5, 11, day=2, ms=9), "lines": [
            "2024-03-02 18:05:11,009 CRITICAL payment_svc.settlement: settlement batch SB-7731 rejected by "
            "bank-gw: signature verification failed (certificate CN=payments.example.com expired)"],
         "q": [("SB-7731", "identifier"),
               ("why was the settlement batch rejected by the bank?", "paraphrase"),
               ("critical errors in payment-svc on 2024-03-02 between 18:00 and 18:10", "time")]},
    ]
    j4 = [
        {"t": T(9, 15, 33, ms=871), "lines": [
            f"2024-03-01 09:15:33,871 ERROR [http-nio-8080-exec-17] c.e.orders.OrderService - Failed to process "
            f"order {ORDER_UUID}: could not persist order"] + java_trace(
            "org.springframework.dao.DataAccessResourceFailureException: Unable to acquire JDBC Connection",
            ["org.springframework.orm.jpa.vendor.HibernateJpaDialect.convertHibernateAccessException(HibernateJpaDialect.java:277)",
             "com.example.orders.OrderService.persist(OrderService.java:212)",
             "com.example.orders.OrderController.create(OrderController.java:58)"],
            "java.sql.SQLTransientConnectionException: HikariPool-1 - Connection is not available, request "
            "timed out after 30000ms.",
            ["com.zaxxer.hikari.pool.HikariPool.createTimeoutException(HikariPool.java:696)",
             "com.zaxxer.hikari.pool.HikariPool.getConnection(HikariPool.java:181)"]),
         "q": [(ORDER_UUID, "identifier"),
               (f"what was the root cause of the failure of order {ORDER_UUID}?", "identifier"),
               ("the order service ran out of database connections", "paraphrase"),
               ("HikariPool-1 Connection is not available", "identifier")]},
        {"t": T(16, 40, 2, ms=55), "lines": [
            "2024-03-01 16:40:02,055 ERROR [http-nio-8080-exec-3] c.e.orders.invoice.InvoiceRenderer - "
            "Invoice rendering failed for invoice INV-558812"] + java_trace(
            "java.lang.NullPointerException: Cannot invoke \"com.example.orders.model.Address.getCountry()\" "
            "because \"billing\" is null",
            ["com.example.orders.invoice.InvoiceRenderer.header(InvoiceRenderer.java:97)",
             "com.example.orders.invoice.InvoiceRenderer.render(InvoiceRenderer.java:44)"]),
         "q": [("INV-558812", "identifier"),
               ("NullPointerException in InvoiceRenderer", "identifier"),
               ("an invoice could not be generated because the billing address was missing", "paraphrase")]},
        {"t": T(3, 12, 45, day=2, ms=600), "lines": [
            "2024-03-02 03:12:45,600 ERROR [scheduling-1] c.e.orders.jobs.StockReservationJob - Reservation "
            "batch aborted, transaction 884213 rolled back"] + java_trace(
            "org.springframework.dao.CannotAcquireLockException: could not execute statement",
            ["com.example.orders.jobs.StockReservationJob.run(StockReservationJob.java:73)"],
            "com.mysql.cj.jdbc.exceptions.MySQLTransactionRollbackException: Deadlock found when trying to "
            "get lock; try restarting transaction",
            ["com.mysql.cj.jdbc.exceptions.SQLError.createSQLException(SQLError.java:123)"]),
         "q": [("Deadlock found when trying to get lock", "identifier"),
               ("transaction 884213", "identifier"),
               ("what happened in the order service on 2024-03-02 around 03:12?", "time"),
               ("a nightly job hit a database deadlock", "paraphrase")]},
    ]
    sys_ = [
        {"t": T(11, 47, 9), "lines": [
            "Mar  1 11:47:09 db-03 kernel: [812345.114201] Out of memory: Killed process 4242 (java) "
            "total-vm:18874368kB, anon-rss:15728640kB, file-rss:0kB, shmem-rss:0kB, UID:1001 pgtables:31232kB "
            "oom_score_adj:0"],
         "q": [("OOM kill on db-03", "identifier"),
               ("which process did the kernel kill for running out of memory?", "paraphrase"),
               ("Killed process 4242", "identifier")]},
        {"t": T(2, 30, 0, day=2), "burst": (BRUTE_IP, 40), "lines": None,
         "q": [(BRUTE_IP, "identifier"),
               (f"failed ssh logins from {BRUTE_IP}", "identifier"),
               ("was someone trying to brute-force ssh passwords?", "paraphrase"),
               ("failed password attempts on 2024-03-02 between 02:30 and 02:32", "time")]},
        {"t": T(20, 3, 18), "lines": [
            "Mar  1 20:03:18 log-02 kernel: [99120.553810] EXT4-fs warning (device sdb1): ext4_dx_add_entry:2461: "
            "No space left on device while writing /var/log/archive/2024-03-01.tar"],
         "q": [("No space left on device log-02", "identifier"),
               ("the log archive disk filled up", "paraphrase")]},
    ]
    ngx = [
        {"t": T(13, 2, 0), "burst502": 12, "lines": None,
         "q": [("502 errors on /api/v1/checkout", "identifier"),
               ("checkout requests returned bad gateway", "paraphrase"),
               ("what happened to /api/v1/checkout on 2024-03-01 between 13:02 and 13:03?", "time")]},
    ]
    jl = [
        {"t": T(7, 44, 21, ms=302), "lines": [json.dumps(
            {"ts": "2024-03-01T07:44:21.302", "level": "error", "service": "inventory",
             "event": "stock_reconcile_failed", "sku": "SKU-99812", "warehouse": "WH-EU-2",
             "expected": 140, "counted": 97, "message": "physical count differs from ledger by 43 units"},
            separators=(",", ":"))],
         "q": [("SKU-99812", "identifier"),
               ("inventory reconciliation failed in the EU-2 warehouse", "paraphrase"),
               ("stock count mismatch against the ledger", "paraphrase")]},
        {"t": T(22, 10, 5, day=2, ms=0), "lines": [json.dumps(
            {"ts": "2024-03-02T22:10:05.000", "level": "warning", "service": "inventory",
             "event": "account_locked", "user_id": 88123, "reason": "too many failed API key attempts",
             "source_ip": "198.51.100.23"}, separators=(",", ":"))],
         "q": [("user 88123 account locked", "identifier"),
               ("198.51.100.23", "identifier"),
               ("why was an inventory API account locked?", "paraphrase")]},
    ]
    return {"python": py, "log4j": j4, "syslog": sys_, "nginx": ngx, "jsonl": jl}


def expand(inc: dict, rng: random.Random) -> list[list[str]]:
    """An incident's records (each a list of lines)."""
    if inc.get("burst"):
        a, n = inc["burst"]
        t = inc["t"]
        out = []
        for i in range(n):
            tt = t + timedelta(seconds=i * 2.5)
            out.append([f"{syslog_ts(tt)} web-05 sshd[{31000 + i}]: Failed password for "
                        f"{'invalid user ' if i % 3 else ''}{rng.choice(['admin', 'root', 'oracle', 'test'])} "
                        f"from {a} port {rng.randint(30000, 65000)} ssh2"])
        return out
    if inc.get("burst502"):
        t = inc["t"]
        return [[f'{ip(rng, False)} - - [{nginx_ts(t + timedelta(seconds=i * 4))}] "POST /api/v1/checkout HTTP/1.1" '
                 f'502 157 "https://shop.example.com/cart" "{AGENTS[0]}" 30.00{i}'] for i in range(inc["burst502"])]
    return [inc["lines"]]


# ---------------------------------------------------------------------------- writing

STREAMS = {
    "syslog": ("logs/syslog/messages-{:04d}.log", syslog_line),
    "nginx": ("logs/nginx/access-{:04d}.log", nginx_line),
    "python": ("logs/payment-svc/app-{:04d}.log", python_line),
    "log4j": ("logs/order-svc/server-{:04d}.log", log4j_line),
    "jsonl": ("logs/inventory/events-{:04d}.jsonl", jsonl_line),
}
AVG_BYTES = {"syslog": 125, "nginx": 190, "python": 120, "log4j": 135, "jsonl": 185}


def write_stream(out: str, stream: str, target: int, part_bytes: int, seed: int, ids: set,
                 questions: list, files: list) -> int:
    rng = random.Random(f"{seed}:{stream}")
    pattern, gen = STREAMS[stream]
    n_est = max(1, target // AVG_BYTES[stream])
    step = SPAN_S / n_est
    pending = sorted(incidents()[stream], key=lambda i: i["t"])
    part, fh, written, part_written, line_no, total = 0, None, 0, 0, 0, 0
    rel = ""

    def open_part():
        nonlocal part, fh, part_written, line_no, rel
        if fh:
            fh.close()
            files.append(rel)
        part += 1
        rel = pattern.format(part)
        os.makedirs(os.path.dirname(os.path.join(out, rel)), exist_ok=True)
        fh = open(os.path.join(out, rel), "w", encoding="utf-8", newline="\n")
        part_written, line_no = 0, 0

    open_part()
    i = 0
    while written < target or pending:
        t = START + timedelta(seconds=min(i * step, SPAN_S - 1) + rng.random() * step * 0.5)
        recs = []
        while pending and (pending[0]["t"] <= t or written >= target):
            inc = pending.pop(0)
            planted = expand(inc, rng)
            first = line_no + 1 + sum(len(r) for r in recs)
            last = first + sum(len(r) for r in planted) - 1
            for q, kind in inc["q"]:
                questions.append({"question": q, "kind": kind, "stream": stream, "path": rel,
                                  "line_start": first, "line_end": last})
            recs += planted
        if written < target:
            recs.append(gen(rng, t, ids))
        block = "".join(line + "\n" for r in recs for line in r)
        fh.write(block)
        n = len(block.encode("utf-8")) if not block.isascii() else len(block)
        written += n
        part_written += n
        line_no += sum(len(r) for r in recs)
        total += sum(len(r) for r in recs)
        i += 1
        # Cut parts between records only, and never inside a planted incident.
        if part_written >= part_bytes and written < target:
            open_part()
    fh.close()
    files.append(rel)
    return total


DOCS = {
    "docs/runbooks/bank-gw.md": """# bank-gw client runbook

Owner: payments team. Escalation: #payments-oncall.

## Overview

payment-svc talks to the bank gateway (bank-gw.internal) over mutual TLS. Every charge calls
POST /v2/authorize with a 5 second read timeout and one retry on connection reset.

## Rotating the client certificate

The client certificate CN=payments.example.com is valid for 90 days.
1. Request a new certificate from the internal CA with `pki issue payments.example.com`.
2. Store it in the vault path secret/payments/bank-gw/tls.
3. Restart payment-svc pods one at a time; settlement batches fail while the old certificate is expired.

## Timeouts

If bank-gw answers slowly, payment-svc logs "timeout calling bank-gw" and the charge is retried
by the client. More than 20 timeouts a minute page the on-call engineer.
""",
    "docs/runbooks/database.md": """# Order database runbook

## Connection pool

order-svc uses HikariCP with a pool of 32 connections (see config/order-svc.json).
When the pool is exhausted, requests wait 30 seconds and then fail with
"Connection is not available, request timed out".

## Deadlocks

The stock reservation job and checkout both lock rows in stock_reservations. A deadlock
rolls back one transaction; the job retries at its next run.
""",
    "docs/oncall.html": """<!doctype html>
<html>
<head><title>On-call handbook</title></head>
<body>
<h1>On-call handbook</h1>
<h2>Paging policy</h2>
<p>Sev-1 incidents page the primary on-call engineer immediately and the secondary after 15 minutes.</p>
<p>Sev-2 incidents open a ticket and page during working hours only.</p>
<h2>Escalation</h2>
<p>If the primary does not acknowledge within 10 minutes, the incident escalates to the engineering manager.</p>
<h2>Hand-over</h2>
<p>On-call hand-over happens every Monday at 10:00 with a written summary of open incidents.</p>
</body>
</html>
""",
    "docs/config/order-svc.json": json.dumps({
        "service": "order-svc", "port": 8080,
        "datasource": {"url": "jdbc:mysql://db-01:3306/orders", "maximumPoolSize": 32, "connectionTimeoutMs": 30000},
        "pricing": {"baseUrl": "http://pricing.internal", "readTimeoutMs": 2000},
        "scheduling": {"shipmentSyncCron": "0 */5 * * * *", "stockReservationCron": "0 12 3 * * *"}}, indent=2) + "\n",
}


def write_docs(out: str, rng: random.Random, questions: list, files: list) -> None:
    for rel, text in DOCS.items():
        os.makedirs(os.path.dirname(os.path.join(out, rel)), exist_ok=True)
        with open(os.path.join(out, rel), "w", encoding="utf-8") as f:
            f.write(text)
        files.append(rel)
    rows = ["host,ip,role,rack"]
    for i, h in enumerate(HOSTS):
        rows.append(f"{h},10.20.{i // 4}.{10 + i},{h.split('-')[0]},r{i % 3 + 1}")
    with open(os.path.join(out, "docs/hosts.csv"), "w", encoding="utf-8") as f:
        f.write("\n".join(rows) + "\n")
    files.append("docs/hosts.csv")

    def line_of(rel, needle):
        text = DOCS[rel] if rel in DOCS else "\n".join(rows)
        for n, line in enumerate(text.splitlines(), 1):
            if needle in line:
                return n
        raise KeyError(needle)

    def q(question, kind, rel, needle, extra=0):
        n = line_of(rel, needle)
        questions.append({"question": question, "kind": kind, "stream": "docs", "path": rel,
                          "line_start": n, "line_end": n + extra})

    db3 = HOSTS.index("db-03")
    q("how do I rotate the bank-gw client certificate?", "document", "docs/runbooks/bank-gw.md",
      "## Rotating the client certificate", 4)
    q("how many connections does the order service database pool have?", "document",
      "docs/config/order-svc.json", '"maximumPoolSize"')
    q("who gets paged when the primary on-call does not acknowledge?", "document", "docs/oncall.html",
      "does not acknowledge")
    q(f"which host has IP 10.20.{db3 // 4}.{10 + db3}?", "document", "docs/hosts.csv", "db-03,")
    q("what happens when the order service connection pool is exhausted?", "document",
      "docs/runbooks/database.md", "When the pool is exhausted", 1)


def generate(out: str, mb: float, seed: int = 7, part_mb: float = 16) -> dict:
    t0 = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    target = int(mb * 1024 * 1024)
    ids: set = set()
    questions: list = []
    files: list = []
    lines = 0
    for stream, share in SHARES.items():
        lines += write_stream(out, stream, int(target * share), int(part_mb * 1024 * 1024), seed, ids,
                              questions, files)
    write_docs(out, random.Random(seed), questions, files)
    end = (START + timedelta(seconds=SPAN_S)).timestamp()
    for rel in files:
        if rel.startswith("logs/"):
            os.utime(os.path.join(out, rel), (end, end))
    for n, q in enumerate(questions, 1):
        q["id"] = n
    with open(os.path.join(out, "questions.json"), "w", encoding="utf-8") as f:
        json.dump(questions, f, indent=1)
    sample = sorted(ids)
    random.Random(seed).shuffle(sample)
    with open(os.path.join(out, "queries.json"), "w", encoding="utf-8") as f:
        json.dump([v for _, v in sample[:400]], f)
    size = sum(os.path.getsize(os.path.join(out, r)) for r in files)
    kinds: dict[str, int] = {}
    for q in questions:
        kinds[q["kind"]] = kinds.get(q["kind"], 0) + 1
    return {"dir": out, "mb": round(size / 1048576, 2), "bytes": size, "log_lines": lines, "files": len(files),
            "questions": len(questions), "question_kinds": kinds, "seed": seed,
            "seconds": round(time.perf_counter() - t0, 2)}


def log_files(out: str) -> list[str]:
    """The corpus's files, absolute, in an order that interleaves the streams part by part."""
    by_stream: dict[str, list[str]] = {}
    for root, _, names in os.walk(os.path.join(out, "logs")):
        for n in names:
            by_stream.setdefault(root, []).append(os.path.join(root, n))
    streams = [sorted(v) for _, v in sorted(by_stream.items())]
    order = []
    for i in range(max((len(s) for s in streams), default=0)):
        order += [s[i] for s in streams if i < len(s)]
    return order


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--mb", type=float, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--part-mb", type=float, default=16)
    args = ap.parse_args()
    print(json.dumps(generate(args.out, args.mb, args.seed, args.part_mb), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
