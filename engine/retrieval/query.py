"""What a question says about time and severity: evidence that raises matching records.

Policy (kept in step with ``logformat``'s time policy):
- Times in a question are local time of this machine, like timestamps without a zone in logs.
- Time is evidence, never a gate. A record whose time matches what the question says ranks
  higher; a question whose time matches nothing, or was misread, still finds the record its
  words find. The time words stay in the lexical query too, so "13:07:50" matches the line
  that shows 13:07:50, whatever the file's year or zone.
- A date without a year ("April 7", "7 Apr", "the 7th of April") means that day in any year
  the sources hold records for: logs collected over years are asked about by month and day.
- "at 16:47:48" is that second; "at 16:47" that minute; "around 10:00" is ten minutes either
  side; "between 10:00 and 10:05" is that span; a date alone is the whole day; "yesterday" and
  "today" are days; "last 15 minutes / 2 hours / 3 days" ends now. A clock alone ("13:07:50")
  or a month with a clock ("Jul 14:16:55", a pasted line missing its day) is evidence too.
- "X just after Y" / "X right before Y": Y is found first, and its time becomes the evidence
  for X (``Relation``).
- Level words ("errors", "warnings", "fatal") boost records of that level or worse; they do
  not filter, since "why did the upload fail" can be answered by an INFO line. An explicit
  level filter (``--level``) does filter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from engine.retrieval.logformat import MONTHS

_MONTH = r"(?P<mon>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
# A day is not the hour of a clock that follows ("Jul 14:16:55" has no day).
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?(?![:\d])"
_YEAR = r"(?:,?\s+(?P<year>(?:19|20)\d{2})(?![:\d]))?"
_DATE_PATTERNS = [
    re.compile(r"\b(?P<iso>(?:19|20)\d{2}-\d{2}-\d{2})", re.I),
    # Apache/CUPS "14/Jul/2014:10:00:00", BIND "14-Jul-2014 10:00:00"
    re.compile(r"\b(?P<day>\d{1,2})[/-]" + _MONTH + r"[/-](?P<year>(?:19|20)\d{2})\b", re.I),
    # ctime: "Tue Jul 14 10:00:00 2014" (the year after the clock)
    re.compile(r"\b" + _MONTH + r"\.?\s+(?P<day>\d{1,2})\s+\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?\s+(?P<year>(?:19|20)\d{2})\b", re.I),
    re.compile(r"\b(?:on\s+)?" + _MONTH + r"\.?\s+" + _DAY + _YEAR + r"\b", re.I),
    re.compile(r"\b(?:on\s+)?(?:the\s+)?" + _DAY + r"\s+(?:of\s+)?" + _MONTH + _YEAR + r"\b", re.I),
    re.compile(r"\b(?P<rel>yesterday|today)\b", re.I),
]
# A month with no day: "Jul 14:16:55" (a pasted line that lost its day), "in July".
_MONTH_ONLY = re.compile(r"\b" + _MONTH + r"\b\.?", re.I)
_YEAR_ONLY = re.compile(r"\bin\s+(?P<year>(?:19|20)\d{2})\b", re.I)
_T = r"\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?:\s?[ap]\.?m\.?)?|\d{1,2}\s?[ap]\.?m\.?"
_SPAN = re.compile(rf"\b(?:between|from)\s+(?P<a>{_T})\s+(?:and|to|until|-)\s+(?P<b>{_T})", re.I)
_AROUND = re.compile(rf"\b(?:around|about|near|approximately|circa|roughly|~)\s*(?:at\s+)?(?P<a>{_T})", re.I)
_AT = re.compile(rf"(?<![\d:])(?P<a>{_T})(?![\d:])", re.I)
_LAST = re.compile(r"\b(?:in\s+the\s+)?(?:last|past)\s+(?P<n>\d+)\s*(?P<u>sec|second|min|minute|hour|hr|day|week)s?\b", re.I)
_UNITS = {"sec": 1, "second": 1, "min": 60, "minute": 60, "hour": 3600, "hr": 3600, "day": 86400, "week": 604800}
# "X just after Y", "X shortly before Y": Y names an event whose time places X.
_RELATION = re.compile(r"\b(?P<rel>after|before|following|preceding)\s+(?P<anchor>.{6,})$", re.I | re.S)
# Where the anchor's clause ends when the relation opens the sentence ("Right after X, Y",
# "A few seconds after X we saw Y").
_CLAUSE_END = re.compile(r",\s+|\s+(?:we|I|they)\s+(?:saw|got|had|noticed|found)\s+|\s+there\s+(?:was|were|came)\s+"
                         r"|\s+(?=\w+\s+(?:logged|reported|wrote|showed|recorded)\b)", re.I)

_LEVEL_WORDS = [
    (re.compile(r"\b(fatal|critical|crash(?:es|ed)?|panic)\b", re.I), "CRITICAL"),
    (re.compile(r"\b(errors?|exceptions?|failures?|failed|fail(?:s|ing)?|stack ?traces?|tracebacks?)\b", re.I), "ERROR"),
    (re.compile(r"\b(warnings?|warn)\b", re.I), "WARNING"),
]

AROUND_S = 600
RELATION_S = 1800   # "just after Y": within half an hour of Y


@dataclass
class When:
    """What the question says of a record's local time; None where it says nothing."""
    year: int | None = None
    month: int | None = None
    day: int | None = None
    clock: tuple[int, int] | None = None        # seconds of the day, [lo, hi)
    absolute: tuple[float, float] | None = None  # an epoch span ("last 2 hours")
    near: tuple[float, bool] | None = None       # (epoch of Y, after?) for "just after/before Y"
    center: tuple[int, int] | None = None        # "around 9:08": the minute said, inside ``clock``
    # Y's year is a guess (its line has none; the indexer inferred one from the file's date and
    # month order, which a file written now and then over years defeats): near Y in any year.
    near_yearless: bool = False

    def grade(self, epoch: float | None, text: str = "") -> float:
        """How well a record's time matches: 1 all that was said, a part for part of it
        (a date right but the clock wrong is a near miss; a clock right on another day is
        mostly chance), 0 nothing. The clock also matches as written in the record's text,
        which is what a person reads and quotes whatever the zone."""
        if self.near is not None:
            if epoch is None:
                return 0.0
            anchor, after = self.near
            weight = 1.0
            if self.near_yearless:
                moved = _same_year(epoch, anchor)
                if moved is None:
                    return 0.0
                # The guessed year is usually right (most files are written every day): another
                # year counts, less.
                weight = 1.0 if abs(moved - epoch) < 2 * RELATION_S else 0.7
                epoch = moved
            gap = epoch - anchor if after else anchor - epoch
            return weight * (1.0 - 0.5 * gap / RELATION_S) if 0 <= gap < RELATION_S else 0.0
        if self.absolute is not None:
            if epoch is None:
                return 0.0
            a, b = self.absolute
            return 1.0 if a <= epoch < b else 0.0
        if epoch is None:
            return 0.5 if self.clock and _clock_written(self.clock, text) else 0.0
        dt = datetime.fromtimestamp(epoch)
        dated = [v for v in (self.year, self.month, self.day) if v is not None]
        date_ok = all(want is None or want == got for want, got in
                      ((self.year, dt.year), (self.month, dt.month), (self.day, dt.day)))
        if self.clock is None:
            return 1.0 if dated and date_ok else 0.0
        sod = dt.hour * 3600 + dt.minute * 60 + dt.second
        clock_ok = self.clock[0] <= sod < self.clock[1] or _clock_written(self.clock, text)
        if clock_ok:
            if date_ok:
                if self.center is not None:
                    # "Around 9:08" is most likely 9:08 itself, and less likely the further off.
                    lo, hi = self.center
                    off = lo - sod if sod < lo else sod - hi + 1 if sod >= hi else 0
                    return 1.0 - 0.3 * min(off, AROUND_S) / AROUND_S
                return 1.0
            # The same clock on another day: some weight for a second, less for a wider span.
            width = self.clock[1] - self.clock[0]
            return 0.3 if width <= 1 else 0.2 if width <= 60 else 0.1
        return 0.4 if dated and date_ok else 0.0

    def windows(self, years: range) -> list[tuple[float, float]]:
        """Epoch spans to look in (for the years the sources hold): only when a day is known;
        a clock or a month alone has too many."""
        if self.near is not None:
            anchor, after = self.near
            starts = [anchor]
            if self.near_yearless:
                starts = [e for e in (_in_year(anchor, y) for y in years) if e is not None] or [anchor]
            return [(a, a + RELATION_S) if after else (a - RELATION_S, a + 1) for a in starts]
        if self.absolute is not None:
            return [self.absolute]
        if self.month is None or self.day is None:
            return []
        lo, hi = self.clock or (0, 86400)
        out = []
        for y in ([self.year] if self.year else years):
            try:
                d = date(y, self.month, self.day)
            except ValueError:
                continue
            start = datetime.combine(d, time(0)).astimezone().timestamp()
            out.append((start + lo, start + hi))
        return out


