"""The audit chain: how each event is sealed and linked, and how a chain is checked.

Every audit event is *sealed* when it is written: `mac` covers everything a person reads
about it (request, its number `n` within the request, time, kind, actor, detail, and `row`,
the request columns this event set: command, arguments, approver, reason, result, …).
Events are *linked* a moment later, off the request path, by whichever process holds the
chain head: `seq` is the event's place in the one chain and `hash` its link, which covers
the previous link, `seq` and `mac`.  So writing an event takes no lock shared by all
requests, and the chain still orders every event and shows any deletion.

Formats, told apart by the columns:

- legacy (written before migration 0011): `mac` is NULL; `hash = sha256(prev + body₁)`,
  body₁ the canonical JSON of seq, request, at, kind, actor, detail.
- unkeyed (`key_id` NULL): `mac = sha256(body₂)`, `hash = sha256(prev:seq:mac)`.  Detects an
  edit of any field, not a chain recomputed from the edit onwards.
- keyed: the same with HMAC-SHA256 under `CHATOPS_AUDIT_KEY` (`key_id` names the key).
  Without the key nobody can seal or link an event that verifies.

A request row is a projection of its events: `verify` folds each request's events into the
row they produced and reports every column that differs.  Truncating the newest events and
resetting the head is caught against a head the bot logged earlier (`--head SEQ:LINK`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from infra.config import ConfigError
from infra.db.common import aware
from infra.status import FINAL, Status
from infra.wording import agrees, counted, plural

GENESIS = "0" * 64
MIN_KEY_CHARS = 32
_KEY_ID_LABEL = b"chatops audit key id"
# Request columns that are operational, not part of what happened: never folded.
UNFOLDED = frozenset({"id", "owner", "updated_at", "status", "event_count"})
DATETIME_COLUMNS = frozenset({"created_at", "updated_at", "expires_at"})
STATUS_KINDS = frozenset(s.value for s in Status)
UNLINKED_POS = 1 << 62  # where findings about not-yet-linked events sort
UNKEYED_UNDER_KEY = ("{name} is unkeyed, but the chain is checked with a key: written by a bot without "
                     "CHATOPS_AUDIT_KEY, or rewritten by someone without it (if the chain was keyed only later, "
                     "--unkeyed-until SEQ accepts its unkeyed start)")


class AuditKeyError(ConfigError):
    """CHATOPS_AUDIT_KEY is missing, malformed, or not the key this chain was written with."""


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def stamp(value: datetime | str | None) -> str | None:
    """One spelling of an instant (naive UTC, microseconds), whichever way it was stored."""
    if value is None:
        return None
    dt = datetime.fromisoformat(value) if isinstance(value, str) else value
    a = aware(dt)
    assert a is not None
    return a.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def plain(column: str, value: Any) -> Any:
    """A request column's value as the chain records it (JSON only)."""
    if column in DATETIME_COLUMNS or isinstance(value, datetime):
        return stamp(value)
    return value


def key_id(key: bytes) -> str:
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


def keygen() -> str:
    """A new random key for CHATOPS_AUDIT_KEY (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


class Keys:
    """The chain's HMAC keys: the first one seals and links, all of them verify."""

    def __init__(self, keys: Sequence[str] = ()) -> None:
        self.by_id: dict[str, bytes] = {}
        self.writer: str | None = None
        for raw in keys:
            key = raw.encode()
            kid = key_id(key)
            self.by_id[kid] = key
            self.writer = self.writer or kid

    @classmethod
    def parse(cls, value: str | None) -> Keys:
        """`CHATOPS_AUDIT_KEY`: one key, or `new,old,…` while rotating (new events use the first)."""
        parts = [p.strip() for p in (value or "").split(",") if p.strip()]
        short = [p for p in parts if len(p) < MIN_KEY_CHARS]
        if short:
            raise AuditKeyError(f"CHATOPS_AUDIT_KEY holds a key of {len(short[0])} characters; a key needs at "
                                f"least {MIN_KEY_CHARS}. Make one with 'chatops audit keygen'.")
        return cls(parts)

    @property
    def keyed(self) -> bool:
        return self.writer is not None

    def __contains__(self, kid: object) -> bool:
        return kid in self.by_id


