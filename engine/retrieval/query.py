"""What a question says about time and severity, turned into search filters and boosts.

Policy (kept in step with ``logformat``'s time policy):
- Times in a question are local time of this machine, like timestamps without a zone in logs.
- A date without a year is the most recent such date that is not in the future and on which
  the sources have records (the retriever looks back year by year, ``earlier_years``): "March
  1st" in a folder of last year's logs means last year's.
- "at 16:47:48" is that second; "at 16:47" that minute; "around 10:00" is ten minutes either
  side; "between 10:00 and 10:05" is that span; a date alone is the whole day; "yesterday" and
  "today" are days; "last 15 minutes / 2 hours / 3 days" ends now.
- A time of day with no date adds no filter: its literal ("16:47:48") still matches the log
  lines lexically, which is what a person means on a single-day log.
- Level words ("errors", "warnings", "fatal") boost records of that level or worse; they do
  not filter, since "why did the upload fail" can be answered by an INFO line. An explicit
  level filter (``--level``) does filter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from engine.retrieval.logformat import MONTHS

_MONTH = r"(?P<mon>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s+(?P<year>\d{4}))?"
_DATE_PATTERNS = [
    re.compile(r"\b(?:on\s+)?(?P<iso>\d{4}-\d{2}-\d{2})\b", re.I),
    re.compile(r"\b(?:on\s+)?" + _MONTH + r"\.?\s+" + _DAY + _YEAR + r"\b", re.I),
    re.compile(r"\b(?:on\s+)?(?:the\s+)?" + _DAY + r"\s+(?:of\s+)?" + _MONTH + _YEAR + r"\b", re.I),
    re.compile(r"\b(?P<rel>yesterday|today)\b", re.I),
]
_T = r"\d{1,2}:\d{2}(?::\d{2})?(?:\s?[ap]\.?m\.?)?"
_SPAN = re.compile(rf"\b(?:between|from)\s+(?P<a>{_T})\s+(?:and|to|until|-)\s+(?P<b>{_T})", re.I)
_AROUND = re.compile(rf"\b(?:around|about|near|approximately|circa|~)\s*(?:at\s+)?(?P<a>{_T})", re.I)
_AT = re.compile(rf"\b(?:at\s+)?(?P<a>{_T})", re.I)
_LAST = re.compile(r"\b(?:in\s+the\s+)?(?:last|past)\s+(?P<n>\d+)\s*(?P<u>sec|second|min|minute|hour|hr|day|week)s?\b", re.I)
_UNITS = {"sec": 1, "second": 1, "min": 60, "minute": 60, "hour": 3600, "hr": 3600, "day": 86400, "week": 604800}

_LEVEL_WORDS = [
    (re.compile(r"\b(fatal|critical|crash(?:es|ed)?|panic)\b", re.I), "CRITICAL"),
    (re.compile(r"\b(errors?|exceptions?|failures?|failed|fail(?:s|ing)?|stack ?traces?|tracebacks?)\b", re.I), "ERROR"),
    (re.compile(r"\b(warnings?|warn)\b", re.I), "WARNING"),
]

AROUND_S = 600


@dataclass
class Intent:
    text: str                     # the question with date words removed, for lexical search
    since: float | None = None    # epoch seconds, inclusive
    until: float | None = None    # epoch seconds, exclusive
    level_boost: str | None = None
    yearless: bool = False        # the date had no year: earlier years may be meant


def earlier_years(since: float, until: float, back: int) -> tuple[float, float] | None:
    """The same window ``back`` years earlier (None when that date does not exist, Feb 29)."""
    try:
        a, b = datetime.fromtimestamp(since), datetime.fromtimestamp(until)
        return (a.replace(year=a.year - back).timestamp(), b.replace(year=b.year - back).timestamp())
    except ValueError:
        return None


def parse(question: str, now: datetime | None = None) -> Intent:
    now = now or datetime.now()
    text = question
    day, text, yearless = _find_date(text, now)
    since = until = None

    m = _LAST.search(text)
    if m:
        until = now.timestamp()
        since = until - int(m.group("n")) * _UNITS[m.group("u").lower()]
        text = text.replace(m.group(0), " ")

    if day is not None and since is None:
        m = _SPAN.search(text) or _AROUND.search(text) or _AT.search(text)
        if m is None:
            since = _epoch(day, time(0))
            until = since + 86400
        elif m.re is _SPAN:
            (a, _), (b, b_prec) = _clock(m.group("a")), _clock(m.group("b"))
            since, until = _epoch(day, a), _epoch(day, b) + b_prec
        elif m.re is _AROUND:
            a, _ = _clock(m.group("a"))
            since, until = _epoch(day, a) - AROUND_S, _epoch(day, a) + AROUND_S
        else:
            a, prec = _clock(m.group("a"))
            since, until = _epoch(day, a), _epoch(day, a) + prec
    level = None
    for pattern, lv in _LEVEL_WORDS:
        if pattern.search(question):
            level = lv
            break
    return Intent(" ".join(text.split()), since, until, level, yearless and day is not None and since is not None)


def _find_date(text: str, now: datetime) -> tuple[date | None, str, bool]:
    for pattern in _DATE_PATTERNS:
        m = pattern.search(text)
        if not m:
            continue
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
        yearless = not (g.get("iso") or g.get("rel") or g.get("year"))
        return d, text[:m.start()] + " " + text[m.end():], yearless
    return None, text, False


def _clock(s: str) -> tuple[time, int]:
    """A time of day and its precision in seconds (1 with seconds given, else 60)."""
    s = s.lower().replace(".", "").replace(" ", "")
    pm, am = s.endswith("pm"), s.endswith("am")
    s = s.rstrip("apm")
    parts = [int(x) for x in s.split(":")]
    h = parts[0] % 12 + (12 if pm else 0) if (pm or am) else parts[0]
    sec = parts[2] if len(parts) > 2 else 0
    return time(min(h, 23), min(parts[1], 59), min(sec, 59)), 1 if len(parts) > 2 else 60


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
