"""Group commit for audit writes: the writes that queue up while one transaction commits share the next.

Every request writes its audit rows before it acts and again when it ends.  Written one transaction
each, 64 requests at once cost 128 commits and as many pool checkouts, and each waits its turn for the
interpreter; written here, they cost a handful.  One thread takes every write queued so far, runs them
in order in one transaction (each write's inserts gathered into one multi-row insert per table), and
commits once.  A caller's future resolves only after the commit that holds its write, so "no action
runs unless its audit row is committed first" holds exactly as before.

A write that fails on its own data (an id collision, a value too long) must not fail the writes it
happened to share a transaction with: the batch is rolled back and each write runs again alone.  A
database that is down fails them all at once; retrying each alone would only wait out the connect
timeout once per write.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from typing import Any, Protocol, TypeVar, cast

from psycopg.types.json import Json
from sqlalchemy import JSON, Connection, Table, delete, insert, update

from infra.db.common import DatabaseUnavailable
from infra.db.models import EVENTS, EXEC_LOCKS, REQUESTS

log = logging.getLogger("chatops.audit")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
MAX_BATCH = 256  # writes per transaction: bounds how long the first of them waits for the commit
IDLE_S = 2.0  # an idle writer thread ends (the next write starts another): no thread, nor the database
              # it holds, outlives a store nobody closed


@dataclass
class Inserts:
    """Rows the writes of one transaction insert, and the requests whose execution locks they free,
    written together when the last write has run."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    freed: list[str] = field(default_factory=list)  # request ids

    def write(self, conn: Connection) -> None:
        """Requests first (events refer to them); events in the order the writes made them, which is
        the order the linker chains them in."""
        for table, rows in ((REQUESTS, self.requests), (EVENTS, self.events)):
            if rows:
                conn.execute(insert(table), rows)
        if self.freed:
            conn.execute(delete(EXEC_LOCKS).where(EXEC_LOCKS.c.request_id.in_(self.freed)))
        self.requests, self.events, self.freed = [], [], []


class Write(Protocol[T_co]):
    """One audit write, in two steps: `send` issues its updates (`send_update`); the step it returns
    reads what they returned, once every write of the batch has sent, and adds its inserts to the
    batch's.  On PostgreSQL the sends of a batch are pipelined: one round trip for all of them."""

    def send(self, conn: Connection) -> Callable[[Inserts], T_co]: ...

    def again(self, exc: Exception) -> bool:
        """After failing alone with `exc`: whether to run once more (having changed what made it fail)."""
        ...


