"""Every way a request can go, then `audit verify`: it accuses nobody (issue 19, item 1).

A confirmation used to write a second `requested` event, so every change confirmed in the
console made `chatops audit verify` print TAMPERED.  A confirmation is now its own kind.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner

from bot.adapters.console import run_once
from bot.cli import main
from bot.engine import Engine
from bot.request import Actor, Reply, Request, Tone
from infra.backends import Backends
from infra.config import Config
from infra.db.chain import Keys
from infra.db.common import utcnow
from infra.db.store import AuditStore, Database
from infra.status import Status
from tests.support import Gate, observable_registry

ALICE, BOB, CAROL, DAVE = (Actor(f"console:{n}") for n in ("alice", "bob", "carol", "dave"))
KEY = "flows-" + "x" * 40


def req(actor: Actor, text: str, **kw: object) -> Request:
    return Request(actor=actor, text=text, channel="console", **kw)  # type: ignore[arg-type]


def button(reply: Reply, action: str) -> str:
    return next(b.plan_hash for b in reply.buttons if b.action == action)


async def test_every_flow_leaves_a_chain_that_verifies(config: Config, db: Database, tmp_path: Path,
                                                       pg_url: str) -> None:
    gate = Gate()
    eng = Engine(config, AuditStore(db, keys=Keys.parse(KEY)), Backends(config),
                 registry=observable_registry(tmp_path, gate))
    await eng.start()
    status: dict[str, Status] = {}

    async def final(rid: str | None) -> Status:
        row = eng.store.get(rid or "")
        assert row is not None
        return Status(row.status)

    # The console: "Run it? [y/N]" answered y, and answered n (no button, so no plan hash).
    gate.release.set()
    card = await eng.handle(req(ALICE, "touch dev console-yes"))
    console_yes = card.request_id or ""
    assert (await eng.act("confirm", console_yes, ALICE)).ok
    status["console confirm"] = await final(card.request_id)
    card = await eng.handle(req(ALICE, "touch dev console-no"))
    await eng.act("cancel", card.request_id or "", ALICE)
    status["console cancel"] = await final(card.request_id)
    # `chatops run --yes`.
    yes = await run_once(eng, ALICE, "touch dev with-yes", yes=True, out=lambda _line: None)
    status["--yes"] = await final(yes.request_id)
    # Buttons: Run it, Cancel, then on prod Run it → Approve / Deny.
    card = await eng.handle(req(ALICE, "touch dev button"))
    await eng.decide("confirm", card.request_id or "", ALICE, button(card, "confirm"))
    status["button confirm"] = await final(card.request_id)
    card = await eng.handle(req(ALICE, "touch dev button-cancel"))
    await eng.decide("cancel", card.request_id or "", ALICE, button(card, "cancel"))
    status["button cancel"] = await final(card.request_id)
    card = await eng.handle(req(ALICE, "touch prod approved"))
    pending = (await eng.decide("confirm", card.request_id or "", ALICE, button(card, "confirm"))).reply
    assert pending.tone is Tone.pending
    await eng.decide("approve", pending.request_id or "", BOB, button(pending, "approve"))
    status["button approve"] = await final(card.request_id)
    card = await eng.handle(req(ALICE, "touch prod denied-by-button"))
    pending = (await eng.decide("confirm", card.request_id or "", ALICE, button(card, "confirm"))).reply
    await eng.decide("deny", pending.request_id or "", BOB, button(pending, "deny"))
    status["button deny"] = await final(card.request_id)
    # Typed approvals and denials.
    typed = await eng.handle(req(ALICE, "touch prod typed-approve", confirmed=True))
    assert (await eng.handle(req(BOB, f"approve {typed.request_id}"))).ok
    status["typed approve"] = await final(typed.request_id)
    typed = await eng.handle(req(ALICE, "touch prod typed-deny", confirmed=True))
    await eng.handle(req(BOB, f"deny {typed.request_id} not during the demo"))
    status["typed deny"] = await final(typed.request_id)
    # Expiry: the bot's sweep and a click on an expired card.
    old = await eng.handle(req(ALICE, "touch prod too-late", confirmed=True))
    eng.store.expire_due(utcnow() + timedelta(hours=1))
    status["expired"] = await final(old.request_id)
    late = await eng.decide("approve", old.request_id or "", BOB, button(old, "approve"))
    assert not late.applied
    # Refusals, a failing handler, a frozen environment.
    status["refused (role)"] = await final((await eng.handle(req(DAVE, "touch dev nope", confirmed=True))).request_id)
    status["failed"] = await final((await eng.handle(req(ALICE, "explode dev"))).request_id)
    await eng.handle(req(CAROL, "lock test"))
    status["refused (frozen)"] = await final((await eng.handle(req(ALICE, "touch test x", confirmed=True))).request_id)
    await eng.handle(req(CAROL, "unlock test"))
    # Interruption: a shutdown cuts a running change off.
    gate.release.clear()
    running = asyncio.create_task(eng.handle(req(ALICE, "touch dev cut-off", confirmed=True)))
    await asyncio.wait_for(gate.entered.wait(), 10)
    await eng.shutdown(0.1)
    cut = await running
    status["interrupted"] = await final(cut.request_id)
    await eng.close()

    assert status == {
        "console confirm": Status.succeeded, "console cancel": Status.cancelled, "--yes": Status.succeeded,
        "button confirm": Status.succeeded, "button cancel": Status.cancelled,
        "button approve": Status.succeeded, "button deny": Status.denied,
        "typed approve": Status.succeeded, "typed deny": Status.denied, "expired": Status.expired,
        "refused (role)": Status.refused, "failed": Status.failed, "refused (frozen)": Status.refused,
        "interrupted": Status.interrupted}
    assert eng.store.verify() == []
    out = CliRunner().invoke(main, ["audit", "verify"], env={"DATABASE_URL": pg_url, "CHATOPS_AUDIT_KEY": KEY,
                                                              "CHATOPS_CONFIG": str(config.path)})
    assert out.exit_code == 0 and "audit chain OK" in out.output and "TAMPERED" not in out.output, out.output
    kinds = [e.kind for e in eng.store.events(console_yes)]
    assert kinds == ["requested", "awaiting_confirmation", "confirmed", "started", "progress", "succeeded"]
