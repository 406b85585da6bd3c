"""Group commit of audit writes (infra/db/writer.py): shared transactions, one write's failure kept to
itself, a database that is down, and the guarantee that a caller learns of its write only once it is
committed.  Against the real PostgreSQL; a gate write holds the writer so that a batch forms for sure."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, event, func, insert, select, text

from bot import upkeep
from bot.engine import Engine
from infra.config import Config
from infra.db import writer as writer_module
from infra.db.common import DatabaseUnavailable, utcnow
from infra.db.models import AuditEvent, RequestRow
from infra.db.store import AuditStore, Database, new_request_id
from infra.db.writer import GroupWriter, Inserts
from infra.status import Status
from tests.conftest import make_engine


class Gate:
    """A write that holds the writer thread until released, so the writes queued behind it form one batch."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def send(self, conn: Connection) -> Callable[[Inserts], str]:
        self.entered.set()
        assert self.release.wait(10)
        return lambda _inserts: "gate"

    def again(self, exc: Exception) -> bool:
        return False


def held(store: AuditStore) -> tuple[Gate, Future[Any]]:
    gate = Gate()
    done = store.writer.submit(gate)
    assert gate.entered.wait(10)
    return gate, done


def new_row(status: Status = Status.requested) -> RequestRow:
    return RequestRow(id=new_request_id(), actor="console:alice", platform="console", text="whoami",
                      command="whoami", args={}, changes=False, status=status)


def commits(db: Database) -> list[int]:
    seen: list[int] = []
    event.listen(db.engine, "commit", lambda _conn: seen.append(1))
    return seen


def stored(db: Database, rid: str) -> RequestRow | None:
    with db.transaction() as s:
        return s.get(RequestRow, rid)


def test_writes_queued_together_share_one_commit_and_each_is_stored(db: Database, store: AuditStore) -> None:
    gate, gated = held(store)
    seen = commits(db)
    rows = [new_row() for _ in range(20)]
    futures = [store.create_later(r, [(Status.requested, {"n": i})]) for i, r in enumerate(rows)]
    gate.release.set()
    assert gated.result(10) == "gate"
    assert [f.result(10).id for f in futures] == [r.id for r in rows]
    assert len(seen) <= 2  # the gate's transaction, then at most one for the twenty
    for r in rows:
        got = stored(db, r.id)
        assert got is not None and got.event_count == 1 and got.source == "grammar"  # defaults filled in
    assert store.verify() == []


def test_a_caller_hears_of_its_write_only_after_the_commit(db: Database, store: AuditStore) -> None:
    """What the engine relies on to act: when the future resolves, another connection sees the row."""
    other = create_engine(db.url)
    try:
        def check(f: Future[RequestRow]) -> None:
            with other.connect() as c:
                found = c.execute(select(RequestRow.id).where(RequestRow.id == f.result().id)).scalar()
            checked.append(found == f.result().id)

        checked: list[bool] = []
        with ThreadPoolExecutor(8) as pool:
            for f in [pool.submit(store.create_later, new_row(), [(Status.requested, {})]).result()
                      for _ in range(40)]:
                f.add_done_callback(check)  # runs in the writer's thread when the future resolves
        for _ in range(200):  # (a callback may still be running after result() returned)
            if len(checked) == 40:
                break
            time.sleep(0.01)
        assert len(checked) == 40 and all(checked)
    finally:
        other.dispose()


def test_one_bad_write_fails_alone_and_its_batchmates_commit(db: Database, store: AuditStore) -> None:
    rows = [store.create(new_row(), [(Status.requested, {})]) for _ in range(3)]
    gate, _ = held(store)
    good = [store.transition_later(r.id, (Status.requested,), Status.started, "console:alice") for r in rows[:2]]
    # approver is varchar(128): PostgreSQL refuses the whole transaction this update is in
    bad = store.transition_later(rows[2].id, (Status.requested,), Status.denied, "console:bob",
                                 approver="x" * 500)
    late = store.create_later(new_row(), [(Status.requested, {})])
    gate.release.set()
    for f in good:
        moved = f.result(10)
        assert moved is not None and moved.status == Status.started
    with pytest.raises(Exception, match="too long"):
        bad.result(10)
    assert stored(db, late.result(10).id) is not None
    still = stored(db, rows[2].id)
    assert still is not None and still.status == Status.requested and still.event_count == 1
    assert store.verify() == []


