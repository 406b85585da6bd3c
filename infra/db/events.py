"""Rows of the event features: schedules, alert posts and suggested plans (migration 0014).

Kept apart from the audit store (store.py), which owns requests, the event chain and locks;
these use its sessions and commit before they return, like everything there.

The schedule claim is the one place replicas race: `claim_due` selects due schedules with
`FOR UPDATE SKIP LOCKED` on PostgreSQL and moves each one's `next_run` on in the same
transaction, so every occurrence is taken by exactly one replica.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from infra.db.common import aware, utcnow
from infra.db.models import AlertPost, ScheduleRow, Suggestion
from infra.db.store import AuditStore, by_id_or_prefix
from infra.status import ScheduleState

T = TypeVar("T", ScheduleRow, Suggestion)


def new_schedule_id() -> str:
    return "s-" + secrets.token_hex(4)


def new_suggestion_id() -> str:
    return "a-" + secrets.token_hex(4)


@dataclass(frozen=True)
class Claimed:
    """An occurrence this replica took: the schedule as it was, and the time it was due."""

    row: ScheduleRow
    due: datetime
    following: datetime | None  # the run after this one (None: it was the last)


# What comes after an occurrence: (the next run or None, the state after it).
Advance = Callable[[ScheduleRow, datetime], tuple[datetime | None, ScheduleState]]


def oldest_age_s(store: AuditStore, status: str) -> float | None:
    """Seconds since the oldest request in `status` was created (None when there is none)."""
    from infra.db.models import RequestRow

    with store._tx() as s:
        first = s.execute(select(func.min(RequestRow.created_at)).where(RequestRow.status == status)).scalar()
    when = aware(first)
    return (utcnow() - when).total_seconds() if when else None


class EventStore:
    def __init__(self, store: AuditStore) -> None:
        self.store = store

    # -- schedules ----------------------------------------------------------
    def _insert(self, row: T, fresh_id: Callable[[], str], what: str) -> T:
        """Insert a row whose short random id may collide: draw again, a few times."""
        for _ in range(5):
            try:
                with self.store._tx() as s:
                    s.add(row)
                return row
            except IntegrityError:
                row.id = fresh_id()
        raise RuntimeError(f"could not allocate a {what} id")

    def add_schedule(self, row: ScheduleRow) -> ScheduleRow:
        now = utcnow()
        row.created_at = row.updated_at = now
        return self._insert(row, new_schedule_id, "schedule")

    def schedule(self, sid: str) -> ScheduleRow | None:
        with self.store._tx() as s:
            return s.get(ScheduleRow, sid)

    def find_schedules(self, ref: str) -> list[ScheduleRow]:
        """The schedules an id or its first digits name ("s-12ab"; `by_id_or_prefix`)."""
        with self.store._tx() as s:
            return by_id_or_prefix(s, ScheduleRow, ref)

    def schedules(self, *, states: tuple[ScheduleState, ...] = (ScheduleState.active,), env: str | None = None,
                  owner: str | None = None) -> list[ScheduleRow]:
        q = select(ScheduleRow).where(ScheduleRow.state.in_(list(states)))
        if env:
            q = q.where(ScheduleRow.env == env)
        if owner:
            q = q.where(ScheduleRow.owner == owner)
        with self.store._tx() as s:
            return list(s.scalars(q.order_by(ScheduleRow.next_run, ScheduleRow.id)))

    def count_active(self, owner: str) -> int:
        with self.store._tx() as s:
            return int(s.execute(select(func.count()).select_from(ScheduleRow).where(
                ScheduleRow.owner == owner, ScheduleRow.state == ScheduleState.active)).scalar() or 0)

    def set_state(self, sid: str, from_states: tuple[ScheduleState, ...], to: ScheduleState,
                  **values: Any) -> ScheduleRow | None:
        """Conditional move (None if it was not in `from_states`: someone else moved it)."""
        with self.store._tx() as s:
            res = s.execute(update(ScheduleRow)
                            .where(ScheduleRow.id == sid, ScheduleRow.state.in_(list(from_states)))
                            .values(state=to, updated_at=utcnow(), **values))
            if res.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return s.get(ScheduleRow, sid)

    def record_run(self, sid: str, request_id: str | None, status: str, at: datetime) -> None:
        with self.store._tx() as s:
            s.execute(update(ScheduleRow).where(ScheduleRow.id == sid).values(
                last_request_id=request_id, last_status=status, last_run_at=at, updated_at=utcnow()))

    def claim_due(self, now: datetime, advance: Advance, limit: int = 20) -> list[Claimed]:
        """Take the active schedules due at `now`, moving each one's `next_run` on (one transaction)."""
        q = (select(ScheduleRow).where(ScheduleRow.state == ScheduleState.active, ScheduleRow.next_run <= now)
             .order_by(ScheduleRow.next_run).limit(limit))
        if self.store.db.is_postgres:
            q = q.with_for_update(skip_locked=True)
        out: list[Claimed] = []
        with self.store._tx() as s:
            for row in list(s.scalars(q)):
                due = aware(row.next_run)
                assert due is not None
                following, state = advance(row, now)
                res = s.execute(update(ScheduleRow)
                                .where(ScheduleRow.id == row.id, ScheduleRow.state == ScheduleState.active,
                                       ScheduleRow.next_run == row.next_run)
                                .values(next_run=following, state=state, claimed_by=self.store.owner,
                                        claimed_at=now, runs=ScheduleRow.runs + 1, updated_at=utcnow())
                                .execution_options(synchronize_session=False))
                if res.rowcount == 1:  # type: ignore[attr-defined]
                    s.expunge(row)  # the schedule as it was when claimed
                    out.append(Claimed(row, due, following))
        return out

    # -- suggested plans ------------------------------------------------------
    def add_suggestion(self, command: str, args: dict[str, Any], digest: str, origin: str) -> Suggestion:
        row = Suggestion(id=new_suggestion_id(), created_at=utcnow(), command=command, args=args,
                         plan_hash=digest, origin=origin[:128])
        return self._insert(row, new_suggestion_id, "suggestion")

    def suggestion(self, sid: str) -> Suggestion | None:
        with self.store._tx() as s:
            return s.get(Suggestion, sid)

    # -- alert posts ------------------------------------------------------------
    def alert_post(self, group_key: str, platform: str, channel: str) -> AlertPost | None:
        with self.store._tx() as s:
            return s.scalars(select(AlertPost).where(AlertPost.group_key == group_key,
                                                     AlertPost.platform == platform,
                                                     AlertPost.channel == channel)).first()

    def claim_alert_post(self, group_key: str, platform: str, channel: str, status: str) -> AlertPost | None:
        """Insert the post row first (a claim): None when another delivery holds it already."""
        now = utcnow()
        try:
            with self.store._tx() as s:
                row = AlertPost(group_key=group_key, platform=platform, channel=channel, message=None,
                                status=status, created_at=now, updated_at=now)
                s.add(row)
            return row
        except IntegrityError:
            return None

    def take_over_alert_post(self, post: AlertPost, stale: timedelta) -> AlertPost | None:
        """A claim whose delivery never posted, if it is older than `stale` (and no one else took it)."""
        now = utcnow()
        when = aware(post.updated_at)
        if post.message is not None or when is None or now - when < stale:
            return None
        with self.store._tx() as s:
            res = s.execute(update(AlertPost).where(AlertPost.id == post.id, AlertPost.message.is_(None),
                                                    AlertPost.updated_at == post.updated_at)
                            .values(updated_at=now).execution_options(synchronize_session=False))
            return post if res.rowcount == 1 else None  # type: ignore[attr-defined]

    def drop_alert_post(self, post_id: int) -> None:
        with self.store._tx() as s:
            s.execute(delete(AlertPost).where(AlertPost.id == post_id, AlertPost.message.is_(None)))

    def update_alert_post(self, post_id: int, **values: Any) -> None:
        with self.store._tx() as s:
            s.execute(update(AlertPost).where(AlertPost.id == post_id).values(updated_at=utcnow(), **values))