def _in_year(epoch: float, year: int) -> float | None:
    """The same local date and clock in another year (None for Feb 29 in a common year)."""
    try:
        return datetime.fromtimestamp(epoch).replace(year=year).timestamp()
    except ValueError:
        return None


def _same_year(epoch: float, anchor: float) -> float | None:
    """``epoch`` moved into ``anchor``'s year, to the side nearest ``anchor`` (a record just
    after a Dec 31 anchor is in January)."""
    a_year = datetime.fromtimestamp(anchor).year
    moved = [e for e in (_in_year(epoch, y) for y in (a_year - 1, a_year, a_year + 1)) if e is not None]
    return min(moved, key=lambda e: abs(e - anchor)) if moved else None


# A year written in a record's head: "2014-07-02", "Jul 2 10:00:00 2014", "02/Jul/2014", or
# epoch seconds; a syslog head ("Jul  2 10:00:00 host") has none.
_YEAR_IN_HEAD = re.compile(r"(?<!\d)(?:19|20)\d{2}(?!\d)|(?<![\d.])1\d{9}(?:\.\d+)?(?![\d])|__REALTIME_TIMESTAMP=")


def states_year(record_text: str) -> bool:
    """Whether the record's own text gives its year (else the index inferred it)."""
    return bool(_YEAR_IN_HEAD.search(record_text[:120]))


