"""gw1: sshd and cups (its access_log and error_log); ftp1: vsftpd (vsftpd.log and xferlog); db1: mariadb (error and general log) and postgresql;
ns1: unbound (its query log), squid, mosquitto (its own log, and its stderr in a
standalone systemd-journald whose journal is exported with journalctl -o export). All on 127.0.0.1 only."""

from __future__ import annotations

import ftplib
import io
import os
import shutil
import signal
import struct
import subprocess
import time

from bench.daemons import system
from bench.daemons.base import AGENTS, PASSWORD, USERS, Host, http, sh_plain, tcp_exchange

PRINTERS = ["hp-laserjet", "canon-office", "brother-lab", "xerox-floor2", "epson-front", "ricoh-copy"]


class GatewayHost(Host):
    name = "gw1"
    EVENTS = [("ev_ssh_invalid", 5), ("ev_ssh_badpass", 3), ("ev_ssh_ok", 2), ("ev_cups_404", 2),
              ("ev_cups_401", 2)]
    ANCHOR_TARGETS = ["ev_ssh_invalid", "ev_ssh_badpass", "ev_ssh_ok", "ev_cups_401"]
    FAST, BURST = ["ev_ssh_invalid", "ev_ssh_badpass", "ev_cups_404", "ev_cups_404"], (1, 5)

    def log_files(self) -> list[str]:
        return super().log_files() + ["var/log/cups/access_log", "var/log/cups/error_log"]

    def prepare(self) -> None:
        super().prepare()
        os.makedirs(self.logpath("var/log/cups"), exist_ok=True)
        root = os.path.join(self.state, "cups")
        for d in ("cache", "spool", "state"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        self.cupsd_conf = os.path.join(root, "cupsd.conf")
        with open(self.cupsd_conf, "w") as f:
            f.write("Listen 127.0.0.1:631\nLogLevel info\nAccessLogLevel all\nHostNameLookups Off\n"
                    "WebInterface Yes\n<Location />\n  Order allow,deny\n  Allow from 127.0.0.0/8\n</Location>\n"
                    "<Location /admin>\n  AuthType Basic\n  Require user @SYSTEM\n</Location>\n")
        self.cups_files = os.path.join(root, "cups-files.conf")
        with open(self.cups_files, "w") as f:
            f.write(f"ErrorLog {self.logpath('var/log/cups/error_log')}\n"
                    f"AccessLog {self.logpath('var/log/cups/access_log')}\n"
                    f"PageLog {self.logpath('var/log/cups/page_log')}\n"
                    f"CacheDir {root}/cache\nStateDir {root}/state\nRequestRoot {root}/spool\nServerRoot {root}\n")

    def start_daemons(self) -> None:
        self.procs.start("cupsd", ["/usr/sbin/cupsd", "-f", "-c", self.cupsd_conf, "-s", self.cups_files])
        system.wait_port(631, timeout=15)

    def ev_cups_404(self) -> dict:
        ip = self.names.ip()
        path = f"/printers/{self.rng.choice(PRINTERS)}-{self.names.word()}"
        status = http(ip, f"http://127.0.0.1:631{path}", self.rng.choice(AGENTS))
        # cupsd logs every loopback client as "localhost": the status is what a question can ask
        return self.record("cups-request", "cupsd", "cups-access", "var/log/cups/access_log", f" {path} ",
                           ["status"], ip=ip, path=path, status=status)

    def ev_cups_401(self) -> dict:
        ip = self.names.ip()
        user = self.rng.choice([self.names.bad_user(), self.rng.choice(USERS)])
        path = f"/admin/?op={self.rng.choice(['add-printer', 'config-server', 'purge-jobs'])}&ref={self.names.word()}"
        status = http(ip, f"http://127.0.0.1:631{path}", self.rng.choice(AGENTS), auth=f"{user}:bad{self.rng.randint(1, 999)}")
        return self.record("cups-request", "cupsd", "cups-access", "var/log/cups/access_log", f" {path} ",
                           ["status"], ip=ip, path=path, status=status, user=user)


JOURNALD = "/lib/systemd/systemd-journald"
JOURNALD_CONF = "/etc/systemd/journald.conf.d/lantern-daemon-logs.conf"

FTP_FILES = ["README.txt", "release-notes.txt", "firmware.bin", "catalog.csv", "mirror-list.txt"]


class FtpHost(Host):
    name = "ftp1"
    EVENTS = [("ev_ftp_fail", 4), ("ev_ftp_anon", 3), ("ev_ftp_upload", 3), ("ev_ssh_invalid", 1),
              ("ev_ssh_badpass", 1)]
    ANCHOR_TARGETS = ["ev_ftp_fail", "ev_ftp_upload", "ev_ssh_invalid"]
    FAST, BURST = ["ev_ftp_fail", "ev_ftp_anon"], (1, 4)

    def log_files(self) -> list[str]:
        return super().log_files() + ["var/log/vsftpd.log", "var/log/xferlog"]

    def prepare(self) -> None:
        super().prepare()
        pub = "/srv/ftp/pub"
        os.makedirs(pub, exist_ok=True)
        for i, name in enumerate(FTP_FILES):
            with open(os.path.join(pub, name), "wb") as f:
                f.write(os.urandom(2000 + 1500 * i))
        os.chmod("/srv/ftp", 0o555)
        with open("/etc/pam.d/lantern-vsftpd", "w") as f:
            f.write("auth required pam_unix.so nodelay\naccount required pam_unix.so\n")
        os.makedirs("/var/run/vsftpd/empty", exist_ok=True)
        self.conf = os.path.join(self.state, "vsftpd.conf")
        with open(self.conf, "w") as f:
            f.write(f"""listen=YES
listen_address=127.0.0.1
listen_port=21
background=NO
anonymous_enable=YES
anon_root=/srv/ftp
no_anon_password=NO
local_enable=YES
write_enable=YES
local_umask=022
xferlog_enable=YES
dual_log_enable=YES
xferlog_std_format=YES
xferlog_file={self.logpath('var/log/xferlog')}
vsftpd_log_file={self.logpath('var/log/vsftpd.log')}
pam_service_name=lantern-vsftpd
secure_chroot_dir=/var/run/vsftpd/empty
seccomp_sandbox=NO
delay_failed_login=0
connect_from_port_20=NO
pasv_enable=YES
pasv_min_port=40100
pasv_max_port=40200
pasv_address=127.0.0.1
""")

    def start_daemons(self) -> None:
        self.clock_moved()

    def clock_moved(self) -> None:
        # vsftpd's session processes chroot, where the clock file cannot be read: vsftpd gets the
        # offset in its environment instead and is restarted whenever the clock moves.
        self.procs.stop("vsftpd")
        offset = f"{int(round(self.clock.now() - time.time())):+d}"
        self.procs.start("vsftpd", ["/usr/sbin/vsftpd", self.conf],
                         env={"FAKETIME": offset, "FAKETIME_TIMESTAMP_FILE": ""})
        system.wait_port(21, timeout=15)

    def _ftp(self, ip: str) -> ftplib.FTP:
        ftp = ftplib.FTP(timeout=10, source_address=(ip, 0))
        ftp.connect("127.0.0.1", 21)
        return ftp

    def ev_ftp_fail(self) -> dict:
        ip = self.names.ip()
        user = self.rng.choice([self.names.bad_user(), self.rng.choice(USERS)])
        ftp = self._ftp(ip)
        try:
            ftp.login(user, "bad-" + self.names.word())
        except ftplib.error_perm:
            pass
        finally:
            ftp.close()
        return self.record("ftp-login-failed", "vsftpd", "vsftpd", "var/log/vsftpd.log", f'"{ip}"',
                           ["ip", "user"], ip=ip, user=user)

    def ev_ftp_anon(self) -> dict:
        ip = self.names.ip()
        email = f"{self.names.word()}@{self.rng.choice(['example.com', 'example.net', 'example.org'])}"
        name = self.rng.choice(FTP_FILES)
        ftp = self._ftp(ip)
        try:
            ftp.login("anonymous", email)
            ftp.retrbinary(f"RETR /pub/{name}", lambda b: None)
            ftp.quit()
        finally:
            ftp.close()
        self.record("ftp-anon-login", "vsftpd", "vsftpd", "var/log/vsftpd.log", f'"{email}"', ["ip"],
                    ip=ip, email=email)
        return self.record("ftp-download", "vsftpd", "xferlog", "var/log/xferlog", f" {email} ",
                           ["ip", "file"], ip=ip, file=f"/srv/ftp/pub/{name}", email=email)

    def ev_ftp_upload(self) -> dict:
        ip, user = self.names.ip(), self.rng.choice([u for u in USERS if u != "backup"])
        fname = f"{self.names.word()}.{self.rng.choice(['tar.gz', 'csv', 'log', 'zip'])}"
        ftp = self._ftp(ip)
        try:
            ftp.login(user, PASSWORD)
            ftp.storbinary(f"STOR {fname}", io.BytesIO(os.urandom(self.rng.randint(300, 9000))))
            ftp.quit()
        finally:
            ftp.close()
        self.record("ftp-upload", "vsftpd", "vsftpd", "var/log/vsftpd.log", fname, ["ip", "user"],
                    ip=ip, user=user, file=fname)
        return self.record("ftp-upload", "vsftpd", "xferlog", "var/log/xferlog", fname, ["ip", "user"],
                           ip=ip, user=user, file=fname)


class DbHost(Host):
    name = "db1"
    precise = True
    EVENTS = [("ev_maria_denied", 4), ("ev_maria_ok", 2), ("ev_pg_fail", 4), ("ev_pg_ok", 2),
              ("ev_ssh_invalid", 1), ("ev_ssh_badpass", 1)]
    ANCHOR_TARGETS = ["ev_maria_denied", "ev_pg_fail", "ev_ssh_invalid"]
    FAST, BURST = ["ev_maria_denied", "ev_maria_ok", "ev_pg_fail", "ev_pg_ok"], (4, 12)
    DBS = ["shop", "billing", "crm", "inventory", "analytics", "hr"]

    def log_files(self) -> list[str]:
        return super().log_files() + ["var/log/mysql/error.log", "var/log/mysql/mysql.log",
                                      "var/log/postgresql/postgresql-15-main.log"]

    def prepare(self) -> None:
        super().prepare()
        for d, owner in (("var/log/mysql", "mysql"), ("var/log/postgresql", "postgres")):
            os.makedirs(self.logpath(d), exist_ok=True)
            shutil.chown(self.logpath(d), owner, owner)
        self.mdata = os.path.join(self.state, "mysql")
        os.makedirs(self.mdata)
        shutil.chown(self.mdata, "mysql", "mysql")
        system.sh(["mariadb-install-db", "--no-defaults", "--user=mysql", f"--datadir={self.mdata}",
                   "--auth-root-authentication-method=socket", "--skip-test-db"])
        mrun = os.path.join(self.state, "mysqlrun")
        os.makedirs(mrun)
        shutil.chown(mrun, "mysql", "mysql")
        self.msock = os.path.join(mrun, "mysqld.sock")
        self.pgdata = os.path.join(self.state, "pg")
        os.makedirs(self.pgdata)
        shutil.chown(self.pgdata, "postgres", "postgres")
        self.pgsock = os.path.join(self.state, "pgsock")
        os.makedirs(self.pgsock)
        shutil.chown(self.pgsock, "postgres", "postgres")
        pwfile = os.path.join(self.state, "pgpw")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        shutil.chown(pwfile, "postgres", "postgres")
        system.sh(["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/initdb", "-D", self.pgdata,
                   "-A", "peer", "--pwfile", pwfile, "-U", "postgres"])
        with open(os.path.join(self.pgdata, "pg_hba.conf"), "w") as f:
            f.write("local all postgres peer\nhost all all 127.0.0.0/8 password\n")
        self.first_start = True

    def start_daemons(self) -> None:
        self.procs.start("mariadbd", [
            "/usr/sbin/mariadbd", "--no-defaults", "--user=mysql", f"--datadir={self.mdata}",
            f"--socket={self.msock}", f"--pid-file={os.path.dirname(self.msock)}/mysqld.pid", "--bind-address=127.0.0.1",
            "--port=3306", "--skip-name-resolve", f"--log-error={self.logpath('var/log/mysql/error.log')}",
            "--general-log=1", f"--general-log-file={self.logpath('var/log/mysql/mysql.log')}",
            "--log-warnings=4", "--innodb-buffer-pool-size=16M", "--performance-schema=0"])
        self.procs.start("postgres", [
            "/usr/lib/postgresql/15/bin/postgres", "-D", self.pgdata, "-c", "port=5433",
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.pgsock}",
            "-c", "logging_collector=on", "-c", f"log_directory={self.logpath('var/log/postgresql')}",
            "-c", "log_filename=postgresql-15-main.log", "-c", "log_rotation_age=0",
            "-c", "log_line_prefix=%m [%p] %q%u@%d from %h ", "-c", "log_connections=on",
            "-c", "log_timezone=UTC", "-c", "shared_buffers=16MB"], user="postgres",
            stop_signal=signal.SIGINT)          # "fast" shutdown: do not wait for clients
        system.wait_port(3306, timeout=60)
        system.wait_port(5433, timeout=60)
        if self.first_start:
            self.first_start = False
            sql = "".join(f"CREATE DATABASE IF NOT EXISTS {d}; " for d in self.DBS)
            for u in USERS:
                sql += f"CREATE USER IF NOT EXISTS '{u}'@'127.%' IDENTIFIED BY '{PASSWORD}'; " \
                       f"GRANT ALL ON *.* TO '{u}'@'127.%'; "
            sh_plain(["mariadb", f"--socket={self.msock}", "-uroot", "-e", sql])
            sql = "".join(f"CREATE ROLE \"{u}\" LOGIN PASSWORD '{PASSWORD}';" for u in USERS)
            sql += "".join(f"CREATE DATABASE {d};" for d in self.DBS)
            for stmt in sql.split(";")[:-1]:
                sh_plain(["runuser", "-u", "postgres", "--", "psql", "-h", self.pgsock, "-p", "5433",
                          "-d", "postgres", "-c", stmt])

    def _maria(self, ip: str, user: str, password: str, db: str) -> None:
        """A MySQL-protocol login (mysql_native_password) from ip; the client binary cannot bind
        a source address."""
        import hashlib
        import socket
        with socket.socket() as s:
            s.settimeout(5)
            s.bind((ip, 0))
            s.connect(("127.0.0.1", 3306))
            head = s.recv(4)
            pkt = s.recv(struct.unpack("<I", head[:3] + b"\0")[0])
            i = pkt.index(b"\0", 1) + 1 + 4
            salt = pkt[i:i + 8]
            i += 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10
            salt += pkt[i:i + 12]
            h1 = hashlib.sha1(password.encode()).digest()
            h2 = hashlib.sha1(salt + hashlib.sha1(h1).digest()).digest()
            token = bytes(a ^ b for a, b in zip(h1, h2))
            caps = 0x1 | 0x8 | 0x200 | 0x8000 | 0x80000
            body = struct.pack("<IIB", caps, 1 << 24, 33) + b"\0" * 23 + user.encode() + b"\0" + \
                bytes([len(token)]) + token + db.encode() + b"\0" + b"mysql_native_password\0"
            s.sendall(struct.pack("<I", len(body))[:3] + b"\1" + body)
            try:
                s.recv(4096)
                s.sendall(b"\1\0\0\0\1")            # COM_QUIT
            except OSError:
                pass

    def ev_maria_denied(self) -> dict:
        ip = self.names.ip()
        user = self.rng.choice([self.names.bad_user(), self.rng.choice(USERS)])
        self._maria(ip, user, "bad-" + self.names.word(), self.rng.choice(self.DBS))
        self.record("mysql-access-denied", "mariadb", "mariadb-error", "var/log/mysql/error.log",
                    f"'{user}'@'{ip}'", ["ip", "user"], ip=ip, user=user)
        return self.record("mysql-access-denied", "mariadb", "mariadb-general", "var/log/mysql/mysql.log",
                           f"'{user}'@'{ip}'", ["ip", "user"], ip=ip, user=user)

    def ev_maria_ok(self) -> dict:
        ip, user, db = self.names.ip(), self.rng.choice(USERS), self.rng.choice(self.DBS)
        self._maria(ip, user, PASSWORD, db)
        return self.record("mysql-connect", "mariadb", "mariadb-general", "var/log/mysql/mysql.log",
                           f"{user}@{ip} ", ["ip", "user", "database"], ip=ip, user=user, database=db)

    def _pg(self, ip: str, user: str, password: str, db: str) -> None:
        params = f"user\0{user}\0database\0{db}\0application_name\0psql\0\0".encode()
        startup = struct.pack("!ii", 8 + len(params), 196608) + params
        pw = password.encode() + b"\0"
        msg = b"p" + struct.pack("!i", 4 + len(pw)) + pw
        tcp_exchange(ip, 5433, [startup, msg, b"X\0\0\0\x04"], read=False)

    def ev_pg_fail(self) -> dict:
        ip = self.names.ip()
        user = self.rng.choice([self.names.bad_user(), self.rng.choice(USERS)])
        self._pg(ip, user, "bad-" + self.names.word(), self.rng.choice(self.DBS))
        return self.record("postgres-auth-failed", "postgresql", "postgresql", "var/log/postgresql/postgresql-15-main.log",
                           f"from {ip} ", ["ip", "user"], ip=ip, user=user)

    def ev_pg_ok(self) -> dict:
        ip, user, db = self.names.ip(), self.rng.choice(USERS), self.rng.choice(self.DBS)
        self._pg(ip, user, PASSWORD, db)
        return self.record("postgres-connect", "postgresql", "postgresql", "var/log/postgresql/postgresql-15-main.log",
                           f"from {ip} ", ["ip", "user", "database"], ip=ip, user=user, database=db)


