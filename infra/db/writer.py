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
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Table, insert

from infra.db.common import DatabaseUnavailable
from infra.db.models import AuditEvent, RequestRow

log = logging.getLogger("chatops.audit")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
MAX_BATCH = 256  # writes per transaction: bounds how long the first of them waits for the commit


@dataclass
class Inserts:
    """Rows the writes of one transaction insert, written together when the last write has run."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def write(self, conn: Connection) -> None:
        """Requests first (events refer to them); events in the order the writes made them, which is
        the order the linker chains them in."""
        for table, rows in ((RequestRow.__table__, self.requests), (AuditEvent.__table__, self.events)):
            if rows:
                assert isinstance(table, Table)
                conn.execute(insert(table), rows)
        self.requests, self.events = [], []


class Write(Protocol[T_co]):
    """One audit write: its updates run at once (their results decide what it inserts), its inserts
    are gathered into the batch's."""

    def run(self, conn: Connection, inserts: Inserts) -> T_co: ...

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
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._loop, name="audit-writer", daemon=True)
                    self._thread.start()
        return done

    def close(self) -> None:
        """Finish what is queued, then stop the thread (a later submit starts a new one)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
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
            inserts = Inserts()
            with self._transaction() as s:
                conn = s.connection()
                results = [w.run(conn, inserts) for w, _ in live]
                inserts.write(conn)
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
                inserts = Inserts()
                with self._transaction() as s:
                    conn = s.connection()
                    result = write.run(conn, inserts)
                    inserts.write(conn)
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
