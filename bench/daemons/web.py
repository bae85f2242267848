"""web1: nginx behind haproxy (haproxy logs through rsyslog, RFC 3339 stamps on this host);
web2: apache2 and lighttpd. All listen on 127.0.0.1 only."""

from __future__ import annotations

import os
import shutil
import time

from bench.daemons import system
from bench.daemons.base import AGENTS, PASSWORD, USERS, Host, http

SECTIONS = ["docs", "shop", "blog", "api", "static", "files", "media", "news", "wiki", "support"]
PROBES = ["wp-login.php", "phpmyadmin/index.php", ".env", ".git/config", "cgi-bin/luci", "admin.php",
          "xmlrpc.php", "backup.zip", "config.json", "server-status", "vendor/phpunit/eval-stdin.php"]


def _htpasswd(path: str) -> None:
    with open(path, "w") as f:
        for u in USERS:
            h = system.sh(["openssl", "passwd", "-apr1", PASSWORD]).stdout.strip()
            f.write(f"{u}:{h}\n")
    os.chmod(path, 0o644)


def _docroot(path: str, sections: list[str]) -> None:
    system.fresh_dir(path)
    with open(os.path.join(path, "index.html"), "w") as f:
        f.write("<html><body>ok</body></html>\n")
    for s in sections:
        os.makedirs(os.path.join(path, s), exist_ok=True)
        with open(os.path.join(path, s, "index.html"), "w") as f:
            f.write(f"<html><body>{s}</body></html>\n")


class WebEvents(Host):
    """Shared event makers for a web server at self.port writing access/error logs."""

    port = 0
    program = ""
    access_file = error_file = ""
    secure_prefix = "/admin/"
    denied_prefix = "/private/"

    def error_marker(self, ip: str) -> str:
        return f"client: {ip}," if self.program == "nginx" else f"[client {ip}:"

    def _url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _rec(self, kind: str, which: str, marker: str, ask: list[str], **fields) -> dict:
        fmt = f"{self.program}-{which}"
        path = self.access_file if which == "access" else self.error_file
        return self.record(kind, self.program, fmt, path, marker, ask, **fields)

    def ev_http_404(self) -> dict:
        ip = self.names.ip()
        path = f"/{self.rng.choice(SECTIONS)}/{self.names.word()}.html"
        status = http(ip, self._url(path), self.rng.choice(AGENTS))
        ev = self._rec("http-404", "access", f" {path} ", ["ip", "status"], ip=ip, path=path, status=status)
        self._rec("http-404", "error", self.error_marker(ip), ["ip"], ip=ip, path=path, status=status)
        return ev

    def ev_http_probe(self) -> dict:
        ip = self.names.ip()
        path = f"/{self.names.word()}/{self.rng.choice(PROBES)}"
        status = http(ip, self._url(path), self.rng.choice(AGENTS))
        return self._rec("http-probe", "access", f" {path} ", ["ip", "status"], ip=ip, path=path, status=status)

    def ev_http_ok(self) -> dict:
        ip = self.names.ip()
        path = f"/{self.rng.choice(SECTIONS)}/?ref={self.names.word()}"
        status = http(ip, self._url(path), self.rng.choice(AGENTS))
        return self._rec("http-ok", "access", f" {path} ", ["ip", "status"], ip=ip, path=path, status=status)

    def ev_http_denied(self) -> dict:
        ip = self.names.ip()
        path = f"{self.denied_prefix}{self.names.word()}.tar.gz"
        status = http(ip, self._url(path), self.rng.choice(AGENTS))
        ev = self._rec("http-denied", "access", f" {path} ", ["ip", "status"], ip=ip, path=path, status=status)
        self._rec("http-denied", "error", self.error_marker(ip), ["ip"], ip=ip, path=path, status=status)
        return ev

    def ev_http_badauth(self) -> dict:
        ip = self.names.ip()
        user = self.rng.choice([self.names.bad_user(), self.rng.choice(USERS)])
        path = f"{self.secure_prefix}{self.names.word()}.html"
        status = http(ip, self._url(path), self.rng.choice(AGENTS), auth=f"{user}:bad{self.rng.randint(1, 9999)}")
        ev = self._rec("http-auth-failed", "access", f" {path} ", ["ip", "user", "status"], ip=ip, path=path,
                       user=user, status=status)
        self._rec("http-auth-failed", "error", self.error_marker(ip), ["ip", "user"], ip=ip, path=path, user=user)
        return ev


