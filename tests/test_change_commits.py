"""The commits a change makes on its way to running and at its end (issue 14, item 7): "Run it" writes the
confirmation with the start and the locks in one transaction, and the outcome frees the locks in its own.
Each step is still in the log, in order, on every path: the happy one, a refusal after the click, a lock
someone else holds, two clicks at once.  Against the real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import event, text

from bot.engine import Engine
from bot.request import Actor, Request, Tone
from infra.config import Config
from infra.db.store import AuditStore, Database
from tests.conftest import make_engine
from tests.support import observable_registry

ALICE, CAROL = Actor("console:alice"), Actor("console:carol")


@pytest.fixture
async def engine(config: Config, db: Database, tmp_path: Path) -> AsyncIterator[Engine]:
    eng = make_engine(config, db, observable_registry(tmp_path))  # `touch`: a change that locks its env
    await eng.start()
    yield eng
    await eng.close()


async def card(engine: Engine, name: str = "marker") -> str:
    reply = await engine.handle(Request(actor=ALICE, text=f"touch dev {name}", channel="console"))
    assert reply.request_id and reply.buttons, reply.text
    return reply.request_id


def kinds(store: AuditStore, rid: str) -> list[str]:
    return [e.kind for e in store.events(rid)]


def same_transaction(db: Database, rid: str) -> dict[str, int]:
    """Each event kind of the request, and the transaction that inserted it (PostgreSQL's xmin)."""
    with db.engine.connect() as c:
        return {k: int(x) for k, x in c.execute(text("SELECT kind, xmin::text::bigint FROM audit_events "
                                                     "WHERE request_id = :r"), {"r": rid})}


def lock_rows(db: Database) -> list[tuple[str, str]]:
    with db.engine.connect() as c:
        return [(t, r) for t, r in c.execute(text("SELECT target, request_id FROM exec_locks"))]


def statements(db: Database) -> list[str]:
    """What this process sends through SQLAlchemy from now on, with a mark at each commit."""
    seen: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda _c, _cur, sql, *_: seen.append(" ".join(sql.split()[:3])))
    event.listen(db.engine, "commit", lambda _c: seen.append("COMMIT"))
    return seen


async def test_run_it_writes_the_confirmation_with_the_start_and_frees_the_locks_with_the_outcome(
        engine: Engine, db: Database, tmp_path: Path) -> None:
    rid = await card(engine)
    seen = statements(db)
    done = await engine.decide("confirm", rid, ALICE)
    assert done.reply.tone is Tone.success and done.applied, done.reply.text
    assert done.status is not None and done.status.value == "succeeded"
    assert kinds(engine.store, rid) == ["requested", "awaiting_confirmation", "confirmed", "started", "progress",
                                        "succeeded"]
    xmin = same_transaction(db, rid)
    assert xmin["confirmed"] == xmin["started"]  # one commit on the way to running
    assert xmin["succeeded"] != xmin["started"]
    assert lock_rows(db) == []
    # the locks went once, in the transaction that wrote the outcome (not in one of their own)
    deletes = [i for i, s in enumerate(seen) if s.startswith("DELETE FROM exec_locks")]
    assert len(deletes) == 1, seen
    before = seen[:deletes[0]]
    tx = before[len(before) - before[::-1].index("COMMIT"):] if "COMMIT" in before else before
    assert any(s.startswith("INSERT INTO audit_events") for s in tx), seen
    assert (tmp_path / "marker").read_text().count("\n") == 1


async def test_a_refusal_after_the_click_still_logs_who_confirmed(engine: Engine, db: Database,
                                                                  tmp_path: Path) -> None:
    rid = await card(engine)
    frozen = await engine.handle(Request(actor=CAROL, text="lock dev release freeze", channel="console"))
    assert frozen.ok and "rumpledev" in str(engine.store.env_locks()), frozen.text
    done = await engine.decide("confirm", rid, ALICE)
    assert done.reply.tone is Tone.error and "frozen" in done.reply.text, done.reply.text
    assert done.applied and done.status is not None and done.status.value == "refused"
    assert kinds(engine.store, rid) == ["requested", "awaiting_confirmation", "confirmed", "refused"]
    assert [e.actor for e in engine.store.events(rid)][2] == ALICE.id
    assert not (tmp_path / "marker").exists() and lock_rows(db) == []


