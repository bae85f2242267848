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
# Words of the question about the question ("which IP caused the failure logged at ...") that no
# record is about: left out of the lexical query so a rare one cannot outweigh the real words.
QUESTION_WORDS = frozenset("""whose whom caused cause causes logged logging entry entries record records
mentioned mention appear appears appeared see saw seen get got was were value exactly please
tried try""".split())


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
        if _IPV4.match(tok) or _UUID.match(tok):
            continue
        if _IPV6.match(tok):
            out.extend(_IPV4_IN.findall(tok))   # ::ffff:10.0.0.5 is 10.0.0.5 too
            continue
        parts = [p for p in _SPLIT.split(tok) if p]
        if len(parts) > 1:
            kept = [p for p in parts if not p.isdigit() or len(p) >= 3]
            out.extend(kept)
            out.extend(t for t in dict.fromkeys(_inner(tok)) if t not in kept)
    return out


_IPV4_IN = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_CLOCK_IN = re.compile(r"(?<!\d)(\d{2}):(\d{2})(?::(\d{2}))?(?!\d)")
_NAME_SEP = re.compile(r"[:@=]+")
_DATE_IN = re.compile(r"(?<!\d)(?:19|20)\d{2}-\d{2}-\d{2}(?!\d)")


def _inner(tok: str) -> list[str]:
    """Identifiers inside a compound token, whole: the IP of "10.0.0.5#53" or "[10.0.0.5]:22",
    the clock and date of "2014-07-02t13:07:50.123z" or "14/jul/2014:13:07:50" (a pasted
    "13:07:50" or "13:07" then finds them), the names around ":" and "@" ("mx1.example.org:25",
    "alice@mx1.example.org")."""
    # Cheap guards first: this runs for every compound token of every indexed line.
    out = _IPV4_IN.findall(tok) if tok.count(".") >= 3 else []
    if "-" in tok:
        out += _DATE_IN.findall(tok)
    if ":" not in tok and "@" not in tok and "=" not in tok:
        return out
    for h, m, sec in _CLOCK_IN.findall(tok):
        out.append(f"{h}:{m}")
        if sec:
            out.append(f"{h}:{m}:{sec}")
    for piece in _NAME_SEP.split(tok):
        piece = _clean(piece)
        if (piece and piece != tok and (piece[0].isalpha() or piece[0] == "/")
                and any(c in piece for c in ".-/")):
            out.append(piece)
    return [t for t in out if t != tok]


def index_text(text: str) -> str:
    """The FTS column value for ``text``."""
    return " ".join(_encode(t) for t in tokens(text))


def match_terms(text: str, *, drop_stopwords: bool = True) -> list[str]:
    """The query's tokens as the FTS column spells them, once each, in order. Compound
    identifiers count whole only, so an IP never matches on its octets."""
    seen: dict[str, None] = {}
    for tok in _query_tokens(text, drop_stopwords):
        seen.setdefault(_encode(tok), None)
    return list(seen)


_SHORT_CLOCK = re.compile(r"^(\d):(\d{2}(?::\d{2})?)$")


def _query_tokens(text: str, drop_stopwords: bool = True) -> list[str]:
    """The question's tokens as typed, less what no record is about: stop words, words about
    the question, and numbers of one or two digits (days of the month, mostly: the date is
    time evidence, and "7" is in every line of the 7th). A clock is spelled as logs spell it
    ("3:10" is "03:10")."""
    out = []
    for run in _RUN.findall(text.lower()):
        tok = _clean(run)
        if not tok:
            continue
        if drop_stopwords and (tok in STOPWORDS or tok in QUESTION_WORDS or (tok.isdigit() and len(tok) <= 2)):
            continue
        m = _SHORT_CLOCK.match(tok)
        out.append(f"0{m.group(1)}:{m.group(2)}" if m else tok)
    return out


def any_of(terms: list[str]) -> str:
    return " OR ".join(f'"{t}"' for t in terms)


# Postings a lexical query may rank. FTS5's bm25() scores every chunk the expression matches, and
# for its IDF it walks every posting of every phrase in the expression, with a callback per row.
# A plain-language question made of common words ("why did the payment service time out") thus
# cost 0.5 s at 1M log lines (140k chunks). So only rare words (rarest first, while their postings
# fit this budget) go to FTS5; common words, which carry little weight anyway (low IDF), are
# scored in Python on the few candidates (``Scorer``), and the dense side handles the meaning.
POSTINGS_BUDGET = 5000


def split_rare(terms: list[str], doc_freq: dict[str, int], budget: int = POSTINGS_BUDGET) -> tuple[list[str], list[str]]:
    """(rare, common) among the terms present in the index: rare ones rarest first while their
    postings fit ``budget``; the rest, in query order."""
    present = [t for t in terms if doc_freq.get(t, 0) > 0]
    rare, used = [], 0
    for t in sorted(present, key=lambda t: doc_freq[t]):
        if used + doc_freq[t] > budget:
            break
        rare.append(t)
        used += doc_freq[t]
    return rare, [t for t in present if t not in rare]


def all_of(terms: list[str]) -> str:
    return " AND ".join(f'"{t}"' for t in terms)


def decode(term: str) -> str:
    """The raw token of an FTS term (inverse of the encoding)."""
    out, i = [], 0
    while i < len(term):
        if term[i] == "_" and i + 1 < len(term) and term[i + 1] in _NAME_SEPS:
            out.append(_NAME_SEPS[term[i + 1]])
            i += 2
        else:
            out.append(term[i])
            i += 1
    return "".join(out)


_NAME_SEPS = {v: k for k, v in _SEP_NAMES.items()}


class Scorer:
    """BM25 over a handful of candidate chunks, in Python, with document frequencies from the
    index: what FTS5 would compute, without its walk over every posting of the common words."""

    K1, B = 1.2, 0.75

    def __init__(self, terms: list[str], doc_freq: dict[str, int], n_docs: int):
        import math

        n = max(n_docs, 1)
        self.idf = {decode(t): math.log(1 + (n - doc_freq.get(t, 0) + 0.5) / (doc_freq.get(t, 0) + 0.5))
                    for t in terms if doc_freq.get(t, 0) > 0}
        self._pattern: re.Pattern | None = None

    def scores(self, texts: list[str]) -> list[float]:
        """One regex pass per text (full tokenizing cost ~0.5 ms a chunk); a term counts where it
        stands alone or as a part of a compound name, as in the index. Length is in characters."""
        from collections import Counter

        if not self.idf:
            return [0.0] * len(texts)
        if self._pattern is None:
            alts = "|".join(re.escape(t) for t in sorted(self.idf, key=len, reverse=True))
            self._pattern = re.compile(rf"(?<![\w])({alts})(?![\w])")
        counts = [Counter(self._pattern.findall(t.lower())) for t in texts]
        lengths = [len(t) for t in texts]
        avg = (sum(lengths) / len(lengths)) if lengths else 1.0
        out = []
        for c, n in zip(counts, lengths):
            norm = self.K1 * (1 - self.B + self.B * n / max(avg, 1.0))
            out.append(sum(self.idf[t] * k * (self.K1 + 1) / (k + norm) for t, k in c.items()))
        return out


def query_terms(text: str) -> list[str]:
    """Query tokens in raw form, for picking the best record inside a chunk."""
    return _query_tokens(text)

