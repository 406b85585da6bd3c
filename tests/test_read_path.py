"""The read path that chat commands take on every call: plain autocommit reads retried once on a connection
the server closed, statements built once per shape of filter, and a waiting request expired when a page
shows it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text, update

from bot.engine import Engine
from bot.request import Actor, Request, Tone
from infra.config import Config
from infra.db.common import AuditFilter, DatabaseUnavailable, utcnow
from infra.db.models import RequestRow
from infra.db.store import AuditStore, Database
from infra.status import Status
from tests.conftest import make_engine
from tests.support import observable_registry

ALICE, BOB, CAROL = (Actor(f"console:{n}") for n in ("alice", "bob", "carol"))


@pytest.fixture
async def engine(config: Config, db: Database, tmp_path: Path) -> AsyncIterator[Engine]:
    """The shipped commands and `touch` (tests/support.py): a change that needs no backend."""
    eng = make_engine(config, db, observable_registry(tmp_path))
    await eng.start()
    yield eng
    await eng.close()


@pytest.fixture
def store(engine: Engine) -> AuditStore:
    return engine.store


async def waiting(engine: Engine, actor: Actor = ALICE) -> str:
    """A change that waits for its confirmation."""
    reply = await engine.handle(Request(actor=actor, text="touch dev marker"))
    assert reply.request_id and reply.buttons, reply.text
    return reply.request_id


def backdate(db: Database, rid: str) -> None:
    """Its time for a decision ran out a minute ago."""
    with db.sessions.begin() as s:
        s.execute(update(RequestRow).where(RequestRow.id == rid).values(expires_at=utcnow() - timedelta(minutes=1)))


async def test_a_page_that_shows_a_request_whose_time_is_up_shows_it_expired(engine: Engine, db: Database,
                                                                            store: AuditStore) -> None:
    due, fresh = await waiting(engine), await waiting(engine)
    backdate(db, due)
    reply = await engine.handle(Request(actor=ALICE, text="audit"))
    status = {row[0]: row[6] for row in reply.tables[0].rows}
    assert status[due] == "expired" and status[fresh] == "awaiting_confirmation"
    # The expiry is audited like any other: its event, by the system.
    kinds = [(e.kind, e.actor) for e in store.events(due)]
    assert (Status.expired.value, "system") in kinds


async def test_a_due_request_the_page_does_not_show_is_left_to_the_upkeep(engine: Engine, db: Database,
                                                                         store: AuditStore) -> None:
    bobs = await waiting(engine, BOB)
    backdate(db, bobs)
    mine = await engine.handle(Request(actor=ALICE, text="audit"))  # alice's page: bob's request is not on it
    assert bobs not in {row[0] for row in mine.tables[0].rows}
    assert store.get(bobs).status == Status.awaiting_confirmation  # type: ignore[union-attr]
    await engine.expire_due()  # what the upkeep does every few seconds
    assert store.get(bobs).status == Status.expired  # type: ignore[union-attr]


async def test_pending_expires_a_request_whose_time_is_up_before_listing(engine: Engine, db: Database,
                                                                        store: AuditStore) -> None:
    due, fresh = await waiting(engine), await waiting(engine)
    backdate(db, due)
    reply = await engine.handle(Request(actor=ALICE, text="pending"))
    assert fresh in reply.text and due not in reply.text
    assert store.get(due).status == Status.expired  # type: ignore[union-attr]
    assert store.get(fresh).status == Status.awaiting_confirmation  # type: ignore[union-attr]


async def test_filters_of_one_shape_keep_their_own_values(engine: Engine, store: AuditStore) -> None:
    for actor, line in ((ALICE, "whoami"), (BOB, "whoami"), (BOB, "envs"), (CAROL, "lock test")):
        assert (await engine.handle(Request(actor=actor, text=line))).tone is not Tone.error
    # The same statement (one shape: user + command) runs with each call's own values.
    assert {r.actor for r in store.query(AuditFilter(user="console:alice", command="whoami"))} == {"console:alice"}
    assert [r.command for r in store.query(AuditFilter(user="console:bob", command="envs"))] == ["envs"]
    assert store.query(AuditFilter(user="console:carol", command="whoami")) == []
    assert len(store.query(AuditFilter(user="console:bob", limit=1))) == 1
    later = store.query(AuditFilter(since=utcnow() + timedelta(minutes=5)))
    assert later == []
    assert {r.command for r in store.query(AuditFilter(status="succeeded", command="lock"))} == {"lock"}


async def test_envs_reads_the_freezes_through_the_plain_read(engine: Engine) -> None:
    assert (await engine.handle(Request(actor=CAROL, text="lock test deploy window"))).tone is not Tone.error
    reply = await engine.handle(Request(actor=ALICE, text="envs"))
    lock = {row[0]: row[5] for row in reply.tables[0].rows}
    assert lock["rumpletest"] == "frozen by console:carol (deploy window)" and lock["rumpledev"] == ""


def terminate_pool(url: str) -> int:
    """Close, from the server's side, every connection of the pool under test (as a database restart would)."""
    admin = create_engine(url)
    try:
        with admin.begin() as c:
            return int(c.execute(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = :app"),
                {"app": "chatops-pool-test"}).scalar_one())
    finally:
        admin.dispose()


def pooled(pg_url: str) -> Database:
    sep = "&" if "?" in pg_url else "?"
    return Database(f"{pg_url}{sep}application_name=chatops-pool-test")


def test_a_read_on_a_connection_the_server_closed_runs_again_on_a_new_one(pg_url: str) -> None:
    db = pooled(pg_url)
    try:
        db.rows(select(text("1")))
        assert terminate_pool(pg_url) >= 1  # a database restart, as the pool sees it
        assert db.rows(select(text("41 + 1")))[0][0] == 42
    finally:
        db.dispose()


def test_a_read_while_the_database_is_down_says_so(pg_url: str) -> None:
    db = Database(pg_url.replace("127.0.0.1:5432", "127.0.0.1:9"), connect_timeout=2)  # nothing listens
    try:
        with pytest.raises(DatabaseUnavailable):
            db.rows(select(text("1")))
    finally:
        db.dispose()


async def test_a_page_reads_only_its_columns_and_what_its_expiry_check_needs(engine: Engine,
                                                                              store: AuditStore) -> None:
    await engine.handle(Request(actor=ALICE, text="whoami"))
    rows = store.page(AuditFilter(columns=("id", "actor")))
    assert rows and rows[0]._fields == ("id", "actor", "status", "expires_at")
