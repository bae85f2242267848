"""Tokens for the lexical (FTS5) index that keep identifiers whole.

FTS5's tokenizers split "10.0.0.5", "ORA-00942", "web-01.example.com" and UUIDs into pieces,
and then a search for one IP also finds every line with a "10" and a "5". We tokenize in
Python instead: an identifier is one token (and, for names, also its word parts, so "orders"
still finds "/srv/orders/api.py"). Separators inside a token are spelled as letters after an
underscore, so FTS5 (``unicode61 tokenchars '_'``) sees one word; the mapping is one-to-one,
and queries go through the same function, so the exact identifier matches exactly.
"""

from __future__ import annotations

import re

FTS_TOKENIZE = "unicode61 remove_diacritics 2 tokenchars '_'"

_RUN = re.compile(r"[\w.:/@\-\\%+#]+", re.UNICODE)
_EDGE = ".:/@-\\%+#"
_IPV4 = re.compile(r"^(?:\d{1,3}\.){3}\d{1,3}$")
_IPV4_PORT = re.compile(r"^((?:\d{1,3}\.){3}\d{1,3}):(\d{1,5})$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_IPV6 = re.compile(r"^(?=.*:.*:)[0-9a-f:]+$")
_SPLIT = re.compile(r"[.:/@\-\\%+#_]+")
_SEP_NAMES = {".": "d", ":": "c", "/": "s", "@": "a", "-": "h", "\\": "b", "%": "p", "+": "l", "#": "n", "_": "u"}

STOPWORDS = frozenset("""a an and are as at be been but by can did do does for from had has have how i if in
into is it its me my no not of on or our so than that the their them then there these they this to
was we were what when where which who why will with you your show find list give tell any all
about happened happen did there lines line log logs""".split())


def _clean(run: str) -> str:
    # A leading slash is part of an absolute path; other edge punctuation is sentence noise.
    return run.rstrip(_EDGE).lstrip(_EDGE.replace("/", ""))


def _encode(token: str) -> str:
    return "".join("_" + _SEP_NAMES[c] if c in _SEP_NAMES else c for c in token)


def tokens(text: str) -> list[str]:
    """Raw tokens of ``text``: identifiers whole, plus the word parts of compound names."""
    out: list[str] = []
    for run in _RUN.findall(text.lower()):
        tok = _clean(run)
        if not tok:
            continue
        out.append(tok)
        m = _IPV4_PORT.match(tok)
        if m:
            out.append(m.group(1))
            continue
        if _IPV4.match(tok) or _UUID.match(tok) or _IPV6.match(tok):
            continue
        parts = [p for p in _SPLIT.split(tok) if p]
        if len(parts) > 1:
            out.extend(p for p in parts if not p.isdigit() or len(p) >= 3)
    return out


def index_text(text: str) -> str:
    """The FTS column value for ``text``."""
    return " ".join(_encode(t) for t in tokens(text))


def match_query(text: str, *, drop_stopwords: bool = True) -> str | None:
    """An FTS5 MATCH expression: any query token, BM25 ranks records with more (and rarer) ones.
    Compound identifiers count whole only, so an IP never matches on its octets."""
    seen: dict[str, None] = {}
    for run in _RUN.findall(text.lower()):
        tok = _clean(run)
        if not tok or (drop_stopwords and tok in STOPWORDS):
            continue
        seen.setdefault(_encode(tok), None)
    if not seen:
        return None
    return " OR ".join(f'"{t}"' for t in seen)


def query_terms(text: str) -> list[str]:
    """Query tokens in raw form, for picking the best record inside a chunk."""
    return [t for t in (_clean(r) for r in _RUN.findall(text.lower())) if t and t not in STOPWORDS]