class NginxHost(WebEvents):
    name = "web1"
    precise = True
    port = 8080
    program = "nginx"
    access_file, error_file = "var/log/nginx/access.log", "var/log/nginx/error.log"
    syslog_rules = [("auth,authpriv.*", "var/log/auth.log"), ("local0.*", "var/log/haproxy.log"),
                    ("*.*;auth,authpriv.none;local0.none", "var/log/syslog")]
    EVENTS = [("ev_http_404", 4), ("ev_http_probe", 2), ("ev_http_ok", 2), ("ev_http_denied", 2),
              ("ev_http_badauth", 3), ("ev_haproxy_denied", 3), ("ev_haproxy_ok", 2),
              ("ev_ssh_invalid", 1), ("ev_ssh_badpass", 1)]
    ANCHOR_TARGETS = ["ev_http_badauth", "ev_http_denied", "ev_ssh_invalid", "ev_haproxy_denied"]
    FAST = ["ev_http_404", "ev_http_ok", "ev_http_probe", "ev_haproxy_ok", "ev_haproxy_denied"]
    BURST = (6, 16)

    def log_files(self) -> list[str]:
        return super().log_files() + [self.access_file, self.error_file]

    def prepare(self) -> None:
        super().prepare()
        os.makedirs(self.logpath("var/log/nginx"), exist_ok=True)
        www = "/srv/www/web1"
        _docroot(www, SECTIONS)
        htp = os.path.join(self.state, "htpasswd")
        _htpasswd(htp)
        self.nginx_conf = os.path.join(self.state, "nginx.conf")
        with open(self.nginx_conf, "w") as f:
            f.write(f"""user www-data;
worker_processes 1;
pid {self.state}/nginx.pid;
error_log {self.logpath(self.error_file)} info;
env LD_PRELOAD; env FAKETIME_TIMESTAMP_FILE; env FAKETIME_NO_CACHE; env FAKETIME_DONT_FAKE_MONOTONIC; env TZ;
events {{ worker_connections 256; }}
http {{
  include /etc/nginx/mime.types;
  access_log {self.logpath(self.access_file)} combined;
  client_body_temp_path {self.state}/nginx-body;
  proxy_temp_path {self.state}/nginx-proxy;
  fastcgi_temp_path {self.state}/nginx-fcgi;
  uwsgi_temp_path {self.state}/nginx-uwsgi;
  scgi_temp_path {self.state}/nginx-scgi;
  server {{
    listen 127.0.0.1:{self.port};
    server_name web1.example.lan;
    root {www};
    location {self.denied_prefix} {{ deny all; }}
    location {self.secure_prefix} {{ auth_basic "Staff only"; auth_basic_user_file {htp}; }}
  }}
}}
""")
        self.haproxy_conf = os.path.join(self.state, "haproxy.cfg")
        with open(self.haproxy_conf, "w") as f:
            f.write(f"""global
  log /dev/log local0
  pidfile {self.state}/haproxy.pid
defaults
  log global
  mode http
  option httplog
  timeout connect 2s
  timeout client 5s
  timeout server 5s
frontend fe_edge
  bind 127.0.0.1:8090
  http-request deny deny_status 403 if {{ path_beg /wp-admin /.env /cgi-bin /phpmyadmin }}
  http-request return status 200 content-type text/plain string ok if {{ path_beg /health }}
  default_backend be_app
backend be_app
  server app1 127.0.0.1:{self.port}
""")

    def start_daemons(self) -> None:
        self.procs.start("nginx", ["nginx", "-c", self.nginx_conf, "-g", "daemon off;"])
        self.procs.start("haproxy", ["haproxy", "-db", "-f", self.haproxy_conf])
        system.wait_port(self.port, timeout=15)
        system.wait_port(8090, timeout=15)

    def ev_haproxy_denied(self) -> dict:
        ip = self.names.ip()
        path = f"{self.rng.choice(['/wp-admin/', '/.env/', '/cgi-bin/', '/phpmyadmin/'])}{self.names.word()}"
        status = http(ip, f"http://127.0.0.1:8090{path}", self.rng.choice(AGENTS))
        return self.record("haproxy-denied", "haproxy", "haproxy-rfc3339", "var/log/haproxy.log",
                           f" {path} ", ["ip", "status"], ip=ip, path=path, status=status)

    def ev_haproxy_ok(self) -> dict:
        ip = self.names.ip()
        path = f"/{self.rng.choice(SECTIONS)}/?q={self.names.word()}"
        status = http(ip, f"http://127.0.0.1:8090{path}", self.rng.choice(AGENTS))
        return self.record("haproxy-pass", "haproxy", "haproxy-rfc3339", "var/log/haproxy.log",
                           f" {path} ", ["ip", "status"], ip=ip, path=path, status=status)


