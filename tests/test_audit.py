"""Audit store: tamper evidence, export, the `audit` command, migrations."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import delete, inspect, select, text, update

from bot.engine import Engine
from bot.request import Actor, Request, Tone
from infra.config import Config, Limits
from infra.db.guards import DowngradeRefused
from infra.db.migrate import downgrade
from infra.db.models import AuditEvent, ChainHead, RequestRow
from infra.db.store import AuditStore, Database
from tests.conftest import make_engine

ALICE, BOB, CAROL = (Actor(f"console:{n}") for n in ("alice", "bob", "carol"))


async def fill(engine: Engine) -> list[str]:
    ids = []
    for actor, line in ((ALICE, "whoami"), (BOB, "help"), (ALICE, "envs"), (CAROL, "lock test"),
                        (CAROL, "unlock test"), (ALICE, "restart foo on dev")):
        r = await engine.handle(Request(actor=actor, text=line))
        assert r.request_id
        ids.append(r.request_id)
    return ids


async def test_verify_passes_on_an_untouched_log(engine: Engine, store: AuditStore) -> None:
    await fill(engine)
    assert store.verify() == []


@pytest.mark.parametrize("tamper", ["edit_event", "delete_middle", "delete_newest", "edit_request",
                                    "edit_status"])
async def test_verify_catches_tampering(engine: Engine, store: AuditStore, db: Database, tamper: str) -> None:
    ids = await fill(engine)
    store.link()  # events are linked moments after they are written; tamper by chain position
    with db.sessions.begin() as s:
        if tamper == "edit_event":
            s.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(actor="console:mallory"))
        elif tamper == "delete_middle":
            s.execute(delete(AuditEvent).where(AuditEvent.seq == 4))
        elif tamper == "delete_newest":
            last = s.execute(select(ChainHead.seq)).scalar_one()
            s.execute(delete(AuditEvent).where(AuditEvent.seq == last))
        elif tamper == "edit_request":
            s.execute(update(RequestRow).where(RequestRow.id == ids[3]).values(actor="console:mallory"))
        else:
            s.execute(update(RequestRow).where(RequestRow.id == ids[5]).values(status="succeeded"))
    problems = store.verify()
    assert problems, tamper
    expected = {"edit_event": "was edited", "delete_middle": "missing", "delete_newest": "chain head",
                "edit_request": "was edited", "edit_status": "says 'succeeded'"}[tamper]
    assert any(expected in p for p in problems), problems


async def test_export_csv_and_json(engine: Engine, store: AuditStore) -> None:
    ids = await fill(engine)
    # JSON is the verifiable bundle: every request with its events and links (issue 15).
    data = json.loads(store.export("json"))
    assert data["kind"] == "chatops-audit-export" and {r["id"] for r in data["requests"]} == set(ids)
    whoami = next(r for r in data["requests"] if r["id"] == ids[0])
    assert whoami["command"] == "whoami" and whoami["status"] == "succeeded"
    assert [e["kind"] for e in data["events"] if e["request_id"] == ids[0]] == ["requested", "started", "succeeded"]
    rows = list(csv.DictReader(io.StringIO(store.export("csv"))))
    assert len(rows) == len(ids) and rows[0]["id"] == ids[-1]
    assert json.loads(rows[0]["args"]) == {}


async def test_audit_command_visibility_and_filters(engine: Engine) -> None:
    await fill(engine)
    mine = await engine.handle(Request(actor=ALICE, text="audit"))
    who = {row[2] for row in mine.tables[0].rows}
    assert who == {"console:alice"}
    nosy = await engine.handle(Request(actor=ALICE, text="audit user=bob"))
    assert nosy.tone is Tone.error and "Only admins" in nosy.text
    assert engine.store.get(nosy.request_id or "").status == "refused"  # a check before any read: refused
    everyone = await engine.handle(Request(actor=CAROL, text="audit limit=50"))
    assert {"console:alice", "console:bob", "console:carol"} <= {r[2] for r in everyone.tables[0].rows}
    bob = await engine.handle(Request(actor=CAROL, text="audit user=bob"))
    assert {r[2] for r in bob.tables[0].rows} == {"console:bob"}
    refused = await engine.handle(Request(actor=CAROL, text="audit status=refused"))
    assert [r[3] for r in refused.tables[0].rows] == ["audit", "restart"]  # alice's look at bob's, newest first
    locks = await engine.handle(Request(actor=CAROL, text="audit command=lock env=test since=1h"))
    assert [r[3] for r in locks.tables[0].rows] == ["lock"]
    two = await engine.handle(Request(actor=CAROL, text="audit limit=2"))
    assert len(two.tables[0].rows) == 2
    ids = [r[0] for r in everyone.tables[0].rows]
    assert ids[0] == everyone.request_id  # newest first: the audit request itself


def _tables(db: Database) -> set[str]:
    return set(inspect(db.engine).get_table_names())


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
async def test_migrations_up_and_down_on_empty_and_populated(kind: str, pg_url: str, tmp_path: Path,
                                                             config: object) -> None:
    from infra.backends import Backends

    url = pg_url if kind == "postgres" else f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    db = Database(url)
    db.migrate()
    assert {"requests", "audit_events", "audit_chain", "env_locks", "exec_locks", "workers"} <= _tables(db)
    downgrade(db.engine, "base")
    assert "requests" not in _tables(db)
    db.migrate()
    store = AuditStore(db)
    eng = Engine(config, store, Backends(config))  # type: ignore[arg-type]
    await eng.start()
    await fill(eng)
    await eng.close()
    with pytest.raises(DowngradeRefused, match=r"requests: \d+ rows"):  # audit data: only when forced
        downgrade(db.engine, "base")
    assert {"requests", "audit_events"} <= _tables(db)
    downgrade(db.engine, "base", force=True)
    assert not {"requests", "audit_events"} & _tables(db)
    db.migrate()
    with db.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM requests")).scalar() == 0
        assert c.execute(text("SELECT seq FROM audit_chain")).scalar() == 0
    db.dispose()


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_execution_locks_are_all_or_nothing(kind: str, pg_url: str, tmp_path: Path) -> None:
    db = Database(pg_url if kind == "postgres" else f"sqlite:///{tmp_path / 'locks.sqlite3'}")
    db.migrate()
    a = AuditStore(db, owner="worker-a")
    # SQLite is the single-process embedded default: other owners count as dead there, so both
    # "requests" come from one store; on PostgreSQL they come from two live workers.
    b = AuditStore(db, owner="worker-b") if kind == "postgres" else a
    a.register_worker()
    b.register_worker()
    assert a.acquire(["env:rumpledev", "vm:rumpledev"], "r-0000000a") is None
    assert b.acquire(["env:rumpletest", "vm:rumpledev"], "r-0000000b") == "r-0000000a"
    assert b.acquire(["env:rumpletest"], "r-0000000c") is None  # the failed try took nothing
    a.release("r-0000000a")
    assert b.acquire(["env:rumpledev", "vm:rumpledev"], "r-0000000d") is None
    a.close()
    b.close()
    db.dispose()


def test_sqlite_frees_locks_of_other_owners(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'locks.sqlite3'}")
    db.migrate()
    crashed, now = AuditStore(db, owner="crashed"), AuditStore(db, owner="restarted")
    assert crashed.acquire(["env:rumpledev"], "r-0000000a") is None
    assert now.acquire(["env:rumpledev"], "r-0000000b") is None
    db.dispose()


async def test_audit_limit_is_capped_by_the_config(config: Config, db: Database) -> None:
    """`limits.max_audit_limit` bounds `limit=` below the registry's own maximum (500)."""
    inv = config.inventory.model_copy(update={"limits": Limits(max_audit_limit=3)})
    eng = make_engine(dataclasses.replace(config, inventory=inv), db)
    await eng.start()
    try:
        await fill(eng)
        capped = await eng.handle(Request(actor=CAROL, text="audit limit=50"))
        assert capped.ok and len(capped.tables[0].rows) == 3
        assert "capped at 3 by limits.max_audit_limit" in capped.text
        within = await eng.handle(Request(actor=CAROL, text="audit limit=2"))
        assert len(within.tables[0].rows) == 2 and "capped" not in within.text
    finally:
        await eng.close()


def test_a_lock_whose_request_ended_does_not_block(db: Database) -> None:
    """A release lost to a database outage must not leave the target blocked while the worker lives."""
    store = AuditStore(db, owner="worker-a")
    store.register_worker()
    row = RequestRow(id="r-0000e4d0", actor="console:alice", platform="console", text="x", command="lock",
                     args={}, changes=True, status="started", correlation_id="c")
    store.create(row, [("requested", {"command": "lock", "args": {}, "actor": "console:alice"}), ("started", {})])
    assert store.acquire(["env:rumpledev"], row.id) is None
    other = AuditStore(db, owner="worker-b")
    other.register_worker()
    assert other.acquire(["env:rumpledev"], "r-00000b0b") == row.id  # still running: held
    store.transition(row.id, ("started",), "succeeded", "console:alice")  # ...and its release got lost
    assert other.acquire(["env:rumpledev"], "r-00000b0b") is None
    store.close()
    other.close()
