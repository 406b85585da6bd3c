"""Small database-facing types with no SQLAlchemy import (kept light for fast start-up)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


class DatabaseUnavailable(Exception):
    """The audit database cannot be reached: no action may run."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything here is UTC."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@dataclass(frozen=True)
class AuditFilter:
    user: str | None = None
    env: str | None = None
    command: str | None = None
    status: str | None = None
    since: datetime | None = None
    limit: int = 20
