"""The engine's request path against the real PostgreSQL audit store."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text, update

from bot.engine import Engine
from bot.request import Actor, Reply, Request, Tone
from infra.backends import Backends
from infra.config import Channel, Config, Role
from infra.db.models import RequestRow
from infra.db.store import AuditStore, Database
from infra.status import Status

from .conftest import make_engine
from .support import Gate, observable_registry

ALICE, BOB, CAROL, DAVE = (Actor(f"console:{n}") for n in ("alice", "bob", "carol", "dave"))


def req(actor: Actor, text: str, **kw: object) -> Request:
    return Request(actor=actor, text=text, channel="console", **kw)  # type: ignore[arg-type]


async def new_engine(config: Config, db: Database, tmp_path: Path, gate: Gate | None = None) -> Engine:
    eng = make_engine(config, db, observable_registry(tmp_path, gate))
    await eng.start()
    return eng


def decision(reply: Reply) -> str:
    """The decision line of an approve's reply (the run's outcome is its text)."""
    return dict(reply.fields).get("Decision", "")


def kinds(store: AuditStore, rid: str) -> list[str]:
    return [e.kind for e in store.events(rid)]


async def test_read_command_is_audited_before_and_after(engine: Engine, store: AuditStore) -> None:
    reply = await engine.handle(req(ALICE, "whoami"))
    assert reply.ok and "console:alice" in reply.text and reply.request_id
    row = store.get(reply.request_id)
    assert row is not None and row.status == "succeeded" and row.command == "whoami"
    assert kinds(store, reply.request_id) == ["requested", "started", "succeeded"]


async def test_change_is_confirmed_then_runs_after_its_row_is_committed(config: Config, db: Database,
                                                                         tmp_path: Path) -> None:
    eng = await new_engine(config, db, tmp_path)
    card = await eng.handle(req(ALICE, "touch dev first"))
    assert card.tone is Tone.question and "I understood: touch rumpledev first" in card.text
    assert [b.action for b in card.buttons] == ["confirm", "cancel"]
    assert not (tmp_path / "first").exists()
    rid = card.request_id
    assert rid and eng.store.get(rid).status == "awaiting_confirmation"  # type: ignore[union-attr]

    other = await eng.act("confirm", rid, BOB)
    assert other.tone is Tone.error and "Only console:alice" in other.text
    progress: list[Reply] = []

    async def sink(r: Reply) -> None:
        progress.append(r)

    done = await eng.act("confirm", rid, ALICE, req=req(ALICE, "touch dev first", on_progress=sink))
    assert done.tone is Tone.success, done.text
    assert (tmp_path / "first").read_text() == "rumpledev console:alice status-while-running=started\n"
    assert [p.text for p in progress] == ["touching first"]
    assert kinds(eng.store, rid) == ["requested", "awaiting_confirmation", "confirmed", "started", "progress",
                                     "succeeded"]
    again = await eng.act("confirm", rid, ALICE)
    assert "already succeeded" in again.text
    assert (tmp_path / "first").read_text().count("\n") == 1


async def test_cancel_changes_nothing(config: Config, db: Database, tmp_path: Path) -> None:
    eng = await new_engine(config, db, tmp_path)
    card = await eng.handle(req(ALICE, "touch dev x"))
    assert card.request_id
    res = await eng.act("cancel", card.request_id, ALICE)
    assert "Cancelled" in res.text and not (tmp_path / "x").exists()
    assert eng.store.get(card.request_id).status == "cancelled"  # type: ignore[union-attr]


async def test_protected_change_needs_another_approver(config: Config, db: Database, tmp_path: Path) -> None:
    eng = await new_engine(config, db, tmp_path)
    card = await eng.handle(req(ALICE, "touch prod p1", confirmed=True))
    assert card.tone is Tone.pending and card.request_id
    rid = card.request_id
    assert [b.action for b in card.buttons] == ["approve", "deny", "withdraw"]
    assert card.mentions == ["console:bob", "console:carol"]
    assert dict(card.fields)["Who may approve"] == "console:bob, console:carol"
    assert not (tmp_path / "p1").exists()

    own = await eng.handle(req(BOB, "touch prod p2", confirmed=True))
    assert own.request_id
    refused = await eng.handle(req(BOB, f"approve {own.request_id}"))
    assert refused.tone is Tone.error and "can't approve your own" in refused.text
    not_approver = await eng.handle(req(ALICE, f"approve {rid}"))
    assert not_approver.tone is Tone.error and "approver role" in not_approver.text
    assert eng.store.get(rid).status == "pending_approval"  # type: ignore[union-attr]

    ok = await eng.handle(req(BOB, f"approve {rid}"))
    assert ok.tone is Tone.success and decision(ok) == "Approved by console:bob (touch for console:alice)", ok.text
    assert ok.mentions == ["console:alice"] and ok.mention_label == "Requested by"  # the requester hears it
    assert (tmp_path / "p1").read_text().startswith("rumpleprod console:alice status-while-running=started")
    row = eng.store.get(rid)
    assert row is not None and row.status == "succeeded" and row.approver == "console:bob"
    assert kinds(eng.store, rid) == ["requested", "pending_approval", "approved", "started", "progress",
                                     "succeeded"]
    twice = await eng.act("approve", rid, CAROL)
    assert "already succeeded" in twice.text


async def test_two_approvers_at_once_run_it_once(config: Config, db: Database, tmp_path: Path) -> None:
    eng1 = await new_engine(config, db, tmp_path)
    eng2 = await new_engine(config, db, tmp_path)
    card = await eng1.handle(req(ALICE, "touch prod race", confirmed=True))
    assert card.request_id and card.buttons
    digest = card.buttons[0].plan_hash
    results = await asyncio.gather(eng1.act("approve", card.request_id, BOB, digest),
                                   eng2.act("approve", card.request_id, CAROL, digest),
                                   eng1.act("approve", card.request_id, BOB, digest))
    assert sum(decision(r).startswith("Approved") for r in results) == 1, [r.text for r in results]
    assert (tmp_path / "race").read_text().count("\n") == 1


async def test_deny_and_expiry_and_wrong_button(config: Config, db: Database, tmp_path: Path) -> None:
    eng = await new_engine(config, db, tmp_path)
    a = await eng.handle(req(ALICE, "touch prod d1", confirmed=True))
    denied = await eng.handle(req(BOB, f"deny {a.request_id} not during the demo"))
    assert "Denied" in denied.text and "not during the demo" in denied.text
    assert eng.store.get(a.request_id).status == "denied"  # type: ignore[arg-type,union-attr]

    b = await eng.handle(req(ALICE, "touch prod d2", confirmed=True))
    assert b.request_id
    wrong = await eng.act("approve", b.request_id, BOB, plan_digest="0" * 64)
    assert wrong.tone is Tone.error and "not the plan this button was made for" in wrong.text
    with db.sessions.begin() as s:
        s.execute(update(RequestRow).where(RequestRow.id == b.request_id)
                  .values(expires_at=text("now() - interval '1 minute'")))
    late = await eng.act("approve", b.request_id, BOB)
    assert late.tone is Tone.error and "expired" in late.text
    assert eng.store.get(b.request_id).status == "expired"  # type: ignore[union-attr]
    assert not (tmp_path / "d1").exists() and not (tmp_path / "d2").exists()


async def test_plan_edited_after_request_is_not_approved(config: Config, db: Database, tmp_path: Path) -> None:
    eng = await new_engine(config, db, tmp_path)
    a = await eng.handle(req(ALICE, "touch prod orig", confirmed=True))
    with db.sessions.begin() as s:
        s.execute(update(RequestRow).where(RequestRow.id == a.request_id)
                  .values(args={"env": "rumpleprod", "name": "evil"}))
    res = await eng.act("approve", a.request_id or "", BOB)
    assert res.tone is Tone.error and "changed since it was requested" in res.text
    assert not (tmp_path / "evil").exists()
    assert any("was edited" in p for p in eng.store.verify())


async def test_freeze_blocks_changes_until_unlocked(config: Config, db: Database, tmp_path: Path) -> None:
    eng = await new_engine(config, db, tmp_path)
    not_admin = await eng.handle(req(BOB, "lock test"))
    assert not_admin.tone is Tone.error and "needs the admin role" in not_admin.text
    locked = await eng.handle(req(CAROL, "lock test release rehearsal"))
    assert locked.tone is Tone.success
    blocked = await eng.handle(req(ALICE, "touch test f1", confirmed=True))
    assert blocked.tone is Tone.error and "rumpletest is frozen by console:carol" in blocked.text
    assert "release rehearsal" in blocked.text
    assert eng.store.get(blocked.request_id).status == "refused"  # type: ignore[arg-type,union-attr]
    envs = await eng.handle(req(ALICE, "envs"))
    assert any("frozen by console:carol" in row[-1] for row in envs.tables[0].rows)
    await eng.handle(req(CAROL, "unlock test"))
    ok = await eng.handle(req(ALICE, "touch test f1", confirmed=True))
    assert ok.tone is Tone.success and (tmp_path / "f1").exists()


async def test_freeze_applies_when_an_approved_request_runs(config: Config, db: Database, tmp_path: Path) -> None:
    eng = await new_engine(config, db, tmp_path)
    a = await eng.handle(req(ALICE, "touch prod late", confirmed=True))
    await eng.handle(req(CAROL, "lock prod"))
    res = await eng.act("approve", a.request_id or "", BOB)
    assert res.tone is Tone.error and "frozen" in res.text
    assert not (tmp_path / "late").exists()


async def test_execution_lock_across_two_engines(config: Config, db: Database, tmp_path: Path) -> None:
    gate = Gate()
    eng1 = await new_engine(config, db, tmp_path, gate)
    eng2 = await new_engine(config, db, tmp_path)
    first = asyncio.create_task(eng1.handle(req(ALICE, "touch dev slow", confirmed=True)))
    await asyncio.wait_for(gate.entered.wait(), 10)
    busy = await eng2.handle(req(BOB, "touch development fast", confirmed=True))
    assert busy.tone is Tone.error and "Another change" in busy.text and "env:rumpledev" in busy.text
    # Another environment is another target: it runs meanwhile.
    other_env = await eng2.handle(req(BOB, "touch test fine", confirmed=True))
    assert other_env.tone is Tone.success
    gate.release.set()
    assert (await first).tone is Tone.success
    after = await eng2.handle(req(BOB, "touch dev fast", confirmed=True))
    assert after.tone is Tone.success
    assert (tmp_path / "fast").exists() and (tmp_path / "slow").exists()


async def test_crash_recovery_marks_dead_workers_requests_interrupted(config: Config, db: Database,
                                                                       tmp_path: Path) -> None:
    live = await new_engine(config, db, tmp_path)
    ghost = AuditStore(db, owner="ghost-host:1:dead")  # never registered: no advisory lock held
    for owner_store, rid in ((ghost, "r-0000dead"), (live.store, "r-0000a11e")):
        row = RequestRow(id=rid, actor="console:alice", platform="console", text="touch dev x",
                         command="touch", args={"env": "rumpledev", "name": "x"}, env="rumpledev",
                         changes=True, status="started", correlation_id="c")
        owner_store.create(row, [("requested", {"command": "touch", "args": row.args, "actor": row.actor}),
                                 ("started", {})])
    ghost.acquire(["env:rumpledev"], "r-0000dead")
    restarted = await new_engine(config, db, tmp_path)
    store = restarted.store
    assert store.get("r-0000dead").status == "interrupted"  # type: ignore[union-attr]
    assert store.get("r-0000a11e").status == "started"  # type: ignore[union-attr]
    assert store.acquire(["env:rumpledev"], "r-00000001") is None  # the dead worker's lock was freed
    assert store.verify() == []


async def test_unexpected_handler_error_is_recorded_with_a_reference(config: Config, db: Database,
                                                                      tmp_path: Path) -> None:
    eng = await new_engine(config, db, tmp_path)
    r = req(ALICE, "explode dev")
    res = await eng.handle(r)
    assert res.tone is Tone.error and f"ref {r.correlation_id}" in res.text
    assert "Traceback" not in res.text and "boom" not in res.text
    row = eng.store.get(res.request_id or "")
    assert row is not None and row.status == "failed" and "xoxb" not in (row.error or "")


async def test_viewers_are_refused_changes_with_an_audit_row(engine: Engine, store: AuditStore) -> None:
    res = await engine.handle(req(DAVE, "restart n8n on dev", confirmed=True))
    assert res.tone is Tone.error and "needs the operator role" in res.text
    row = store.get(res.request_id or "")
    assert row is not None and row.status == "refused" and row.actor == "console:dave"


async def test_unresolved_requests(engine: Engine, store: AuditStore) -> None:
    chat = await engine.handle(req(ALICE, "thanks, that worked"))
    assert chat.request_id is None and chat.tone is Tone.question
    unknown = await engine.handle(req(ALICE, "restart foo on dev"))
    assert unknown.request_id and "don't know a service called 'foo'" in unknown.text
    assert store.get(unknown.request_id).status == "refused"  # type: ignore[union-attr]
    huge = await engine.handle(req(ALICE, "restart n8n on dev " + "x" * 3000))
    assert huge.tone is Tone.question and "too long" in huge.text
    row = store.get(huge.request_id or "")  # an action was asked for: it is in the audit log
    assert row is not None and row.command == "restart" and row.status == "refused" and len(row.text) <= 2000
    chatter = await engine.handle(req(ALICE, "lorem ipsum " * 400))
    assert "too long" in chatter.text and chatter.request_id is None


async def test_backend_not_configured_is_refused_before_confirmation(engine: Engine, store: AuditStore) -> None:
    res = await engine.handle(req(ALICE, "restart n8n on dev"))
    assert res.tone is Tone.error and "Docker backend for rumpledev is not configured" in res.text
    assert store.get(res.request_id or "").status == "refused"  # type: ignore[union-attr]


async def test_channel_default_environment(config: Config, store: AuditStore) -> None:
    inventory = config.inventory.model_copy(update={"channels": {"slack:COPS": Channel(default_env="rumpledev")}})
    cfg = Config(inventory=inventory, path=config.path, settings=config.settings)
    eng = Engine(cfg, store, Backends(cfg))
    plan = await eng.plan(Request(actor=ALICE, text="restart n8n", channel="slack:COPS"))
    assert plan.complete and plan.args == {"service": "n8n", "env": "rumpledev"}
    plan2 = await eng.plan(Request(actor=ALICE, text="restart n8n", channel="slack:OTHER"))
    assert not plan2.complete and "Which environment" in (plan2.clarify or "")


async def test_database_down_means_no_action(config: Config, tmp_path: Path) -> None:
    dead = Database("postgresql+psycopg://postgres@127.0.0.1:1/test", connect_timeout=1)
    eng = Engine(config, AuditStore(dead), Backends(config), registry=observable_registry(tmp_path))
    res = await eng.handle(req(ALICE, "touch dev nope", confirmed=True))
    assert res.tone is Tone.error and "audit database is unreachable" in res.text and "nothing was run" in res.text
    assert not (tmp_path / "nope").exists()
    res2 = await eng.handle(req(ALICE, "whoami"))
    assert "audit database is unreachable" in res2.text


async def test_secrets_never_reach_the_audit_log(engine: Engine, store: AuditStore) -> None:
    res = await engine.handle(req(ALICE, "deny r-1a2b3c4d token xoxb-1234567890-abcdefghij"))
    assert res.request_id
    row = store.get(res.request_id)
    assert row is not None and "xoxb-" not in row.text and "[redacted]" in row.text
    assert all("xoxb-" not in str(e.detail) for e in store.events(res.request_id))


async def test_a_requester_who_lost_the_role_is_not_run_on_approval(config: Config, db: Database,
                                                                     tmp_path: Path) -> None:
    eng = await new_engine(config, db, tmp_path)
    card = await eng.handle(req(ALICE, "touch prod roles", confirmed=True))
    assert card.request_id and card.tone is Tone.pending
    # The config changes while the request waits (a restart with alice demoted to viewer).
    users = {**config.inventory.users, "console:alice": [Role.viewer]}
    demoted = Config(inventory=config.inventory.model_copy(update={"users": users}), path=config.path,
                     settings=config.settings)
    eng2 = make_engine(demoted, db, observable_registry(tmp_path))
    await eng2.start()
    res = await eng2.act("approve", card.request_id, BOB)
    assert res.tone is Tone.error and "no longer may" in res.text and "operator role" in res.text
    assert not (tmp_path / "roles").exists()
    assert eng2.store.get(card.request_id).status == "refused"  # type: ignore[union-attr]


async def test_a_secret_in_an_argument_is_refused_before_anything_is_stored(config: Config, db: Database,
                                                                             tmp_path: Path) -> None:
    eng = await new_engine(config, db, tmp_path)
    res = await eng.handle(req(CAROL, "lock test token xoxb-1234567890-abcdefghij"))
    assert res.tone is Tone.error and "looks like a secret" in res.text
    row = eng.store.get(res.request_id or "")
    assert row is not None and row.status == "refused" and "xoxb-" not in str(row.args)
    assert eng.store.env_locks() == {}
    later = await eng.handle(req(CAROL, "lock test at 23:00 token xoxb-1234567890-abcdefghij"))
    assert later.tone is Tone.error and later.text == res.text  # a schedule: the same rule, the same words
    assert eng.schedules.rows.count_active(CAROL.id) == 0


async def test_decide_says_who_moved_the_request_and_where_it_ended(config: Config, db: Database,
                                                                     tmp_path: Path) -> None:
    """Adapters learn from the engine's typed decision, not by re-reading the store."""
    eng = await new_engine(config, db, tmp_path)
    card = await eng.handle(req(ALICE, "touch prod typed", confirmed=True))
    rid, digest = card.request_id or "", card.buttons[0].plan_hash
    own = await eng.decide("approve", rid, ALICE, digest)
    assert not own.applied and own.status is Status.pending_approval
    wrong = await eng.decide("approve", rid, BOB, "0" * 64)
    assert not wrong.applied and wrong.status is Status.pending_approval
    ok = await eng.decide("approve", rid, BOB, digest)
    assert ok.applied and ok.status is Status.succeeded and decision(ok.reply).startswith("Approved by console:bob")
    again = await eng.decide("approve", rid, CAROL, digest)
    assert not again.applied and again.status is Status.succeeded and "already" in again.reply.text

    ask = await eng.handle(req(ALICE, "touch dev typed"))
    cancelled = await eng.decide("cancel", ask.request_id or "", ALICE)
    assert cancelled.applied and cancelled.status is Status.cancelled

    late = await eng.handle(req(ALICE, "touch prod late", confirmed=True))
    with db.sessions.begin() as s:
        s.execute(update(RequestRow).where(RequestRow.id == late.request_id)
                  .values(expires_at=text("now() - interval '1 minute'")))
    expired = await eng.decide("approve", late.request_id or "", BOB)
    assert not expired.applied and expired.status is Status.expired
    missing = await eng.decide("approve", "r-00000000", BOB)
    assert not missing.applied and missing.status is None


