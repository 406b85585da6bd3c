"""When a request should run: the time phrase of "deploy chat to prod at 22:00 today".

A generic stage that knows no command: `split_when` finds one time expression in any
request's text and returns the text without it, so the grammar and the model see only the
request itself ("deploy chat to prod").  The planner calls it at one point (`Planner.plan`).

What it understands (times are in the configured `schedules.timezone`):

- once:  "at 22:00 [today|tonight|tomorrow]", "today/tonight/tomorrow at 22:00",
         "on 2025-03-01 at 06:30", "at 2025-03-01 06:30", "in 20 minutes", "in 2 hours";
         "at 10pm" / "at 6:30am" too.  A bare "at 09:00" is the next 09:00.
- every: "every night/day/morning/evening at 02:00", "daily/nightly at 02:00",
         "every monday [and friday] at 07:00", "every weekday at 07:00", "every hour [at :15]".

The phrase is resolved against a clock only when the engine schedules it (`first_run`),
so parsing stays free of "now" and a test clock decides what "today" means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_ABBR = {d[:3]: i for i, d in enumerate(DAYS)}
_PARTS = r"(?:night|day|evening|morning)"
_CLOCK = r"(?P<h>\d{1,2})(?::(?P<m>\d{2}))?\s*(?P<ampm>am|pm)?"
_DAYNAME = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs)?|fri|sat(?:ur)?|sun)(?:day)?s?"

# Order matters: the recurring forms first, then the one-off forms.
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("hourly", re.compile(r"\b(?:every\s+hour|hourly)(?:\s+at\s+:(?P<m>\d{2}))?\b", re.I)),
    ("daily", re.compile(rf"\b(?:(?:every|each)\s+{_PARTS}|daily|nightly)\s+at\s+{_CLOCK}\b", re.I)),
    ("weekdays", re.compile(rf"\bevery\s+(?P<set>weekday|weekend(?:\s+day)?)s?\s+at\s+{_CLOCK}\b", re.I)),
    ("weekly", re.compile(rf"\bevery\s+(?P<days>{_DAYNAME}(?:\s*(?:,|and|&)\s*{_DAYNAME})*)\s+at\s+{_CLOCK}\b",
                          re.I)),
    ("date", re.compile(rf"\b(?:on\s+(?P<d>\d{{4}}-\d{{2}}-\d{{2}})\s+at|at\s+(?P<d2>\d{{4}}-\d{{2}}-\d{{2}})(?:\s+|T))"
                        rf"\s*{_CLOCK}\b", re.I)),
    ("day_first", re.compile(rf"\b(?P<day>today|tonight|tomorrow)\s+at\s+{_CLOCK}\b", re.I)),
    ("at", re.compile(rf"\bat\s+{_CLOCK}(?:\s+(?P<day>today|tonight|tomorrow))?(?=$|[\s,.;!?])", re.I)),
    ("in", re.compile(r"\bin\s+(?P<n>\d{1,4})\s*(?P<unit>minutes?|mins?|hours?|hrs?|h|m)\b", re.I)),
]


class WhenError(ValueError):
    """A time phrase that names no usable time; the message is the question to ask."""


@dataclass(frozen=True)
class Recurrence:
    """Every day (at a time), some weekdays (at a time), or every hour (at a minute)."""

    kind: str  # daily | weekly | hourly
    at: time
    weekdays: tuple[int, ...] = ()

    @property
    def spec(self) -> str:
        """The stored form: `daily 02:00`, `weekly mon,fri 07:00`, `hourly :15`."""
        if self.kind == "hourly":
            return f"hourly :{self.at.minute:02d}"
        if self.kind == "weekly":
            return f"weekly {','.join(DAYS[d][:3] for d in self.weekdays)} {self.at:%H:%M}"
        return f"daily {self.at:%H:%M}"

    @classmethod
    def parse(cls, spec: str) -> Recurrence:
        kind, _, rest = spec.partition(" ")
        if kind == "hourly":
            return cls("hourly", time(0, int(rest.strip().lstrip(":"))))
        if kind == "weekly":
            days, _, hhmm = rest.partition(" ")
            return cls("weekly", time.fromisoformat(hhmm), tuple(_DAY_ABBR[d] for d in days.split(",")))
        if kind == "daily":
            return cls("daily", time.fromisoformat(rest.strip()))
        raise ValueError(f"not a recurrence: {spec!r}")

    def describe(self) -> str:
        if self.kind == "hourly":
            return f"every hour at :{self.at.minute:02d}"
        if self.kind == "weekly":
            names = [DAYS[d].capitalize() for d in self.weekdays]
            return f"every {', '.join(names)} at {self.at:%H:%M}"
        return f"every day at {self.at:%H:%M}"

    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime:
        """The first occurrence strictly after `after` (aware), as an aware UTC instant."""
        local = after.astimezone(tz)
        if self.kind == "hourly":
            cand = local.replace(minute=self.at.minute, second=0, microsecond=0)
            while cand <= local:
                cand += timedelta(hours=1)
            return cand.astimezone(ZoneInfo("UTC"))
        day = local.date()
        for _ in range(8 * 2):
            cand = _local(day, self.at, tz)
            if cand > after and (self.kind == "daily" or day.weekday() in self.weekdays):
                return cand.astimezone(ZoneInfo("UTC"))
            day += timedelta(days=1)
        raise WhenError("no next occurrence")  # unreachable: every kind repeats within a week


@dataclass(frozen=True)
class WhenPhrase:
    """A time expression as said, not yet tied to a clock."""

    said: str
    every: Recurrence | None = None
    at: time | None = None
    day: str | None = None          # today | tonight | tomorrow
    on: date | None = None
    delay: timedelta | None = None
    problem: str | None = field(default=None, compare=False)

    @property
    def recurring(self) -> bool:
        return self.every is not None

    def first_run(self, now: datetime, tz: ZoneInfo) -> datetime:
        """The first run as an aware UTC instant; WhenError when it names no future time."""
        if self.problem:
            raise WhenError(self.problem)
        if self.delay is not None:
            return now + self.delay
        if self.every is not None:
            return self.every.next_after(now, tz)
        assert self.at is not None
        local_now = now.astimezone(tz)
        if self.on is not None:
            day = self.on
        elif self.day == "tomorrow":
            day = local_now.date() + timedelta(days=1)
        else:
            day = local_now.date()
        cand = _local(day, self.at, tz)
        if cand <= now:
            if self.day is None and self.on is None:
                cand = _local(day + timedelta(days=1), self.at, tz)  # a bare "at 09:00": the next one
            else:
                raise WhenError(f"{self.said} has already passed (it is {local_now:%Y-%m-%d %H:%M} "
                                f"{tz.key} now). Say a later time.")
        return cand.astimezone(ZoneInfo("UTC"))


def _local(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at).replace(tzinfo=tz)


def _clock(m: re.Match[str]) -> time:
    h, minute, ampm = int(m.group("h")), int(m.group("m") or 0), (m.group("ampm") or "").lower()
    if ampm:
        if not 1 <= h <= 12:
            raise WhenError(f"'{m.group(0).strip()}': with am/pm the hour is 1 to 12.")
        h = h % 12 + (12 if ampm == "pm" else 0)
    if not (0 <= h <= 23 and 0 <= minute <= 59):
        raise WhenError(f"'{m.group(0).strip()}' is not a time of day (use 00:00 to 23:59).")
    return time(h, minute)


def _weekdays(text: str) -> tuple[int, ...]:
    found = []
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in ("and",):
            continue
        idx = _DAY_ABBR.get(word[:3])
        if idx is not None and idx not in found:
            found.append(idx)
    return tuple(sorted(found))


def _phrase(kind: str, m: re.Match[str]) -> WhenPhrase:
    said = " ".join(m.group(0).split())
    if kind == "hourly":
        minute = int(m.group("m") or 0)
        if minute > 59:
            raise WhenError(f"'{said}': the minute is 00 to 59.")
        return WhenPhrase(said, every=Recurrence("hourly", time(0, minute)))
    if kind == "daily":
        return WhenPhrase(said, every=Recurrence("daily", _clock(m)))
    if kind == "weekdays":
        days = (0, 1, 2, 3, 4) if m.group("set").lower().startswith("weekday") else (5, 6)
        return WhenPhrase(said, every=Recurrence("weekly", _clock(m), days))
    if kind == "weekly":
        return WhenPhrase(said, every=Recurrence("weekly", _clock(m), _weekdays(m.group("days"))))
    if kind == "date":
        try:
            on = date.fromisoformat(m.group("d") or m.group("d2"))
        except ValueError:
            raise WhenError(f"'{said}' has no such date (use YYYY-MM-DD).") from None
        return WhenPhrase(said, at=_clock(m), on=on)
    if kind in ("day_first", "at"):
        day = (m.group("day") or "").lower() or None
        return WhenPhrase(said, at=_clock(m), day="today" if day == "tonight" else day)
    n, unit = int(m.group("n")), m.group("unit").lower()
    delay = timedelta(hours=n) if unit.startswith("h") else timedelta(minutes=n)
    if delay <= timedelta(0):
        raise WhenError(f"'{said}': say a time after now.")
    return WhenPhrase(said, delay=delay)


def split_when(text: str) -> tuple[str, WhenPhrase | None]:
    """(the text without its time phrase, the phrase) — or (text, None) when it has none.

    A phrase that looks like a time but is not one ("at 25:00") comes back with `problem`
    set, so the request is asked about rather than run now.
    """
    for kind, pattern in _PATTERNS:
        m = pattern.search(text)
        if m is None:
            continue
        rest = " ".join((text[:m.start()] + " " + text[m.end():]).split()).rstrip(" ,;")
        try:
            return rest, _phrase(kind, m)
        except WhenError as exc:
            return rest, WhenPhrase(" ".join(m.group(0).split()), problem=str(exc))
    return text, None