def _digest(keys: Keys, kid: str | None, data: bytes) -> str | None:
    """HMAC under key `kid`, SHA-256 when unkeyed; None when `kid` is not a key we hold."""
    if kid is None:
        return hashlib.sha256(data).hexdigest()
    key = keys.by_id.get(kid)
    return hmac.new(key, data, hashlib.sha256).hexdigest() if key is not None else None


def event_mac(keys: Keys, kid: str | None, request_id: str, n: int, at: datetime | str, kind: str,
              actor: str, detail: Mapping[str, Any], row: Mapping[str, Any]) -> str | None:
    body = {"v": 2, "request": request_id, "n": n, "at": stamp(at), "kind": kind, "actor": actor,
            "detail": detail, "row": row, "key": kid}
    return _digest(keys, kid, canonical(body))


def event_link(keys: Keys, kid: str | None, prev: str, seq: int, mac: str) -> str | None:
    return _digest(keys, kid, f"{prev}:{seq}:{mac}".encode())


def legacy_link(prev: str, seq: int, request_id: str, at: datetime | str, kind: str, actor: str,
                detail: Mapping[str, Any]) -> str:
    body = json.dumps({"seq": seq, "request": request_id, "at": stamp(at), "kind": kind, "actor": actor,
                       "detail": detail}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev + body).encode()).hexdigest()


@dataclass
class Ev:
    """One event as the checks see it, read from the database or from a file."""

    id: int
    seq: int | None
    request_id: str
    n: int | None
    at: str
    kind: str
    actor: str
    detail: dict[str, Any]
    row: dict[str, Any] | None
    mac: str | None
    prev_hash: str | None
    hash: str | None
    key_id: str | None

    @classmethod
    def of(cls, e: Any) -> Ev:
        get = e.get if isinstance(e, Mapping) else lambda k: getattr(e, k)
        return cls(id=int(get("id") or get("seq") or 0), seq=get("seq"), request_id=str(get("request_id")),
                   n=get("n"), at=stamp(get("at")) or "", kind=str(get("kind")), actor=str(get("actor")),
                   detail=get("detail") or {},
                   row=get("row"), mac=get("mac"), prev_hash=get("prev_hash"), hash=get("hash"),
                   key_id=get("key_id"))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "seq": self.seq, "request_id": self.request_id, "n": self.n, "at": self.at,
                "kind": self.kind, "actor": self.actor, "detail": self.detail, "row": self.row, "mac": self.mac,
                "prev_hash": self.prev_hash, "hash": self.hash, "key_id": self.key_id}

    @property
    def legacy(self) -> bool:
        return self.mac is None

    @property
    def pos(self) -> int:
        return self.seq if self.seq is not None else UNLINKED_POS

    def name(self) -> str:
        where = f"event {self.seq}" if self.seq is not None else f"unlinked event #{self.id}"
        return f"{where} ({self.kind} of {self.request_id})"


@dataclass(order=True)
class Finding:
    """A problem, placed at the chain position it concerns, so the first broken row comes first."""

    pos: int
    text: str = field(compare=False)


