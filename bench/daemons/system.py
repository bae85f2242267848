"""Packages, the shared fake clock, processes, rsyslog and logrotate for the daemon-log generator.

Every daemon that writes its own timestamps runs with libfaketime preloaded and reads its offset
from one file (FAKETIME_TIMESTAMP_FILE, relative offset in seconds, re-read on each call with
FAKETIME_NO_CACHE=1). The driver only ever moves that clock forward while daemons run. The
monotonic clock is left real (FAKETIME_DONT_FAKE_MONOTONIC=1) so timers and sleeps inside the
daemons behave. Daemons that log through syslog get their timestamps from rsyslogd, which runs
under the same clock.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

BASE = "/var/tmp/lantern-daemon-logs"          # staging: hosts/<host>/var/log/..., state/, run/
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
CLOCK_FILE = os.path.join(BASE, "run", "faketime.rc")

PACKAGES = [
    "rsyslog", "logrotate", "openssh-server", "openssh-client", "sshpass", "sudo",
    "postfix", "dovecot-imapd", "nginx", "apache2", "vsftpd",
    "mariadb-server", "postgresql", "unbound", "bind9-dnsutils", "squid",
    "mosquitto", "lighttpd", "haproxy", "cups-daemon", "systemd", "openssl",
    "faketime", "libfaketime", "curl", "procps",
]


def sh(cmd: str | list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run a command quietly and return it (stdout/stderr captured as text)."""
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=check, text=True,
                          capture_output=True, **kw)


