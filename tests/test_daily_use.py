"""Daily use (issue #19) on the real engine and PostgreSQL, VMs on the Proxmox stand-in.

Cancelling a running change, withdrawing a pending one, refusing what cannot succeed
before anyone is asked, approvals people can find, one outcome per result line, and
less noise in progress.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.adapters.console import run_once
from bot.engine import Engine
from bot.render.text import render
from bot.request import Action, Actor, Reply, Request, Tone
from commands.context import Context
from commands.registry import Registry, command
from infra.config import Config, load_config
from infra.db.common import AuditFilter
from infra.db.store import AuditStore, Database
from infra.status import Status
from tests.conftest import make_engine
from tests.fakes.proxmox_api import ProxmoxFake
from tests.support import Gate, observable_registry
from tests.test_proxmox import BASE_TIME, Bot, bot, make_bot, pve, pve_config

__all__ = ["bot", "pve"]

ALICE, BOB, CAROL, DAVE = (Actor(f"console:{n}") for n in ("alice", "bob", "carol", "dave"))


def req(actor: Actor, text: str, **kw: Any) -> Request:
    return Request(actor=actor, text=text, channel="console", **kw)


async def new_engine(config: Config, db: Database, tmp_path: Path, gate: Gate | None = None,
                     registry: Registry | None = None) -> Engine:
    eng = make_engine(config, db, registry or observable_registry(tmp_path, gate))
    await eng.start()
    return eng


def status(eng: Engine, rid: str | None) -> str:
    row = eng.store.get(rid or "")
    assert row is not None
    return row.status


def events(eng: Engine, rid: str | None) -> list[tuple[str, str, dict[str, Any]]]:
    return [(e.kind, e.actor, e.detail) for e in eng.store.events(rid or "")]


# -- item 2: cancel a running change ------------------------------------------------------
async def test_cancel_stops_a_running_change_audited_with_who(config: Config, db: Database,
                                                              tmp_path: Path) -> None:
    gate = Gate()
    eng = await new_engine(config, db, tmp_path, gate)
    running = asyncio.create_task(eng.handle(req(ALICE, "touch dev slow", confirmed=True)))
    await asyncio.wait_for(gate.entered.wait(), 10)
    (job,) = eng.jobs.running()
    rid = job.request_id

    nobody = await eng.handle(req(DAVE, f"cancel {rid}"))
    assert nobody.tone is Tone.error and "Only console:alice (who asked for it), an approver or an admin" in nobody.text
    assert status(eng, rid) == "started" and not running.done()

    stopped = await eng.handle(req(BOB, f"cancel {rid} wrong stack"))
    assert stopped.tone is Tone.warning and f"Cancelled {rid}" in stopped.text, stopped.text
    assert stopped.mentions == ["console:alice"]  # the requester hears who stopped it
    theirs = await asyncio.wait_for(running, 10)
    assert theirs.tone is Tone.error and "console:bob cancelled it (wrong stack)" in theirs.text
    assert not (tmp_path / "slow").exists()  # the handler never got past its gate
    assert status(eng, rid) == "interrupted"
    kind, actor, detail = events(eng, rid)[-1]
    assert (kind, actor, detail["cancelled_by"], detail["cause"]) == ("interrupted", "console:bob",
                                                                      "console:bob", "person")
    # The cancel itself is a request of its own in the audit log, and the lock is free again.
    (own,) = eng.store.query(AuditFilter(command="cancel", user="console:bob"))
    assert (own.actor, own.status, own.args) == ("console:bob", "succeeded", {"request": rid, "reason": "wrong stack"})
    gate.release.set()
    again = await eng.handle(req(ALICE, "touch dev after", confirmed=True))
    assert again.tone is Tone.success, again.text
    assert eng.store.verify() == []


async def test_a_typed_decision_that_moves_nothing_is_refused_and_names_who_decided(
        config: Config, db: Database, tmp_path: Path) -> None:
    eng = await new_engine(config, db, tmp_path)
    card = await eng.handle(req(ALICE, "touch prod p", confirmed=True))
    first = await eng.handle(req(BOB, f"approve {card.request_id}"))
    assert first.ok, first.text
    again = await eng.handle(req(CAROL, f"approve {card.request_id}"))
    # not "already succeeded by console:bob": bob approved it, alice's request ran
    assert f"Request {card.request_id} has already succeeded (approved by console:bob)" in again.text, again.text
    assert status(eng, first.request_id) == "succeeded" and status(eng, again.request_id) == "refused"
    denied = await eng.handle(req(CAROL, f"deny {card.request_id}"))
    assert not denied.ok and status(eng, denied.request_id) == "refused"


async def test_engine_cancel_is_the_entry_point_for_ctrl_c(config: Config, db: Database, tmp_path: Path) -> None:
    gate = Gate()
    eng = await new_engine(config, db, tmp_path, gate)
    running = asyncio.create_task(eng.handle(req(ALICE, "touch test mine", confirmed=True)))
    await asyncio.wait_for(gate.entered.wait(), 10)
    rid = eng.jobs.running()[0].request_id
    decision = await eng.cancel(rid, ALICE, "Ctrl-C")
    assert decision.applied and decision.status is Status.interrupted
    assert "console:alice cancelled it (Ctrl-C)" in (await running).text
    twice = await eng.cancel(rid, ALICE)
    assert not twice.applied and "not running: it was already interrupted" in twice.reply.text
    gone = await eng.cancel("r-00000000", ALICE)
    assert not gone.applied and "There is no request r-00000000" in gone.reply.text


async def test_cancel_of_a_request_that_has_not_started(config: Config, db: Database, tmp_path: Path) -> None:
    eng = await new_engine(config, db, tmp_path)
    card = await eng.handle(req(ALICE, "touch prod p", confirmed=True))
    rid = card.request_id
    other = await eng.handle(req(BOB, f"cancel {rid}"))
    assert other.tone is Tone.error and f"deny {rid}" in other.text
    own = await eng.handle(req(ALICE, f"cancel {rid}"))
    assert "Withdrew" in own.text and status(eng, rid) == "withdrawn"
    done = await eng.handle(req(ALICE, "touch dev quick", confirmed=True))
    late = await eng.handle(req(ALICE, f"cancel {done.request_id}"))
    # a cancel that found nothing to stop changed nothing: refused (its own row says so), worded plainly
    assert late.tone is Tone.error and "is not running: it has already succeeded" in late.text
    assert status(eng, late.request_id) == "refused"


async def test_cancel_during_a_proxmox_task_says_the_task_goes_on(config: Config, pve: ProxmoxFake,
                                                                   store: AuditStore) -> None:
    g = pve.guest(102)
    pve.add_snapshot(g, "base", "", snaptime=BASE_TIME)
    pve.add_snapshot(g, "later", "")
    b = await make_bot(pve_config(config, pve), store)
    try:
        pve.hold = True  # the rollback task keeps running until released
        restoring = asyncio.create_task(b.say("alice", "restore rumpletest base"))
        for _ in range(200):
            if pve.posts("/rollback") and b.engine.jobs.running():
                break
            await asyncio.sleep(0.05)
        rid = b.engine.jobs.running()[0].request_id
        stopped = await b.say("bob", f"cancel {rid}")
        assert stopped.tone is Tone.warning and f"Cancelled {rid}" in stopped.text, stopped.text
        theirs = await asyncio.wait_for(restoring, 10)
        assert theirs.tone is Tone.error and "console:bob cancelled it" in theirs.text
        row = store.get(rid)
        assert row is not None and row.status == "interrupted"
        said = [e.detail.get("text", "") for e in store.events(rid) if e.kind == "progress"]
        assert any("Stopped following the Proxmox task to roll rumpletest back" in t
                   and "may still finish" in t for t in said), said
        # The task does go on in Proxmox and finishes; the bot's own lock on the VM is free again.
        pve.hold = False
        for _ in range(100):
            await b.say("carol", "snapshots rumpletest")
            if g.current_parent == "base":
                break
            await asyncio.sleep(0.05)
        assert g.current_parent == "base" and [t.exitstatus for t in pve.tasks.values()] == ["OK"]
        after = await b.say("alice", "snapshot rumpletest name=after-cancel")
        assert after.tone is Tone.success, after.text
    finally:
        await b.engine.close()


# -- item 4: ask only what can succeed; withdraw ---------------------------------------------
async def test_requests_whose_preview_shows_they_cannot_succeed_are_refused_before_anyone_is_asked(
        bot: Bot, pve: ProxmoxFake) -> None:
    prod = pve.guest(103)
    pve.add_snapshot(prod, "before-kernel", "", snaptime=BASE_TIME)
    for text, why in (
            ("restore rumpleprod before-kernl", "rumpleprod has no snapshot 'before-kernl'. Its snapshots: "
                                                 "before-kernel."),
            ("delete-snapshot rumpleprod nope", "rumpleprod has no snapshot 'nope'"),
            ("snapshot rumpleprod name=1st-try", "not allowed by Proxmox"),
            ("snapshot rumpleprod name=" + "x" * 41, "not allowed by Proxmox"),
            ("snapshot rumpleprod name=before-kernel", "already has a snapshot named 'before-kernel'"),
            ("snapshot portainer ram=yes", "LXC container"),
            ("restore rumpledev base", "rumpledev has no snapshot 'base'. Its snapshots: none.")):
        protected = "rumpleprod" in text
        # A confirmation card, or (confirmed) straight to the approval card on a protected VM.
        for confirmed in (False, True) if protected else (False,):
            reply = await bot.say("alice", text, confirmed=confirmed)
            assert reply.tone is Tone.error and why in reply.text, (text, reply.text)
            assert reply.buttons == [] and reply.mentions == [], text  # no card, no approver pinged
            assert bot.row(reply).status == "refused", text
            assert [k for k, _ in bot.events(reply)] == ["requested", "refused"], text
        if not protected:
            # `--yes` on an open VM skips the card: the handler's own check refuses before any change.
            direct = await bot.say("alice", text)
            assert direct.tone is Tone.error and why in direct.text and bot.row(direct).status == "refused"
    assert pve.posts() == []


async def test_a_backend_that_cannot_be_read_still_gets_a_card(config: Config, pve: ProxmoxFake,
                                                                store: AuditStore) -> None:
    """Only a preview that shows failure refuses; one that could not look leaves the decision to people."""
    b = await make_bot(pve_config(config, pve), store)
    try:
        pve.stop()
        card = await b.say("alice", "restore rumpleprod before-kernel")
        assert card.tone is Tone.pending and "preview unavailable" in dict(card.fields)["What will happen"]
    finally:
        await b.engine.close()


async def test_withdraw_a_pending_request_by_command_and_by_button(bot: Bot, pve: ProxmoxFake) -> None:
    pve.add_snapshot(pve.guest(103), "before-kernel", "", snaptime=BASE_TIME)
    card = await bot.say("alice", "restore rumpleprod before-kernel")
    assert card.tone is Tone.pending
    assert [(b.label, b.action) for b in card.buttons] == [("Approve", "approve"), ("Deny", "deny"),
                                                          ("Withdraw", "withdraw")]
    bobs = await bot.say("bob", "restore rumpleprod before-kernel")
    own_deny = await bot.act("deny", "bob", bobs)  # "You can't deny your own request" said how to withdraw
    assert own_deny.tone is Tone.error and f"withdraw {bobs.request_id}" in own_deny.text
    not_theirs = await bot.say("bob", f"withdraw {card.request_id}")
    assert not_theirs.tone is Tone.error and "Only console:alice can withdraw" in not_theirs.text
    assert bot.row(card).status == "pending_approval"
    gone = await bot.say("alice", f"withdraw {card.request_id} wrong snapshot")
    assert gone.tone is Tone.info and f"Withdrew {card.request_id}" in gone.text, gone.text
    row = bot.row(card)
    assert row.status == "withdrawn" and row.reason == "wrong snapshot"
    assert bot.events(card)[-1] == ("withdrawn", {"reason": "wrong snapshot"})
    late = await bot.act("approve", "bob", card)
    assert "already withdrawn" in late.text and pve.posts() == []

    second = await bot.say("alice", "restore rumpleprod before-kernel")
    decision = await bot.engine.decide(Action.withdraw, second.request_id or "", ALICE,
                                       second.buttons[2].plan_hash)
    assert decision.applied and decision.status is Status.withdrawn
    assert bot.engine.store.verify() == []


# -- item 5: approvals people can find ---------------------------------------------------------
async def test_pending_lists_what_waits_for_me_and_what_i_asked(config: Config, db: Database,
                                                                tmp_path: Path) -> None:
    eng = await new_engine(config, db, tmp_path)
    mine = await eng.handle(req(ALICE, "touch prod one", confirmed=True))
    unconfirmed = await eng.handle(req(ALICE, "touch dev two"))
    bobs = await eng.handle(req(BOB, "touch prod three", confirmed=True))

    for_bob = await eng.handle(req(BOB, "pending"))
    assert for_bob.text.startswith("1 request waits for your approval; 1 of your own requests waits.")
    waiting, own = for_bob.tables
    assert waiting.title == "Waiting for your approval" and [r[:3] for r in waiting.rows] == [
        [mine.request_id, "console:alice", "touch rumpleprod one"]]
    assert own.title == "Your requests that wait" and own.rows[0][0] == bobs.request_id
    assert own.rows[0][2] == "waits for an approver (console:carol)"

    for_alice = await eng.handle(req(ALICE, "pending"))
    assert "You don't have the approver role" in for_alice.text
    (own,) = for_alice.tables
    states = {r[0]: r[2] for r in own.rows}
    assert states == {mine.request_id: "waits for an approver (console:bob, console:carol)",
                      unconfirmed.request_id: "waits for your confirmation"}
    assert f"withdraw {mine.request_id}" in for_alice.text

    carol = await eng.handle(req(CAROL, "approvals"))  # admins approve too; a word people use
    assert {r[0] for r in carol.tables[0].rows} == {mine.request_id, bobs.request_id}


async def test_audit_status_takes_the_words_people_use(config: Config, db: Database, tmp_path: Path) -> None:
    eng = await new_engine(config, db, tmp_path)
    waiting = await eng.handle(req(ALICE, "touch prod w1", confirmed=True))
    approved = await eng.handle(req(ALICE, "touch prod a1", confirmed=True))
    await eng.act("approve", approved.request_id or "", BOB)
    await eng.handle(req(ALICE, "touch dev plain", confirmed=True))
    for word in ("pending", "waiting", "Pending approval", "pending_approval"):
        res = await eng.handle(req(ALICE, f'audit status="{word}"'))
        assert res.tone is not Tone.error and res.tone is not Tone.question, (word, res.text)
        assert [r[0] for r in res.tables[0].rows] == [waiting.request_id], word
    done = await eng.handle(req(ALICE, "audit status=approved"))
    assert [r[0] for r in done.tables[0].rows] == [approved.request_id]  # approved, then it ran
    bad = await eng.handle(req(ALICE, "audit status=sideways"))
    assert bad.tone is Tone.question and "pending, waiting" in bad.text


async def test_the_requester_hears_the_decision_with_one_outcome_per_line(config: Config, db: Database,
                                                                          tmp_path: Path) -> None:
    eng = await new_engine(config, db, tmp_path)
    card = await eng.handle(req(ALICE, "touch prod late", confirmed=True))
    assert dict(card.fields)["Who may approve"] == "console:bob, console:carol"
    await eng.handle(req(CAROL, "lock prod release"))
    res = await eng.act("approve", card.request_id or "", BOB, req=req(BOB, "click"))
    # The run was refused (frozen): the text says only that; the approval is a line of its own.
    assert res.tone is Tone.error and res.text.startswith("rumpleprod is frozen by console:carol"), res.text
    assert not res.text.startswith("Approved")
    assert dict(res.fields)["Decision"] == "Approved by console:bob (touch for console:alice)"
    assert res.mentions == ["console:alice"] and res.mention_label == "Requested by"
    lines = render(res).splitlines()
    assert lines[0].startswith("✘ rumpleprod is frozen") and lines[1].startswith("  Decision: Approved by")
    assert status(eng, card.request_id) == "refused"
    assert res.relays == []  # decided where it was asked (the card's place): that place hears it already

    await eng.handle(req(CAROL, "unlock prod"))
    elsewhere = await eng.handle(req(ALICE, "touch prod e1", confirmed=True))
    ok = await eng.handle(Request(actor=BOB, text=f"approve {elsewhere.request_id}", channel="slack:DBOB"))
    (notice,) = ok.relays  # decided in a DM: the requester's place is told too
    assert (notice.channel, notice.thread) == ("console", None)
    assert notice.reply.mentions == ["console:alice"] and "Decision: Approved by console:bob" in notice.reply.text

    d = await eng.handle(req(ALICE, "touch prod d1", confirmed=True))
    denied = await eng.act("deny", d.request_id or "", BOB, reason="not today")
    assert denied.mentions == ["console:alice"] and "Denied" in denied.text and "not today" in denied.text


# -- item 9: less noise ---------------------------------------------------------------------------
async def test_progress_lines_only_when_something_changed_and_the_request_id_once(
        config: Config, pve: ProxmoxFake, store: AuditStore) -> None:
    pve.quiet_tasks = True  # the task log is empty ("no content") until the task ends
    pve.task_seconds = 0.4
    b = await make_bot(pve_config(config, pve, poll_s=0.03), store)
    try:
        out: list[str] = []
        reply = await run_once(b.engine, ALICE, "snapshot rumpletest name=quiet", yes=True, out=out.append)
        assert reply.tone is Tone.success, reply.text
        said = "\n".join(out)
        assert said.count(f"(request {reply.request_id})") == 1, said
        assert "no content" not in said and "UPID:" not in said.replace(
            dict(reply.fields)["Task"], "")  # the UPID only as the reply's Task field
        progress = [e.detail["text"] for e in store.events(reply.request_id or "") if e.kind == "progress"]
        assert len(progress) == len(set(progress)), progress
        assert any("snapshotting 'drive-scsi0'" in t for t in progress)  # the real first log line kept
    finally:
        await b.engine.close()


async def test_a_repeated_progress_line_is_written_and_shown_once(config: Config, db: Database) -> None:
    reg = Registry()

    @command("chatter", summary="reports a step twice", registry=reg)
    async def chatter(ctx: Context, args: dict[str, Any]) -> Reply:
        for line in ("waiting for web", "waiting for web", "web ready", "waiting for web"):
            await ctx.progress(line)
        return Reply("done", tone=Tone.success)

    eng = make_engine(config, db, reg)
    shown: list[str] = []

    async def sink(r: Reply) -> None:
        shown.append(r.text)

    reply = await eng.handle(req(ALICE, "chatter", on_progress=sink))
    assert shown == ["waiting for web", "web ready", "waiting for web"]
    assert [e.detail["text"] for e in eng.store.events(reply.request_id or "") if e.kind == "progress"] == shown


TEAM = """
environments:
  lab: {protected: false, docker: {host: "unix:///run/none.sock"}, vm: wombat}
  live: {protected: true, docker: {host: "unix:///run/none.sock"}}
