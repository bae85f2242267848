"""mx1: postfix (mail.log through rsyslog) and dovecot (its own log file), both on loopback."""

from __future__ import annotations

import os
import shutil

from bench.daemons import system
from bench.daemons.base import PASSWORD, USERS, Host, smtp_session, tcp_exchange

DOMAIN = "mx1.example.lan"
SENDER_DOMAINS = ["example.com", "mailer.example.net", "shop.example.org", "lists.example.info",
                  "billing.example.co", "news.example.biz"]


class MailHost(Host):
    name = "mx1"
    syslog_rules = [("auth,authpriv.*", "var/log/auth.log"), ("mail.*", "var/log/mail.log"),
                    ("*.*;auth,authpriv.none;mail.none", "var/log/syslog")]
    EVENTS = [("ev_smtp_unknown_rcpt", 4), ("ev_smtp_delivered", 3), ("ev_smtp_sasl_fail", 3),
              ("ev_imap_fail", 3), ("ev_imap_ok", 2), ("ev_ssh_invalid", 1), ("ev_ssh_badpass", 1)]
    ANCHOR_TARGETS = ["ev_smtp_unknown_rcpt", "ev_smtp_sasl_fail", "ev_imap_fail"]
    FAST = ["ev_smtp_unknown_rcpt", "ev_smtp_delivered", "ev_imap_fail", "ev_imap_ok"]
    BURST = (4, 12)

    def log_files(self) -> list[str]:
        return super().log_files() + ["var/log/dovecot.log"]

    def prepare(self) -> None:
        super().prepare()
        cmds = [
            "myhostname = " + DOMAIN, "mydomain = example.lan", "myorigin = $myhostname",
            "mydestination = $myhostname, localhost", "inet_interfaces = 127.0.0.1",
            "inet_protocols = ipv4", "mynetworks = 127.0.0.1/32", "smtpd_peername_lookup = no",
            "smtpd_sasl_auth_enable = yes", "smtpd_sasl_type = dovecot", "smtpd_sasl_path = private/auth",
            "smtpd_tls_security_level = none", "smtpd_tls_auth_only = no", "smtp_tls_security_level = none",
            "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
            "smtpd_helo_required = yes", "maillog_file =", "syslog_name = postfix", "biff = no",
            "mailbox_size_limit = 0", "alias_maps =", "alias_database =", "compatibility_level = 3.6",
            "smtpd_error_sleep_time = 0", "smtpd_soft_error_limit = 100", "smtpd_hard_error_limit = 200",
        ]
        system.sh(["postconf", "-e", *cmds])
        system.sh(["postconf", "-F", "*/*/chroot = n"])
        # dovecot: its own config and log file; children keep the fake clock (import_environment)
        drun = os.path.join(self.state, "dovecot-run")
        os.makedirs(drun, exist_ok=True)
        passwd = os.path.join(self.state, "dovecot.passwd")
        with open(passwd, "w") as f:
            for u in USERS:
                f.write(f"{u}:{{PLAIN}}{PASSWORD}\n")
        mail = os.path.join(self.state, "mail")
        os.makedirs(mail, exist_ok=True)
        shutil.chown(mail, "mail", "mail")
        os.chmod(mail, 0o775)
        self.dovecot_conf = os.path.join(self.state, "dovecot.conf")
        with open(self.dovecot_conf, "w") as f:
            f.write(f"""protocols = imap
listen = 127.0.0.1
base_dir = {drun}
instance_name = dovecot-bench
log_path = {self.logpath('var/log/dovecot.log')}
log_timestamp = "%b %d %H:%M:%S "
auth_failure_delay = 0
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
first_valid_uid = 8
ssl = no
import_environment = TZ LD_PRELOAD FAKETIME_TIMESTAMP_FILE FAKETIME_NO_CACHE FAKETIME_DONT_FAKE_MONOTONIC
passdb {{
  driver = passwd-file
  args = username_format=%n {passwd}
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={mail}/%n
}}
mail_location = maildir:~/Maildir
service auth {{
  unix_listener /var/spool/postfix/private/auth {{
    mode = 0666
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = 143
  }}
}}
""")

    def start_daemons(self) -> None:
        os.makedirs("/var/spool/postfix/private", exist_ok=True)
        self.procs.start("dovecot", ["/usr/sbin/dovecot", "-F", "-c", self.dovecot_conf])
        system.sh(["postfix", "check"], check=False)
        self.procs.start("postfix", ["/usr/sbin/postfix", "start-fg"], faked=False)
        system.wait_port(25, timeout=20)
        system.wait_port(143, timeout=20)

    def stop_daemons(self) -> None:
        system.sh(["postfix", "stop"], check=False)

    # ----- events
    def _helo(self) -> str:
        return self.rng.choice(["mail", "smtp", "mx", "relay", "out", "gw"]) + str(self.rng.randint(1, 99)) + \
            "." + self.rng.choice(SENDER_DOMAINS)

    def ev_smtp_unknown_rcpt(self) -> dict:
        ip, word = self.names.ip(), self.names.word()
        rcpt = f"{word}@{DOMAIN}"
        smtp_session(ip, 25, self._helo(), f"{self.names.word()}@{self.rng.choice(SENDER_DOMAINS)}", [rcpt], "x")
        return self.record("postfix-unknown-recipient", "postfix", "postfix-syslog", "var/log/mail.log",
                           f"<{rcpt}>", ["ip", "recipient"], ip=ip, recipient=rcpt)

    def ev_smtp_delivered(self) -> dict:
        ip = self.names.ip()
        sender = f"{self.names.word()}@{self.rng.choice(SENDER_DOMAINS)}"
        rcpt = f"{self.rng.choice(USERS)}@{DOMAIN}"
        mid = f"{self.names.word()}.{self.rng.randint(10**6, 10**7)}@{sender.split('@')[1]}"
        body = f"From: <{sender}>\r\nTo: <{rcpt}>\r\nMessage-ID: <{mid}>\r\nSubject: report\r\n\r\nhello\r\n"
        smtp_session(ip, 25, self._helo(), sender, [rcpt], body)
        return self.record("postfix-accepted", "postfix", "postfix-syslog", "var/log/mail.log",
                           f"from=<{sender}>", ["queue_id"], ip=ip, sender=sender, recipient=rcpt)

    def ev_smtp_sasl_fail(self) -> dict:
        ip = self.names.ip()
        user = self.rng.choice([self.names.bad_user(), self.rng.choice(USERS)])
        smtp_session(ip, 25, self._helo(), "x@example.com", [f"alice@{DOMAIN}"], "x",
                     auth=(user, "wrong-" + self.names.word()))
        return self.record("postfix-sasl-failed", "postfix", "postfix-syslog", "var/log/mail.log",
                           f"[{ip}]: SASL", ["ip"], ip=ip, user=user)

    def ev_imap_fail(self) -> dict:
        ip, user = self.names.ip(), self.names.bad_user()
        tcp_exchange(ip, 143, [f"a1 LOGIN {user} wrong{self.rng.randint(1, 999)}\r\n".encode(), b"a2 LOGOUT\r\n"])
        return self.record("dovecot-auth-failed", "dovecot", "dovecot", "var/log/dovecot.log",
                           f"rip={ip},", ["ip", "user"], ip=ip, user=user)

    def ev_imap_ok(self) -> dict:
        ip, user = self.names.ip(), self.rng.choice(USERS)
        tcp_exchange(ip, 143, [f"a1 LOGIN {user} {PASSWORD}\r\n".encode(), b"a2 LOGOUT\r\n"])
        return self.record("dovecot-login", "dovecot", "dovecot", "var/log/dovecot.log",
                           f"rip={ip},", ["ip", "user"], ip=ip, user=user)