class ChainWalk:
    """Checks linked events in chain order: no gap, each link follows and recomputes."""

    def __init__(self, keys: Keys, start_seq: int = 0, start_hash: str = GENESIS, segment_from: int = 0,
                 unkeyed_until: int = 0) -> None:
        self.keys = keys
        self.seq, self.hash = start_seq, start_hash
        self.segment_from = segment_from
        # Checked with a key, an unkeyed event is suspect, except the unkeyed start of a chain that
        # was keyed later (`audit verify --unkeyed-until SEQ`).
        self.unkeyed_until = unkeyed_until
        self.findings: list[Finding] = []
        self.count = self.legacy = self.unkeyed = self.keyed = self.unchecked = 0
        self.first_keyed: int | None = None
        self.key_ids: set[str] = set()

    def add(self, ev: Ev) -> None:
        assert ev.seq is not None
        self.count += 1
        if ev.seq != self.seq + 1:
            self.findings.append(Finding(self.seq + 1, f"events {self.seq + 1}..{ev.seq - 1} are missing (deleted?)"))
        if ev.prev_hash != self.hash:
            self.findings.append(Finding(ev.seq, f"event {ev.seq} does not follow the event before it"))
        if ev.legacy:
            self.legacy += 1
            if ev.seq > self.segment_from or self.first_keyed is not None:
                self.findings.append(Finding(ev.seq, f"event {ev.seq} is in the old unkeyed format after the "
                                                     "new format began (rewritten?)"))
            want: str | None = legacy_link(ev.prev_hash or "", ev.seq, ev.request_id, ev.at, ev.kind, ev.actor,
                                           ev.detail)
        else:
            if ev.key_id is None:
                self.unkeyed += 1
                if self.first_keyed is not None:
                    self.findings.append(Finding(ev.seq, f"event {ev.seq} is unkeyed after keyed events "
                                                         f"(from {self.first_keyed}): rewritten?"))
                elif self.keys.keyed and ev.seq > self.unkeyed_until:
                    self.findings.append(Finding(ev.seq, UNKEYED_UNDER_KEY.format(name=ev.name())))
            else:
                self.keyed += 1
                self.key_ids.add(ev.key_id)
                self.first_keyed = self.first_keyed or ev.seq
            want = event_link(self.keys, ev.key_id, ev.prev_hash or "", ev.seq, ev.mac or "")
        if want is None:
            self.unchecked += 1
        elif want != ev.hash:
            self.findings.append(Finding(ev.seq, f"{ev.name()}: its link does not match (edited, or the chain "
                                                 "was recomputed without the key)"))
        self.seq, self.hash = ev.seq, ev.hash or ""