class NsHost(Host):
    name = "ns1"
    EVENTS = [("ev_dns_query", 5), ("ev_squid_denied", 3), ("ev_squid_miss", 2),
              ("ev_mqtt_denied", 3), ("ev_mqtt_ok", 2), ("ev_ssh_invalid", 1)]
    ANCHOR_TARGETS = ["ev_dns_query", "ev_squid_denied", "ev_mqtt_denied", "ev_ssh_invalid"]
    FAST, BURST = ["ev_dns_query", "ev_squid_miss", "ev_mqtt_ok", "ev_mqtt_denied"], (6, 16)

    def prepare(self) -> None:
        self._prepare()
        shutil.rmtree("/run/log/journal", ignore_errors=True)
        os.makedirs(os.path.dirname(JOURNALD_CONF), exist_ok=True)
        with open(JOURNALD_CONF, "w") as f:      # only what the daemons send, not the host's kernel
            f.write("[Journal]\nStorage=volatile\nReadKMSG=no\nForwardToSyslog=no\nForwardToWall=no\n")

    def finish(self) -> None:
        out = self.logpath("var/log/journal.export")
        with open(out, "w") as f:
            subprocess.run(["journalctl", "-D", "/run/log/journal", "-o", "export", "--no-pager"],
                           stdout=f, stderr=subprocess.DEVNULL, check=False, env=system.plain_env())
        os.remove(JOURNALD_CONF)
        try:
            os.rmdir(os.path.dirname(JOURNALD_CONF))
        except OSError:
            pass
        shutil.rmtree("/run/log/journal", ignore_errors=True)

    def log_files(self) -> list[str]:
        return super().log_files() + ["var/log/unbound/unbound.log",
                                      "var/log/squid/access.log", "var/log/squid/cache.log",
                                      "var/log/mosquitto/mosquitto.log"]

    def _prepare(self) -> None:
        super().prepare()
        for d, owner in (("var/log/unbound", "unbound"), ("var/log/squid", "proxy"),
                         ("var/log/mosquitto", "mosquitto")):
            os.makedirs(self.logpath(d), exist_ok=True)
            shutil.chown(self.logpath(d), owner, owner)
        self.ub_conf = os.path.join(self.state, "unbound.conf")
        ulog = self.logpath("var/log/unbound/unbound.log")
        with open(self.ub_conf, "w") as f:
            f.write(f"""server:
  interface: 127.0.0.1
  port: 5353
  access-control: 127.0.0.0/8 allow
  do-ip6: no
  chroot: ""
  username: "unbound"
  directory: "{self.state}"
  logfile: "{ulog}"
  use-syslog: no
  log-queries: yes
  verbosity: 1
  pidfile: "{self.state}/unbound.pid"
  local-zone: "example.lan." static
  local-data: "www.example.lan. IN A 127.0.0.1"
  local-data: "mail.example.lan. IN A 127.0.0.1"
remote-control:
  control-enable: no
""")
        self.squid_conf = os.path.join(self.state, "squid.conf")
        with open(self.squid_conf, "w") as f:
            f.write(f"""http_port 127.0.0.1:3128
pid_filename {self.state}/squid.pid
access_log stdio:{self.logpath('var/log/squid/access.log')} squid
cache_log {self.logpath('var/log/squid/cache.log')}
cache_store_log none
cache deny all
cache_mem 8 MB
logfile_rotate 0
coredump_dir {self.state}
cache_effective_user proxy
shutdown_lifetime 1 seconds
dns_nameservers 127.0.0.1
acl blocked url_regex -i /blocked/ \\.exe$ /torrent/
acl lo src 127.0.0.0/8
http_access deny blocked
http_access allow lo
http_access deny all
""")
        self.mq_pw = os.path.join(self.state, "mosquitto.passwd")
        open(self.mq_pw, "w").close()
        for u in USERS:
            system.sh(["mosquitto_passwd", "-b", self.mq_pw, u, PASSWORD])
        shutil.chown(self.mq_pw, "mosquitto", "mosquitto")
        self.mq_conf = os.path.join(self.state, "mosquitto.conf")
        with open(self.mq_conf, "w") as f:
            f.write(f"""listener 1883 127.0.0.1
allow_anonymous false
password_file {self.mq_pw}
log_dest file {self.logpath('var/log/mosquitto/mosquitto.log')}
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
log_timestamp true
user mosquitto
""")

    def start_daemons(self) -> None:
        self.procs.start("unbound", ["/usr/sbin/unbound", "-d", "-c", self.ub_conf])
        self.procs.start("squid", ["/usr/sbin/squid", "-N", "-f", self.squid_conf])
        # systemd-journald, standalone, under the same clock: mosquitto's stderr is a journal
        # stream (as a systemd service's would be); the journal is exported as text at the end
        self.procs.start("systemd-journald", [JOURNALD])
        system.wait_file("/run/systemd/journal/stdout", 10)
        self.procs.start("mosquitto", ["systemd-cat", "-t", "mosquitto", "/usr/sbin/mosquitto", "-c", self.mq_conf])
        system.wait_port(5353, timeout=20)
        system.wait_port(3128, timeout=30)
        system.wait_port(1883, timeout=20)

    def ev_dns_query(self) -> dict:
        ip = self.names.ip()
        name = f"{self.names.word()}.{self.rng.choice(['www', 'mail', 'vpn', 'git', 'intranet'])}.example.lan"
        qtype = self.rng.choice(["A", "A", "AAAA", "MX", "TXT"])
        sh_plain(["dig", "-b", ip, "-p", "5353", "@127.0.0.1", name, qtype, "+tries=1", "+time=2"])
        return self.record("dns-query", "unbound", "unbound", "var/log/unbound/unbound.log", f" {name}. ",
                           ["ip", "name"], ip=ip, name=name, qtype=qtype)

    def ev_squid_denied(self) -> dict:
        ip = self.names.ip()
        url = f"http://127.0.0.1:9/{self.rng.choice(['blocked', 'torrent'])}/{self.names.word()}"
        status = http(ip, url, self.rng.choice(AGENTS), proxy="http://127.0.0.1:3128")
        return self.record("squid-denied", "squid", "squid-access", "var/log/squid/access.log", f" {url} ",
                           ["ip", "status"], ip=ip, url=url, status=status)

    def ev_squid_miss(self) -> dict:
        ip = self.names.ip()
        url = f"http://127.0.0.1:9/{self.rng.choice(['updates', 'feeds', 'cdn'])}/{self.names.word()}.json"
        status = http(ip, url, self.rng.choice(AGENTS), proxy="http://127.0.0.1:3128")
        return self.record("squid-miss", "squid", "squid-access", "var/log/squid/access.log", f" {url} ",
                           ["ip", "status"], ip=ip, url=url, status=status)

    def _mqtt(self, ip: str, client_id: str, user: str, password: str) -> None:
        def s(x: str) -> bytes:
            b = x.encode()
            return struct.pack("!H", len(b)) + b
        var = s("MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 60)
        payload = s(client_id) + s(user) + s(password)
        body = var + payload
        pkt = bytes([0x10, len(body)]) + body
        tcp_exchange(ip, 1883, [pkt, b"\xe0\x00"], read=False, timeout=2)

    def ev_mqtt_denied(self) -> dict:
        ip = self.names.ip()
        cid = f"sensor-{self.names.word()}"
        user = self.rng.choice([self.names.bad_user(), self.rng.choice(USERS)])
        self._mqtt(ip, cid, user, "bad" + str(self.rng.randint(1, 99999)))
        self.record("mqtt-denied", "mosquitto", "journald-export", "var/log/journal.export",
                    f" {ip}:", ["ip"], ip=ip, client_id=cid, user=user)
        return self.record("mqtt-denied", "mosquitto", "mosquitto", "var/log/mosquitto/mosquitto.log",
                           f" {ip}:", ["ip"], ip=ip, client_id=cid, user=user)

    def ev_mqtt_ok(self) -> dict:
        ip = self.names.ip()
        cid = f"{self.rng.choice(['thermo', 'meter', 'door', 'cam', 'plug'])}-{self.names.word()}"
        user = self.rng.choice(USERS)
        self._mqtt(ip, cid, user, PASSWORD)
        self.record("mqtt-connect", "mosquitto", "journald-export", "var/log/journal.export",
                    f" {ip}:", ["ip", "client_id", "user"], ip=ip, client_id=cid, user=user)
        return self.record("mqtt-connect", "mosquitto", "mosquitto", "var/log/mosquitto/mosquitto.log",
                           f" {ip}:", ["ip", "client_id", "user"], ip=ip, client_id=cid, user=user)
