"""A simulated server (one rsyslogd, sshd and sudo, plus its own daemons) and the loopback clients
that cause events in it. Every client connection leaves from its own 127.x.y.z address so the
logs show many different client IPs; nothing ever leaves the loopback network."""

from __future__ import annotations

import os
import random
import smtplib
import socket
import subprocess

from bench.daemons import system

USERS = ["alice", "bob", "carol", "deploy", "backup", "dave", "erin", "svc-report"]
PASSWORD = "Lantern-pw-7"
SSH_PORT = 2222
BAD_NAMES = ["admin", "oracle", "test", "ubuntu", "pi", "git", "postgres", "guest", "user", "support",
             "ftpuser", "jenkins", "hadoop", "tomcat", "nagios", "mysql", "web", "dev", "www", "info",
             "sales", "office", "demo", "temp", "student", "minecraft", "vagrant", "ansible", "zabbix",
             "monitor", "jboss", "mail", "steam", "teamspeak", "odoo", "es", "kafka", "redis", "uucp",
             "mark", "james", "robert", "linda", "susan", "kevin", "nancy", "frank", "helen", "oscar"]
WORDS = ["orion", "lynx", "cobalt", "maple", "quartz", "falcon", "ember", "juniper", "tundra", "saffron",
         "harbor", "meadow", "basalt", "cedar", "nimbus", "pebble", "atlas", "willow", "zephyr", "onyx",
         "comet", "delta", "fjord", "glacier", "heron", "indigo", "jasper", "kestrel", "lagoon", "mistral",
         "nectar", "opal", "prairie", "quill", "raven", "sierra", "topaz", "umber", "violet", "walnut"]
AGENTS = ["curl/7.88.1", "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/115.0",
          "Wget/1.21.3", "python-requests/2.28.1", "Googlebot/2.1 (+http://www.google.com/bot.html)",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
          "masscan/1.3", "Go-http-client/1.1", "zgrab/0.x", "sqlmap/1.7"]