def _clock_written(clock: tuple[int, int], text: str) -> bool:
    lo, hi = clock
    if hi - lo > 60:
        return False
    h, m, s = lo // 3600, lo % 3600 // 60, lo % 60
    probe = f"{h:02d}:{m:02d}:{s:02d}" if hi - lo == 1 else f"{h:02d}:{m:02d}:"
    return probe in text[:200]


@dataclass
class Relation:
    after: bool           # the target is after (True) or before (False) the anchor
    anchor: str           # the words that find the anchor event
    target: str           # the words that find the record asked about


@dataclass
class Intent:
    text: str                     # the question, for the lexical and dense sides (time words kept)
    since: float | None = None    # the latest matching window, epoch seconds, inclusive
    until: float | None = None    # ... exclusive
    level_boost: str | None = None
    yearless: bool = False        # the date had no year: any year with records is meant
    when: When | None = None
    relation: Relation | None = field(default=None)
    asks: str | None = None       # the kind of value the question asks for ("ip"), see ``asks``


def parse(question: str, now: datetime | None = None) -> Intent:
    now = now or datetime.now()
    text = question
    day, rest, yearless, _ = _find_date(text, now)
    since = until = None
    when = When()

    m = _LAST.search(rest)
    if m:
        until = now.timestamp()
        since = until - int(m.group("n")) * _UNITS[m.group("u").lower()]
        rest = rest.replace(m.group(0), " ")
        when.absolute = (since, until)

    clock = _find_clock(rest)
    when.center = _around(rest) if clock else None
    if day is not None:
        when.month, when.day = day.month, day.day
        when.year = day.year if not yearless else None
        when.clock = clock
        if since is None:
            lo, hi = clock or (0, 86400)
            start = _epoch(day, time(0))
            since, until = start + lo, start + hi
    elif when.absolute is None:
        when.clock = clock
        m = _MONTH_ONLY.search(rest)
        if m and (clock or re.search(r"\bin\s+" + re.escape(m.group(0)), rest, re.I)):
            when.month = MONTHS[m.group("mon").lower()[:3]]
        y = _YEAR_ONLY.search(rest)
        if y:
            when.year = int(y.group("year"))
    level = None
    for pattern, lv in _LEVEL_WORDS:
        if pattern.search(question):
            level = lv
            break
    said = when.absolute or when.clock or when.month or when.year
    return Intent(" ".join(question.split()), since, until, level, yearless and day is not None,
                  when if said else None, _relation(question), asks(question))


def asks(question: str) -> str | None:
    """The kind of value a question asks for, where a record can show it: "ip" only, for now
    (user names, ids and paths look like any other word). The reading of the question is the
    one the answer check uses (``grounding.asked_kind``): "Which IP ...", "From which client IP
    ...", "What was the source address of ..."; mosquitto's "New connection from 10.0.0.5" then
    beats the "not authorised" line after it, which names no address."""
    from engine.grounding import asked_kind

    return "ip" if asked_kind(question) == "ip" else None


def _relation(question: str) -> Relation | None:
    """"X just after Y" (the target first) or "Right after Y, X" / "After Y we saw X" (the
    anchor's clause first, up to a comma or the verb that starts the target's)."""
    m = _RELATION.search(question)
    if not m:
        return None
    before, anchor = question[:m.start()], m.group("anchor")
    target = before
    end = _CLAUSE_END.search(anchor)
    lead = re.sub(r"\b(?:just|right|shortly|immediately|soon|a\s+few\s+\w+|seconds?|minutes?)\b", " ", before, flags=re.I)
    if end is not None and len(lead.split()) <= 3:
        # The relation opens the sentence: what follows the anchor's clause is the target,
        # with what stood before the relation ("On web2,") kept.
        target = f"{lead} {anchor[end.end():]}"
        anchor = anchor[:end.start()]
    target = " ".join(re.sub(r"\b(?:just|right|shortly|immediately|soon)\s*$", "", target.strip(" ,;:-"),
                             flags=re.I).split())
    anchor = anchor.strip(" ?.!,")
    if len(target.split()) < 2 or len(anchor.split()) < 2:
        return None
    return Relation(m.group("rel").lower() in ("after", "following"), anchor, target)