def fold(request_id: str, row: Mapping[str, Any] | None, events: Sequence[Ev], keys: Keys,
         complete: bool = True) -> tuple[list[Finding], int]:
    """Check one request: each event's seal, their numbering, and the row they add up to.

    `complete` says the events start at the request's first; a file holding only part of a
    chain checks the columns its events set.  Returns the findings and the number of seals
    that could not be checked (no key).
    """
    found: list[Finding] = []
    unchecked = 0
    expected: dict[str, Any] = {}
    status: str | None = None
    ended: Ev | None = None
    pos = min((e.pos for e in events), default=UNLINKED_POS)
    want_n = (events[0].n or 1) if events and not complete else 1
    for ev in events:
        if ev.n is None and ev.legacy:
            want_n += 1  # an old archive's event: not numbered, and its link covers its place
        elif ev.n != want_n:
            found.append(Finding(ev.pos, f"request {request_id}: {ev.name()} is number {ev.n} of its "
                                         f"request, expected {want_n} (an event was deleted or repeated)"))
        if ev.n is not None:
            want_n = ev.n + 1
        if not ev.legacy:
            if ev.seq is None and ev.key_id is None and keys.keyed:
                found.append(Finding(ev.pos, UNKEYED_UNDER_KEY.format(name=ev.name())))
            mac = event_mac(keys, ev.key_id, ev.request_id, ev.n or 0, ev.at, ev.kind, ev.actor, ev.detail,
                            ev.row or {})
            if mac is None:
                unchecked += 1
            elif mac != ev.mac:
                found.append(Finding(ev.pos, f"{ev.name()} was edited (its seal does not match)"))
            expected.update(ev.row or {})
        elif ev.kind == Status.requested and "command" in ev.detail:
            expected.update(command=ev.detail.get("command"), args=ev.detail.get("args"),
                            actor=ev.detail.get("actor", ev.actor))
        if ev.kind in STATUS_KINDS:
            if ended is not None:
                found.append(Finding(ev.pos, f"request {request_id}: {ev.name()} comes after it had ended "
                                             f"'{ended.kind}' (rewritten?)"))
            status = ev.kind
            ended = ev if ev.kind in FINAL else None
    if row is None:
        if events:
            found.append(Finding(pos, f"request {request_id} has events but its row is gone (deleted?)"))
        return found, unchecked
    if not events:
        found.append(Finding(UNLINKED_POS, f"request {request_id} has no events"))
        return found, unchecked
    if status is not None and row.get("status") != status:
        found.append(Finding(pos, f"request {request_id} says '{row.get('status')}' but its events end with "
                                  f"'{status}'"))
    for col, value in expected.items():
        if col in UNFOLDED:
            continue
        if plain(col, row.get(col)) != value:
            found.append(Finding(pos, f"request {request_id} was edited: {col} is {_show(plain(col, row.get(col)))} "
                                      f"but its events say {_show(value)}"))
    if stamp(row.get("updated_at")) != events[-1].at:
        found.append(Finding(pos, f"request {request_id} was edited: updated_at is {stamp(row.get('updated_at'))} "
                                  f"but its last event is at {events[-1].at}"))
    if complete and events[0].n == 1 and stamp(row.get("created_at")) != events[0].at:
        found.append(Finding(pos, f"request {request_id} was edited: created_at is {stamp(row.get('created_at'))} "
                                  f"but its first event is at {events[0].at}"))
    count = row.get("event_count")
    if complete and count is not None and count != len(events):
        found.append(Finding(pos, f"request {request_id} counts {count} events but {len(events)} are present "
                                  "(deleted?)"))
    return found, unchecked


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "…"


@dataclass
class Report:
    """What a check found, and what it could and could not check."""

    findings: list[Finding] = field(default_factory=list)
    events: int = 0
    legacy: int = 0
    unkeyed: int = 0
    keyed: int = 0
    unlinked: int = 0
    unchecked: int = 0  # seals and links under a key we do not hold
    key_ids: set[str] = field(default_factory=set)
    first_keyed: int | None = None
    head: tuple[int, str] = (0, GENESIS)

    @property
    def problems(self) -> list[str]:
        return [f.text for f in sorted(self.findings)]

    @property
    def ok(self) -> bool:
        return not self.findings

    def add_walk(self, walk: ChainWalk) -> None:
        self.findings.extend(walk.findings)
        self.events += walk.count
        self.legacy += walk.legacy
        self.unkeyed += walk.unkeyed
        self.keyed += walk.keyed
        self.unchecked += walk.unchecked
        self.key_ids |= walk.key_ids
        self.first_keyed = walk.first_keyed
        self.head = (walk.seq, walk.hash)

    def summary(self, keys: Keys) -> list[str]:
        """Plain lines on how strong the check was (printed by `audit verify`)."""
        lines = [f"{counted(self.events, 'linked event')}, head {self.head[0]}:{self.head[1]}"]
        if self.keyed:
            held = ", ".join(sorted(k for k in self.key_ids if k in keys)) or "none"
            lines.append(f"keyed (HMAC-SHA256) from event {self.first_keyed}: {counted(self.keyed, 'event')}; "
                         f"{plural(len(self.key_ids), 'key id')} "
                         f"{', '.join(sorted(self.key_ids))}; held: {held}")
        if self.legacy:
            lines.append(f"{counted(self.legacy, 'event')} from before migration 0011 "
                         "(plain SHA-256 over the event only)")
        if self.unkeyed:
            lines.append(f"unkeyed: {counted(self.unkeyed, 'event')} sealed with plain SHA-256 (detects edits, not a "
                         "recomputed chain; set CHATOPS_AUDIT_KEY, see 'chatops audit keygen')")
        if self.unlinked:
            lines.append(f"{counted(self.unlinked, 'event')} written moments ago "
                         f"{agrees(self.unlinked, 'is', 'are')} sealed but not linked yet "
                         "(the running bot links them; a stopped one at its next start)")
        if self.unchecked:
            lines.append(f"{self.unchecked} {agrees(self.unchecked, 'seal or link', 'seals or links')} under a "
                         "key that was not given could not be checked: set CHATOPS_AUDIT_KEY")
        return lines