def test_a_taken_request_id_is_drawn_again(db: Database, store: AuditStore) -> None:
    first = store.create(new_row(), [(Status.requested, {})])
    gate, _ = held(store)
    twin = new_row()
    twin.id = first.id
    others = [store.create_later(new_row(), [(Status.requested, {})]) for _ in range(3)]
    clash = store.create_later(twin, [(Status.requested, {})])
    gate.release.set()
    got = clash.result(10)
    assert got.id != first.id and stored(db, got.id) is not None
    assert all(stored(db, f.result(10).id) is not None for f in others)
    with db.transaction() as s:
        assert s.scalar(select(AuditEvent.request_id).where(AuditEvent.request_id == got.id)) == got.id


def test_a_start_whose_new_request_drew_a_taken_id_starts_it_under_another(db: Database, store: AuditStore) -> None:
    """`start` writes a new request with its locks and start; an id collision there goes the long way."""
    first = store.create(new_row(), [(Status.requested, {})])
    twin = new_row()
    twin.id = first.id
    started, holder = store.start(twin.id, (Status.requested,), "console:alice", {}, ["env:x"],
                                  [store.creating(twin, [(Status.requested, {})])])
    assert holder is None and started is not None and started.id == twin.id != first.id
    assert started.status == Status.started
    with db.transaction() as s:
        assert s.execute(text("SELECT request_id FROM exec_locks WHERE target = 'env:x'")).scalar() == twin.id
        assert [e.kind for e in s.scalars(select(AuditEvent).where(AuditEvent.request_id == twin.id)
                                          .order_by(AuditEvent.id))] == ["requested", "started"]
    store.release(twin.id)
    assert store.verify() == []


def test_two_moves_of_one_request_in_one_batch_have_one_winner(db: Database, store: AuditStore) -> None:
    """A double click whose two approvals land in the same transaction still moves the request once."""
    row = store.create(new_row(), [(Status.requested, {})])
    gate, _ = held(store)
    clicks = [store.transition_later(row.id, (Status.requested,), Status.approved, f"console:{who}",
                                     approver=f"console:{who}") for who in ("bob", "carol")]
    gate.release.set()
    results = [c.result(10) for c in clicks]
    assert sum(r is not None for r in results) == 1
    got = stored(db, row.id)
    assert got is not None and got.event_count == 2 and got.approver in ("console:bob", "console:carol")


def test_a_database_that_is_down_fails_every_queued_write_at_once() -> None:
    down = Database("postgresql+psycopg://postgres@127.0.0.1:1/test", connect_timeout=1)
    runs: list[int] = []

    class Counted(Gate):
        def send(self, conn: Connection) -> Callable[[Inserts], str]:
            runs.append(1)
            return lambda _inserts: "ran"

    writer = GroupWriter(down.transaction)
    try:
        futures = [writer.submit(Counted()) for _ in range(5)]
        for f in futures:
            with pytest.raises(DatabaseUnavailable):
                f.result(10)
        assert runs == []  # never retried one by one against a database that is not there
    finally:
        writer.close()
        down.dispose()


def test_close_finishes_what_is_queued(db: Database) -> None:
    store = AuditStore(db)
    gate, _ = held(store)
    futures = [store.create_later(new_row(), [(Status.requested, {})]) for _ in range(5)]
    closing = threading.Thread(target=store.close)
    closing.start()
    gate.release.set()
    closing.join(10)
    assert not closing.is_alive()
    assert all(stored(db, f.result(0).id) is not None for f in futures)


