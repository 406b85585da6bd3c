"""The audit store: write-ahead request rows, sealed and chained events, locks.

Every method commits before it returns, so when the engine acts the row that says
so is already durable.  Transitions are conditional updates (`WHERE status IN …`):
a double click or two approvers at once see exactly one winner.

Each event is sealed in the same transaction as the row change it records, and linked
into the one chain afterwards by `link()` (infra/db/chain.py): a request's writes lock
only its own row, never a head shared by all requests.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import os
import secrets
import socket
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    Executable,
    Row,
    Select,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from infra.db.chain import (
    GENESIS,
    UNFOLDED,
    AuditKeyError,
    ChainWalk,
    Ev,
    Finding,
    Keys,
    Report,
    check_heads,
    event_link,
    event_mac,
    fold,
    plain,
)
from infra.db.common import AuditFilter, BadDatabaseURL, DatabaseUnavailable, aware, utcnow, without_nul
from infra.db.models import EVENTS, REQUESTS, AuditEvent, ChainHead, EnvLock, ExecLock, RequestRow, Worker, request_row
from infra.db.writer import GroupWriter, Inserts, Write, run_writes, send_update
from infra.redact import Redactor, mask_credentials
from infra.status import ACTIVE, AFTER_APPROVAL, FINAL, PENDING, Status

T = TypeVar("T")
_E = AuditEvent
# what the linker reads of an event it did not seal itself, to check the seal against the content
_FULL_EVENTS = select(_E.id, _E.request_id, _E.n, _E.at, _E.kind, _E.actor, _E.detail, _E.row, _E.mac, _E.key_id)
SEALS_KEPT = 65536  # seals of this process's unlinked events remembered for the linker (a few MB at most)
log = logging.getLogger("chatops.audit")
# Free-text columns of a request row that may quote a backend's answer.
REDACTED_COLUMNS = ("text", "reason", "error", "result")
# The request columns an event's `row` records (every column a person reads).
ROW_COLUMNS = tuple(c.name for c in RequestRow.__table__.columns if c.name not in UNFOLDED)
BATCH = 5000


def default_sqlite_url() -> str:
    from platformdirs import user_data_dir

    folder = Path(user_data_dir("chatops"))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'audit.sqlite3'}"


FIND_LIMIT = 3  # the most rows an id's first digits are looked up for: enough to name the ones that clash


def by_id_or_prefix(s: Session, model: Any, ref: str, limit: int = FIND_LIMIT) -> list[Any]:
    """The rows of `model` an id or a prefix of one names ("r-7c2e" for r-7c2e1a2b), oldest id first; at most
    `limit` (a range on the primary key, so a prefix costs one index probe)."""
    exact = s.get(model, ref)
    if exact is not None:
        return [exact]
    return list(s.scalars(select(model).where(model.id >= ref, model.id < ref + "g", model.id.startswith(ref))
                          .order_by(model.id).limit(limit)))


@lru_cache(maxsize=256)
def _page(columns: tuple[str, ...] | None, given: frozenset[str], approved: bool) -> Select[Any]:
    """The statement for one shape of audit filter, with its values as parameters: built once per
    shape (building a select costs more than running it)."""
    t = RequestRow.__table__
    q = select(*(t.c[c] for c in columns)) if columns else select(t)
    for column in ("actor", "approver", "env", "command", "status"):
        if column in given:
            q = q.where(t.c[column] == bindparam(column))
    if approved:
        # `approved` lasts only until the run starts: the requests an approver said yes to.
        q = q.where(t.c.approver.is_not(None), t.c.status.in_(list(AFTER_APPROVAL)))
    if "since" in given:
        q = q.where(t.c.created_at >= bindparam("since", type_=t.c.created_at.type))
    return q.order_by(t.c.created_at.desc(), t.c.id.desc()).limit(bindparam("limit"))


def overdue(row: Any, now: datetime) -> bool:
    """A request still waiting for a decision whose time for one is up (any row with `status` and
    `expires_at`: an ORM row or a plain one)."""
    at = aware(row.expires_at)
    return row.status in PENDING and at is not None and at <= now


def named_problem(what: str, ref: str, rows: Sequence[Any]) -> str | None:
    """What to say when an id or its first digits name no `what` or several of them (None: exactly one)."""
    if not rows:
        return f"There is no {what} {ref}."
    if len(rows) > 1:
        return (f"More than one {what} starts with {ref} ({', '.join(r.id for r in rows)}"
                f"{', …' if len(rows) >= FIND_LIMIT else ''}); give more of its id. Nothing was done.")
    return None


def new_request_id() -> str:
    return "r-" + secrets.token_hex(4)


def _advisory_key(owner: str) -> int:
    return int.from_bytes(hashlib.sha256(owner.encode()).digest()[:8], "big", signed=True)


def usable_url(url: str) -> str:
    """The URL to connect with (`postgresql://` means psycopg 3, the driver this bot ships), or
    BadDatabaseURL naming what is wrong: the driver would fail with a traceback instead."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 (parsed here, so that a port that is no number is found now)
    except (ArgumentError, ValueError) as exc:
        shown = mask_credentials(url)[:200]  # (the password of user:PASSWORD@)
        raise BadDatabaseURL(f"DATABASE_URL is not a database URL ('{shown}': {exc}). "
                             f"{BadDatabaseURL.advice}") from None
    backend = parsed.get_backend_name()
    if backend not in ("postgresql", "sqlite"):
        raise BadDatabaseURL(f"DATABASE_URL names a {backend} database; the audit log is kept in PostgreSQL "
                             f"or SQLite. {BadDatabaseURL.advice}")
    if backend == "postgresql" and parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


