"""Small database-facing types with no SQLAlchemy import (kept light for fast start-up)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

NUL, NUL_SHOWN = "\x00", "\ufffd"


def without_nul(value: Any) -> Any:
    """`value` with every NUL character (in strings, dict keys, lists) shown as U+FFFD.

    PostgreSQL's text and jsonb cannot hold NUL, so one in a request (an API argument, a pasted
    message) or in a backend's output (a container's log) failed the whole audit write: the request
    was answered "something went wrong" with no row. SQLite could hold it; both store this form."""
    if isinstance(value, str):
        return value.replace(NUL, NUL_SHOWN) if NUL in value else value
    if isinstance(value, dict):
        return {without_nul(k): without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_nul(v) for v in value]
    return value


class DatabaseUnavailable(Exception):
    """The audit database cannot be reached: no action may run."""

    def headline(self) -> str:
        """What went wrong, in one sentence without a final full stop (replies append what was not done)."""
        return f"The audit database is unreachable ({self})"

    advice = "Try again when it is back."

    def while_running(self, command: str) -> str:
        return f"The audit database became unreachable while {command} was running ({self})"


class BadDatabaseURL(DatabaseUnavailable):
    """DATABASE_URL cannot name a database this bot can use (not a URL, another kind of database, a port
    that is no number): said before any connection is tried, instead of the driver's traceback."""

    def headline(self) -> str:
        return str(self)

    advice = ("Fix DATABASE_URL: postgresql+psycopg://USER[:PASSWORD]@HOST[:PORT]/DATABASE, or unset it for "
              "the SQLite file.")


class SchemaMismatch(DatabaseUnavailable):
    """The database answers, but its schema is not the one this code was written for.

    No action may run either (a row this code writes could lack what the newer schema
    requires), but the cause is not the network: the message names both versions.
    """

    def __init__(self, message: str, advice: str, *, database: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.database, self.code = database, code
        self.advice = advice

    def headline(self) -> str:
        return str(self)

    def while_running(self, command: str) -> str:
        return f"{self} (found while {command} was running)"


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
    approver: str | None = None  # who approved or denied it
    env: str | None = None
    command: str | None = None
    status: str | None = None
    since: datetime | None = None
    limit: int = 20
    # Only these request columns (a 500-row page of the `audit` command needs eleven, not all).
    columns: tuple[str, ...] | None = None