async def test_a_cancelled_request_still_gets_its_audit_write(config: Config, db: Database) -> None:
    """The engine awaits the writer without a thread; cancelling that await must not drop the write."""
    engine: Engine = make_engine(config, db)
    await engine.start()
    try:
        gate, _ = held(engine.store)
        row = new_row()
        task = asyncio.ensure_future(engine._write(engine.store.create_later, row, [(Status.requested, {})]))
        await asyncio.sleep(0.05)
        task.cancel()
        gate.release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):
            if stored(db, row.id) is not None:
                break
            await asyncio.sleep(0.05)
        assert stored(db, row.id) is not None
    finally:
        await engine.close()


def test_sqlite_takes_the_same_path(tmp_path: Any) -> None:
    lite = Database(f"sqlite:///{tmp_path / 'audit.db'}")
    lite.migrate()
    store = AuditStore(lite)
    try:
        gate, _ = held(store)
        futures = [store.create_later(new_row(), [(Status.requested, {})]) for _ in range(5)]
        gate.release.set()
        rows = [f.result(10) for f in futures]
        moved = store.transition(rows[0].id, (Status.requested,), Status.started, "console:alice")
        assert moved is not None and moved.status == Status.started and moved.event_count == 2
        with lite.transaction() as s:
            assert s.scalar(text("SELECT count(*) FROM audit_events")) == 6
        assert store.link() == 6  # SQLite sets the links one statement per event
        assert unlinked(lite) == 0 and store.verify() == []
    finally:
        store.close()
        lite.dispose()


# -- linking in chunks (bot/upkeep.py, AuditStore.link) --------------------------------------

def unlinked(db: Database) -> int:
    with db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.seq.is_(None))) or 0)


def test_link_takes_at_most_its_limit_in_write_order(db: Database, store: AuditStore) -> None:
    rows = [store.create(new_row(Status.started), [(Status.requested, {}), (Status.started, {})]) for _ in range(5)]
    assert store.link(limit=3) == 3
    with db.transaction() as s:
        linked = list(s.execute(select(AuditEvent.id, AuditEvent.seq).where(AuditEvent.seq.is_not(None))
                                .order_by(AuditEvent.id)))
    assert [seq for _, seq in linked] == [1, 2, 3]  # the three written first
    assert store.link(limit=100) == 7 and unlinked(db) == 0
    assert store.verify() == [] and len(rows) == 5


def test_a_refused_event_does_not_use_up_a_chunk(db: Database, store: AuditStore) -> None:
    first = store.create(new_row(), [(Status.requested, {})])
    with db.transaction() as s:  # written around the bot: no seal, so never linked
        s.execute(insert(AuditEvent).values(request_id=first.id, n=2, at=utcnow(), kind="progress",
                                            actor="console:mallory", detail={}, row={}))
    for _ in range(3):
        store.create(new_row(), [(Status.requested, {})])
    assert store.link(limit=2) == 2
    assert store.link(limit=2) == 2
    assert store.link(limit=2) == 0
    assert unlinked(db) == 1  # only the forged one


async def test_the_upkeep_links_a_burst_in_chunks_until_none_is_left(config: Config, db: Database,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upkeep, "LINK_CHUNK", 4)
    engine: Engine = make_engine(config, db)
    await engine.start()
    try:
        assert engine.upkeep is not None
        await engine.upkeep.link()
        calls: list[int | None] = []
        real = engine.store.link

        def counted(limit: int | None = None) -> int:
            calls.append(limit)
            return real(limit)

        monkeypatch.setattr(engine.store, "link", counted)
        for _ in range(5):
            engine.store.create(new_row(Status.started), [(Status.requested, {}), (Status.started, {})])
        assert await engine.upkeep.link() == 10
        assert calls == [4, 4, 4] and unlinked(db) == 0  # 4 + 4 + 2: each chunk its own transaction
        assert engine.store.verify() == []
    finally:
        await engine.close()


def test_an_idle_writer_thread_ends_and_the_next_write_starts_another(db: Database, store: AuditStore,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "IDLE_S", 0.05)
    first = store.create(new_row(), [(Status.requested, {})])
    thread = store.writer._thread
    assert thread is not None
    thread.join(5)
    assert not thread.is_alive() and store.writer._thread is None  # nothing keeps the store alive
    second = store.create(new_row(), [(Status.requested, {})])
    assert stored(db, first.id) is not None and stored(db, second.id) is not None