class Names:
    """Unique markers: client IPs, user names, words. Seeded, never repeated in one run."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def _fresh(self, make) -> str:
        for _ in range(10000):
            v = make()
            if v not in self.used:
                self.used.add(v)
                return v
        raise RuntimeError("ran out of unique names")

    def ip(self) -> str:
        r = self.rng
        return self._fresh(lambda: f"127.{r.randint(1, 254)}.{r.randint(1, 254)}.{r.randint(2, 254)}")

    def bad_user(self) -> str:
        r = self.rng
        return self._fresh(lambda: r.choice(BAD_NAMES) + r.choice(["", "", "1", "2", "01", "123", "_x"]) +
                           str(r.randint(1, 999)))

    def word(self) -> str:
        r = self.rng
        return self._fresh(lambda: f"{r.choice(WORDS)}-{r.randint(10, 9999)}")


class Host:
    """One simulated server. Subclasses add daemons (start_daemons) and event makers (EVENTS)."""

    name = "host"
    precise = False                 # rsyslog writes RFC 3339 high-precision stamps on this host
    syslog_rules = [("auth,authpriv.*", "var/log/auth.log"),
                    ("*.*;auth,authpriv.none;mail.none;local0.none", "var/log/syslog")]
    EVENTS: list[tuple[str, float]] = []     # (method name, weight)
    ANCHOR_TARGETS: list[str] = []          # event methods that can follow a sudo anchor
    FAST: list[str] = []                    # cheap events for the burst of look-alikes per episode
    BURST = (0, 0)

    def __init__(self, names: Names, rng: random.Random, clock: system.Clock, log):
        self.names, self.rng, self.clock, self.log = names, rng, clock, log
        self.root = os.path.join(system.BASE, "hosts", self.name)
        self.state = os.path.join(system.BASE, "state", self.name)
        self.procs = system.Procs(os.path.join(system.BASE, "run", self.name))
        self.events: list[dict] = []

    # ----- paths
    def logpath(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    def log_files(self) -> list[str]:
        """Every log file this host writes (rotated between segments)."""
        return [p for _, p in self.syslog_rules]

    # ----- lifecycle
    def prepare(self) -> None:
        system.fresh_dir(self.root)
        system.fresh_dir(self.state)
        os.makedirs(os.path.join(self.root, "var/log"), exist_ok=True)

    def start(self) -> None:
        conf = os.path.join(self.state, "rsyslog.conf")
        fmt = system.RSYSLOG_PRECISE if self.precise else system.RSYSLOG_TRADITIONAL
        with open(conf, "w") as f:
            f.write(system.rsyslog_conf(self.name, self.root, self.syslog_rules, fmt, self.state,
                                        udp_port=None))
        if os.path.exists("/dev/log"):
            os.remove("/dev/log")
        self.procs.start("rsyslogd", ["rsyslogd", "-n", "-f", conf, "-i", os.path.join(self.state, "rsyslogd.pid")])
        system.wait_file("/dev/log", 10)
        sshd_conf = os.path.join(self.state, "sshd_config")
        with open(sshd_conf, "w") as f:
            f.write(f"Port {SSH_PORT}\nListenAddress 127.0.0.1\nUsePAM no\nPasswordAuthentication yes\n"
                    "KbdInteractiveAuthentication no\nPermitRootLogin no\nSyslogFacility AUTH\n"
                    "LogLevel INFO\nMaxStartups 100\nPidFile " + os.path.join(self.state, "sshd.pid") + "\n")
        os.makedirs("/run/sshd", exist_ok=True)
        self.procs.start("sshd", ["/usr/sbin/sshd", "-D", "-f", sshd_conf], faked=False)
        self.start_daemons()
        system.wait_port(SSH_PORT, timeout=10)

    def start_daemons(self) -> None:
        pass

    def finish(self) -> None:
        """Called once after the host's last segment (daemons stopped)."""

    def clock_moved(self) -> None:
        """Called after each move of the fake clock (for daemons that need a restart to see it)."""

    def stop(self) -> None:
        self.stop_daemons()
        self.procs.stop()

    def stop_daemons(self) -> None:
        pass

    # ----- recording
    def record(self, kind: str, program: str, fmt: str, logfile: str, marker: str, ask: list[str],
               **fields) -> dict:
        ev = {"host": self.name, "kind": kind, "program": program, "format": fmt, "file": logfile,
              "marker": marker, "ask": ask, "fields": fields, "fake_time": self.clock.now(),
              "seq": len(self.events)}
        self.events.append(ev)
        return ev

    @property
    def auth_fmt(self) -> str:
        return "sshd-rfc3339" if self.precise else "sshd-syslog"

    # ----- common events: sshd and sudo
    def ev_ssh_invalid(self) -> dict:
        ip, user = self.names.ip(), self.names.bad_user()
        ssh_try(ip, user, self.names.word())
        return self.record("ssh-invalid-user", "sshd", self.auth_fmt, "var/log/auth.log",
                           f" {ip} port ", ["ip", "user"], ip=ip, user=user)

    def ev_ssh_badpass(self) -> dict:
        ip, user = self.names.ip(), self.rng.choice(USERS)
        ssh_try(ip, user, "wrong-" + self.names.word())
        return self.record("ssh-failed-password", "sshd", self.auth_fmt, "var/log/auth.log",
                           f" {ip} port ", ["ip", "user"], ip=ip, user=user)

    def ev_ssh_ok(self) -> dict:
        ip, user = self.names.ip(), self.rng.choice(USERS)
        ssh_try(ip, user, PASSWORD)
        return self.record("ssh-accepted", "sshd", self.auth_fmt, "var/log/auth.log",
                           f" {ip} port ", ["ip", "user"], ip=ip, user=user)

    def ev_sudo_anchor(self) -> dict:
        word = self.names.word()
        path = f"/srv/{word}"
        sh_plain(["sudo", "-u", "backup", "/usr/bin/test", "-e", path])
        return self.record("sudo-command", "sudo", self.auth_fmt, "var/log/auth.log", path,
                           ["command"], command=path, word=word)

    def episode(self) -> None:
        """A handful of events, a burst of cheap look-alikes (the distractors), and sometimes a
        sudo anchor followed seconds later by a target."""
        names = [m for m, _ in self.EVENTS]
        weights = [w for _, w in self.EVENTS]
        for m in self.rng.choices(names, weights, k=self.rng.randint(2, 5)):
            self._run(m)
            self.advance(3, 90)
        for _ in range(self.rng.randint(*self.BURST) if self.FAST else 0):
            self._run(self.rng.choice(self.FAST))
            self.advance(1, 25)
        if self.ANCHOR_TARGETS and self.rng.random() < 0.45:
            anchor = self.ev_sudo_anchor()
            self.advance(1, 8)
            target = self._run(self.rng.choice(self.ANCHOR_TARGETS))
            if target:
                target["after_anchor"] = anchor["seq"]

    def advance(self, lo: float, hi: float) -> None:
        """Move the fake clock a few seconds on, so events of one episode get distinct stamps
        without waiting for them in real time."""
        self.clock.set(self.clock.now() + self.rng.uniform(lo, hi))
        self.clock_moved()

    def _run(self, method: str) -> dict | None:
        try:
            return getattr(self, method)()
        except Exception as e:         # a client error still may have caused a log line; keep going
            self.log(f"{self.name}: {method} failed: {e!r}")
            return None


