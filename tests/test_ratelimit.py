"""Rate limits on changing commands: per user, per channel, counted in the audit log
(so they hold across replicas), refused with a clear message and an audit row."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from bot.engine import Engine
from bot.request import Actor, Request
from infra.config import Config, ConfigError, RateLimits, Role, load_config
from infra.db.common import utcnow
from infra.db.models import RequestRow
from infra.db.store import AuditStore, Database
from tests.conftest import ROOT
from tests.ops_support import HeldJob, docker_backends, registry_with, restart


def limited(config: Config, **limits: object) -> Config:
    inv = config.inventory.model_copy(update={"rate_limits": RateLimits.model_validate(limits)})
    return dataclasses.replace(config, inventory=inv)


def engine(config: Config, db: Database) -> Engine:
    return Engine(config, AuditStore(db), docker_backends(config), registry=registry_with(HeldJob(hold=False)))


async def test_per_user_limit_refuses_with_a_message_and_an_audit_row(config: Config, db: Database) -> None:
    eng = engine(limited(config, per_user_per_hour=2), db)
    for service in ("n8n", "nginx"):
        assert (await eng.handle(restart("console:alice", service, "rumpledev"))).ok
    third = await eng.handle(restart("console:alice", "n8n", "rumpletest"))
    assert not third.ok
    assert third.text.startswith("Rate limit: you have asked for 2 changes in the last hour (limit 2 per user)")
    assert "nothing was run" in third.text and "frees up at" in third.text
    row = eng.store.get(third.request_id or "")
    assert row is not None and row.status == "refused" and row.command == "restart"
    assert row.reason == third.text
    assert [e.kind for e in eng.store.events(row.id)] == ["requested", "refused"]
    # Refusals don't count: asking again is refused with the same count, not a growing one.
    again = await eng.handle(restart("console:alice", "n8n", "rumpletest"))
    assert "asked for 2 changes" in again.text
    # Another user is not affected; reads are never limited.
    assert (await eng.handle(restart("console:bob", "n8n", "rumpletest"))).ok
    assert (await eng.handle(Request(actor=Actor("console:alice"), text="whoami"))).ok
    assert eng.store.verify() == []


async def test_per_channel_limit_counts_everyone_in_the_channel(config: Config, db: Database) -> None:
    eng = engine(limited(config, per_channel_per_hour=2), db)
    assert (await eng.handle(restart("console:alice", "n8n", "rumpledev", channel="C1"))).ok
    assert (await eng.handle(restart("console:bob", "n8n", "rumpledev", channel="C1"))).ok
    refused = await eng.handle(restart("console:bob", "nginx", "rumpledev", channel="C1"))
    assert not refused.ok and "this channel (C1) has asked for 2 changes" in refused.text
    assert "per channel" in refused.text
    assert (await eng.handle(restart("console:bob", "nginx", "rumpledev", channel="C2"))).ok


async def test_the_limit_holds_across_replicas(config: Config, db: Database) -> None:
    cfg = limited(config, per_user_per_hour=2)
    a, b = engine(cfg, db), engine(cfg, db)
    assert (await a.handle(restart("console:alice", "n8n", "rumpledev"))).ok
    assert (await b.handle(restart("console:alice", "n8n", "rumpledev"))).ok
    assert "Rate limit" in (await a.handle(restart("console:alice", "n8n", "rumpledev"))).text
    assert "Rate limit" in (await b.handle(restart("console:alice", "n8n", "rumpledev"))).text


async def test_window_is_one_rolling_hour(config: Config, db: Database) -> None:
    eng = engine(limited(config, per_user_per_hour=1), db)
    first = await eng.handle(restart("console:alice", "n8n", "rumpledev"))
    assert first.ok
    assert "Rate limit" in (await eng.handle(restart("console:alice", "n8n", "rumpledev"))).text
    with db.sessions.begin() as s:  # the first request was made 61 minutes ago
        row = s.get(RequestRow, first.request_id)
        assert row is not None
        row.created_at = utcnow() - timedelta(minutes=61)
    assert (await eng.handle(restart("console:alice", "n8n", "rumpledev"))).ok


async def test_freezes_approvals_and_exempt_roles_are_never_limited(config: Config, db: Database) -> None:
    eng = engine(limited(config, per_user_per_hour=1, exempt_roles=["admin"]), db)
    carol = "console:carol"  # admin: exempt
    for _ in range(3):
        assert (await eng.handle(restart(carol, "n8n", "rumpledev"))).ok
    bob = "console:bob"
    assert (await eng.handle(restart(bob, "n8n", "rumpledev"))).ok
    assert not (await eng.handle(restart(bob, "n8n", "rumpledev"))).ok
    # Without the exemption carol is over her budget (3 this hour), yet she can still freeze.
    eng2 = engine(limited(config, per_user_per_hour=1), db)
    assert "Rate limit" in (await eng2.handle(restart(carol, "n8n", "rumpletest"))).text
    lock = await eng2.handle(Request(actor=Actor(carol), text="lock rumpletest incident"))
    assert lock.ok, lock.text
    assert (await eng2.handle(Request(actor=Actor(carol), text="unlock rumpletest"))).ok
    assert Role.admin in config.roles_of(carol)


def test_rate_limit_config_is_validated(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    text = (ROOT / "chatops.yaml").read_text().replace("compose/", f"{ROOT}/compose/")
    good = folder / "good.yaml"
    good.write_text(text + "\nrate_limits: {per_user_per_hour: 20, per_channel_per_hour: 60}\n")
    assert load_config(good).inventory.rate_limits.per_user_per_hour == 20
    bad = folder / "bad.yaml"
    bad.write_text(text + "\nrate_limits: {per_user_per_hour: 0, per_hour: 5}\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    message = str(err.value)
    assert "rate_limits.per_user_per_hour" in message and "rate_limits.per_hour: unknown key" in message
