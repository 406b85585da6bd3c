"""The audit store: write-ahead request rows, hash-chained events, locks.

Every method commits before it returns, so when the engine acts the row that says
so is already durable.  Transitions are conditional updates (`WHERE status IN …`):
a double click or two approvers at once see exactly one winner.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import secrets
import socket
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, delete, event, func, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from infra.db.common import AuditFilter, DatabaseUnavailable, aware, utcnow
from infra.db.models import AuditEvent, ChainHead, EnvLock, ExecLock, RequestRow, Worker
from infra.redact import Redactor
from infra.status import ACTIVE, AFTER_APPROVAL, FINAL, PENDING, Status

GENESIS = "0" * 64
# Free-text columns of a request row that may quote a backend's answer.
REDACTED_COLUMNS = ("text", "reason", "error", "result")


def _stamp(dt: datetime) -> str:
    a = aware(dt)
    assert a is not None
    return a.replace(tzinfo=None).isoformat(timespec="microseconds")


def event_hash(prev: str, seq: int, request_id: str, at: datetime, kind: str, actor: str,
               detail: dict[str, Any]) -> str:
    body = json.dumps({"seq": seq, "request": request_id, "at": _stamp(at), "kind": kind,
                       "actor": actor, "detail": detail}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev + body).encode()).hexdigest()


def default_sqlite_url() -> str:
    from platformdirs import user_data_dir

    folder = Path(user_data_dir("chatops"))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'audit.sqlite3'}"


def new_request_id() -> str:
    return "r-" + secrets.token_hex(4)


def _advisory_key(owner: str) -> int:
    return int.from_bytes(hashlib.sha256(owner.encode()).digest()[:8], "big", signed=True)


class Database:
    """Engine and sessions for one database URL; SQLite when none is given."""

    def __init__(self, url: str | None = None, *, connect_timeout: int = 5) -> None:
        self.url = url or default_sqlite_url()
        args: dict[str, Any] = {}
        if self.url.startswith("postgresql"):
            args["connect_args"] = {"connect_timeout": connect_timeout}
            self.engine: Engine = create_engine(self.url, pool_pre_ping=True, pool_size=5,
                                                max_overflow=5, **args)
        else:
            self.engine = create_engine(self.url, connect_args={"timeout": 30, "check_same_thread": False})

            @event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(conn: Any, _record: Any) -> None:
                cur = conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def migrate(self, revision: str = "head") -> None:
        """Only `chatops db upgrade` and the bot's start call this; everything else checks (require_current)."""
        from infra.db.migrate import upgrade

        upgrade(self.engine, revision)

    def require_current(self) -> None:
        """SchemaMismatch (both versions named) unless the schema is this code's newest; reads only."""
        from infra.db.migrate import require_current

        require_current(self.engine)

    def ping(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except (OperationalError, SQLAlchemyError) as exc:
            raise DatabaseUnavailable(_describe(exc)) from exc

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session committed on exit; a lost connection becomes DatabaseUnavailable (no action then)."""
        try:
            with self.sessions.begin() as s:
                yield s
        except (OperationalError, ProgrammingError) as exc:
            if _missing_table_or_column(exc):
                self._raise_if_schema_differs(exc)
            if isinstance(exc, OperationalError):
                raise DatabaseUnavailable(_describe(exc)) from exc
            raise

    def _raise_if_schema_differs(self, exc: SQLAlchemyError) -> None:
        """A missing table or column under a schema this code does not match (restored or upgraded
        under it) is reported as that, with both versions, not as an outage or an internal error."""
        from infra.db.migrate import schema_status

        try:
            status = schema_status(self.engine)
        except DatabaseUnavailable:
            return
        if not status.current:
            raise status.mismatch() from exc


def _missing_table_or_column(exc: SQLAlchemyError) -> bool:
    """PostgreSQL's undefined_table/undefined_column, SQLite's "no such table/column"."""
    if getattr(getattr(exc, "orig", None), "sqlstate", None) in ("42P01", "42703"):
        return True
    return any(m in str(getattr(exc, "orig", exc)) for m in ("no such table", "no such column", "has no column"))


def _describe(exc: BaseException) -> str:
    msg = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return msg[0] if msg else type(exc).__name__


class AuditStore:
    """All reads and writes of requests, events and locks."""

    def __init__(self, db: Database, owner: str | None = None) -> None:
        self.db = db
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._liveness: Any = None
        # Every text the audit log stores passes through this (the engine installs its own, which
        # also knows the configured secrets); the patterns alone catch tokens and URL credentials.
        self.redactor = Redactor()

    # -- sessions ---------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with self.db.transaction() as s:
            yield s

    def register_worker(self) -> None:
        """Announce this process; on PostgreSQL hold an advisory lock that proves we live."""
        if self.db.is_postgres and self._liveness is None:
            try:
                conn = self.db.engine.connect()
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _advisory_key(self.owner)})
                conn.commit()
            except OperationalError as exc:
                raise DatabaseUnavailable(_describe(exc)) from exc
            self._liveness = conn
        now = utcnow()
        with self._tx() as s:
            s.merge(Worker(id=self.owner, started_at=now, heartbeat_at=now, host=socket.gethostname()))

    def close(self) -> None:
        if self._liveness is not None:
            try:
                self._liveness.close()
            finally:
                self._liveness = None
        try:
            with self._tx() as s:
                s.execute(delete(Worker).where(Worker.id == self.owner))
        except (DatabaseUnavailable, SQLAlchemyError):
            pass

    def owner_alive(self, owner: str | None) -> bool:
        if owner is None:
            return False
        if owner == self.owner:
            return True
        if not self.db.is_postgres:
            return False  # SQLite is the single-process embedded default
        with self._tx() as s:
            got = s.execute(text("SELECT pg_try_advisory_xact_lock(:k)"),
                            {"k": _advisory_key(owner)}).scalar()
        return not got

    # -- events -----------------------------------------------------------
    def _append(self, s: Session, request_id: str, kind: str, actor: str,
                detail: dict[str, Any], at: datetime) -> None:
        detail = self.redactor.data(detail)
        head = s.execute(select(ChainHead).where(ChainHead.id == 1).with_for_update()).scalar_one()
        seq = head.seq + 1
        digest = event_hash(head.hash, seq, request_id, at, kind, actor, detail)
        s.add(AuditEvent(seq=seq, request_id=request_id, at=at, kind=kind, actor=actor,
                         detail=detail, prev_hash=head.hash, hash=digest))
        head.seq, head.hash = seq, digest

    def create(self, row: RequestRow, events: Sequence[tuple[str, dict[str, Any]]]) -> RequestRow:
        """Insert a request and its first events in one transaction."""
        now = utcnow()
        row.created_at = row.updated_at = now
        for col in REDACTED_COLUMNS:
            if isinstance(getattr(row, col), str):
                setattr(row, col, self.redactor.text(getattr(row, col)))
        row.args = self.redactor.data(row.args) if row.args else row.args
        row.owner = self.owner if row.status in ACTIVE else None
        for _ in range(5):
            try:
                with self._tx() as s:
                    s.add(row)
                    s.flush()
                    for kind, detail in events:
                        self._append(s, row.id, kind, row.actor, detail, now)
                return row
            except IntegrityError:
                row.id = new_request_id()  # id collision: draw again
        raise DatabaseUnavailable("could not allocate a request id")

    def transition(self, request_id: str, from_status: Iterable[Status], to_status: Status, actor: str,
                   detail: dict[str, Any] | None = None, **fields: Any) -> RequestRow | None:
        """Move a request from one of `from_status` to `to_status`; None if someone else won."""
        now = utcnow()
        values = {"status": to_status, "updated_at": now,
                  **{k: self.redactor.text(v) if k in REDACTED_COLUMNS and isinstance(v, str) else v
                     for k, v in fields.items()}}
        if to_status in ACTIVE:
            values["owner"] = self.owner
        with self._tx() as s:
            res = s.execute(update(RequestRow)
                            .where(RequestRow.id == request_id, RequestRow.status.in_(list(from_status)))
                            .values(**values))
            if res.rowcount != 1:  # type: ignore[attr-defined]
                return None
            self._append(s, request_id, to_status, actor, detail or {}, now)
            return s.get(RequestRow, request_id)

    def note(self, request_id: str, kind: str, actor: str, detail: dict[str, Any]) -> None:
        """An event that does not change the status (progress)."""
        now = utcnow()
        with self._tx() as s:
            self._append(s, request_id, kind, actor, detail, now)
            s.execute(update(RequestRow).where(RequestRow.id == request_id).values(updated_at=now))

    # -- reads ------------------------------------------------------------
    def get(self, request_id: str) -> RequestRow | None:
        with self._tx() as s:
            return s.get(RequestRow, request_id)

    def events(self, request_id: str) -> list[AuditEvent]:
        with self._tx() as s:
            return list(s.scalars(select(AuditEvent).where(AuditEvent.request_id == request_id)
                                  .order_by(AuditEvent.seq)))

    def query(self, f: AuditFilter) -> list[RequestRow]:
        q = select(RequestRow)
        if f.user:
            q = q.where(RequestRow.actor == f.user)
        if f.env:
            q = q.where(RequestRow.env == f.env)
        if f.command:
            q = q.where(RequestRow.command == f.command)
        if f.status == Status.approved:
            # `approved` lasts only until the run starts: the requests an approver said yes to.
            q = q.where(RequestRow.approver.is_not(None), RequestRow.status.in_(AFTER_APPROVAL))
        elif f.status:
            q = q.where(RequestRow.status == f.status)
        if f.since:
            q = q.where(RequestRow.created_at >= f.since)
        q = q.order_by(RequestRow.created_at.desc(), RequestRow.id.desc()).limit(f.limit)
        with self._tx() as s:
            return list(s.scalars(q))

    def pending(self) -> list[RequestRow]:
        with self._tx() as s:
            return list(s.scalars(select(RequestRow).where(RequestRow.status.in_(PENDING))
                                  .order_by(RequestRow.created_at)))

    def count_by_status(self) -> dict[str, int]:
        with self._tx() as s:
            rows = s.execute(select(RequestRow.status, func.count()).group_by(RequestRow.status)).all()
            return {status: int(n) for status, n in rows}

    # -- environment freezes ---------------------------------------------
    def lock_env(self, env: str, actor: str, reason: str | None) -> EnvLock | None:
        """Freeze an environment; returns the existing lock if it was already frozen."""
        with self._tx() as s:
            existing = s.get(EnvLock, env)
            if existing:
                return existing
            s.add(EnvLock(env=env, locked_by=actor, reason=reason, locked_at=utcnow()))
        return None

    def unlock_env(self, env: str) -> EnvLock | None:
        with self._tx() as s:
            existing = s.get(EnvLock, env)
            if existing:
                s.delete(existing)
            return existing

    def env_locks(self) -> dict[str, EnvLock]:
        with self._tx() as s:
            return {lk.env: lk for lk in s.scalars(select(EnvLock))}

    # -- execution locks --------------------------------------------------
    def _insert_locks(self, s: Session, targets: Sequence[str], request_id: str) -> int:
        """Insert lock rows, skipping taken ones (no exception under contention); returns rows taken."""
        rows = [{"target": t, "request_id": request_id, "owner": self.owner, "acquired_at": utcnow()}
                for t in targets]
        if self.db.is_postgres:
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt: Any = pg_insert(ExecLock).values(rows).on_conflict_do_nothing()
        else:
            from sqlalchemy.dialects.sqlite import insert as lite_insert

            stmt = lite_insert(ExecLock).values(rows).on_conflict_do_nothing()
        return len(s.execute(stmt.returning(ExecLock.target)).all())

    def acquire(self, targets: Sequence[str], request_id: str) -> str | None:
        """Take every target's execution lock or none; returns the holder's request id on conflict."""
        for attempt in range(2):
            with self._tx() as s:
                if self._insert_locks(s, targets, request_id) == len(targets):
                    return None
                s.rollback()  # all or nothing
            with self._tx() as s:
                held = list(s.scalars(select(ExecLock).where(ExecLock.target.in_(list(targets)))))
                finished = set(s.scalars(select(RequestRow.id).where(
                    RequestRow.id.in_([h.request_id for h in held]), RequestRow.status.in_(FINAL))))
            # Stale: its worker died, or its request already ended (a release lost to a database outage).
            stale = [h for h in held if h.request_id in finished or not self.owner_alive(h.owner)]
            if stale and attempt == 0:
                with self._tx() as s:
                    s.execute(delete(ExecLock).where(ExecLock.target.in_([h.target for h in stale]),
                                                     ExecLock.owner.in_({h.owner for h in stale})))
                continue
            live = [h for h in held if h not in stale] or held
            return live[0].request_id if live else "another request"
        return "another request"

    def release(self, request_id: str) -> None:
        with self._tx() as s:
            s.execute(delete(ExecLock).where(ExecLock.request_id == request_id))

    # -- recovery ---------------------------------------------------------
    def recover(self) -> list[RequestRow]:
        """Mark requests whose worker died mid-run as interrupted; free their locks."""
        with self._tx() as s:
            rows = list(s.scalars(select(RequestRow).where(RequestRow.status.in_(ACTIVE),
                                                           RequestRow.owner != self.owner)))
        dead = {r.owner for r in rows if not self.owner_alive(r.owner)}
        out = []
        for r in rows:
            if r.owner in dead:
                moved = self.transition(r.id, ACTIVE, Status.interrupted, "system",
                                        {"reason": "the bot stopped while this was running"},
                                        error="interrupted: the bot stopped while this was running")
                if moved:
                    out.append(moved)
                self.release(r.id)
        with self._tx() as s:
            for lk in list(s.scalars(select(ExecLock).where(ExecLock.owner != self.owner))):
                if lk.owner in dead or not self.owner_alive(lk.owner):
                    s.delete(lk)
        return out

    def expire_due(self, now: datetime | None = None) -> list[RequestRow]:
        now = now or utcnow()
        with self._tx() as s:
            due = list(s.scalars(select(RequestRow.id).where(RequestRow.status.in_(PENDING),
                                                             RequestRow.expires_at <= now)))
        out = []
        for rid in due:
            moved = self.transition(rid, PENDING, Status.expired, "system", {"reason": "not decided in time"})
            if moved:
                out.append(moved)
        return out

    # -- tamper evidence --------------------------------------------------
    def verify(self, batch: int = 5000) -> list[str]:
        """Walk the event chain; report every break, edit or missing row."""
        problems: list[str] = []
        prev, expected_seq = GENESIS, 1
        last_status: dict[str, str] = {}
        requested: dict[str, dict[str, Any]] = {}
        with self._tx() as s:
            from infra.db.retention import chain_start, checkpoint_problems

            head = s.get(ChainHead, 1)
            last = 0
            start = chain_start(s)  # after a retention prune the chain starts at its checkpoint
            if start is not None:
                prev, expected_seq, last = start.hash, start.seq + 1, start.seq
                problems.extend(checkpoint_problems(s, start))
            while True:
                evs = list(s.scalars(select(AuditEvent).where(AuditEvent.seq > last)
                                     .order_by(AuditEvent.seq).limit(batch)))
                if not evs:
                    break
                for ev in evs:
                    if ev.seq != expected_seq:
                        problems.append(f"events {expected_seq}..{ev.seq - 1} are missing (deleted?)")
                    if ev.prev_hash != prev:
                        problems.append(f"event {ev.seq} does not follow the event before it")
                    digest = event_hash(ev.prev_hash, ev.seq, ev.request_id, ev.at, ev.kind,
                                        ev.actor, ev.detail)
                    if digest != ev.hash:
                        problems.append(f"event {ev.seq} ({ev.kind} of {ev.request_id}) was edited")
                    prev, expected_seq, last = ev.hash, ev.seq + 1, ev.seq
                    if ev.kind not in ("progress",):
                        last_status[ev.request_id] = ev.kind
                    if ev.kind == Status.requested:
                        requested[ev.request_id] = ev.detail
            if head is None:
                problems.append("the chain head row is missing")
            elif head.seq != expected_seq - 1 or head.hash != prev:
                problems.append(f"the chain head says {head.seq} events but {expected_seq - 1} "
                                "are present (newest events deleted?)")
            for row in s.scalars(select(RequestRow)):
                if row.id not in last_status:
                    problems.append(f"request {row.id} has no events")
                    continue
                if last_status[row.id] != row.status:
                    problems.append(f"request {row.id} says '{row.status}' but its events end "
                                    f"with '{last_status[row.id]}'")
                want = requested.get(row.id)
                if want is not None and (want.get("command") != row.command or
                                         want.get("args") != row.args or
                                         want.get("actor", row.actor) != row.actor):
                    problems.append(f"request {row.id} was edited (command, args or actor differ "
                                    "from its 'requested' event)")
            missing = set(last_status) - {r for (r,) in s.execute(select(RequestRow.id))}
            for rid in sorted(missing):
                problems.append(f"request {rid} has events but its row is gone (deleted?)")
        return problems

    # -- export -----------------------------------------------------------
    EXPORT_COLUMNS = ("id", "created_at", "updated_at", "actor", "platform", "channel", "command",
                      "args", "env", "target", "changes", "status", "approver", "reason", "result",
                      "error", "correlation_id")

    def export(self, fmt: str, f: AuditFilter | None = None) -> str:
        rows = self.query(f or AuditFilter(limit=10**9))
        records = [{c: _plain(getattr(r, c)) for c in self.EXPORT_COLUMNS} for r in rows]
        if fmt == "json":
            return json.dumps(records, indent=1, sort_keys=False)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(self.EXPORT_COLUMNS))
        w.writeheader()
        for rec in records:
            w.writerow({k: json.dumps(v) if isinstance(v, dict) else v for k, v in rec.items()})
        return buf.getvalue()


def _plain(v: Any) -> Any:
    if isinstance(v, datetime):
        a = aware(v)
        return a.isoformat() if a else None
    return v
