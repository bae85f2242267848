"""The final order of search hits: each candidate record scored on the evidence a question gives.

Candidates come from several places (the lexical index, the vector store, the records in the
time the question names, the files it names); reciprocal-rank fusion of those lists treats a
record that is a little lexical and a little dense as better than one that holds every rare
word of a pasted line, and cannot say that a record at the asked second is worth more than
one on another day. So each candidate record gets a score from:

  words   the share of the question's informative words (weighted by IDF) the record holds;
          identifiers count whole and in parts, as the lexical index spells them
  meaning cosine of the question and the chunk's vector (the dense side)
  time    how well the record's time matches what the question says (``query.When.grade``)
  field   the question names the record's program, host or file ("postfix", "mx1", "nginx")
  level   the question's level words ("errors") and the record's level

Weights are fixed, not learned: a time that matches all the question says is worth as much as
all its words (a person who names the second or the day means that record, and a time that
matches nothing takes nothing away); words outweigh meaning (a pasted line or an identifier is
near certain); meaning breaks ties among records with the same words and carries questions in
other words entirely.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

from engine.retrieval import lexical
from engine.retrieval.logformat import LEVEL_RANK

W_WORDS = 1.0
W_MEANING = 0.5
W_TIME = 1.0
W_FIELD = 0.25
W_LEVEL = 0.08
# The record states the kind of value asked for (an address for "which IP"): a tie-breaker
# between lines of one event, scaled by relevance like time.
W_ANSWER = 0.3

# Names a person uses for a program, and the names its files and log lines carry. Only the
# names of programs that log under another name than people call them.
ALIASES = {
    "ssh": ("sshd",), "openssh": ("sshd",), "sshd": ("ssh",),
    "mariadb": ("mysql", "mysqld", "mariadbd"), "mysql": ("mysqld", "mariadb", "mariadbd"),
    "bind": ("named",), "bind9": ("named",), "named": ("bind", "bind9"), "dns": ("named",),
    "apache": ("apache2", "httpd"), "apache2": ("apache", "httpd"), "httpd": ("apache2", "apache"),
    "exim": ("exim4",), "exim4": ("exim",), "postgres": ("postgresql",), "postgresql": ("postgres",),
    "radius": ("freeradius", "radiusd"), "freeradius": ("radius", "radiusd"),
    "imap": ("dovecot", "imap-login"), "pop3": ("dovecot", "pop3-login"),
    "ftp": ("vsftpd", "proftpd", "ftpd"), "cron": ("crond",), "sudo": ("sudo",),
    "mqtt": ("mosquitto",), "redis": ("redis-server",), "cups": ("cupsd",),
}

# Programs that write logs, by the name their lines carry: a question naming one favours its
# lines also inside a file shared by many (syslog, the journal).
KNOWN_PROGRAMS = frozenset(
    {k for k in ALIASES} | {v for vs in ALIASES.values() for v in vs} | set("""
    postfix smtpd smtp qmgr cleanup pickup anvil dovecot nginx lighttpd squid haproxy vsftpd proftpd pure-ftpd
    kernel systemd cron crond anacron sudo su login sshd rsyslogd named dhcpd dhclient ntpd chronyd
    asterisk openvpn mosquitto freeradius radiusd slapd sendmail courier spamd clamd amavis
    postgres mysqld mariadbd redis-server memcached docker containerd kubelet tomcat java
    """.split()))

_WORD = re.compile(r"[a-z][a-z0-9]+")


@dataclass
class Features:
    words: float
    meaning: float
    time: float
    field: float
    level: float
    answer: float = 0.0

    @property
    def relevance(self) -> float:
        """How much the record is about the question at all, 0..1: its words, or its meaning
        (MiniLM puts unrelated log lines below ~0.15 and close paraphrases above ~0.5)."""
        return max(self.words, min(1.0, max(0.0, (self.meaning - 0.15) / 0.35)))

    @property
    def score(self) -> float:
        # A matching time counts fully for a record that is about the question and a little for
        # one that is not: "10.0.0.5 on December 25" must not return any line of December 25.
        timed = W_TIME * self.time * (0.3 + 0.7 * self.relevance)
        answered = W_ANSWER * self.answer * self.relevance
        return (W_WORDS * self.words + W_MEANING * self.meaning + timed + W_FIELD * self.field
                + W_LEVEL * self.level + answered)


class Words:
    """The question's words with their IDF, and which of them a record holds."""

    def __init__(self, question: str, doc_freq: dict[str, int], n_docs: int,
                 prefix_freq: Callable[[str], int] | None = None):
        n = max(n_docs, 1)
        self.idf = {}
        self.prefixes: dict[str, re.Pattern] = {}
        for term in lexical.match_terms(question):      # as the index spells them
            df = doc_freq.get(term, 0)
            word = lexical.decode(term)
            if df == 0 and prefix_freq is not None and word.isalpha() and len(word) >= 3:
                # A word no record holds whole may start words that records hold: "ssh" in
                # "sshd" and "ssh2", "authenticat" in "authentication".
                df = min(prefix_freq(term), n)
                if df:
                    self.prefixes[word] = re.compile(rf"(?<![0-9a-z]){re.escape(word)}[a-z0-9]")
            if df > 0:
                self.idf[word] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        self.total = sum(self.idf.values())
        self._pattern = None
        whole = [t for t in self.idf if t not in self.prefixes]
        if whole:
            alts = "|".join(re.escape(t) for t in sorted(whole, key=len, reverse=True))
            # A term stands alone or as a part of a compound, as in the index: "13:07:50" in
            # "2014-07-02t13:07:50", "postfix" in "postfix/smtpd[12]".
            self._pattern = re.compile(rf"(?<![0-9a-z])(?:t(?=\d))?({alts})(?![0-9a-z])")

    def share(self, text: str) -> float:
        if not self.total:
            return 0.0
        low = text.lower()
        found = set(self._pattern.findall(low)) if self._pattern is not None else set()
        found.update(w for w, p in self.prefixes.items() if p.search(low))
        return sum(self.idf[t] for t in found) / self.total

    def terms(self) -> list[str]:
        return list(self.idf)