class Database:
    """Engine and sessions for one database URL; SQLite when none is given."""

    def __init__(self, url: str | None = None, *, connect_timeout: int = 5) -> None:
        self.url = usable_url(url) if url else default_sqlite_url()
        args: dict[str, Any] = {}
        if self.url.startswith("postgresql"):
            args["connect_args"] = {"connect_timeout": connect_timeout}
            self.engine: Engine = create_engine(self.url, pool_pre_ping=True, pool_size=5,
                                                max_overflow=5, **args)
            # Plain reads (`rows`): autocommit, and no ping before each (a read is retried instead).
            self.reader = create_engine(self.url, pool_size=5, max_overflow=5, isolation_level="AUTOCOMMIT",
                                        **args)
        else:
            self.engine = create_engine(self.url, connect_args={"timeout": 30, "check_same_thread": False})

            @event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(conn: Any, _record: Any) -> None:
                cur = conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.close()

            self.reader = self.engine.execution_options(isolation_level="AUTOCOMMIT")
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
        self.reader.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session committed on exit; a lost connection becomes DatabaseUnavailable (no action then)."""
        with self._failures(), self.sessions.begin() as s:
            yield s

    def rows(self, stmt: Executable, params: dict[str, Any] | None = None) -> list[Row[Any]]:
        """One read statement's rows (columns as attributes): for the reads chat commands make on every
        call, at about half a session's cost.  Autocommit, so no BEGIN and ROLLBACK around it; and no
        ping before it (a round trip per read): a connection the server closed (a restart) fails the
        read, the pool drops it and every connection as old, and the read runs once more on a new one."""
        def read() -> list[Row[Any]]:
            with self.reader.connect() as conn:
                return list(conn.execute(stmt, params))

        with self._failures():
            try:
                return read()
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
            return read()

    @contextmanager
    def _failures(self) -> Iterator[None]:
        """A lost connection becomes DatabaseUnavailable, a schema that is not this code's says so."""
        try:
            yield
        except self.engine.dialect.loaded_dbapi.OperationalError as exc:  # the driver's own (writer.py's
            raise DatabaseUnavailable(_describe(exc)) from exc            # pipelined updates): a lost link
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

    def __init__(self, db: Database, owner: str | None = None, keys: Keys | None = None) -> None:
        self.db = db
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._liveness: Any = None
        # Every text the audit log stores passes through this (the engine installs its own, which
        # also knows the configured secrets); the patterns alone catch tokens and URL credentials.
        self.redactor = Redactor()
        # CHATOPS_AUDIT_KEY: the first key seals and links new events; none means unkeyed.
        self.keys = keys or Keys()
        # Called (from whichever thread wrote) after each commit that added events: the engine
        # links them soon after, off the request path.
        self.on_write: Callable[[], None] | None = None
        self._refused: set[int] = set()  # events the linker would not link (logged once each)
        # The seal (and key) of each event this process wrote and has not linked yet, by request and number:
        # the linker takes such an event on the strength of the seal it made (see `link_locked`).
        self._sealed_here: OrderedDict[tuple[str, int], tuple[str | None, str | None]] = OrderedDict()
        # Requests' own writes (create, transition, note) commit many to a transaction (infra/db/writer.py).
        self.writer = GroupWriter(self.db.transaction, on_commit=self._wrote)

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
        self.writer.close()
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
    def _sealed(self, request_id: str, n: int, kind: str, actor: str, detail: dict[str, Any],
                row: dict[str, Any], at: datetime) -> dict[str, Any]:
        """The values of a new event, sealed; it is linked into the chain later (`link`)."""
        detail = without_nul(self.redactor.data(detail))
        kid = self.keys.writer
        mac = event_mac(self.keys, kid, request_id, n, at, kind, actor, detail, row)
        self._sealed_here[(request_id, n)] = (mac, kid)
        if len(self._sealed_here) > SEALS_KEPT:  # (linked by another replica, or never committed)
            self._sealed_here.popitem(last=False)
        return {"request_id": request_id, "n": n, "at": at, "kind": kind, "actor": actor, "detail": detail,
                "row": row, "mac": mac, "key_id": kid}

    def _wrote(self) -> None:
        if self.on_write is not None:
            self.on_write()

    def snapshot(self, values: dict[str, Any]) -> dict[str, Any]:
        """Every column a person reads, as the request's first event records it (from `request_values`)."""
        return {c: plain(c, values[c]) for c in ROW_COLUMNS}

    def request_values(self, row: RequestRow, n_events: int, at: datetime) -> dict[str, Any]:
        """A new request's column values, redacted and with every default filled in (`row` is updated
        to match, so what the caller holds is what the row holds).

        Read from the new row's own dict and worked on as a plain dict: every attribute access on an
        ORM object goes through its instrumentation, and the writer does this for every request."""
        given = sa_inspect(row).dict
        values: dict[str, Any] = {}
        for c in REQUESTS.columns:
            v = given.get(c.key)
            if v is None and c.default is not None:
                v = c.default.arg(None) if c.default.is_callable else c.default.arg  # type: ignore[attr-defined]
            values[c.key] = v
        values["created_at"] = values["updated_at"] = at
        values["event_count"] = n_events
        for col in REDACTED_COLUMNS:
            if isinstance(values[col], str):
                values[col] = self.redactor.text(values[col])
        values["args"] = self.redactor.data(values["args"]) if values["args"] else (values["args"] or {})
        for k, v in values.items():
            if isinstance(v, str | dict):
                values[k] = without_nul(v)
        for k, v in values.items():
            if k not in given or given[k] is not v:
                setattr(row, k, v)
        return values

    def _first_events(self, values: dict[str, Any], events: Sequence[tuple[str, dict[str, Any]]],
                      at: datetime) -> list[dict[str, Any]]:
        first = self.snapshot(values)
        return [self._sealed(values["id"], i, kind, values["actor"], detail, first if i == 1 else {}, at)
                for i, (kind, detail) in enumerate(events, 1)]

    def add_request(self, s: Session, row: RequestRow, events: Sequence[tuple[str, dict[str, Any]]],
                    at: datetime) -> None:
        """Insert a request and its first events inside the caller's transaction."""
        conn = s.connection()
        values = self.request_values(row, len(events), at)
        conn.execute(insert(REQUESTS), [values])
        conn.execute(insert(EVENTS), self._first_events(values, events, at))

    def creating(self, row: RequestRow, events: Sequence[tuple[str, dict[str, Any]]]) -> Write[RequestRow]:
        """The write that inserts a new request and its first events (for `submit`, or `start`'s `first`)."""
        row.owner = self.owner if row.status in ACTIVE else None
        return _Create(self, row, list(events))

    def moving(self, request_id: str, from_status: Iterable[Status], to_status: Status, actor: str,
               detail: dict[str, Any] | None = None, *, free_locks: bool = False,
               **fields: Any) -> Write[RequestRow | None]:
        """The write that moves a request from one of `from_status` to `to_status` (its value: the moved
        row, or None if someone else moved it first). `free_locks`: the request's execution locks go in
        the same transaction (a run's outcome: one commit, not two), moved or not."""
        fields = {k: without_nul(self.redactor.text(v) if k in REDACTED_COLUMNS and isinstance(v, str) else v)
                  for k, v in fields.items()}
        return _Move(self, request_id, tuple(from_status), to_status, actor, detail or {}, fields, free_locks)

    def submit(self, write: Write[T]) -> Future[T]:
        """A write, as a future that resolves once the transaction holding it committed (group commit)."""
        return self.writer.submit(write)

    def create_later(self, row: RequestRow, events: Sequence[tuple[str, dict[str, Any]]]) -> Future[RequestRow]:
        """`create`, as a future that resolves once the row is committed (no thread waits for it)."""
        return self.submit(self.creating(row, events))

    def create(self, row: RequestRow, events: Sequence[tuple[str, dict[str, Any]]]) -> RequestRow:
        """Insert a request and its first events in one transaction."""
        return self.create_later(row, events).result()

    def transition_later(self, request_id: str, from_status: Iterable[Status], to_status: Status, actor: str,
                         detail: dict[str, Any] | None = None, *, free_locks: bool = False,
                         **fields: Any) -> Future[RequestRow | None]:
        """`transition`, as a future that resolves once the change is committed (see `moving`)."""
        return self.submit(self.moving(request_id, from_status, to_status, actor, detail, free_locks=free_locks,
                                       **fields))

    def transition(self, request_id: str, from_status: Iterable[Status], to_status: Status, actor: str,
                   detail: dict[str, Any] | None = None, **fields: Any) -> RequestRow | None:
        """Move a request from one of `from_status` to `to_status`; None if someone else won."""
        return self.transition_later(request_id, from_status, to_status, actor, detail, **fields).result()

    def _send_move(self, conn: Connection, request_id: str, from_status: Iterable[Status], to_status: Status,
                   actor: str, detail: dict[str, Any],
                   fields: dict[str, Any]) -> Callable[[], tuple[RequestRow, dict[str, Any]] | None]:
        """Send the status change (a conditional update, in the caller's transaction); the step returned
        reads it: the moved row and its sealed event (for the caller to insert), or None if the request
        is not in one of `from_status`."""
        now = utcnow()
        values = {"status": to_status, "updated_at": now, **fields}
        if to_status in ACTIVE:
            values["owner"] = self.owner
        read = send_update(conn, REQUESTS, {"id": request_id, "status": tuple(from_status)}, values,
                           bump="event_count")

        def moved() -> tuple[RequestRow, dict[str, Any]] | None:
            got = read()
            if got is None:
                return None
            row = request_row(got)
            changed = {k: plain(k, v) for k, v in fields.items() if k not in UNFOLDED}
            return row, self._sealed(request_id, row.event_count, to_status, actor, detail, changed, now)

        return moved

    def start(self, request_id: str, from_status: Iterable[Status], actor: str, detail: dict[str, Any],
              targets: Sequence[str] = (), first: Sequence[Write[Any]] = ()) -> tuple[RequestRow | None, str | None]:
        """Write `first` (what led here and is not written yet: the request itself, a confirmation), take
        every target's execution lock and mark the request started, in one transaction: one commit on the
        way to running, not two or three. None when `first` or the start found the request moved; on a
        conflict, the holder's request id and nothing changed but `first`.

        A lock someone else holds goes the long way (`acquire`, which frees a dead worker's stale lock),
        and so does a write that fails on its own data (a request id drawn twice)."""
        if targets or first:
            try:
                with self._tx() as s:
                    if not targets or self._insert_locks(s, targets, request_id) == len(targets):
                        conn = s.connection()
                        if any(r is None for r in run_writes(conn, list(first))):
                            s.rollback()  # (the locks go with it: someone else moved the request)
                            return None, None
                        got = self._send_move(conn, request_id, from_status, Status.started, actor, detail, {})()
                        if got is None:
                            s.rollback()
                            return None, None
                        conn.execute(insert(EVENTS), [got[1]])
                        self._wrote()
                        return got[0], None
                    s.rollback()
            except IntegrityError:
                pass  # the long way below: the writer runs a write that failed on its data again
            for write in first:
                done = self.submit(write).result()
                if done is None:
                    return None, None
                if isinstance(done, RequestRow):
                    request_id = done.id  # (drawn again if its first id was taken)
            holder = self.acquire(targets, request_id) if targets else None
            if holder:
                return None, holder
        return self.transition(request_id, from_status, Status.started, actor, detail), None

    def note_later(self, request_id: str, kind: str, actor: str, detail: dict[str, Any]) -> Future[None]:
        """`note`, as a future that resolves once the event is committed."""
        return self.writer.submit(_Note(self, request_id, kind, actor, detail))

    def note(self, request_id: str, kind: str, actor: str, detail: dict[str, Any]) -> None:
        """An event that does not change the status (progress)."""
        self.note_later(request_id, kind, actor, detail).result()

    # -- the chain ----------------------------------------------------------
    def check_key(self) -> None:
        """Refuse to write where our events could not verify: a keyed chain and no key, or another key."""
        with self._tx() as s:
            head = s.get(ChainHead, 1)
        kid = head.key_id if head is not None else None
        if kid is None:
            if not self.keys.keyed:
                log.info("the audit chain is unkeyed: it detects edits, not a recomputed chain "
                         "(set CHATOPS_AUDIT_KEY; 'chatops audit keygen' makes one)")
            return
        if not self.keys.keyed:
            raise AuditKeyError(f"The audit chain is keyed (key id {kid}) but CHATOPS_AUDIT_KEY is not set: "
                                "events written now could not be verified. Set the key this chain uses.")
        if kid not in self.keys:
            raise AuditKeyError(f"CHATOPS_AUDIT_KEY does not hold the key this audit chain was written with "
                                f"(key id {kid}; given: {', '.join(self.keys.by_id)}). To change keys, give "
                                "the new key first and the old one after it: CHATOPS_AUDIT_KEY=NEW,OLD.")

    def head(self) -> tuple[int, str]:
        """The chain's newest place and link (what the bot logs, for `audit verify --head`)."""
        with self._tx() as s:
            head = s.get(ChainHead, 1)
            return (head.seq, head.hash) if head is not None else (0, GENESIS)

    def link(self, limit: int | None = None) -> int:
        """Link sealed events into the chain, in the order they were written (at most `limit` of
        them); returns how many."""
        with self._tx() as s:
            head = s.execute(select(ChainHead).where(ChainHead.id == 1).with_for_update()).scalar_one()
            return self.link_locked(s, head, limit)

    def link_locked(self, s: Session, head: ChainHead, limit: int | None = None) -> int:
        """`link` inside a transaction that holds the head row (retention prunes that way).

        An event whose request, number, seal and key are those of one this process sealed is linked
        as it stands: the seal was made over the content this process wrote, and `audit verify`
        recomputes every seal from the content, so an edit made since shows there all the same. Any
        other event (another replica's, one written around the bot) is read in full and its seal
        checked against its content first; one that fails is never linked (`_unlinkable`). Reading
        and re-sealing every event was most of the linker's work, and the linker's work was most of
        what made some rounds of many requests at once slower than others (docs/PERFORMANCE.md)."""
        done, after = 0, 0
        e = AuditEvent
        while limit is None or done < limit:
            # plain rows, not ORM objects: the linker runs a burst's worth of events at a time
            evs = s.execute(select(e.id, e.request_id, e.n, e.mac, e.key_id, e.kind)
                            .where(e.seq.is_(None), e.id > after).order_by(e.id)
                            .limit(BATCH if limit is None else min(BATCH, limit - done))).all()
            if not evs:
                break
            after = evs[-1].id
            seq, prev, kid = head.seq, head.hash, head.key_id
            known = self._sealed_here
            others = [ev.id for ev in evs if ev.n is None or known.get((ev.request_id, ev.n)) != (ev.mac, ev.key_id)]
            full = {ev.id: ev for ev in s.execute(_FULL_EVENTS.where(self._any_id(others)))} if others else {}
            rows = []
            for ev in evs:
                ours = ev.id not in full
                why = self._unlinkable(full.get(ev.id, ev), kid, sealed_here=ours)
                if why:
                    if ev.id not in self._refused:
                        self._refused.add(ev.id)
                        log.error("audit event #%s (%s of %s) not linked: %s", ev.id, ev.kind, ev.request_id, why)
                    continue
                seq += 1
                link = event_link(self.keys, ev.key_id, prev, seq, ev.mac or "")
                rows.append({"id": ev.id, "seq": seq, "prev_hash": prev, "hash": link})
                prev, kid = link or "", ev.key_id
                if ours:
                    known.pop((ev.request_id, ev.n), None)
            if rows:
                self._set_links(s, rows)
                head.seq, head.hash, head.key_id = seq, prev, kid
                s.flush()
                done += len(rows)
        return done

    def _any_id(self, ids: list[int]) -> Any:
        """`id` is one of `ids`: on PostgreSQL one text parameter the server splits (an `IN` of a
        parameter per id cost the linker more than reading the events)."""
        if not self.db.is_postgres:
            return AuditEvent.id.in_(ids)
        return text("audit_events.id = ANY(CAST(string_to_array(:ids, ',') AS bigint[]))").bindparams(
            ids=",".join(map(str, ids)))

    def _set_links(self, s: Session, rows: list[dict[str, Any]]) -> None:
        """Give each event its place and link: on PostgreSQL one statement for the whole batch (an
        UPDATE per event cost the linker more than everything else it does)."""
        if not self.db.is_postgres:
            s.execute(update(AuditEvent), rows)  # by primary key, a statement per event
            return
        # each column as one comma-separated text (ids, numbers, hex links: no commas), split by the
        # server: psycopg dumps a list element by element in Python, a tenth of the linker's time
        s.execute(text("UPDATE audit_events AS e SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash "
                       "FROM unnest(CAST(string_to_array(:ids, ',') AS bigint[]), "
                       "CAST(string_to_array(:seqs, ',') AS bigint[]), string_to_array(:prevs, ','), "
                       "string_to_array(:hashes, ',')) AS v(id, seq, prev_hash, hash) WHERE e.id = v.id"),
                  {"ids": ",".join(str(r["id"]) for r in rows), "seqs": ",".join(str(r["seq"]) for r in rows),
                   "prevs": ",".join(r["prev_hash"] for r in rows), "hashes": ",".join(r["hash"] for r in rows)})

    def _unlinkable(self, ev: Any, head_key: str | None, sealed_here: bool = False) -> str | None:
        """Why the linker must not vouch for this event (written outside the bot, or downgraded).
        `sealed_here`: its seal is one this process made, so its content is not sealed again."""
        if ev.mac is None:
            return "it carries no seal"
        if head_key is not None and ev.key_id is None:
            return "it is unkeyed but the chain is keyed (written without CHATOPS_AUDIT_KEY, or forged)"
        if sealed_here:
            return None
        mac = event_mac(self.keys, ev.key_id, ev.request_id, ev.n or 0, ev.at, ev.kind, ev.actor, ev.detail,
                        ev.row or {})
        if mac is None:
            return f"it is sealed with key {ev.key_id}, which this process does not hold"
        if mac != ev.mac:
            return "its seal does not match its content (edited, or forged)"
        return None

    # -- reads ------------------------------------------------------------
    def get(self, request_id: str) -> RequestRow | None:
        with self._tx() as s:
            return s.get(RequestRow, request_id)

    def find(self, ref: str) -> list[RequestRow]:
        """The requests an id or its first digits name (`by_id_or_prefix`)."""
        with self._tx() as s:
            return by_id_or_prefix(s, RequestRow, ref)

    def events(self, request_id: str) -> list[AuditEvent]:
        with self._tx() as s:
            return list(s.scalars(select(AuditEvent).where(AuditEvent.request_id == request_id)
                                  .order_by(AuditEvent.id)))

    def query(self, f: AuditFilter) -> list[Row[Any]]:
        """Requests matching `f`, newest first: read-only rows (columns as attributes).

        Every combination of equality filters has an index ending in created_at (migration
        0011; with `approver`, the partial index of decided requests, 0015), so this reads its newest
        `limit` rows straight off one index whatever it matches;
        plain rows, not ORM objects, because a 500-row page spent most of its time there.
        """
        values = {"actor": f.user, "approver": f.approver, "env": f.env, "command": f.command, "since": f.since}
        given = {k: v for k, v in values.items() if v}
        status = f.status if f.status != Status.approved else None
        if status:
            given["status"] = status
        stmt = _page(f.columns, frozenset(given), f.status == Status.approved)
        return self.db.rows(stmt, {"limit": f.limit, **given})

    def page(self, f: AuditFilter) -> list[Row[Any]]:
        """`query`, except that a waiting request it shows whose time is up is expired first (and the
        page read again), so nobody reads "waiting" for a request that can no longer be decided.  The
        upkeep expires the rest; checking only what is shown spares a read on every call."""
        needed = f.columns and tuple(dict.fromkeys((*f.columns, "status", "expires_at")))
        shown = dataclasses.replace(f, columns=needed)
        rows = self.query(shown)
        now = utcnow()
        if any(overdue(r, now) for r in rows):
            self.expire_due(now)
            rows = self.query(shown)
        return rows

    def pending(self) -> list[RequestRow]:
        with self._tx() as s:
            return list(s.scalars(select(RequestRow).where(RequestRow.status.in_(PENDING))
                                  .order_by(RequestRow.created_at)))

    def requests_in(self, statuses: Iterable[str], actor: str | None = None, not_actor: str | None = None,
                    limit: int = 6) -> list[RequestRow]:
        """The newest requests in one of `statuses` (by one actor, or by anyone but one), at most `limit`."""
        stmt = select(RequestRow).where(RequestRow.status.in_(list(statuses)))
        if actor is not None:
            stmt = stmt.where(RequestRow.actor == actor)
        if not_actor is not None:
            stmt = stmt.where(RequestRow.actor != not_actor)
        with self._tx() as s:
            return list(s.scalars(stmt.order_by(RequestRow.created_at.desc()).limit(limit)))

    def waiting(self) -> list[RequestRow]:
        """`pending`, with the requests whose time is up expired first (audited) when it shows any: one
        read when none is due, which is nearly always."""
        rows = self.pending()
        now = utcnow()
        if any(overdue(r, now) for r in rows):
            self.expire_due(now)
            rows = self.pending()
        return rows

    def count_by_status(self, statuses: Iterable[str] | None = None) -> dict[str, int]:
        """Requests per status; only `statuses` when given (an index range, not the whole log)."""
        q = select(RequestRow.status, func.count()).group_by(RequestRow.status)
        if statuses is not None:
            q = q.where(RequestRow.status.in_(list(statuses)))
        with self._tx() as s:
            return {status: int(n) for status, n in s.execute(q).all()}

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

    def env_locks(self) -> dict[str, Row[Any]]:
        """Each frozen environment's lock (env, locked_by, reason, locked_at as attributes)."""
        return {lk.env: lk for lk in self.db.rows(select(EnvLock.__table__))}

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
        due = self.db.rows(select(RequestRow.id).where(RequestRow.status.in_(PENDING), RequestRow.expires_at <= now))
        out = []
        for (rid,) in due:
            moved = self.transition(rid, PENDING, Status.expired, "system", {"reason": "not decided in time"})
            if moved:
                out.append(moved)
        return out

    # -- tamper evidence --------------------------------------------------
    @contextmanager
    def _snapshot(self) -> Iterator[Session]:
        """One consistent view for a whole check (PostgreSQL: repeatable read), even while the bot runs."""
        with self.db.engine.connect() as conn:
            if self.db.is_postgres:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with Session(conn) as s, s.begin():
                yield s

    def verify(self, heads: Sequence[tuple[int, str]] = ()) -> list[str]:
        """Every problem `check` finds, first broken row first ([] when the log is intact)."""
        return self.check(heads).problems

    def check(self, heads: Sequence[tuple[int, str]] = (), unkeyed_until: int = 0) -> Report:
        """Walk the chain and fold every request's events into its row (see infra/db/chain.py).

        `heads` are (seq, link) pairs the bot logged earlier: each must still be in the chain.
        `unkeyed_until`: with a key, unkeyed events up to there are the chain's accepted start.
        """
        from infra.db.retention import chain_start, checkpoint_problems

        report = Report()
        try:
            with self._snapshot() as s:
                head = s.get(ChainHead, 1)
                cp = chain_start(s)  # after a retention prune the chain starts at its checkpoint
                start = (cp.seq, cp.hash) if cp is not None else (0, GENESIS)
                report.findings.extend(Finding(cp.seq if cp else 0, p) for p in checkpoint_problems(s, cp))
                walk = ChainWalk(self.keys, *start, segment_from=head.segment_from if head else 0,
                                 unkeyed_until=unkeyed_until)
                last = start[0]
                while True:
                    evs = list(s.scalars(select(AuditEvent).where(AuditEvent.seq > last)
                                         .order_by(AuditEvent.seq).limit(BATCH)))
                    if not evs:
                        break
                    for ev in evs:
                        walk.add(Ev.of(ev))
                    last = evs[-1].seq or last
                report.add_walk(walk)
                if head is None:
                    report.findings.append(Finding(0, "the chain head row is missing"))
                elif (head.seq, head.hash) != (walk.seq, walk.hash):
                    report.findings.append(Finding(walk.seq + 1, f"the chain head says {head.seq} events but the "
                                                                 f"chain ends at {walk.seq} (newest events deleted?)"))
                report.unlinked = s.scalar(select(func.count()).select_from(AuditEvent)
                                           .where(AuditEvent.seq.is_(None))) or 0
                self._check_rows(s, report)
                wanted = [seq for seq, _ in heads]
                linked = {int(q or 0): h or "" for q, h in s.execute(select(AuditEvent.seq, AuditEvent.hash)
                                                                .where(AuditEvent.seq.in_(wanted)))} if wanted else {}
                check_heads(heads, linked, report, start)
        except OperationalError as exc:
            raise DatabaseUnavailable(_describe(exc)) from exc
        return report

    def _check_rows(self, s: Session, report: Report) -> None:
        """Fold each request's events (sealed or not yet linked) into the row they should have made."""
        after = ""
        while True:
            rows = list(s.scalars(select(RequestRow).where(RequestRow.id > after).order_by(RequestRow.id)
                                  .limit(500)))
            if not rows:
                break
            after = rows[-1].id
            by_request: dict[str, list[Ev]] = {r.id: [] for r in rows}
            for ev in s.scalars(select(AuditEvent).where(AuditEvent.request_id.in_(list(by_request)))
                                .order_by(AuditEvent.request_id, AuditEvent.id)):
                by_request[ev.request_id].append(Ev.of(ev))
            for r in rows:
                found, unchecked = fold(r.id, _row_dict(r), by_request[r.id], self.keys)
                report.findings.extend(found)
                report.unchecked += unchecked
        orphans = s.scalars(select(AuditEvent.request_id).distinct().where(
            ~select(RequestRow.id).where(RequestRow.id == AuditEvent.request_id).exists()))
        for rid in sorted(orphans):
            report.findings.append(Finding(0, f"request {rid} has events but its row is gone (deleted?)"))

    # -- export -----------------------------------------------------------
    EXPORT_COLUMNS = ("id", "created_at", "updated_at", "actor", "platform", "channel", "command",
                      "args", "env", "target", "changes", "status", "approver", "reason", "result",
                      "error", "correlation_id")
    EXPORT_KIND = "chatops-audit-export"

    def export(self, fmt: str, f: AuditFilter | None = None) -> str:
        """CSV: a table for people.  JSON: requests, events and links, verifiable offline
        (`chatops audit verify --file`); `since` starts it at the first event from then."""
        if fmt == "json":
            return json.dumps(self.bundle(f.since if f else None), indent=1)
        rows = self.query(f or AuditFilter(limit=10**9))
        records = [{c: _plain(getattr(r, c)) for c in self.EXPORT_COLUMNS} for r in rows]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(self.EXPORT_COLUMNS))
        w.writeheader()
        for rec in records:
            w.writerow({k: json.dumps(v) if isinstance(v, dict) else v for k, v in rec.items()})
        return buf.getvalue()

    def bundle(self, since: datetime | None = None) -> dict[str, Any]:
        """The chain from its start (or from the first event at or after `since`) with its rows."""
        from infra.db.retention import chain_start

        with self._snapshot() as s:
            head = s.get(ChainHead, 1)
            cp = chain_start(s)
            start = begin = (cp.seq, cp.hash) if cp is not None else (0, GENESIS)
            if since is not None:
                first = s.scalars(select(AuditEvent).where(AuditEvent.seq > start[0], AuditEvent.at >= since)
                                  .order_by(AuditEvent.seq).limit(1)).first()
                if first is not None and first.seq is not None:
                    start = (first.seq - 1, first.prev_hash or GENESIS)
            events = [Ev.of(e).to_dict() for e in s.scalars(
                select(AuditEvent).where((AuditEvent.seq > start[0]) | AuditEvent.seq.is_(None))
                .order_by(AuditEvent.id))]
            ids = sorted({e["request_id"] for e in events})
            rows: list[dict[str, Any]] = []
            for i in range(0, len(ids), 1000):
                rows.extend(_row_dict(r, json_safe=True) for r in s.scalars(
                    select(RequestRow).where(RequestRow.id.in_(ids[i:i + 1000])).order_by(RequestRow.id)))
            return {"kind": self.EXPORT_KIND, "version": 1, "exported_at": _plain(utcnow()),
                    "start": {"seq": start[0], "hash": start[1]}, "complete": start == begin,
                    "segment_from": head.segment_from if head else 0,
                    "head": {"seq": head.seq, "hash": head.hash} if head else None,
                    "requests": rows, "events": events}