class ApacheHost(WebEvents):
    name = "web2"
    port = 8081
    program = "apache"
    access_file, error_file = "var/log/apache2/access.log", "var/log/apache2/error.log"
    EVENTS = [("ev_http_404", 4), ("ev_http_probe", 2), ("ev_http_ok", 2), ("ev_http_denied", 2),
              ("ev_http_badauth", 3), ("ev_lighttpd_404", 2), ("ev_lighttpd_badauth", 3),
              ("ev_ssh_invalid", 1), ("ev_ssh_ok", 1)]
    ANCHOR_TARGETS = ["ev_http_badauth", "ev_http_404", "ev_lighttpd_badauth"]
    FAST = ["ev_http_404", "ev_http_ok", "ev_http_probe"]
    BURST = (6, 16)
    moved_at = 0.0
    secure_prefix = "/secure/"

    def log_files(self) -> list[str]:
        return super().log_files() + [self.access_file, self.error_file, "var/log/lighttpd/access.log",
                                      "var/log/lighttpd/error.log"]

    def prepare(self) -> None:
        super().prepare()
        os.makedirs(self.logpath("var/log/apache2"), exist_ok=True)
        os.makedirs(self.logpath("var/log/lighttpd"), exist_ok=True)
        shutil.chown(self.logpath("var/log/lighttpd"), "www-data", "www-data")
        www = "/srv/www/web2"
        _docroot(www, SECTIONS)
        lwww = "/srv/www/web2-static"
        _docroot(lwww, SECTIONS)
        htp = os.path.join(self.state, "htpasswd")
        _htpasswd(htp)
        mods = ["mpm_prefork", "authz_core", "authz_host", "authn_core", "authn_file", "auth_basic",
                "authz_user", "dir", "mime", "alias"]
        load = "\n".join(f"LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so" for m in mods)
        self.apache_conf = os.path.join(self.state, "apache2.conf")
        with open(self.apache_conf, "w") as f:
            f.write(f"""ServerRoot /etc/apache2
{load}
Listen 127.0.0.1:{self.port}
PidFile {self.state}/apache2.pid
Mutex file:{self.state} default
User www-data
Group www-data
ServerName web2.example.lan
TypesConfig /etc/mime.types
ErrorLog {self.logpath(self.error_file)}
LogLevel warn core:info auth_basic:info authz_core:info
LogFormat "%h %l %u %t \\"%r\\" %>s %O \\"%{{Referer}}i\\" \\"%{{User-Agent}}i\\"" combined
CustomLog {self.logpath(self.access_file)} combined
DocumentRoot {www}
<Directory {www}>
  Require all granted
</Directory>
<Location {self.secure_prefix}>
  AuthType Basic
  AuthName "Staff"
  AuthUserFile {htp}
  Require valid-user
</Location>
<Location {self.denied_prefix}>
  Require all denied
</Location>
""")
        self.lighttpd_conf = os.path.join(self.state, "lighttpd.conf")
        with open(self.lighttpd_conf, "w") as f:
            f.write(f"""server.modules = ("mod_access", "mod_accesslog", "mod_auth", "mod_authn_file")
server.document-root = "{lwww}"
server.bind = "127.0.0.1"
server.port = 8082
server.username = "www-data"
server.groupname = "www-data"
server.pid-file = "{self.state}/lighttpd.pid"
server.errorlog = "{self.logpath('var/log/lighttpd/error.log')}"
accesslog.filename = "{self.logpath('var/log/lighttpd/access.log')}"
debug.log-file-not-found = "enable"
index-file.names = ("index.html")
auth.backend = "htpasswd"
auth.backend.htpasswd.userfile = "{htp}"
auth.require = ("/members/" => ("method" => "basic", "realm" => "members", "require" => "valid-user"))
""")

    def start_daemons(self) -> None:
        self.procs.start("apache2", ["/usr/sbin/apache2", "-DFOREGROUND", "-f", self.apache_conf],
                         env={"APACHE_LOG_DIR": self.logpath("var/log/apache2")})
        self.procs.start("lighttpd", ["lighttpd", "-D", "-f", self.lighttpd_conf])
        system.wait_port(self.port, timeout=15)
        system.wait_port(8082, timeout=15)

    def clock_moved(self) -> None:
        self.moved_at = time.time()

    def settle(self) -> None:
        """lighttpd re-reads the wall clock about once a (real) second: give it that second after
        the fake clock moved, or it stamps the request with the time before the move."""
        time.sleep(max(0.0, 1.05 - (time.time() - self.moved_at)))

    def ev_lighttpd_404(self) -> dict:
        self.settle()
        ip = self.names.ip()
        path = f"/{self.rng.choice(SECTIONS)}/{self.names.word()}.pdf"
        status = http(ip, f"http://127.0.0.1:8082{path}", self.rng.choice(AGENTS))
        return self.record("http-404", "lighttpd", "lighttpd-access", "var/log/lighttpd/access.log",
                           f" {path} ", ["ip", "status"], ip=ip, path=path, status=status)

    def ev_lighttpd_badauth(self) -> dict:
        self.settle()
        ip = self.names.ip()
        user = self.rng.choice(USERS)
        path = f"/members/{self.names.word()}.html"
        status = http(ip, f"http://127.0.0.1:8082{path}", self.rng.choice(AGENTS), auth=f"{user}:nope{self.rng.randint(1, 999)}")
        self.record("http-auth-failed", "lighttpd", "lighttpd-access", "var/log/lighttpd/access.log",
                    f" {path} ", ["ip", "status", "user"], ip=ip, path=path, user=user, status=status)
        return self.record("http-auth-failed", "lighttpd", "lighttpd-error", "var/log/lighttpd/error.log",
                           path, ["ip", "user"], ip=ip, path=path, user=user)