class Fields:
    """Programs, hosts and files the question names, among those the sources have."""

    def __init__(self, question: str, path_words: dict[str, int], n_paths: int):
        asked = set(_WORD.findall(question.lower())) - lexical.STOPWORDS - lexical.QUESTION_WORDS
        names = set()
        for w in asked:
            names.add(w)
            names.update(ALIASES.get(w, ()))
        # A name is a field when some files carry it in their path and others do not ("log",
        # "var" in every path say nothing); program names in a line's head count always.
        self.path_names = {w for w in names if 0 < path_words.get(w, 0) < max(n_paths, 2)}
        programs = sorted((names & KNOWN_PROGRAMS) | self.path_names, key=len, reverse=True)
        self._head = re.compile(r"(?<![0-9a-z])(" + "|".join(map(re.escape, programs))
                                + r")(?![0-9a-z])") if programs else None

    def paths_named(self, paths: list[str]) -> list[str]:
        return [p for p in paths if self.path_names & set(path_words(p))]

    def match(self, path: str, record_text: str) -> float:
        if self.path_names and self.path_names & set(path_words(path)):
            return 1.0
        # The record's head: a syslog line's host and program, a logger name.
        if self._head is not None and self._head.search(record_text[:90].lower()):
            return 1.0
        return 0.0


# Cheaper than ``grounding.addresses`` (which validates each address): this runs on every
# record scored for a "which IP" question.
_IP = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])|(?<![0-9a-f:])(?:[0-9a-f]{1,4}:){2,7}[0-9a-f]{1,4}(?![0-9a-f:])", re.I)


def states(asks: str | None, text: str) -> float:
    """1 when the record states a value of the kind the question asks for."""
    if asks == "ip":
        return 1.0 if _IP.search(text) else 0.0
    return 0.0


def path_words(path: str) -> list[str]:
    return _WORD.findall(path.lower())


def level_match(boost: str | None, level: str | None) -> float:
    if not boost or not level:
        return 0.0
    return 1.0 if LEVEL_RANK.get(level, -1) >= LEVEL_RANK[boost] else 0.0