class _Create:
    """A new request and its first events; an id already taken draws another (alone, up to 5 times)."""

    def __init__(self, store: AuditStore, row: RequestRow, events: list[tuple[str, dict[str, Any]]]) -> None:
        self.store, self.row, self.events, self.tries = store, row, events, 1

    def send(self, conn: Connection) -> Callable[[Inserts], RequestRow]:
        return self.made  # nothing to ask the database: its rows join the batch's inserts

    def made(self, inserts: Inserts) -> RequestRow:
        at = utcnow()
        values = self.store.request_values(self.row, len(self.events), at)
        inserts.requests.append(values)
        inserts.events.extend(self.store._first_events(values, self.events, at))
        return self.row

    def again(self, exc: Exception) -> bool:
        if not isinstance(exc, IntegrityError) or self.tries >= 5:
            return False
        self.tries += 1
        self.row.id = new_request_id()  # id collision: draw again
        return True


class _Move:
    """A status change (`AuditStore.transition`): the conditional update sent, its event with the batch."""

    def __init__(self, store: AuditStore, request_id: str, from_status: tuple[Status, ...], to_status: Status,
                 actor: str, detail: dict[str, Any], fields: dict[str, Any], free_locks: bool = False) -> None:
        self.store, self.request_id, self.from_status, self.to_status = store, request_id, from_status, to_status
        self.actor, self.detail, self.fields, self.free_locks = actor, detail, fields, free_locks

    def send(self, conn: Connection) -> Callable[[Inserts], RequestRow | None]:
        moved = self.store._send_move(conn, self.request_id, self.from_status, self.to_status, self.actor,
                                      self.detail, self.fields)

        def finish(inserts: Inserts) -> RequestRow | None:
            if self.free_locks:
                inserts.freed.append(self.request_id)
            got = moved()
            if got is None:
                return None
            inserts.events.append(got[1])
            return got[0]

        return finish

    def again(self, exc: Exception) -> bool:
        return False


class _Note:
    """An event that does not change the status (`AuditStore.note`)."""

    def __init__(self, store: AuditStore, request_id: str, kind: str, actor: str, detail: dict[str, Any]) -> None:
        self.store, self.request_id, self.kind, self.actor, self.detail = store, request_id, kind, actor, detail

    def send(self, conn: Connection) -> Callable[[Inserts], None]:
        now = utcnow()
        read = send_update(conn, REQUESTS, {"id": self.request_id}, {"updated_at": now}, bump="event_count")

        def finish(inserts: Inserts) -> None:
            got = read()
            if got is None:
                log.warning("no request %s to note a %s event on", self.request_id, self.kind)
                return
            inserts.events.append(self.store._sealed(self.request_id, got["event_count"], self.kind, self.actor,
                                                     self.detail, {}, now))

        return finish

    def again(self, exc: Exception) -> bool:
        return False


def _row_dict(row: RequestRow, json_safe: bool = False) -> dict[str, Any]:
    out = {c.name: getattr(row, c.name) for c in RequestRow.__table__.columns}
    return {k: _plain(v) for k, v in out.items()} if json_safe else out


def _plain(v: Any) -> Any:
    if isinstance(v, datetime):
        a = aware(v)
        return a.isoformat() if a else None
    return v
