"""The keyed audit chain (issue 15, item 1): complete seals, offline exports, logged heads.

The attacker here has write access to the database and not CHATOPS_AUDIT_KEY: every edit,
insertion, rewrite and truncation below is something they can do with SQL alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, insert, select, update

from bot.cli import main
from bot.engine import Engine
from bot.request import Actor, Request
from infra.backends import Backends
from infra.config import Config
from infra.db.chain import Keys, canonical, check_records, key_id, keygen, stamp
from infra.db.common import utcnow
from infra.db.models import AuditEvent, ChainHead, RequestRow
from infra.db.store import AuditStore, Database
from tests.support import observable_registry

KEY = "k" * 8 + keygen()  # any text of 32+ characters; keygen makes a random one
ALICE, BOB, CAROL = (Actor(f"console:{n}") for n in ("alice", "bob", "carol"))


def req(actor: Actor, text: str, **kw: object) -> Request:
    return Request(actor=actor, text=text, channel="console", **kw)  # type: ignore[arg-type]


async def keyed_engine(config: Config, db: Database, tmp_path: Path, key: str | None = KEY) -> Engine:
    eng = Engine(config, AuditStore(db, keys=Keys.parse(key)), Backends(config),
                 registry=observable_registry(tmp_path))
    await eng.start()
    return eng


@pytest.fixture
async def keyed(config: Config, db: Database, tmp_path: Path) -> AsyncIterator[Engine]:
    eng = await keyed_engine(config, db, tmp_path)
    yield eng
    await eng.close()


async def history(eng: Engine) -> dict[str, str]:
    """An approval, a denial with a note, a read with a result: the fields people read."""
    approved = await eng.handle(req(ALICE, "touch prod one", confirmed=True))
    assert (await eng.act("approve", approved.request_id or "", BOB)).ok
    denied = await eng.handle(req(ALICE, "touch prod two", confirmed=True))
    await eng.act("deny", denied.request_id or "", BOB, reason="not during the demo")
    read = await eng.handle(req(ALICE, "whoami"))
    eng.store.link()
    return {"approved": approved.request_id or "", "denied": denied.request_id or "", "read": read.request_id or ""}


@pytest.mark.parametrize("key", [KEY, None], ids=["keyed", "unkeyed"])
@pytest.mark.parametrize(("column", "value", "which"), [
    ("approver", "console:mallory", "approved"),
    ("reason", "approved by the CTO", "denied"),
    ("result", "You are console:root with roles: admin.", "read"),
    ("created_at", None, "read"),
    ("text", "touch prod something-else", "approved"),
])
async def test_every_field_a_person_reads_is_sealed(config: Config, db: Database, tmp_path: Path, key: str | None,
                                                    column: str, value: str | None, which: str) -> None:
    eng = await keyed_engine(config, db, tmp_path, key)
    ids = await history(eng)
    await eng.close()
    assert eng.store.verify() == []
    with db.sessions.begin() as s:
        s.execute(update(RequestRow).where(RequestRow.id == ids[which])
                  .values(**{column: value if value is not None else utcnow()}))
    problems = eng.store.verify()
    assert any(f"request {ids[which]} was edited: {column}" in p for p in problems), problems


def rewrite_from(db: Database, first_seq: int, edit: dict[str, object]) -> None:
    """What someone without the key can do: edit an event, then recompute every seal and link
    after it with plain SHA-256 and reset the head, so the chain is consistent again."""
    keys = Keys()  # no key: SHA-256
    with db.sessions.begin() as s:
        s.execute(update(AuditEvent).where(AuditEvent.seq == first_seq).values(**edit))
        prev = s.scalars(select(AuditEvent.hash).where(AuditEvent.seq == first_seq - 1)).one()
        evs = list(s.scalars(select(AuditEvent).where(AuditEvent.seq >= first_seq).order_by(AuditEvent.seq)))
        from infra.db.chain import event_link, event_mac

        for ev in evs:
            mac = event_mac(keys, None, ev.request_id, ev.n or 0, ev.at, ev.kind, ev.actor, ev.detail, ev.row or {})
            link = event_link(keys, None, prev, ev.seq or 0, mac or "")
            s.execute(update(AuditEvent).where(AuditEvent.id == ev.id)
                      .values(mac=mac, key_id=None, prev_hash=prev, hash=link))
            prev = link or ""
        s.execute(update(ChainHead).values(hash=prev, key_id=None))


async def test_a_recomputed_chain_fails_only_when_keyed(config: Config, db: Database, tmp_path: Path) -> None:
    # Keyed: the rewrite cannot produce seals under the key.
    eng = await keyed_engine(config, db, tmp_path)
    ids = await history(eng)
    await eng.close()
    deny = next(e for e in eng.store.events(ids["denied"]) if e.kind == "denied")
    assert deny.seq is not None and deny.key_id == key_id(KEY.encode())
    rewrite_from(db, deny.seq, {"actor": "console:carol"})
    problems = eng.store.verify()
    assert problems and any("unkeyed" in p for p in problems), problems
    # The same rewrite of an unkeyed chain (SQLite, the console default) passes: what `audit verify`
    # then says honestly.
    url = f"sqlite:///{tmp_path / 'dev.sqlite3'}"
    lite = Database(url)
    lite.migrate()
    unkeyed = await keyed_engine(config, lite, tmp_path, key=None)
    ids = await history(unkeyed)
    await unkeyed.close()
    deny = next(e for e in unkeyed.store.events(ids["denied"]) if e.kind == "denied")
    rewrite_from(lite, deny.seq or 0, {"actor": "console:carol"})
    assert unkeyed.store.verify() == []
    out = CliRunner().invoke(main, ["audit", "verify"], env={"DATABASE_URL": url, "CHATOPS_CONFIG": str(config.path),
                                                              "CHATOPS_AUDIT_KEY": ""})
    assert out.exit_code == 0 and "detects edits, not a recomputed chain" in out.output, out.output
    # Checked with a key, that unkeyed chain is suspect unless its unkeyed start is accepted.
    keyed_check = CliRunner().invoke(main, ["audit", "verify"], env={"DATABASE_URL": url, "CHATOPS_AUDIT_KEY": KEY,
                                                                      "CHATOPS_CONFIG": str(config.path)})
    assert keyed_check.exit_code == 1 and "is unkeyed, but the chain is checked with a key" in keyed_check.output
    head = unkeyed.store.head()[0]
    accepted = CliRunner().invoke(main, ["audit", "verify", "--unkeyed-until", str(head)],
                                  env={"DATABASE_URL": url, "CHATOPS_AUDIT_KEY": KEY,
                                       "CHATOPS_CONFIG": str(config.path)})
    assert accepted.exit_code == 0, accepted.output
    lite.dispose()


async def test_truncation_is_caught_against_a_logged_head(config: Config, db: Database, tmp_path: Path,
                                                          pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="chatops.upkeep")
    eng = await keyed_engine(config, db, tmp_path)
    ids = await history(eng)
    assert eng.upkeep is not None
    logged = await eng.upkeep.log_head(force=True)  # what the bot logs every minute
    assert logged is not None and f"audit chain head {logged[0]}:{logged[1]}" in caplog.text
    await eng.handle(req(ALICE, "envs"))
    await eng.close()
    # Delete the newest requests (from the last one before the logged head on), rows and events,
    # and reset the head to what remains: a consistent, shorter chain.
    store = eng.store
    cut = min(e.seq or 0 for e in store.events(ids["read"]))
    with db.sessions.begin() as s:
        gone = set(s.scalars(select(AuditEvent.request_id).where(AuditEvent.seq >= cut)))
        s.execute(delete(AuditEvent).where(AuditEvent.seq >= cut))
        s.execute(delete(RequestRow).where(RequestRow.id.in_(gone)))
        last = s.scalars(select(AuditEvent).where(AuditEvent.seq == cut - 1)).one()
        s.execute(update(ChainHead).values(seq=last.seq, hash=last.hash))
    # Without an outside anchor that chain is consistent: the key cannot tell what is missing ...
    assert store.verify() == []
    # ... the head the bot logged earlier can.
    problems = store.verify(heads=[logged])
    assert any(f"reached event {logged[0]}" in p and "newest events deleted" in p for p in problems), problems
    log = tmp_path / "bot.log"
    log.write_text(caplog.text)
    env = {"DATABASE_URL": pg_url, "CHATOPS_CONFIG": str(config.path), "CHATOPS_AUDIT_KEY": KEY}
    out = CliRunner().invoke(main, ["audit", "verify", "--heads-from", str(log)], env=env)
    assert out.exit_code == 1 and "newest events deleted" in out.output, out.output
    out = CliRunner().invoke(main, ["audit", "verify", "--head", f"{logged[0]}:{logged[1]}"], env=env)
    assert out.exit_code == 1 and "first broken row" in out.output
    ok = CliRunner().invoke(main, ["audit", "verify", "--head", f"{last.seq}:{last.hash}"], env=env)
    assert ok.exit_code == 0, ok.output


async def test_an_export_verifies_offline(keyed: Engine, pg_url: str, config: Config, tmp_path: Path) -> None:
    ids = await history(keyed)
    env = {"DATABASE_URL": pg_url, "CHATOPS_CONFIG": str(config.path), "CHATOPS_AUDIT_KEY": KEY}
    export = tmp_path / "audit.json"
    out = CliRunner().invoke(main, ["audit", "export", "--format", "json", "-o", str(export)], env=env)
    assert out.exit_code == 0, out.output
    offline = {"CHATOPS_AUDIT_KEY": KEY, "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    ok = CliRunner().invoke(main, ["audit", "verify", "--file", str(export)], env=offline)
    assert ok.exit_code == 0 and f"{export}: OK" in ok.output, ok.output
    # Without the key the seals cannot be checked: said so, exit 2.
    nokey = CliRunner().invoke(main, ["audit", "verify", "--file", str(export)],
                               env={**offline, "CHATOPS_AUDIT_KEY": ""})
    assert nokey.exit_code == 2 and "CHATOPS_AUDIT_KEY" in nokey.output
    data = json.loads(export.read_text())
    row = next(r for r in data["requests"] if r["id"] == ids["approved"])
    row["approver"] = "console:mallory"
    export.write_text(json.dumps(data))
    bad = CliRunner().invoke(main, ["audit", "verify", "--file", str(export)], env=offline)
    assert bad.exit_code == 1 and "approver" in bad.output and "first broken row" in bad.output
    # A file that is no export, or one whose fields are of another shape, cannot be checked: exit 2, named.
    good = json.loads(json.dumps(data))
    for edit in (lambda d: d.__setitem__("head", {"seq": "abc"}), lambda d: d.__setitem__("start", "x"),
                 lambda d: d["events"].__setitem__(0, "an event"),
                 lambda d: d["requests"][0].__setitem__("created_at", "not a date")):
        broken = json.loads(json.dumps(good))
        edit(broken)
        export.write_text(json.dumps(broken))
        out = CliRunner().invoke(main, ["audit", "verify", "--file", str(export)], env=offline)
        assert out.exit_code == 2 and "cannot be checked: a field is not what" in out.output, out.output
    export.write_text(json.dumps(good)[:200])
    out = CliRunner().invoke(main, ["audit", "verify", "--file", str(export)], env=offline)
    assert out.exit_code == 2 and "cannot be read as an export" in out.output, out.output
    # A partial export (--since) verifies too, from the first event it holds.
    row = keyed.store.get(ids["approved"])
    assert row is not None
    data = keyed.store.bundle(since=row.created_at + timedelta(microseconds=1))
    assert not data["complete"] and data["start"]["seq"] > 0 and data["events"]
    report = check_records(data["requests"], data["events"], Keys.parse(KEY),
                           start=(data["start"]["seq"], data["start"]["hash"]), complete=data["complete"])
    assert report.ok, report.problems


async def test_an_event_forged_into_the_database_is_never_linked(keyed: Engine, db: Database,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    ids = await history(keyed)
    row = keyed.store.get(ids["read"])
    assert row is not None
    # One more event for a request, sealed with plain SHA-256 (without the key nobody can do better).
    at = utcnow()
    body = {"v": 2, "request": ids["read"], "n": row.event_count + 1, "at": stamp(at), "kind": "progress",
            "actor": "console:carol", "detail": {"text": "all good"}, "row": {}, "key": None}
    with db.sessions.begin() as s:
        s.execute(insert(AuditEvent).values(request_id=ids["read"], n=row.event_count + 1, at=at,
                                            kind="progress", actor="console:carol", detail={"text": "all good"},
                                            row={}, mac=hashlib.sha256(canonical(body)).hexdigest()))
    assert keyed.store.link() == 0
    assert "not linked" in caplog.text
    problems = keyed.store.verify()
    assert any("unlinked event" in p and "is unkeyed" in p for p in problems), problems
    assert any(f"request {ids['read']} counts" in p for p in problems), problems


async def test_the_bot_refuses_a_wrong_or_missing_key(config: Config, db: Database, tmp_path: Path) -> None:
    from infra.db.chain import AuditKeyError

    eng = await keyed_engine(config, db, tmp_path)
    await eng.handle(req(ALICE, "whoami"))
    await eng.close()
    for key in (None, "w" * 40):
        other = Engine(config, AuditStore(db, keys=Keys.parse(key)), Backends(config))
        with pytest.raises(AuditKeyError, match="CHATOPS_AUDIT_KEY"):
            await other.start()
    # Changing keys: the new one first, the old one after it; old events still verify.
    rotated = Engine(config, AuditStore(db, keys=Keys.parse(f"{'n' * 40},{KEY}")), Backends(config))
    await rotated.start()
    await rotated.handle(req(ALICE, "whoami"))
    await rotated.close()
    report = rotated.store.check()
    assert report.ok and len(report.key_ids) == 2, report.problems
    with pytest.raises(AuditKeyError, match="at least 32"):
        Keys.parse("short")


def test_keygen_prints_a_usable_key() -> None:
    out = CliRunner().invoke(main, ["audit", "keygen"])
    assert out.exit_code == 0
    key = out.output.splitlines()[0]
    assert len(key) >= 32 and Keys.parse(key).keyed and key_id(key.encode()) in out.output


def test_serve_needs_a_key_on_postgresql(pg_url: str, config: Config) -> None:
    out = CliRunner().invoke(main, ["serve", "slack", "--metrics-port", "off"],
                             env={"DATABASE_URL": pg_url, "CHATOPS_CONFIG": str(config.path), "CHATOPS_AUDIT_KEY": ""})
    assert out.exit_code == 2 and "CHATOPS_AUDIT_KEY is not set" in out.output and "keygen" in out.output


async def test_an_existing_chain_is_carried_over_by_migration_0011(config: Config, pg_url: str,
                                                                    tmp_path: Path) -> None:
    """A chain written before 0011 (plain SHA-256 over each event) keeps verifying in its old format,
    including the console's old confirmation (a second `requested` event, which 0011's predecessor
    reported as tampering); the keyed, sealed segment starts after it."""
    from sqlalchemy import text

    from infra.db.chain import GENESIS, legacy_link
    from infra.db.migrate import upgrade

    db = Database(pg_url)
    upgrade(db.engine, "0010")
    t = utcnow()
    legacy = [("r-0000old1", "requested", {"command": "touch", "args": {"env": "rumpledev", "name": "a"},
                                           "actor": "console:alice"}),
              ("r-0000old1", "awaiting_confirmation", {"plan_hash": "p"}),
              ("r-0000old1", "requested", {"confirmed": True}),  # the old console confirmation
              ("r-0000old1", "started", {}), ("r-0000old1", "succeeded", {"result": "touched a"})]
    with db.engine.begin() as c:
        c.execute(text("INSERT INTO requests (id, created_at, updated_at, actor, platform, text, source, command, "
                       "args, env, changes, status, result, correlation_id) VALUES ('r-0000old1', :t, :t, "
                       "'console:alice', 'console', 'touch dev a', 'grammar', 'touch', "
                       "'{\"env\": \"rumpledev\", \"name\": \"a\"}', 'rumpledev', true, 'succeeded', "
                       "'touched a', 'c')"), {"t": t})
        prev = GENESIS
        for seq, (rid, kind, detail) in enumerate(legacy, 1):
            link = legacy_link(prev, seq, rid, t, kind, "console:alice", detail)
            c.execute(text("INSERT INTO audit_events (seq, request_id, at, kind, actor, detail, prev_hash, hash) "
                           "VALUES (:seq, :rid, :t, :kind, 'console:alice', :detail, :prev, :link)"),
                      {"seq": seq, "rid": rid, "t": t, "kind": kind, "detail": json.dumps(detail), "prev": prev,
                       "link": link})
            prev = link
        c.execute(text("UPDATE audit_chain SET seq = :n, hash = :h"), {"n": len(legacy), "h": prev})
    db.migrate()  # 0011
    eng = await keyed_engine(config, db, tmp_path)
    await history(eng)
    await eng.close()
    report = eng.store.check()
    assert report.ok, report.problems
    assert report.legacy == len(legacy) and report.first_keyed == len(legacy) + 1 and report.unkeyed == 0
    assert eng.store.get("r-0000old1").event_count == len(legacy)  # type: ignore[union-attr]
    with db.engine.begin() as c:  # an old event edited: still caught, by its old hash
        c.execute(text("UPDATE audit_events SET detail = '{\"result\": \"touched b\"}' WHERE seq = 5"))
    assert any("event 5" in p and "does not match" in p for p in eng.store.verify())
    db.dispose()


async def test_retention_prunes_a_keyed_chain_and_the_archive_verifies(keyed: Engine, db: Database, tmp_path: Path,
                                                                      pg_url: str, config: Config) -> None:
    from infra.db.retention import check_archive, prune

    ids = await history(keyed)
    archive = tmp_path / "keyed.jsonl.gz"
    result = prune(keyed.store, utcnow() + timedelta(seconds=1), archive)
    assert result.requests == len(ids) and all(keyed.store.get(r) is None for r in ids.values())
    assert keyed.store.check().ok, keyed.store.verify()
    assert check_archive(archive, Keys.parse(KEY)).ok
    unkeyed = check_archive(archive)  # without the key: structure and rows checked, seals not
    assert unkeyed.ok and unkeyed.unchecked > 0
    # Pruning a keyed chain without the key is refused (its own events would not verify).
    env = {"DATABASE_URL": pg_url, "CHATOPS_CONFIG": str(config.path), "CHATOPS_AUDIT_KEY": ""}
    out = CliRunner().invoke(main, ["audit", "prune", "--days", "1", "--archive", str(tmp_path / "x.gz")], env=env)
    assert out.exit_code != 0 and "CHATOPS_AUDIT_KEY" in out.output
    assert (await keyed.handle(req(ALICE, "whoami"))).ok  # and the chain goes on after the checkpoint
    keyed.store.link()
    assert keyed.store.check().ok


def new_row() -> RequestRow:
    from infra.db.store import new_request_id

    return RequestRow(id=new_request_id(), actor="console:alice", platform="console", text="whoami",
                      command="whoami", args={}, changes=False, status="requested")


def edit_detail(db: Database, rid: str) -> None:
    with db.sessions.begin() as s:
        s.execute(update(AuditEvent).where(AuditEvent.request_id == rid).values(detail={"text": "rm -rf /"}))


def test_an_event_edited_between_its_write_and_its_link_is_reported_by_verify(db: Database) -> None:
    """The linker takes the events this process sealed on the strength of that seal (it does not read
    them back); an edit made in between is in the chain then, and `verify` shows it."""
    store = AuditStore(db, keys=Keys.parse(KEY))
    row = store.create(new_row(), [("requested", {"text": "whoami"})])
    edit_detail(db, row.id)
    assert store.link() == 1
    problems = store.verify()
    assert any(row.id in p and "seal does not match" in p for p in problems), problems


def test_another_process_s_events_are_read_and_checked_before_they_are_linked(
        db: Database, caplog: pytest.LogCaptureFixture) -> None:
    writer, linker = AuditStore(db, keys=Keys.parse(KEY)), AuditStore(db, keys=Keys.parse(KEY))
    good = writer.create(new_row(), [("requested", {"text": "whoami"})])
    bad = writer.create(new_row(), [("requested", {"text": "whoami"})])
    edit_detail(db, bad.id)
    with caplog.at_level(logging.ERROR):
        assert linker.link() == 1  # the good one: its seal matches what it says
    assert f"of {bad.id}) not linked: its seal does not match its content" in caplog.text
    with db.sessions.begin() as s:
        linked = {r for r, in s.execute(select(AuditEvent.request_id).where(AuditEvent.seq.is_not(None)))}
    assert good.id in linked and bad.id not in linked
