"""Parsing of scalar argument values: durations, request ids, snapshot names."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from infra.status import Status

DURATION = re.compile(r"^(\d{1,6})\s*(s|sec|secs|m|min|mins|h|hr|hrs|d|day|days|w|wk|wks)$", re.I)
REQUEST_ID = re.compile(r"^r-[0-9a-f]{8}$", re.I)
SCHEDULE_ID = re.compile(r"^s-[0-9a-f]{8}$", re.I)
# A request or schedule id as people type it: whole, or a prefix of its hex digits (3+ after a lead, 4+ without),
# with its own lead ("r-7c2e"), another spelling of it ("req-219", "request-7c2e") or none ("7c2e", "#7c2e").
ID_LEADS = {"r": ("r", "req", "request"), "s": ("s", "sch", "sched", "schedule")}
# the argument kinds (commands.registry.Kind values) whose values are ids, and the lead of each
ID_KINDS = {"request": "r", "schedule": "s"}
_LED_ID = re.compile(r"^([a-z]+)-([0-9a-f]{3,8})$")  # (a lead says it is an id: three digits will do)
_HEX_ID = re.compile(r"^[0-9a-f]{3,8}$")
WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,63}$")
STATUSES = tuple(Status)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str, now: datetime | None = None) -> datetime | None:
    """`15m`, `2h`, `1d` or an ISO date/time, as an aware UTC instant; None if unparseable."""
    now = now or datetime.now(UTC)
    v = value.strip()
    m = DURATION.match(v)
    if m:
        try:
            return now - timedelta(seconds=int(m.group(1)) * _UNIT[m.group(2)[0].lower()])
        except OverflowError:  # e.g. 999999w reaches before year 1: not a usable instant
            return None
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def normalize_duration(value: str) -> str | None:
    """Canonical spelling of a `since` value (`30m`, `2h`, or the ISO text)."""
    m = DURATION.match(value.strip())
    if m:
        # A duration reaching back before year 1 (999999w) is no instant to filter by.
        return f"{int(m.group(1))}{m.group(2)[0].lower()}" if parse_since(value) else None
    return value.strip() if parse_since(value) else None


def id_ref(word: str, lead: str, *, bare: str = "loose") -> str | None:
    """The canonical id or id prefix (`r-7c2e`) a typed word names, for ids that start with `lead`.

    `bare` says how a word with no lead is read: "slot" (right after the command's own word: any 3–8
    hex digits, "approve 318"), "loose" (an argument's own slot in the canonical form: 4–8), "strict"
    (free text: 4–8 with a digit and a letter in it, so "2024" and "face" are no ids) or "never"."""
    w = word.strip().lower().lstrip("#")
    m = _LED_ID.match(w)
    if m:
        return f"{lead}-{m.group(2)}" if m.group(1) in ID_LEADS[lead] else None
    if bare == "never" or not _HEX_ID.match(w) or (bare != "slot" and len(w) < 4):
        return None
    if bare == "strict" and (w.isdigit() or w.isalpha()):
        return None
    return f"{lead}-{w}"