def _find_clock(text: str) -> tuple[int, int] | None:
    m = _SPAN.search(text)
    if m:
        (a, _), (b, b_prec) = _clock(m.group("a")), _clock(m.group("b"))
        return _sod(a), _sod(b) + b_prec
    m = _AROUND.search(text)
    if m:
        a, _ = _clock(m.group("a"))
        return max(0, _sod(a) - AROUND_S), min(86400, _sod(a) + AROUND_S)
    for m in _AT.finditer(text):
        s = m.group("a")
        if ":" not in s and not re.search(r"[ap]\.?m", s, re.I):
            continue
        a, prec = _clock(s)
        return _sod(a), _sod(a) + prec
    return None


def _around(text: str) -> tuple[int, int] | None:
    """The clock an "around 9:08" names, as a span of its precision (when no span is given)."""
    if _SPAN.search(text):
        return None
    m = _AROUND.search(text)
    if not m:
        return None
    a, prec = _clock(m.group("a"))
    return _sod(a), _sod(a) + prec


def _sod(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def _find_date(text: str, now: datetime) -> tuple[date | None, str, bool, bool]:
    for pattern in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            g = m.groupdict()
            try:
                if g.get("iso"):
                    d = date.fromisoformat(g["iso"])
                elif g.get("rel"):
                    d = now.date() - timedelta(days=1 if g["rel"].lower() == "yesterday" else 0)
                else:
                    mon = MONTHS[g["mon"].lower()[:3]]
                    day = int(g["day"])
                    if g.get("year"):
                        d = date(int(g["year"]), mon, day)
                    else:
                        d = date(now.year, mon, day)
                        if d > now.date():
                            d = date(now.year - 1, mon, day)
            except ValueError:
                continue
            given = bool(g.get("iso") or g.get("rel") or g.get("year"))
            # The date's words are cut from what the clock is looked for in (not from the query);
            # a clock inside the date's match (ctime's "Jul 14 10:00:00 2014") stays.
            return d, f"{text[:m.start()]} {_keep_clock(m.group(0))} {text[m.end():].lstrip(':')}", not given, given
    return None, text, False, False


def _keep_clock(s: str) -> str:
    m = re.search(r"\d{1,2}:\d{2}(?::\d{2})?", s)
    return m.group(0) if m else ""


def _clock(s: str) -> tuple[time, int]:
    """A time of day and its precision in seconds (1 with seconds given, else 60; 3600 for "3pm")."""
    s = re.sub(r"(:\d{2})[.,]\d+", r"\1", s.lower())   # fractions of a second
    s = s.replace(".", "").replace(" ", "")
    pm, am = s.endswith("pm"), s.endswith("am")
    s = s.rstrip("apm")
    parts = [int(x) for x in s.split(":") if x.isdigit()] or [0]
    h = parts[0] % 12 + (12 if pm else 0) if (pm or am) else parts[0]
    minute = parts[1] if len(parts) > 1 else 0
    sec = parts[2] if len(parts) > 2 else 0
    prec = 1 if len(parts) > 2 else 60 if len(parts) > 1 else 3600
    return time(min(h, 23), min(minute, 59), min(sec, 59)), prec


def _epoch(d: date, t: time) -> float:
    return datetime.combine(d, t).astimezone().timestamp()


def parse_bound(value: str, now: datetime | None = None) -> float:
    """A --since/--until value: ISO date/time, epoch seconds, or words ('yesterday', 'June 21 10:00')."""
    now = now or datetime.now()
    v = value.strip()
    if re.fullmatch(r"\d{9,11}(\.\d+)?", v):
        return float(v)
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        return (dt if dt.tzinfo else dt.astimezone()).timestamp()
    except ValueError:
        pass
    m = _LAST.fullmatch(v) or re.fullmatch(r"(?P<n>\d+)\s*(?P<u>sec|second|min|minute|hour|hr|day|week)s?\s+ago", v, re.I)
    if m:
        return now.timestamp() - int(m.group("n")) * _UNITS[m.group("u").lower()]
    intent = parse(v, now)
    if intent.since is not None:
        return intent.since
    from dateutil import parser as du

    try:
        dt = du.parse(v, default=datetime.combine(now.date(), time(0)))
    except (ValueError, OverflowError):
        raise ValueError(f"cannot read the time {value!r}; use e.g. 2024-06-21T10:00, 'yesterday' or '2 hours ago'")
    return (dt if dt.tzinfo else dt.astimezone()).timestamp()
