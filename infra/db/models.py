"""SQLAlchemy models of the audit store.

`requests` holds one row per action asked for, with its current status; every
state change is also an `audit_events` row, chained by hash so that an edited or
deleted row is detectable.  Locks live here too, so several bot processes share them.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class RequestRow(Base):
    __tablename__ = "requests"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    platform: Mapped[str] = mapped_column(String(32), nullable=False)
    channel: Mapped[str | None] = mapped_column(String(128))
    thread: Mapped[str | None] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    source: Mapped[str] = mapped_column(String(16), nullable=False, default="grammar")
    command: Mapped[str | None] = mapped_column(String(32))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    env: Mapped[str | None] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(128))
    changes: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False)
    plan_hash: Mapped[str | None] = mapped_column(String(64))
    approver: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    correlation_id: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    owner: Mapped[str | None] = mapped_column(String(64))
    # The schedule this request made (scheduling) or belongs to (a run of it); migration 0014.
    schedule_id: Mapped[str | None] = mapped_column(String(16))
    # How many audit events the request has: each event carries its number (`n`), so one deleted
    # or replayed shows (migration 0011).
    event_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")

    __table_args__ = (
        Index("ix_requests_created", "created_at"),
        Index("ix_requests_actor_created", "actor", "created_at"),
        Index("ix_requests_env_created", "env", "created_at"),
        Index("ix_requests_command_created", "command", "created_at"),
        Index("ix_requests_status_created", "status", "created_at"),
        # The pairs a team reviews most ("what did bob deploy", "deploys on prod", "failures on prod").
        Index("ix_requests_actor_command_created", "actor", "command", "created_at"),
        Index("ix_requests_env_command_created", "env", "command", "created_at"),
        Index("ix_requests_env_status_created", "env", "status", "created_at"),
        # Every other combination of equality filters `audit` can get, so each one reads its newest
        # rows straight off an index, whatever it matches (migration 0011; docs/PERFORMANCE.md).
        Index("ix_requests_actor_env_created", "actor", "env", "created_at"),
        Index("ix_requests_actor_status_created", "actor", "status", "created_at"),
        Index("ix_requests_command_status_created", "command", "status", "created_at"),
        Index("ix_requests_actor_env_command_created", "actor", "env", "command", "created_at"),
        Index("ix_requests_actor_env_status_created", "actor", "env", "status", "created_at"),
        Index("ix_requests_actor_command_status_created", "actor", "command", "status", "created_at"),
        Index("ix_requests_env_command_status_created", "env", "command", "status", "created_at"),
        Index("ix_requests_actor_env_command_status_created", "actor", "env", "command", "status",
              "created_at"),
        # A thread's last plan, for the LLM route's follow-ups (migration 0005).
        Index("ix_requests_thread_created", "channel", "thread", "created_at",
              postgresql_where=sql_text("thread IS NOT NULL"), sqlite_where=sql_text("thread IS NOT NULL")),
        Index("ix_requests_schedule", "schedule_id", "created_at",
              postgresql_where=sql_text("schedule_id IS NOT NULL"),
              sqlite_where=sql_text("schedule_id IS NOT NULL")),
        # Who decided (`audit approver=bob`) with every combination of the other filters; only decided
        # requests have one, so the indexes are partial (migration 0015).
        *(Index(f"ix_requests_approver_{''.join(c + '_' for c in cols)}created", "approver", *cols, "created_at",
                postgresql_where=sql_text("approver IS NOT NULL"), sqlite_where=sql_text("approver IS NOT NULL"))
          for n in range(5) for cols in itertools.combinations(("actor", "env", "command", "status"), n)),
    )


class AuditEvent(Base):
    """One step of a request; sealed (`mac`) when written, linked (`seq`, `hash`) a moment later.

    See infra/db/chain.py for what the seal and the link cover.
    """

    __tablename__ = "audit_events"

    # Write order (per request it is the events' order); `seq` is the place in the one chain.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    request_id: Mapped[str] = mapped_column(String(16), ForeignKey("requests.id"), nullable=False)
    n: Mapped[int | None] = mapped_column(Integer)  # the event's number within its request, from 1
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    kind: Mapped[str] = mapped_column(String(24), nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    # The request columns this event set (all of them for its first event); NULL before 0011.
    row: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    mac: Mapped[str | None] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(16))
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_events_request_id", "request_id", "id"),
        # What the linker picks up: sealed events not yet in the chain.
        Index("ix_audit_events_unlinked", "id", postgresql_where=sql_text("seq IS NULL"),
              sqlite_where=sql_text("seq IS NULL")),
    )


# The two tables as Core sees them, for the audit writes that skip the ORM (infra/db/writer.py).
REQUESTS = cast(Table, RequestRow.__table__)
EVENTS = cast(Table, AuditEvent.__table__)


def request_row(values: dict[str, Any]) -> RequestRow:
    """A request as the database returned it (`UPDATE … RETURNING`), or a new one the store writes with
    Core (never added to a session), built the way the ORM builds a row it loads: its values set as
    loaded, not through the constructor's instrumented writes (every request pays for this, twice)."""
    RequestRow.__mapper__._check_configure()  # as the constructor would (a flag once configured)
    row: RequestRow = RequestRow._sa_class_manager.new_instance()  # type: ignore[attr-defined]
    row.__dict__.update(values)
    return row