def check_heads(heads: Iterable[tuple[int, str]], linked: Mapping[int, str], report: Report,
                start: tuple[int, str], archived: Mapping[int, str] | None = None) -> None:
    """Each head the bot logged earlier must still be in the chain, with the same link."""
    last_seq = report.head[0]
    for seq, link in heads:
        if seq > last_seq:
            report.findings.append(Finding(seq, f"a logged head says the chain reached event {seq} ({link[:12]}…) "
                                                f"but it now ends at {last_seq}: newest events deleted"))
        elif seq == start[0] and seq > 0:
            if start[1] != link:
                report.findings.append(Finding(seq, f"the logged head {seq}:{link[:12]}… does not match the "
                                                    "checkpoint the chain starts from"))
        elif seq < start[0]:
            have = (archived or {}).get(seq)
            if have is not None and have != link:
                report.findings.append(Finding(seq, f"the logged head {seq}:{link[:12]}… does not match the "
                                                    "archive holding that event"))
        elif linked.get(seq) != link:
            report.findings.append(Finding(seq, f"the logged head {seq}:{link[:12]}… does not match event {seq} "
                                                "(the chain was rewritten up to there)"))


def parse_head(value: str) -> tuple[int, str]:
    """`SEQ:LINK` as the bot logs it ('audit chain head 1234:ab12…')."""
    seq, sep, link = value.strip().partition(":")
    if not sep or not seq.isdigit() or len(link) != 64 or any(c not in "0123456789abcdef" for c in link):
        raise ValueError(f"a head is SEQ:LINK as the bot logs it (e.g. 1234:{'ab' * 32}), not {value!r}")
    return int(seq), link


def check_records(requests: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]], keys: Keys, *,
                  start: tuple[int, str] = (0, GENESIS), end: tuple[int, str] | None = None,
                  segment_from: int = 0, complete: bool = True,
                  heads: Sequence[tuple[int, str]] = (), unkeyed_until: int = 0) -> Report:
    """Check a chain held in a file (an export or a retention archive), away from the database."""
    evs = [Ev.of(e) for e in events]
    linked = sorted((e for e in evs if e.seq is not None), key=lambda e: e.seq or 0)
    walk = ChainWalk(keys, *start, segment_from=segment_from, unkeyed_until=unkeyed_until)
    for ev in linked:
        walk.add(ev)
    report = Report()
    report.add_walk(walk)
    report.unlinked = sum(1 for e in evs if e.seq is None)
    if end is not None and end != (walk.seq, walk.hash):
        report.findings.append(Finding(walk.seq + 1, f"the file says its chain ends at event {end[0]} but it ends "
                                                     f"at {walk.seq} (events removed?)"))
    by_request: dict[str, list[Ev]] = {}
    for ev in sorted(evs, key=lambda e: e.id):
        by_request.setdefault(ev.request_id, []).append(ev)
    rows = {str(r.get("id")): r for r in requests}
    for rid in sorted(set(rows) | set(by_request)):
        found, unchecked = fold(rid, rows.get(rid), by_request.get(rid, []), keys, complete)
        report.findings.extend(found)
        report.unchecked += unchecked
    within = [(seq, link) for seq, link in heads if start[0] <= seq <= (end or (walk.seq, ""))[0]]
    check_heads(within, {e.seq: e.hash or "" for e in linked if e.seq is not None}, report, start)
    return report