def sh_plain(argv: list[str], timeout: float = 15, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=system.plain_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          stdin=None if input is not None else subprocess.DEVNULL, input=input,
                          text=True, timeout=timeout, check=False)


def ssh_try(ip: str, user: str, password: str) -> None:
    sh_plain(["sshpass", "-p", password, "ssh", "-b", ip, "-p", str(SSH_PORT),
              "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
              "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
              "-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
              f"{user}@127.0.0.1", "true"], timeout=20)


def http(ip: str, url: str, agent: str | None = None, auth: str | None = None,
         proxy: str | None = None, method: str = "GET") -> str:
    argv = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface", ip, "--max-time", "8",
            "-X", method, "-A", agent or "curl/7.88.1"]
    if auth:
        argv += ["-u", auth]
    if proxy:
        argv += ["-x", proxy]
    argv.append(url)
    return sh_plain(argv, timeout=15).stdout.strip()


def smtp_session(ip: str, port: int, helo: str, sender: str, rcpts: list[str], body: str,
                 auth: tuple[str, str] | None = None) -> None:
    s = smtplib.SMTP(timeout=10, source_address=(ip, 0), local_hostname=helo)
    try:
        s.connect("127.0.0.1", port)
        s.ehlo(helo)
        if auth:
            user, password = auth
            try:
                s.auth("PLAIN", lambda challenge=None: f"\0{user}\0{password}", initial_response_ok=True)
            except smtplib.SMTPAuthenticationError:
                return
        s.mail(sender)
        ok = False
        for r in rcpts:
            code, _ = s.rcpt(r)
            ok = ok or code < 300
        if ok:
            s.data(body)
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


def tcp_exchange(ip: str, port: int, payloads: list[bytes], read: bool = True, timeout: float = 5) -> bytes:
    """Connect from ip to 127.0.0.1:port, send each payload (reading a reply after each)."""
    got = b""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.bind((ip, 0))
        s.connect(("127.0.0.1", port))
        if read:
            try:
                got += s.recv(4096)
            except socket.timeout:
                pass
        for p in payloads:
            try:
                s.sendall(p)
                got += s.recv(4096)
            except socket.timeout:
                pass
            except OSError:           # the server hung up (as it does after a refused login)
                break
    return got