class ChainHead(Base):
    """The newest link and its place: deleting the last rows shows too (until the head is reset:
    then only a head the bot logged earlier shows it, see `audit verify --head`)."""

    __tablename__ = "audit_chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    # The key of the newest link (NULL: unkeyed); a bot with another key or none refuses to write.
    key_id: Mapped[str | None] = mapped_column(String(16))
    # Events after this place are in the sealed format (set by migration 0011).
    segment_from: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0")


class EnvLock(Base):
    """A freeze: no changing command runs on the environment until unlocked."""

    __tablename__ = "env_locks"

    env: Mapped[str] = mapped_column(String(64), primary_key=True)
    locked_by: Mapped[str] = mapped_column(String(128), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    locked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class ExecLock(Base):
    """Held while a change runs on a target, so two changes never overlap."""

    __tablename__ = "exec_locks"

    target: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(16), nullable=False)
    owner: Mapped[str] = mapped_column(String(64), nullable=False)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


EXEC_LOCKS = cast(Table, ExecLock.__table__)


class Worker(Base):
    """A running bot process; recovery treats requests of vanished workers as interrupted."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    host: Mapped[str] = mapped_column(String(128), nullable=False, default="")


class Deployment(Base):
    """A revision of a stack deployed (or tried) on an environment: enough to redeploy it exactly."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    env: Mapped[str] = mapped_column(String(64), nullable=False)
    stack: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)  # deploy | rollback
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # succeeded | failed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(16))
    ref: Mapped[str | None] = mapped_column(String(128))
    git_commit: Mapped[str | None] = mapped_column(String(64))
    compose_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    compose: Mapped[str] = mapped_column(Text, nullable=False)
    # The normalised `docker compose config` model (for the next deploy's diff).
    model: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    # service -> {"image": wanted ref, "id": image id, "digest": repo@sha256 or null}
    images: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    rollback_of: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_deployments_env_stack", "env", "stack", "id"),)


class AuditCheckpoint(Base):
    """Where the chain starts after a retention prune: the last archived event's seq and hash.

    The prune that wrote it is itself a request whose `succeeded` event (chained after
    `seq`) repeats these values, so editing this row is caught by `audit verify`.
    """

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False, unique=True)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    request_id: Mapped[str] = mapped_column(String(16), nullable=False)
    archive: Mapped[str] = mapped_column(Text, nullable=False)
    archive_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    requests: Mapped[int] = mapped_column(Integer, nullable=False)
    events: Mapped[int] = mapped_column(Integer, nullable=False)


class ScheduleRow(Base):
    """A request to run later, once or again and again, as the person who scheduled it.

    `next_run` is the occurrence a replica may claim: the claim moves it on in one
    conditional UPDATE, so with several replicas exactly one runs each occurrence.
    """

    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    owner: Mapped[str] = mapped_column(String(128), nullable=False)
    platform: Mapped[str] = mapped_column(String(32), nullable=False)
    channel: Mapped[str | None] = mapped_column(String(128))
    thread: Mapped[str | None] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    command: Mapped[str] = mapped_column(String(32), nullable=False)
    args: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    env: Mapped[str | None] = mapped_column(String(64))
    plan_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    said: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    recurrence: Mapped[str | None] = mapped_column(String(64))  # None: once
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    next_run: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    approval: Mapped[str] = mapped_column(String(16), nullable=False, default="none")
    approved_by: Mapped[str | None] = mapped_column(String(128))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    request_id: Mapped[str | None] = mapped_column(String(16))
    runs: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_request_id: Mapped[str | None] = mapped_column(String(16))
    last_status: Mapped[str | None] = mapped_column(String(24))
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_by: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_schedules_state_next", "state", "next_run"),)


class AlertPost(Base):
    """Where an Alertmanager group was posted, so its repeats and its resolution edit that message."""

    __tablename__ = "alert_posts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_key: Mapped[str] = mapped_column(String(64), nullable=False)
    platform: Mapped[str] = mapped_column(String(16), nullable=False)
    channel: Mapped[str] = mapped_column(String(128), nullable=False)
    message: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (UniqueConstraint("group_key", "platform", "channel", name="uq_alert_posts_target"),)


class Suggestion(Base):
    """A plan a button offers (an alert's "logs n8n rumpleprod"); clicking asks for it as the clicker."""

    __tablename__ = "suggestions"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    command: Mapped[str] = mapped_column(String(32), nullable=False)
    args: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    plan_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    origin: Mapped[str] = mapped_column(String(128), nullable=False, default="")