async def test_a_left_out_request_id_is_asked_for_with_the_requests_it_could_name(
        config: Config, db: Database, tmp_path: Path) -> None:
    """'deny that one': the question lists what the person could mean (the argument's declared candidates),
    and nothing is decided until they say the id."""
    eng = await new_engine(config, db, tmp_path)
    alices = await eng.handle(req(ALICE, "touch prod p1", confirmed=True))
    bobs = await eng.handle(req(BOB, "touch prod p2", confirmed=True))
    assert alices.request_id and bobs.request_id
    asked = await eng.handle(req(BOB, "nah, deny that one, we're mid-demo"))
    assert asked.tone is Tone.question
    assert asked.text.endswith(f"\nWaiting for a decision: {alices.request_id} (touch rumpleprod p1, by "
                               "console:alice)."), asked.text  # not bob's own: nobody decides their own
    assert eng.store.get(alices.request_id).status == "pending_approval"  # type: ignore[union-attr]
    mine = await eng.handle(req(ALICE, "withdraw my request"))
    assert f"Yours that wait: {alices.request_id} (touch rumpleprod p1, by console:alice)." in mine.text, mine.text
    viewer = await eng.handle(req(ALICE, "approve it"))  # alice is no approver: she is shown nobody's
    assert "Waiting for a decision" not in viewer.text and bobs.request_id not in viewer.text, viewer.text
    running = await eng.handle(req(BOB, "cancel it"))
    assert running.text.endswith("\nRunning now: none."), running.text
    for n in range(5):
        await eng.handle(req(ALICE, f"touch prod q{n}", confirmed=True))
    many = await eng.handle(req(BOB, "deny it"))
    assert many.text.count("(touch rumpleprod") == 5 and many.text.endswith(
        "; and more ('pending' lists them all)."), many.text
    assert "q4" in many.text and "p1" not in many.text  # the newest first


