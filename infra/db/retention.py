"""Audit retention: archive and delete old finished requests without breaking the hash chain.

The audit events form one chain (`prev_hash` → `hash`, `seq` without gaps).  Pruning
cuts a *prefix* of that chain, never a hole:

1. Choose the cut `K`: the largest event seq such that every event up to `K` belongs to a
   request that is final (succeeded, failed, denied…) and last changed before the cutoff,
   and none of those requests has an event after `K`.  Requests still open, or recent,
   stop the cut before their first event.
2. Write events 1..K (or since the previous cut) and their request rows to an archive file
   (gzip JSON lines, header first), fsync it, and record its SHA-256.
3. In one transaction (holding the chain head's row lock, so no event is linked
   meanwhile; the events written so far are linked first): delete those events and rows,
   insert a checkpoint `(K, hash of event K)`, and record the prune itself as an audited
   request whose `succeeded` event carries the checkpoint and the archive's SHA-256.

`audit verify` then starts from the newest checkpoint instead of the genesis hash and
also checks that the checkpoint matches the prune event chained after it.  An archive
verifies on its own (`verify_archive`): its events chain from its header's `prev_hash`
to its `through_hash`, which is the database checkpoint (or the next archive's
`prev_hash`), so the archives plus the database still prove the whole history.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from infra import untrusted_json
from infra.db.chain import GENESIS, AuditKeyError, Ev, Finding, Keys, Report, check_records
from infra.db.common import aware, utcnow
from infra.db.models import AuditCheckpoint, AuditEvent, ChainHead, RequestRow
from infra.db.store import AuditStore, new_request_id
from infra.status import FINAL, Status
from infra.wording import agrees, counted

ARCHIVE_KIND = "chatops-audit-archive"
ARCHIVE_VERSION = 2  # 2: events carry their seal, number and row (migration 0011)
PRUNE_ACTOR = "system:retention"
PRUNE_COMMAND = "audit-prune"
REQUEST_COLUMNS = [c.name for c in RequestRow.__table__.columns]


@dataclass(frozen=True)
class PruneResult:
    through_seq: int
    through_hash: str
    requests: int
    events: int
    archive: Path | None
    archive_sha256: str | None
    request_id: str | None  # the prune's own audit request (None on a dry run)


def chain_start(s: Session) -> AuditCheckpoint | None:
    """The newest checkpoint, where verification starts (None: from the genesis hash)."""
    return s.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1)).first()


def checkpoint_problems(s: Session, cp: AuditCheckpoint | None) -> list[str]:
    """A checkpoint must be attested by its prune event, and nothing may remain before it."""
    if cp is None:
        return []
    problems = []
    left = s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.seq <= cp.seq)) or 0
    if left:
        problems.append(f"{counted(left, 'event')} at or before the checkpoint (seq {cp.seq}) "
                        f"{agrees(left, 'is', 'are')} still present")
    attest = s.scalars(select(AuditEvent).where(AuditEvent.request_id == cp.request_id,
                                                AuditEvent.kind == Status.succeeded)).first()
    want = {"checkpoint_seq": cp.seq, "checkpoint_hash": cp.hash, "archive_sha256": cp.archive_sha256}
    if (attest is None or attest.seq is None or attest.seq <= cp.seq
            or any(attest.detail.get(k) != v for k, v in want.items())):
        problems.append(f"the checkpoint at seq {cp.seq} does not match the prune event that should "
                        f"attest it (request {cp.request_id}): edited or forged?")
    return problems


def _cut(s: Session, head: ChainHead, cutoff: datetime, after: int) -> int:
    """The largest seq K such that events after..K are all of old, final, wholly-covered requests."""
    spans = s.execute(
        select(AuditEvent.request_id, func.min(AuditEvent.seq), func.max(AuditEvent.seq))
        .where(AuditEvent.seq > after).group_by(AuditEvent.request_id)
        .order_by(func.min(AuditEvent.seq))).all()
    done = {rid for (rid,) in s.execute(
        select(RequestRow.id).where(RequestRow.status.in_(FINAL), RequestRow.updated_at < cutoff))}
    best, reach = after, after
    for i, (rid, _first, hi) in enumerate(spans):
        hi = int(hi or 0)
        if rid not in done:
            break
        reach = max(reach, hi)
        nxt = int(spans[i + 1][1] or 0) if i + 1 < len(spans) else head.seq + 1
        if nxt > reach:
            best = reach  # nothing after this point reaches back before it
    return best


def _events(s: Session, first: int, last: int) -> Iterator[AuditEvent]:
    at = first - 1
    while at < last:
        batch = list(s.scalars(select(AuditEvent).where(AuditEvent.seq > at, AuditEvent.seq <= last)
                               .order_by(AuditEvent.seq).limit(5000)))
        if not batch:
            return
        yield from batch
        at = int(batch[-1].seq or last)


def _plain(v: Any) -> Any:
    if isinstance(v, datetime):
        a = aware(v)
        return a.isoformat() if a else None
    return v


def _write_archive(path: Path, header: dict[str, Any], s: Session, first: int, last: int,
                   request_ids: list[str]) -> tuple[str, int]:
    """Write the archive atomically (temp file, fsync, rename); return its SHA-256 and event count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    count = 0
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            def line(obj: dict[str, Any]) -> None:
                gz.write((json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n").encode())

            line(header)
            for i in range(0, len(request_ids), 1000):
                for row in s.scalars(select(RequestRow).where(RequestRow.id.in_(request_ids[i:i + 1000]))
                                     .order_by(RequestRow.created_at, RequestRow.id)):
                    line({"type": "request", **{c: _plain(getattr(row, c)) for c in REQUEST_COLUMNS}})
            for ev in _events(s, first, last):
                count += 1
                line({"type": "event", **Ev.of(ev).to_dict()})
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest, count


def prune(store: AuditStore, cutoff: datetime, archive: Path | None, *, dry_run: bool = False) -> PruneResult:
    """Archive and delete finished requests older than `cutoff` (see the module docstring)."""
    if archive is None and not dry_run:
        raise ValueError("an archive file is required: pruning never deletes without one")
    try:
        store.check_key()  # the prune's own events must verify like the bot's
        can_link = True
    except AuditKeyError:
        if not dry_run:
            raise
        can_link = False
    with store._tx() as s:
        head = s.execute(select(ChainHead).where(ChainHead.id == 1).with_for_update()).scalar_one()
        if can_link:
            store.link_locked(s, head)  # the cut is over linked events only (linking changes no content)
        cp = chain_start(s)
        after, prev_hash = (cp.seq, cp.hash) if cp else (0, GENESIS)
        k = _cut(s, head, cutoff, after)
        if k == after:
            return PruneResult(after, prev_hash, 0, 0, None, None, None)
        ids = sorted({rid for (rid,) in s.execute(select(AuditEvent.request_id).distinct()
                                                 .where(AuditEvent.seq > after, AuditEvent.seq <= k))})
        last = s.scalars(select(AuditEvent).where(AuditEvent.seq == k)).one()
        if dry_run:
            events = s.scalar(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.seq > after, AuditEvent.seq <= k)) or 0
            return PruneResult(k, last.hash or "", len(ids), events, None, None, None)
        assert archive is not None
        now = utcnow()
        before = _plain(cutoff)
        header = {"type": "header", "kind": ARCHIVE_KIND, "version": ARCHIVE_VERSION, "created_at": now.isoformat(),
                  "cutoff": before, "first_seq": after + 1,
                  "prev_hash": prev_hash, "through_seq": k, "through_hash": last.hash, "requests": len(ids),
                  "segment_from": head.segment_from}
        digest, events = _write_archive(archive, header, s, after + 1, k, ids)
        s.execute(delete(AuditEvent).where(AuditEvent.seq > after, AuditEvent.seq <= k))
        for i in range(0, len(ids), 1000):
            s.execute(delete(RequestRow).where(RequestRow.id.in_(ids[i:i + 1000])))
        rid = new_request_id()
        while s.get(RequestRow, rid) is not None:
            rid = new_request_id()
        args = {"before": before, "archive": archive.name}
        summary = f"archived {counted(len(ids), 'request')}, events {after + 1}..{k}, to {archive.name}"
        row = RequestRow(id=rid, actor=PRUNE_ACTOR, platform="cli", text="audit prune", source="cli",
                         command=PRUNE_COMMAND, args=args, changes=True, status=Status.succeeded, result=summary,
                         correlation_id=uuid.uuid4().hex[:12])
        store.add_request(s, row, [
            (Status.requested, {"command": PRUNE_COMMAND, "args": args, "actor": PRUNE_ACTOR, "source": "cli",
                                "text": "audit prune"}),
            (Status.succeeded, {"checkpoint_seq": k, "checkpoint_hash": last.hash, "archive": archive.name,
                                "archive_sha256": digest, "requests": len(ids), "events": events,
                                "result": summary})], now)
        store.link_locked(s, head)  # the attesting event is in the chain when the checkpoint is
        s.add(AuditCheckpoint(seq=k, hash=last.hash, created_at=now, request_id=rid, archive=archive.name,
                              archive_sha256=digest, requests=len(ids), events=events))
    return PruneResult(k, last.hash or "", len(ids), events, archive, digest, rid)


def read_archive(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Header, request rows and events of an archive file."""
    header: dict[str, Any] | None = None
    requests: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    with gzip.open(path, "rt") as f:
        for n, text in enumerate(f, 1):
            obj = untrusted_json.loads(text)
            kind = obj.get("type")
            if n == 1:
                if kind != "header" or obj.get("kind") != ARCHIVE_KIND:
                    raise ValueError(f"{path} is not a chatops audit archive")
                header = obj
            elif kind == "request":
                requests.append(obj)
            elif kind == "event":
                events.append(obj)
            else:
                raise ValueError(f"{path}:{n}: unknown line type {kind!r}")
    if header is None:
        raise ValueError(f"{path} is empty")
    return header, requests, events


def verify_archive(path: Path, keys: Keys | None = None) -> list[str]:
    """Recompute an archive's chain: every seal and link, each row against its events, the header's ends."""
    return check_archive(path, keys).problems


def check_archive(path: Path, keys: Keys | None = None, heads: list[tuple[int, str]] | None = None,
                  unkeyed_until: int = 0) -> Report:
    try:
        header, requests, events = read_archive(path)
    except (OSError, ValueError, EOFError) as exc:
        report = Report()
        report.findings.append(Finding(0, f"cannot read the archive: {exc}"))
        return report
    return check_records(requests, events, keys or Keys(),
                         start=(int(header["first_seq"]) - 1, header["prev_hash"]),
                         end=(int(header["through_seq"]), header["through_hash"]),
                         segment_from=int(header.get("segment_from", header["through_seq"])), heads=heads or [],
                         unkeyed_until=unkeyed_until)