def install() -> None:
    """apt-get install the daemons without starting any of them (policy-rc.d answers 101)."""
    missing = [p for p in PACKAGES
               if sh(["dpkg-query", "-W", "-f=${Status}", p], check=False).stdout.find(" installed") < 0]
    if not missing:
        return
    policy = "/usr/sbin/policy-rc.d"
    added = not os.path.exists(policy)
    if added:
        with open(policy, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
    try:
        sel = "postfix postfix/main_mailer_type select Local only\npostfix postfix/mailname string mx1.example.lan\n"
        subprocess.run(["debconf-set-selections"], input=sel, text=True, check=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["nice", "apt-get", "install", "-y", "--no-install-recommends", *missing],
                       env=env, check=True, stdout=subprocess.DEVNULL)
    finally:
        if added:
            os.remove(policy)


class Clock:
    """The shared fake clock: a relative offset in seconds in CLOCK_FILE, only moved forward."""

    def __init__(self, path: str = CLOCK_FILE):
        self.path = path
        self.offset = 0
        self.last_target = 0.0
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._write(0)

    def _write(self, offset: int) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{offset:+d}\n")
        os.replace(tmp, self.path)      # readers never see a half-written file
        self.offset = offset

    def set(self, epoch: float) -> None:
        """Make the fake now equal epoch (must be later than anything shown so far)."""
        if epoch <= self.now():
            raise ValueError("the fake clock only moves forward")
        self._write(int(round(epoch - time.time())))
        self.last_target = epoch

    def reset(self, epoch: float) -> None:
        """Set the clock anywhere; only while no faked daemon runs (between host phases)."""
        self._write(int(round(epoch - time.time())))

    def now(self) -> float:
        return time.time() + self.offset


def fake_env(extra: dict | None = None) -> dict:
    env = dict(os.environ, LD_PRELOAD=FAKETIME_LIB, FAKETIME_TIMESTAMP_FILE=CLOCK_FILE,
               FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1", TZ="UTC")
    env.pop("FAKETIME", None)
    env.update(extra or {})
    return env


def plain_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKETIME") and k != "LD_PRELOAD"}
    env["TZ"] = "UTC"
    env.update(extra or {})
    return env


class Procs:
    """Daemons started in the foreground in their own process groups, stopped by group id."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.stop_signals: dict[int, int] = {}
        os.makedirs(run_dir, exist_ok=True)

    def start(self, name: str, argv: list[str], faked: bool = True, env: dict | None = None,
              cwd: str | None = None, user: str | None = None,
              stop_signal: int = signal.SIGTERM) -> subprocess.Popen:
        out = open(os.path.join(self.run_dir, f"{name}.out"), "ab")
        # started directly (no su wrapper) so the daemon leads its own process group and gets the
        # stop signal itself
        p = subprocess.Popen(argv, env=fake_env(env) if faked else plain_env(env), cwd=cwd or "/",
                             stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True, user=user, group=user)
        out.close()
        self.procs.append((name, p))
        self.stop_signals[p.pid] = stop_signal
        with open(os.path.join(self.run_dir, "pgids"), "a") as f:
            f.write(f"{p.pid}\n")
        return p

    def alive(self, name: str) -> bool:
        return any(n == name and p.poll() is None for n, p in self.procs)

    def stop(self, name: str | None = None, timeout: float = 10.0) -> None:
        keep = []
        chosen = []
        for n, p in self.procs:
            (chosen if name is None or n == name else keep).append((n, p))
        for _, p in reversed(chosen):
            _signal_group(p.pid, self.stop_signals.get(p.pid, signal.SIGTERM))
        deadline = time.time() + timeout
        for _, p in chosen:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(p.pid, signal.SIGKILL)
            try:
                p.wait(2)
            except subprocess.TimeoutExpired:
                pass
        self.procs = keep


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_leftovers(run_dir: str) -> None:
    """Kill the process groups a previous (interrupted) run of this generator left behind."""
    path = os.path.join(run_dir, "pgids")
    if not os.path.exists(path):
        return
    with open(path) as f:
        for line in f:
            if line.strip().isdigit():
                _signal_group(int(line), signal.SIGKILL)
    os.remove(path)


def wait_port(port: int, host: str = "127.0.0.1", timeout: float = 30.0) -> bool:
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def wait_file(path: str, timeout: float = 30.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.2)
    return False


RSYSLOG_TRADITIONAL = "RSYSLOG_TraditionalFileFormat"
RSYSLOG_PRECISE = "RSYSLOG_FileFormat"


def rsyslog_conf(hostname: str, log_root: str, rules: list[tuple[str, str]], fmt: str,
                 state_dir: str, udp_port: int | None = None) -> str:
    """An rsyslog.conf that takes /dev/log (and optionally UDP on 127.0.0.1), stamps messages on
    arrival (under the fake clock) and writes the (selector, path) rules in the given format."""
    lines = [
        f'global(localHostName="{hostname}" workDirectory="{state_dir}" preserveFQDN="off")',
        'module(load="imuxsock" SysSock.Use="on" SysSock.Name="/dev/log" SysSock.RateLimit.Interval="0" SysSock.UseSysTimeStamp="off")',
        f'module(load="builtin:omfile" template="{fmt}" fileCreateMode="0640" dirCreateMode="0755")',
    ]
    if udp_port:
        lines.append('module(load="imudp")')
        lines.append(f'input(type="imudp" address="127.0.0.1" port="{udp_port}")')
    for selector, path in rules:
        lines.append(f'{selector}\t-{os.path.join(log_root, path.lstrip("/"))}')
    return "\n".join(lines) + "\n"


def logrotate(conf_path: str, state_path: str, paths: list[str], rotate: int = 12) -> None:
    """Rotate the given logs with real logrotate (forced): name.1, then name.2.gz, ... The daemons
    are stopped while this runs, so no reopen signal is needed."""
    body = " ".join(paths) + " {\n" + (
        f"    rotate {rotate}\n    compress\n    delaycompress\n    missingok\n    notifempty\n"
        "    nocreate\n}\n")
    with open(conf_path, "w") as f:
        f.write(body)
    sh(["logrotate", "-f", "-s", state_path, conf_path], check=False, env=fake_env())


def fresh_dir(path: str) -> str:
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    return path