class GroupWriter:
    """The one thread that commits this process's audit writes, many to a transaction."""

    def __init__(self, transaction: Callable[[], Any], on_commit: Callable[[], None] | None = None,
                 max_batch: int = MAX_BATCH) -> None:
        self._transaction = transaction  # Database.transaction: a committed session, errors translated
        self.on_commit = on_commit
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Write[Any], Future[Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, write: Write[T]) -> Future[T]:
        """Queue a write; the future holds its result once the transaction that holds it committed."""
        done: Future[T] = Future()
        self._queue.put((write, done))
        with self._lock:
            if self._thread is None:
                self._start()
        return done

    def close(self) -> None:
        """Finish what is queued, then stop the thread (a later submit starts a new one)."""
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            self._queue.put(None)
        thread.join()
        with self._lock:
            if self._thread is thread:
                self._thread = None
                if not self._queue.empty():  # queued after the stop: they still get written
                    self._start()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="audit-writer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=IDLE_S)
            except queue.Empty:
                with self._lock:  # (a submit checks for a thread under this lock, after queueing)
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._commit(batch)
                    return
                batch.append(item)
            self._commit(batch)

    def _commit(self, batch: list[tuple[Write[Any], Future[Any]]]) -> None:
        live = [(w, f) for w, f in batch if f.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            with self._transaction() as s:
                results = run_writes(s.connection(), [w for w, _ in live])
        except DatabaseUnavailable as exc:
            for _, f in live:
                f.set_exception(exc)
            return
        except Exception as exc:  # one write's bad data; each runs again alone
            log.info("a batch of %d audit writes failed (%s); writing each alone", len(live), exc)
            for w, f in live:
                self._alone(w, f)
            return
        except BaseException as exc:  # the thread is going down: no caller may wait forever
            for _, f in live:
                f.set_exception(exc)
            raise
        self._committed()
        for (_, f), result in zip(live, results, strict=True):
            f.set_result(result)

    def _alone(self, write: Write[Any], done: Future[Any]) -> None:
        while True:
            try:
                with self._transaction() as s:
                    [result] = run_writes(s.connection(), [write])
            except Exception as exc:  # delivered to the one caller it belongs to
                if isinstance(exc, DatabaseUnavailable) or not write.again(exc):
                    done.set_exception(exc)
                    return
                continue
            self._committed()
            done.set_result(result)
            return

    def _committed(self) -> None:
        if self.on_commit is not None:
            try:
                self.on_commit()
            except Exception:  # a poke that failed must not lose the writes' results
                log.exception("after an audit commit")


def run_writes(conn: Connection, writes: list[Write[Any]]) -> list[Any]:
    """Send every write (pipelined on PostgreSQL), finish each in order, then insert what they made (in
    the caller's transaction: the writer's batch, or `AuditStore.start`'s)."""
    with _pipeline(conn):
        steps = [w.send(conn) for w in writes]
    inserts = Inserts()
    results = [step(inserts) for step in steps]
    inserts.write(conn)
    return results


def _pipeline(conn: Connection) -> AbstractContextManager[Any]:
    """psycopg's pipeline mode: statements go out without waiting for each answer; leaving it waits
    for all of them (and raises the first error)."""
    if conn.dialect.name == "postgresql":
        return cast(AbstractContextManager[Any], conn.connection.driver_connection.pipeline())  # type: ignore[union-attr]
    return nullcontext()


def send_update(conn: Connection, table: Table, where: dict[str, Any], values: dict[str, Any],
                bump: str) -> Callable[[], dict[str, Any] | None]:
    """UPDATE `table` SET `values`, `bump` = `bump` + 1 WHERE each `where` column equals its value (one
    of, for a tuple) RETURNING every column; returns how to read the row (None: nothing matched).

    On PostgreSQL it is sent as psycopg's own statement, so that it joins the batch's pipeline (what
    SQLAlchemy runs reads its answer at once); elsewhere SQLAlchemy runs it at once."""
    if conn.dialect.name != "postgresql":
        conds = [table.c[k].in_(list(v)) if isinstance(v, tuple) else table.c[k] == v for k, v in where.items()]
        got = conn.execute(update(table).where(*conds).values(**values, **{bump: table.c[bump] + 1})
                           .returning(*table.c)).one_or_none()
        row = None if got is None else got._asdict()
        return lambda: row
    sql = _pg_update_sql(table, tuple(where), tuple(isinstance(v, tuple) for v in where.values()),
                         tuple(values), bump)
    params = {f"v_{k}": _pg_value(table, k, v) for k, v in values.items()}
    params.update({f"w_{k}": [str(x) for x in v] if isinstance(v, tuple) else v for k, v in where.items()})
    cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cur.execute(sql, params)

    def read() -> dict[str, Any] | None:
        got = cur.fetchone()
        return None if got is None else dict(zip((c.name for c in table.c), got, strict=True))

    return read


@lru_cache(maxsize=256)
def _pg_update_sql(table: Table, where: tuple[str, ...], any_of: tuple[bool, ...], keys: tuple[str, ...],
                   bump: str) -> str:
    """The statement for one shape of update; column names come from the table, values are parameters."""
    sets = [f"{table.c[k].name} = %(v_{k})s" for k in keys] + [f"{table.c[bump].name} = {table.c[bump].name} + 1"]
    conds = [f"{table.c[k].name} = ANY(%(w_{k})s)" if many else f"{table.c[k].name} = %(w_{k})s"
             for k, many in zip(where, any_of, strict=True)]
    cols = ", ".join(c.name for c in table.c)
    return f"UPDATE {table.name} SET {', '.join(sets)} WHERE {' AND '.join(conds)} RETURNING {cols}"


def _pg_value(table: Table, key: str, value: Any) -> Any:
    """A value as psycopg should send it: JSON columns wrapped, enums as their plain value."""
    if isinstance(table.c[key].type, JSON) and value is not None:
        return Json(value)
    if isinstance(value, Enum):
        return value.value
    return value