async def test_a_lock_someone_else_holds_refuses_it_after_the_confirmation(engine: Engine, db: Database,
                                                                          tmp_path: Path) -> None:
    rid = await card(engine)
    assert engine.store.acquire(["env:rumpledev"], "r-0ther001") is None
    done = await engine.decide("confirm", rid, ALICE)
    assert done.reply.tone is Tone.error and "r-0ther001" in done.reply.text, done.reply.text
    # refused, not failed: it never ran (docs/safety.md, "Execution locks")
    assert kinds(engine.store, rid) == ["requested", "awaiting_confirmation", "confirmed", "refused"]
    assert lock_rows(db) == [("env:rumpledev", "r-0ther001")]  # theirs, untouched; none of ours left
    assert not (tmp_path / "marker").exists()


async def test_two_clicks_at_once_run_it_once_and_only_one_is_applied(engine: Engine, db: Database,
                                                                      tmp_path: Path) -> None:
    rid = await card(engine)
    first, second = await asyncio.gather(engine.decide("confirm", rid, ALICE), engine.decide("confirm", rid, ALICE))
    assert sorted([first.applied, second.applied]) == [False, True], (first.reply.text, second.reply.text)
    loser = second if first.applied else first
    assert loser.reply.tone is Tone.info and "nothing was" in loser.reply.text, loser.reply.text
    assert (tmp_path / "marker").read_text().count("\n") == 1
    assert kinds(engine.store, rid).count("confirmed") == 1 and kinds(engine.store, rid).count("started") == 1
    assert lock_rows(db) == []


async def test_a_change_asked_with_yes_is_written_with_its_start(engine: Engine, db: Database,
                                                                  tmp_path: Path) -> None:
    recorded: list[str] = []
    reply = await engine.handle(Request(actor=ALICE, text="touch dev direct", channel="console", confirmed=True,
                                        on_recorded=recorded.append))
    assert reply.tone is Tone.success and reply.request_id, reply.text
    rid = reply.request_id
    assert recorded == [rid]  # told as soon as the row was committed (the HTTP API answers 202 then)
    assert kinds(engine.store, rid) == ["requested", "started", "progress", "succeeded"]
    xmin = same_transaction(db, rid)
    assert xmin["requested"] == xmin["started"] != xmin["succeeded"]
    assert lock_rows(db) == [] and (tmp_path / "direct").read_text().count("\n") == 1


async def test_a_change_asked_with_yes_into_a_freeze_is_recorded_and_refused(engine: Engine, db: Database,
                                                                              tmp_path: Path) -> None:
    assert engine.store.lock_env("rumpledev", CAROL.id, "release freeze") is None  # (None: not frozen before)
    recorded: list[str] = []
    reply = await engine.handle(Request(actor=ALICE, text="touch dev direct", channel="console", confirmed=True,
                                        on_recorded=recorded.append))
    assert reply.tone is Tone.error and "frozen" in reply.text and reply.request_id, reply.text
    assert recorded == [reply.request_id]
    row = engine.store.get(reply.request_id)
    assert row is not None and row.status == "refused" and row.command == "touch"
    assert kinds(engine.store, reply.request_id) == ["requested", "refused"]
    assert lock_rows(db) == [] and not (tmp_path / "direct").exists()


async def test_a_change_asked_with_yes_against_a_held_lock_is_recorded_and_refused(engine: Engine, db: Database,
                                                                                   tmp_path: Path) -> None:
    assert engine.store.acquire(["env:rumpledev"], "r-0ther001") is None
    reply = await engine.handle(Request(actor=ALICE, text="touch dev direct", channel="console", confirmed=True))
    assert reply.tone is Tone.error and "r-0ther001" in reply.text and reply.request_id, reply.text
    assert kinds(engine.store, reply.request_id) == ["requested", "refused"]
    assert lock_rows(db) == [("env:rumpledev", "r-0ther001")]
    assert not (tmp_path / "direct").exists()
