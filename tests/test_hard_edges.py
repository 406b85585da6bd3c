"""Hard edges of the chat adapters (issue 15, items 3 and 5): malformed Slack bodies, buttons
without a plan hash, Discord servers that are not ours, `/ops ask`'s length, and a bound on the
requests an adapter takes at once."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest

from bot.adapters.bounds import BUSY_TEXT
from bot.adapters.discord import NOT_HERE, DiscordBot, guild_ids
from bot.engine import Engine
from bot.request import Actor, Request
from infra.config import Config, Limits
from infra.db.common import AuditFilter
from infra.db.store import Database
from tests import test_slack as _slack
from tests.conftest import make_engine
from tests.discord_kit import (
    ALICE,
    GUILD,
    click,
    deliver,
    discord_config,
    make_registry,
    payload,
    settle,
    slash,
)
from tests.fakes.discord_api import FakeDiscord
from tests.support import observable_registry
from tests.test_slack import Harness, Work, all_text, approval_card, buttons_of, slack_config

fake, harness = _slack.fake, _slack.harness  # the Slack suite's fixtures
OTHER_GUILD = 777777777777777777
SECOND_GUILD = 888888888888888888


# -- Slack: every malformed body is a 4xx, before Bolt ----------------------------------------------

MALFORMED = [
    ("form", urlencode({"payload": "[1,2]"})),
    ("form", urlencode({"payload": "null"})),
    ("form", urlencode({"payload": "42"})),
    ("form", urlencode({"payload": '"a string"'})),
    ("form", urlencode({"payload": json.dumps({"type": "block_actions", "actions": "x"})})),
    ("form", urlencode({"payload": json.dumps({"type": "block_actions", "actions": [1]})})),
    ("form", urlencode({"payload": json.dumps({"type": "block_actions", "user": {"id": 3},
                                                "actions": [{"action_id": "chatops_approve", "value": 7}]})})),
    ("form", urlencode({"payload": json.dumps({"type": "view_submission", "view": "x"})})),
    ("json", "[1,2]"),
    ("json", '"a string"'),
    ("json", "null"),
    ("json", json.dumps({"type": "event_callback", "event": "x"})),
    ("json", json.dumps({"type": "event_callback", "event": {"type": "app_mention", "user": 5, "ts": {}}})),
    ("json", json.dumps({"type": "url_verification", "challenge": [1]})),
]


@pytest.mark.parametrize(("kind", "body"), MALFORMED, ids=[b[:40] for _, b in MALFORMED])
async def test_each_malformed_signed_body_is_a_4xx(harness: Harness, kind: str, body: str) -> None:
    content_type = "application/json" if kind == "json" else "application/x-www-form-urlencoded"
    status, text = await harness.send(body, content_type)  # correctly signed
    assert 400 <= status < 500 and "malformed" in text, (status, text)
    await harness.settle()
    assert harness.fake.of("chat.postMessage") == [] and harness.work.runs("rumpledev") == []
    status, _ = await harness.slash("UALICE", "whoami")  # and the adapter keeps serving
    assert status == 200
    await harness.fake.wait_for(lambda f: f.of("chat.postMessage"))


async def test_a_timestamp_that_is_not_a_number_is_refused_before_the_signature(harness: Harness) -> None:
    body = harness.slash_body("UALICE", "quicktouch rumpledev")
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": "1e9",
               "X-Slack-Signature": "v0=" + "0" * 64}
    async with aiohttp.ClientSession() as s, s.post(harness.url, data=body.encode(), headers=headers) as r:
        assert r.status == 401 and "timestamp" in (await r.text()).lower()
    await harness.settle()
    assert harness.work.runs("rumpledev") == []


async def test_a_slack_button_without_a_plan_hash_does_nothing(harness: Harness) -> None:
    ts, card = await approval_card(harness)
    approve = dict(buttons_of(card)["approve"])
    verb, rid, digest = approve["value"].split(":")
    assert len(digest) == 64
    approve["value"] = f"{verb}:{rid}:"
    status, _ = await harness.click("UBOB", approve, channel="CDEV", message=card, message_ts=ts)
    assert status == 200
    await harness.settle()
    assert "not the plan this button was made for" in all_text(harness.fake.of("chat.postEphemeral")[-1])
    assert harness.work.runs("rumpleprod") == []
    assert harness.engine is not None and harness.engine.store.get(rid).status == "pending_approval"  # type: ignore[union-attr]


async def test_the_engine_refuses_an_empty_hash_from_any_button(config: Config, db: Database,
                                                                tmp_path: Path) -> None:
    eng = make_engine(config, db, observable_registry(tmp_path))
    await eng.start()
    try:
        card = await eng.handle(Request(actor=Actor("console:alice"), text="touch prod x", confirmed=True))
        for digest in ("", " "):
            d = await eng.decide("approve", card.request_id or "", Actor("console:bob"), digest)
            assert not d.applied and "not the plan" in d.reply.text
        assert not (tmp_path / "x").exists()
        typed = await eng.decide("approve", card.request_id or "", Actor("console:bob"))  # `approve ID`
        assert typed.applied and (tmp_path / "x").exists()
    finally:
        await eng.close()


# -- Slack: a bound on the requests in flight ------------------------------------------------------

@pytest.fixture
async def bounded(fake: object, config: Config, db: Database, tmp_path: Path) -> AsyncIterator[Harness]:
    from tests.fakes.slack_api import FakeSlack

    assert isinstance(fake, FakeSlack)
    cfg = slack_config(config, f"{fake.base}/api/")
    cfg = dataclasses.replace(cfg, inventory=cfg.inventory.model_copy(
        update={"limits": Limits(max_in_flight=2)}))
    h = Harness(fake, cfg, db, Work(tmp_path))
    await h.start()
    yield h
    await h.stop()


async def test_beyond_the_bound_slack_answers_busy_and_audits_nothing(bounded: Harness) -> None:
    h = bounded
    assert h.engine is not None
    h.work.gate.clear()
    for _ in range(2):
        assert (await h.slash("UALICE", "quicktouch rumpledev"))[0] == 200
        assert (await h.slash("UBOB", "quicktouch rumpletest"))[0] == 200
    # Two runs hold the two slots; the others were turned away at once.
    try:
        busy = await h.fake.wait_for(lambda f: [m for m in f.of("chat.postEphemeral") if "busy" in all_text(m)]
                                     if len(f.of("chat.postEphemeral")) >= 2 else [])
        assert len(busy) == 2 and BUSY_TEXT.split(",")[0] in all_text(busy[0])
        # The two it took are written as they start (with their locks, one commit), which may be a moment
        # after the other two were turned away; those two are never written.
        for _ in range(250):
            rows = h.engine.store.query(AuditFilter(limit=100))
            if len(rows) >= 2:
                break
            await asyncio.sleep(0.02)
        assert len(rows) == 2  # nothing audited for the requests it did not start
    finally:
        h.work.gate.set()  # (a failure above must not leave the two runs holding their slots for ever)
    await h.settle()
    assert sorted(r.status for r in h.engine.store.query(AuditFilter(limit=100))) == ["succeeded", "succeeded"]
    assert (await h.slash("UALICE", "whoami"))[0] == 200  # slots are free again
    await h.settle()
    assert len(h.engine.store.query(AuditFilter(limit=100))) == 3


async def test_shutdown_drains_what_the_adapter_accepted(fake: object, config: Config, db: Database,
                                                        tmp_path: Path) -> None:
    """Everything taken before the stop finishes and is audited to the end; nothing is cut."""
    from bot.app import App
    from bot.serve import serve_app
    from tests.fakes.slack_api import FakeSlack

    assert isinstance(fake, FakeSlack)
    cfg = slack_config(config, f"{fake.base}/api/")
    h = Harness(fake, cfg, db, Work(tmp_path))
    await h.start()
    assert h.engine is not None and h.bot is not None
    h.work.gate.clear()
    for i in range(6):
        await h.slash("UALICE", f"quicktouch {['rumpledev', 'rumpletest', 'phoenix'][i % 3]}")
    await h.fake.wait_for(lambda f: len(f.of("chat.postMessage")) >= 3)  # three hold their targets' locks
    stop = asyncio.Event()

    async def adapter(app: App, *, http: bool, port: int, stop: asyncio.Event) -> None:
        await stop.wait()
        await h.stop()

    async def later() -> None:
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.sleep(0.3)
        h.work.gate.set()  # the held runs finish well inside the grace period

    helper = asyncio.create_task(later())
    await asyncio.wait_for(serve_app(App(cfg, db, h.engine), [("slack", adapter)], metrics=None, grace_s=20,
                                     stop=stop, signals=False), 60)
    await helper
    statuses = [r.status for r in h.engine.store.query(AuditFilter(limit=100))]
    # (one that found its target's lock held was refused: it never ran)
    assert len(statuses) == 6 and set(statuses) <= {"succeeded", "refused"}, statuses
    assert h.engine.store.verify() == []


# -- Discord: only the configured servers ----------------------------------------------------------

@pytest.fixture
async def guarded(config: Config, db: Database, api: FakeDiscord, tmp_path: Path) -> AsyncIterator[DiscordBot]:
    engine = make_engine(discord_config(config), db, registry=make_registry(tmp_path / "touched"))
    await engine.start()
    bot = DiscordBot(engine, guild_ids=[GUILD, SECOND_GUILD])
    await bot.login("test-token")
    yield bot
    await bot.close()
    await engine.close()


def audited(engine: Engine) -> list[str]:
    return [r.text for r in engine.store.query(AuditFilter(limit=100))]


async def test_a_mention_from_another_server_runs_nothing(guarded: DiscordBot, api: FakeDiscord,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="chatops.discord")
    foreign = payload("message_mention.json", guild_id=str(OTHER_GUILD), content="<@999999999999999999> whoami")
    guarded._connection.parse_message_create(foreign)  # type: ignore[arg-type]
    await settle()
    assert audited(guarded.engine) == [] and api.of("send") == []
    assert f"ignored a mention from guild {OTHER_GUILD}" in caplog.text
    ours = payload("message_mention.json", guild_id=str(SECOND_GUILD))  # the second configured server
    guarded._connection.parse_message_create(ours)  # type: ignore[arg-type]
    await settle()
    assert audited(guarded.engine) == ["whoami"] and len(api.of("send")) == 1


async def test_a_slash_command_from_another_server_is_not_advised_anything(guarded: DiscordBot,
                                                                           api: FakeDiscord) -> None:
    for sub in ("whoami", "reboot-everything"):  # a known and an unknown subcommand
        data = slash(sub, {}, base="slash_deploy.json")
        data["guild_id"] = str(OTHER_GUILD)
        deliver(guarded, api, data)
        await settle()
        (cb,) = [c for c in api.of("callback") if data["token"] in c.path]
        assert cb.body["data"]["content"] == NOT_HERE and cb.body["data"]["flags"] & 64
        assert "/ops ask" not in cb.body["data"]["content"]
    assert audited(guarded.engine) == []


async def test_a_click_from_another_server_does_nothing(guarded: DiscordBot, api: FakeDiscord,
                                                        tmp_path: Path) -> None:
    from tests.discord_kit import BOB
    from tests.test_discord_approvals import approval_card as discord_card

    card_id, btn = await discord_card(guarded, api)
    approve = click(api, card_id, btn["Approve"], BOB)
    approve["guild_id"] = str(OTHER_GUILD)
    deliver(guarded, api, approve)
    await settle()
    assert not (tmp_path / "touched").exists()
    assert [r.status for r in guarded.engine.store.query(AuditFilter(limit=10))] == ["pending_approval"]


async def test_a_discord_button_without_a_plan_hash_does_nothing(guarded: DiscordBot, api: FakeDiscord,
                                                                 tmp_path: Path) -> None:
    from tests.discord_kit import BOB
    from tests.test_discord_approvals import approval_card as discord_card

    card_id, btn = await discord_card(guarded, api)
    emptied = btn["Approve"].rsplit(":", 1)[0] + ":"
    deliver(guarded, api, click(api, card_id, emptied, BOB))
    await settle()
    assert not (tmp_path / "touched").exists()
    assert [r.status for r in guarded.engine.store.query(AuditFilter(limit=10))] == ["pending_approval"]


async def test_ops_ask_declares_the_configured_text_limit(config: Config, db: Database, api: FakeDiscord,
                                                          tmp_path: Path) -> None:
    cfg = discord_config(config)
    cfg = dataclasses.replace(cfg, inventory=cfg.inventory.model_copy(update={"limits": Limits(max_text_chars=300)}))
    engine = make_engine(cfg, db, registry=make_registry(tmp_path / "touched"))
    bot = DiscordBot(engine, guild_ids=[GUILD, SECOND_GUILD])
    await bot.login("test-token")
    try:
        puts = api.of("commands")
        assert sorted(p.path.split("/")[-2] for p in puts) == sorted([str(GUILD), str(SECOND_GUILD)])
        ask = next(o for o in puts[0].body[0]["options"] if o["name"] == "ask")
        assert ask["options"][0]["max_length"] == 300 and ask["options"][0]["min_length"] == 1
    finally:
        await bot.close()


def test_discord_guild_id_may_list_several() -> None:
    assert guild_ids("444444444444444444, 888888888888888888") == [GUILD, SECOND_GUILD]
    assert guild_ids(None) == [] and guild_ids("") == []
    with pytest.raises(SystemExit, match="numeric id, not 'ops'"):
        guild_ids("444444444444444444,ops")


async def test_beyond_the_bound_discord_answers_busy(config: Config, db: Database, api: FakeDiscord,
                                                     tmp_path: Path) -> None:
    cfg = discord_config(config)
    cfg = dataclasses.replace(cfg, inventory=cfg.inventory.model_copy(update={"limits": Limits(max_in_flight=1)}))
    engine = make_engine(cfg, db, registry=make_registry(tmp_path / "touched"))
    await engine.start()
    bot = DiscordBot(engine, guild_ids=[GUILD])
    await bot.login("test-token")
    try:
        assert bot.in_flight.take()  # one request already in flight
        data = slash("whoami", {}, user=ALICE)
        deliver(bot, api, data)
        await settle()
        (cb,) = [c for c in api.of("callback") if data["token"] in c.path]
        assert cb.body["data"]["content"] == BUSY_TEXT and cb.body["data"]["flags"] & 64
        assert audited(engine) == []
        bot.in_flight.done()
        again = slash("whoami", {}, user=ALICE)
        deliver(bot, api, again)
        await settle()
        assert audited(engine) == ["/ops whoami"]
    finally:
        await bot.close()
        await engine.close()


async def test_shutdown_waits_for_requests_still_being_planned(config: Config, db: Database) -> None:
    """A request accepted before the stop but not yet running (its plan is slow: a busy model) is
    waited for like a running one, so none is left half-audited when the process exits."""
    eng = make_engine(config, db)
    await eng.start()
    gate = asyncio.Event()
    inner = eng.planner

    class SlowPlanner:
        async def plan(self, *args: object, **kwargs: object) -> object:
            await gate.wait()
            return await inner.plan(*args, **kwargs)  # type: ignore[arg-type]

    eng.live = dataclasses.replace(eng.live, planner=SlowPlanner())  # type: ignore[arg-type]
    asked = [asyncio.create_task(eng.handle(Request(actor=Actor("console:alice"), text="whoami")))
             for _ in range(5)]
    await asyncio.sleep(0.1)
    stopping = asyncio.create_task(eng.shutdown(grace_s=20))
    await asyncio.sleep(0.2)
    assert not stopping.done()  # it waits for the five, though none has a job yet
    gate.set()
    assert await asyncio.wait_for(stopping, 20) == []
    rows = eng.store.query(AuditFilter(limit=10))
    assert [r.status for r in rows] == ["succeeded"] * 5  # all done when shutdown returned
    assert all(t.done() and t.result().ok for t in asked)
    await eng.close()