async def test_who_approved_finds_a_button_approval(config: Config, db: Database, tmp_path: Path) -> None:
    """A button's approval has no request row of its own: 'who approved …' asks for the requests that were
    approved (the approver column answers), not for typed 'approve' commands."""
    eng = await new_engine(config, db, tmp_path)
    card = await eng.handle(req(ALICE, "touch prod p1", confirmed=True))
    assert card.request_id
    clicked = await eng.act("approve", card.request_id, BOB, card.buttons[0].plan_hash)
    assert clicked.tone is Tone.success, clicked.text
    asked = await eng.handle(req(CAROL, "who approved the last change on prod?"))
    rows = [dict(zip(asked.tables[0].columns, r, strict=True)) for r in asked.tables[0].rows]
    assert [(r["id"], r["approver"]) for r in rows] == [(card.request_id, "console:bob")], asked.text


async def test_what_someone_approved_or_denied_includes_their_button_clicks(
        config: Config, db: Database, tmp_path: Path) -> None:
    """'what did bob approve' reads who decided (`audit approver=…`), so a click counts as much as a typed
    'approve'; a non-admin sees what they decided themselves, and of anyone else's decisions only their own
    requests."""
    eng = await new_engine(config, db, tmp_path)
    p1 = await eng.handle(req(ALICE, "touch prod p1", confirmed=True))
    p2 = await eng.handle(req(ALICE, "touch prod p2", confirmed=True))
    p3 = await eng.handle(req(CAROL, "touch prod p3", confirmed=True))
    assert p1.request_id and p2.request_id and p3.request_id
    assert (await eng.act("approve", p1.request_id, BOB, p1.buttons[0].plan_hash)).tone is Tone.success
    denied = await eng.handle(req(BOB, f"deny {p2.request_id} not today"))
    assert denied.text.startswith(f"Denied {p2.request_id}"), denied.text
    assert (await eng.act("approve", p3.request_id, BOB, p3.buttons[0].plan_hash)).tone is Tone.success

    def ids(reply: Reply) -> list[str]:
        assert reply.tables or reply.text.startswith("No requests"), reply.text
        return [r[0] for r in reply.tables[0].rows] if reply.tables else []

    approved = await eng.handle(req(CAROL, "what did bob approve?"))
    assert ids(approved) == [p3.request_id, p1.request_id], approved.text
    assert approved.text.startswith("2 requests decided by console:bob, newest first."), approved.text
    assert ids(await eng.handle(req(CAROL, "which requests did bob deny"))) == [p2.request_id]
    assert ids(await eng.handle(req(BOB, "audit approver=bob"))) == [p3.request_id, p2.request_id, p1.request_id]
    assert ids(await eng.handle(req(ALICE, "audit approver=bob"))) == [p2.request_id, p1.request_id]  # hers only
    assert ids(await eng.handle(req(DAVE, "audit approver=bob"))) == []
    refused = await eng.handle(req(ALICE, "audit approver=bob user=carol"))
    assert refused.tone is not Tone.success and "Only admins" in refused.text, refused.text
    mine = await eng.handle(req(BOB, "what have I denied?"))  # 'me': whoever asks
    assert ids(mine) == [p2.request_id] and "decided by console:bob" in mine.text, mine.text
    carols = await eng.handle(req(CAROL, "audit user=me"))
    assert p3.request_id in ids(carols) and {r[2] for r in carols.tables[0].rows} == {"console:carol"}
    assert p3.request_id in ids(await eng.handle(req(CAROL, "did I touch anything on prod?")))
