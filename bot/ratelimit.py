"""Rate limits on changing commands, per user and per channel.

Counts come from the audit log (`requests`), not from process memory, so the limit holds
however many bot replicas share the database and survives restarts.  What counts: requests
for commands that act on infrastructure (they name a backend: deploy, restart, snapshot…)
created in the last hour, except those refused before they could run (a refusal, including
a rate-limit refusal, changes nothing, so it never locks a user out for longer).  Freezes
(`lock`/`unlock`) and `approve`/`deny` are never limited: they are how people stop trouble.

Two replicas checking at the same instant can each let one request through at the limit
(count, then insert): the limit is a guard against runaway loops and fat fingers, not a
billing meter, so it is not serialised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from bot.metrics import RATE_LIMITED
from commands.registry import CommandSpec, Registry
from infra.config import Config, Role
from infra.db.common import aware, utcnow
from infra.db.models import RequestRow
from infra.db.store import AuditStore
from infra.status import Status

WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Verdict:
    scope: str  # user | channel
    count: int
    limit: int
    frees_at: datetime | None

    def message(self, who: str) -> str:
        when = f" The next slot frees up at {self.frees_at:%H:%M} UTC." if self.frees_at else ""
        subject = "you have" if self.scope == "user" else f"this channel ({who}) has"
        return (f"Rate limit: {subject} asked for {self.count} changes in the last hour "
                f"(limit {self.limit} per {self.scope}); nothing was run.{when} "
                "An admin can raise rate_limits in the config if this is routine.")


class RateLimiter:
    def __init__(self, config: Config, store: AuditStore, registry: Registry) -> None:
        self.config = config
        self.store = store
        self.limited = sorted(s.name for s in registry if counts(s))

    def check(self, spec: CommandSpec, actor: str, channel: str | None, roles: frozenset[Role],
              now: datetime | None = None) -> Verdict | None:
        """None when the request may go on; otherwise which limit it hit (blocking DB call)."""
        cfg = self.config.inventory.rate_limits
        if not counts(spec) or (cfg.per_user_per_hour is None and cfg.per_channel_per_hour is None):
            return None
        if roles & set(cfg.exempt_roles):
            return None
        now = now or utcnow()
        checks: list[tuple[str, int | None, object]] = [("user", cfg.per_user_per_hour, RequestRow.actor == actor)]
        if channel:
            checks.append(("channel", cfg.per_channel_per_hour, RequestRow.channel == channel))
        for scope, limit, where in checks:
            if limit is None:
                continue
            count, oldest = self._count(where, now)
            if count >= limit:
                RATE_LIMITED.labels(scope).inc()
                first = aware(oldest)
                frees = first + WINDOW if first else None
                return Verdict(scope, count, limit, frees)
        return None

    def _count(self, where: object, now: datetime) -> tuple[int, datetime | None]:
        q = (select(func.count(), func.min(RequestRow.created_at))
             .where(where, RequestRow.changes.is_(True), RequestRow.command.in_(self.limited),  # type: ignore[arg-type]
                    RequestRow.created_at >= now - WINDOW, RequestRow.status != Status.refused))
        with self.store._tx() as s:  # DatabaseUnavailable when the database is down
            count, oldest = s.execute(q).one()
        return int(count or 0), oldest


def counts(spec: CommandSpec) -> bool:
    """Commands that act on infrastructure count toward (and are held by) the limits."""
    return spec.changes and spec.backend is not None