stacks:
  api: {path: "%s"}
vms:
  wombat: {node: pve1, kind: qemu, vmid: 310}
users:
  "console:alice": [operator]
default_roles: [viewer]
"""


def team_files(tmp_path: Path) -> tuple[Path, Path]:
    """TEAM's config file and its one stack's folder (service `gateway`)."""
    stack = tmp_path / "api"
    stack.mkdir()
    (stack / "compose.yaml").write_text("services:\n  gateway:\n    image: chatops-busybox:1\n")
    path = tmp_path / "team.yaml"
    path.write_text(TEAM % stack)
    return stack, path


async def test_help_examples_name_the_teams_own_inventory(tmp_path: Path, store: AuditStore) -> None:
    _, path = team_files(tmp_path)
    cfg = load_config(path)
    eng = Engine(cfg, store)
    shown = {}
    for topic in ("restore", "deploy", "restart", "snapshot", "logs"):
        reply = await eng.handle(req(ALICE, f"help {topic}"))
        shown[topic] = reply.text.split("Examples:\n", 1)[1]
    assert "restore wombat pre-upgrade" in shown["restore"]
    restore = await eng.handle(req(ALICE, "help restore"))
    assert restore.tables[0].rows[0][-1] == "Proxmox guest (wombat)"  # not the shipped rumpledev, …
    assert "deploy api lab" in shown["deploy"] and "deploy api to lab ref=v1.4.2" in shown["deploy"]
    assert "restart gateway on lab" in shown["restart"]
    assert "snapshot wombat name=pre-upgrade" in shown["snapshot"]
    assert "logs gateway live tail=200 since=30m" in shown["logs"]  # `live` is the team's own name too
    shipped = ("rumple", "chat", "n8n", "nginx", "prod", "dev", "test ")
    assert not any(name in text for text in shown.values() for name in shipped), shown
    overview = await eng.handle(req(ALICE, "help"))
    assert "e.g. 'restart gateway on lab'" in overview.text
    lost = await eng.handle(req(ALICE, "thanks, that worked"))
    assert "rumpletest" not in lost.text and "status lab" in lost.text


async def test_help_examples_follow_a_reloaded_config(tmp_path: Path, store: AuditStore) -> None:
    """Examples are worked out once per config and command (commands/examples.py); a reload is a new config."""
    stack, path = team_files(tmp_path)
    eng = Engine(load_config(path), store)
    before = await eng.handle(req(ALICE, "help restart"))
    assert "restart gateway on lab" in before.text
    assert "restart gateway on lab" in (await eng.handle(req(ALICE, "help restart"))).text  # asked again
    (stack / "compose.yaml").write_text("services:\n  edge:\n    image: chatops-busybox:1\n")
    path.write_text((TEAM % stack).replace("lab:", "bench:"))
    eng.reload(load_config(path))
    after = await eng.handle(req(ALICE, "help restart"))
    assert "restart edge on bench" in after.text and "lab" not in after.text and "gateway" not in after.text


async def test_decisions_and_freezes_read_from_plain_language_are_confirmed_first(config: Config, db: Database,
                                                                                  tmp_path: Path) -> None:
    """Typed canonically, approve and lock act at once; read from a sentence, they are proposals."""
    eng = await new_engine(config, db, tmp_path)
    card = await eng.handle(req(ALICE, "touch prod late", confirmed=True))
    rid = card.request_id or ""
    said = await eng.handle(req(BOB, f"lgtm, approving {rid}, diff looks good"))
    assert said.tone is Tone.question and "approve" in said.text and status(eng, rid) == "pending_approval"
    ok = await eng.act("confirm", said.request_id or "", BOB, req=req(BOB, "click"))
    assert ok.ok and status(eng, rid) != "pending_approval", ok.text
    froze = await eng.handle(req(CAROL, "put a freeze on prod please"))
    assert froze.tone is Tone.question and "lock" in froze.text
    assert (await eng.handle(req(CAROL, "lock prod release"))).ok  # the canonical form acts at once
    assert (await eng.handle(req(CAROL, "unlock prod"))).ok
