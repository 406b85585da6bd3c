"""The Slack adapter end to end: the real Bolt app in HTTP mode, signed requests, the
real slack_sdk client talking to a Slack Web API stand-in on loopback, real PostgreSQL.

Changing commands here come from a test registry whose handler appends the request id
to a file, so "acted once" is read off the disk, not off a mock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web

from bot.adapters.slack import SlackBot, Where, plain_text, serve, start_http
from bot.app import App
from bot.engine import Engine
from bot.render.slack import MAX_BLOCKS, render
from bot.request import Attachment, Reply, Table, Tone
from commands.context import Context
from commands.registry import Arg, Kind, Registry, command
from commands.registry import registry as full_registry
from infra.config import Channel, Config, ConfigError, Role, Settings
from infra.db.store import Database
from tests.conftest import make_engine
from tests.fakes.slack_api import FakeSlack

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


class Work:
    """What the test commands touch: a folder on disk and a gate that holds a run open."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.gate = asyncio.Event()
        self.gate.set()
        self.started = asyncio.Event()

    def runs(self, env: str) -> list[str]:
        path = self.folder / env
        return path.read_text().split() if path.exists() else []


def build_registry(work: Work) -> Registry:
    """The real commands plus three test commands that do observable things."""
    reg = Registry()
    for spec in full_registry():
        reg.add(spec)

    async def touch(ctx: Context, args: dict[str, Any]) -> Reply:
        work.started.set()
        await ctx.progress(f"writing the marker on {args['env']}")
        await work.gate.wait()
        with (work.folder / args["env"]).open("a") as f:
            f.write(ctx.request_id + "\n")
        await ctx.progress("marker written")
        return Reply(f"wrote the marker on {args['env']}", tone=Tone.success)

    env = (Arg("env", Kind.env, help="where"),)
    command("touch", summary="append a marker (confirmed)", args=env, changes=True, backend="test",
            registry=reg)(touch)
    command("quicktouch", summary="append a marker (no confirmation)", args=env, changes=True,
            confirm=False, backend="test", registry=reg)(touch)

    async def bigreport(ctx: Context, args: dict[str, Any]) -> Reply:
        rows = [[f"row{i}", "x" * 30, str(i)] for i in range(400)]
        return Reply("line of output\n" * 400, title="A big report", tone=Tone.warning,
                     fields=[(f"key{i}", f"value {i}") for i in range(25)],
                     tables=[Table(["name", "filler", "n"], rows, title="rows")],
                     attachments=[Attachment("gpu.png", PNG, "image/png", "GPU chart")])

    command("bigreport", summary="a reply larger than one Slack message", registry=reg)(bigreport)
    return reg


def slack_config(config: Config, api_url: str) -> Config:
    users = {**config.inventory.users,
             "slack:UALICE": [Role.operator, Role.approver], "slack:UBOB": [Role.operator, Role.approver],
             "slack:UCAROL": [Role.operator, Role.approver], "slack:UVIEW": [Role.viewer]}
    channels = {"slack:CDEV": Channel(default_env="rumpledev")}
    inventory = config.inventory.model_copy(update={"users": users, "channels": channels})
    settings = Settings(SLACK_BOT_TOKEN="xoxb-test-token", SLACK_SIGNING_SECRET=SECRET,
                        SLACK_API_URL=api_url, SLACK_APP_TOKEN="xapp-test-token")
    return dataclasses.replace(config, inventory=inventory, settings=settings)


def sign(body: str, ts: int, secret: str = SECRET) -> str:
    base = f"v0:{ts}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class Harness:
    """One running bot (engine + Bolt HTTP server) and helpers that act as Slack."""

    def __init__(self, fake: FakeSlack, config: Config, db: Database, work: Work) -> None:
        self.fake, self.config, self.db, self.work = fake, config, db, work
        self.registry = build_registry(work)
        self.engine: Engine | None = None
        self.bot: SlackBot | None = None
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        self.engine = make_engine(self.config, self.db, registry=self.registry)
        await self.engine.start()
        self.bot = SlackBot(self.engine, self.config.settings, progress_interval=0)
        self.runner, port = await start_http(self.bot, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{port}/slack/events"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        if self.bot is not None:
            await self.bot.drain()
        if self.engine is not None:
            await self.engine.close()

    async def send(self, body: str, content_type: str, *, ts: int | None = None,
                   signature: str | None = None) -> tuple[int, str]:
        ts = int(time.time()) if ts is None else ts
        headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": str(ts),
                   "X-Slack-Signature": signature or sign(body, ts)}
        async with aiohttp.ClientSession() as s, s.post(self.url, data=body.encode(), headers=headers) as r:
            return r.status, await r.text()

    def slash_body(self, user: str, text: str, channel: str = "CDEV") -> str:
        return urlencode({"token": "legacy", "team_id": self.fake.team, "team_domain": "fake",
                          "channel_id": channel, "channel_name": "ops-dev", "user_id": user,
                          "user_name": user.lower(), "command": "/ops", "text": text, "api_app_id": "A1",
                          "response_url": self.fake.response_url(f"slash-{user}"),
                          "trigger_id": uuid.uuid4().hex})

    async def slash(self, user: str, text: str, channel: str = "CDEV") -> tuple[int, str]:
        return await self.send(self.slash_body(user, text, channel), "application/x-www-form-urlencoded")

    async def event(self, event: dict[str, Any], event_id: str | None = None) -> tuple[int, str]:
        body = json.dumps({"token": "legacy", "team_id": self.fake.team, "api_app_id": "A1",
                           "event": event, "type": "event_callback",
                           "event_id": event_id or "Ev" + uuid.uuid4().hex[:8],
                           "event_time": int(time.time()), "authorizations": [
                               {"team_id": self.fake.team, "user_id": self.fake.bot_user, "is_bot": True}]})
        return await self.send(body, "application/json")

    async def click(self, user: str, button: dict[str, Any], *, channel: str, message: dict[str, Any] | None,
                    message_ts: str, ephemeral: bool = False, response_url: str | None = None) -> tuple[int, str]:
        payload = {"type": "block_actions", "team": {"id": self.fake.team, "domain": "fake"},
                   "user": {"id": user, "username": user.lower(), "team_id": self.fake.team},
                   "api_app_id": "A1", "token": "legacy", "trigger_id": uuid.uuid4().hex,
                   "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                                 "is_ephemeral": ephemeral},
                   "channel": {"id": channel, "name": "ops"},
                   "response_url": response_url or self.fake.response_url(f"click-{user}"),
                   "actions": [{"type": "button", "action_id": button["action_id"], "block_id": "b",
                                "value": button["value"], "text": button["text"],
                                "action_ts": str(time.time())}]}
        if message is not None:
            payload["message"] = {"type": "message", "ts": message_ts, "user": self.fake.bot_user,
                                  "bot_id": self.fake.bot_id, "text": message.get("text", ""),
                                  "blocks": message.get("blocks", [])}
        return await self.send(urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded")

    async def settle(self) -> None:
        assert self.bot is not None
        await self.bot.drain()


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = FakeSlack()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def harness(fake: FakeSlack, config: Config, db: Database, tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(fake, slack_config(config, f"{fake.base}/api/"), db, Work(tmp_path))
    await h.start()
    yield h
    await h.stop()
    assert fake.violations == [], "the bot sent Slack something it would reject"


def buttons_of(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    blocks = message.get("blocks") or []
    if isinstance(blocks, str):
        blocks = json.loads(blocks)
    return {e["action_id"].removeprefix("chatops_"): e
            for b in blocks if b["type"] == "actions" for e in b["elements"]}


def all_text(message: dict[str, Any]) -> str:
    return json.dumps(message.get("blocks") or []) + (message.get("text") or "")


async def approval_card(h: Harness, user: str = "UALICE", env: str = "rumpleprod") -> tuple[str, dict[str, Any]]:
    """Ask for a protected change by slash command; return the card's ts and message."""
    status, _ = await h.slash(user, f"quicktouch {env}")
    assert status == 200
    posts = await h.fake.wait_for(lambda f: [m for m in f.of("chat.postMessage") if "approve" in buttons_of(m)])
    await h.settle()
    card = posts[0]
    ts = next(k[1] for k, v in h.fake.messages.items() if v is card or v == card)
    return ts, card


# -- signatures ---------------------------------------------------------------

async def test_bad_signature_and_stale_timestamp_are_rejected(harness: Harness) -> None:
    body = harness.slash_body("UALICE", "whoami")
    now = int(time.time())
    status, _ = await harness.send(body, "application/x-www-form-urlencoded",
                                   signature=sign(body, now, secret="not-the-secret"))
    assert status == 401
    stale = now - 10 * 60
    status, _ = await harness.send(body, "application/x-www-form-urlencoded", ts=stale, signature=sign(body, stale))
    assert status == 401
    tampered = body.replace("whoami", "quicktouch+rumpledev")
    status, _ = await harness.send(tampered, "application/x-www-form-urlencoded", signature=sign(body, now), ts=now)
    assert status == 401
    await harness.settle()
    assert harness.fake.of("chat.postMessage") == []
    assert harness.work.runs("rumpledev") == []
    # The same request correctly signed is answered.
    status, _ = await harness.send(body, "application/x-www-form-urlencoded")
    assert status == 200
    posted = await harness.fake.wait_for(lambda f: f.of("chat.postMessage"))
    assert "slack:UALICE" in all_text(posted[0]) or "<@UALICE>" in all_text(posted[0])


# -- slash command: ack first, work after ---------------------------------------

async def test_slash_command_is_acked_while_a_slow_change_runs(harness: Harness) -> None:
    harness.work.gate.clear()
    status, body = await harness.slash("UALICE", "quicktouch rumpledev")
    # The HTTP answer came back although the run cannot finish before the gate opens.
    assert status == 200
    assert body == ""
    await asyncio.wait_for(harness.work.started.wait(), 10)
    assert harness.work.runs("rumpledev") == []
    # Progress is a message in the channel, then edited in place.
    progress = await harness.fake.wait_for(lambda f: f.of("chat.postMessage"))
    assert progress[0]["channel"] == "CDEV"
    assert "writing the marker on rumpledev" in all_text(progress[0])
    assert "<@UALICE>" in all_text(progress[0])  # who asked what, since Slack hides slash text
    harness.work.gate.set()
    await harness.settle()
    assert len(harness.work.runs("rumpledev")) == 1
    updates = harness.fake.of("chat.update")
    assert updates and "wrote the marker on rumpledev" in all_text(updates[-1])
    assert {u["ts"] for u in updates} == {next(iter(harness.fake.messages))[1]}
    assert len(harness.fake.of("chat.postMessage")) == 1


async def test_slash_question_goes_to_the_asker_only(harness: Harness) -> None:
    await harness.slash("UALICE", "make me a sandwich")
    await harness.fake.wait_for(lambda f: f.of("chat.postEphemeral"))
    await harness.settle()
    eph = harness.fake.of("chat.postEphemeral")[0]
    assert eph["user"] == "UALICE" and eph["channel"] == "CDEV"
    assert harness.fake.of("chat.postMessage") == []


# -- approvals -------------------------------------------------------------------

async def test_approval_refusals_are_ephemeral_and_a_double_click_acts_once(harness: Harness) -> None:
    ts, card = await approval_card(harness)
    assert card["channel"] == "CDEV"
    assert "<@UBOB>" in all_text(card) and "<@UCAROL>" in all_text(card)  # addressed to the approvers
    approve = buttons_of(card)["approve"]
    row_id = approve["value"].split(":")[1]
    # The requester and a viewer are refused privately; the card is untouched.
    await harness.click("UALICE", approve, channel="CDEV", message=card, message_ts=ts)
    await harness.click("UVIEW", approve, channel="CDEV", message=card, message_ts=ts)
    ephemerals = await harness.fake.wait_for(lambda f: len(f.of("chat.postEphemeral")) >= 2 and
                                             f.of("chat.postEphemeral"))
    await harness.settle()
    by_user = {e["user"]: all_text(e) for e in ephemerals}
    assert "your own request" in by_user["UALICE"]
    assert "approver role" in by_user["UVIEW"]
    assert harness.fake.of("chat.update") == []
    assert harness.engine is not None  # both attempts are in the audit log, on the request they tried to decide
    tried = [(e.actor, e.detail["action"]) for e in harness.engine.store.events(row_id) if e.kind == "decision_refused"]
    assert sorted(tried) == [("slack:UALICE", "approve"), ("slack:UVIEW", "approve")]
    assert harness.engine.store.verify() == []
    assert harness.work.runs("rumpleprod") == []
    # Bob double-clicks Approve while the run is held open.
    harness.work.gate.clear()
    first, second = await asyncio.gather(
        harness.click("UBOB", approve, channel="CDEV", message=card, message_ts=ts),
        harness.click("UBOB", approve, channel="CDEV", message=card, message_ts=ts))
    assert first[0] == second[0] == 200
    await asyncio.wait_for(harness.work.started.wait(), 10)
    harness.work.gate.set()
    await harness.settle()
    assert harness.work.runs("rumpleprod") == [row_id]
    row = harness.engine.store.get(row_id) if harness.engine else None
    assert row is not None and row.status == "succeeded" and row.approver == "slack:UBOB"
    # One of the two clicks was told privately that nothing ran twice.
    bob = [e for e in harness.fake.of("chat.postEphemeral") if e["user"] == "UBOB"]
    assert len(bob) == 1 and "twice" in all_text(bob[0])
    # The card was edited in place: who decided, progress, the outcome, no buttons left.
    updates = harness.fake.of("chat.update")
    assert updates and {u["ts"] for u in updates} == {ts}
    final = harness.fake.messages[("CDEV", ts)]
    assert "Approved by <@UBOB>" in all_text(final)
    assert "wrote the marker on rumpleprod" in all_text(final)
    assert "*Requested by:* <@UALICE>" in all_text(final)  # the requester is pinged with the outcome
    assert buttons_of(final) == {}
    assert any("writing the marker" in all_text(u) for u in updates[:-1])
    # A late click after the run is refused privately too, and runs nothing.
    await harness.click("UCAROL", approve, channel="CDEV", message=card, message_ts=ts)
    await harness.settle()
    assert harness.work.runs("rumpleprod") == [row_id]
    assert "already succeeded" in all_text(harness.fake.of("chat.postEphemeral")[-1])


async def test_two_approvers_in_two_bot_processes_race_and_it_runs_once(harness: Harness) -> None:
    ts, card = await approval_card(harness)
    approve = buttons_of(card)["approve"]
    rid = approve["value"].split(":")[1]
    other = Harness(harness.fake, harness.config, harness.db, harness.work)
    other.registry = harness.registry
    await other.start()
    try:
        harness.work.gate.clear()
        clicks = asyncio.gather(
            harness.click("UBOB", approve, channel="CDEV", message=card, message_ts=ts),
            other.click("UCAROL", approve, channel="CDEV", message=card, message_ts=ts))
        await asyncio.wait_for(harness.work.started.wait(), 10)
        harness.work.gate.set()
        assert [c[0] for c in await clicks] == [200, 200]
        await harness.settle()
        await other.settle()
    finally:
        await other.stop()
    assert harness.work.runs("rumpleprod") == [rid]
    row = harness.engine.store.get(rid) if harness.engine else None
    assert row is not None and row.status == "succeeded"
    winner = row.approver.removeprefix("slack:") if row.approver else ""
    loser = ({"UBOB", "UCAROL"} - {winner}).pop()
    final = harness.fake.messages[("CDEV", ts)]
    assert f"Approved by <@{winner}>" in all_text(final) and "wrote the marker" in all_text(final)
    told = [e for e in harness.fake.of("chat.postEphemeral") if e["user"] == loser]
    assert len(told) == 1 and "twice" in all_text(told[0])


async def test_deny_updates_the_card_and_runs_nothing(harness: Harness) -> None:
    ts, card = await approval_card(harness)
    await harness.click("UCAROL", buttons_of(card)["deny"], channel="CDEV", message=card, message_ts=ts)
    await harness.settle()
    final = harness.fake.messages[("CDEV", ts)]
    assert "Denied by <@UCAROL>" in all_text(final) and buttons_of(final) == {}
    assert harness.work.runs("rumpleprod") == []


async def test_the_requester_withdraws_with_the_cards_button(harness: Harness) -> None:
    ts, card = await approval_card(harness)
    withdraw = buttons_of(card)["withdraw"]
    assert "*Who may approve*" in all_text(card)
    await harness.click("UBOB", withdraw, channel="CDEV", message=card, message_ts=ts)
    told = await harness.fake.wait_for(lambda f: f.of("chat.postEphemeral"))
    assert "can withdraw" in all_text(told[-1])  # only the requester may; the card is untouched
    await harness.click("UALICE", withdraw, channel="CDEV", message=card, message_ts=ts)
    await harness.settle()
    final = harness.fake.messages[("CDEV", ts)]
    assert "Withdrawn by <@UALICE>" in all_text(final) and "Withdrew" in all_text(final)
    assert buttons_of(final) == {} and harness.work.runs("rumpleprod") == []
    rid = withdraw["value"].split(":")[1]
    row = harness.engine.store.get(rid) if harness.engine else None
    assert row is not None and row.status == "withdrawn"


async def test_an_approval_typed_elsewhere_is_told_in_the_requesters_channel(harness: Harness) -> None:
    _ts, card = await approval_card(harness)
    rid = buttons_of(card)["approve"]["value"].split(":")[1]
    status, _ = await harness.slash("UBOB", f"approve {rid}", channel="COTHER")
    assert status == 200
    await harness.settle()
    assert harness.work.runs("rumpleprod") == [rid]
    told = [m for m in harness.fake.of("chat.postMessage") if m["channel"] == "CDEV" and m is not card]
    assert len(told) == 1, told  # the requester's channel hears the outcome, with a ping
    assert "*Requested by:* <@UALICE>" in all_text(told[0]) and "Approved by <@UBOB>" in all_text(told[0])
    assert "wrote the marker on rumpleprod" in all_text(told[0])


async def test_a_pending_approval_survives_a_restart(harness: Harness) -> None:
    ts, card = await approval_card(harness)
    approve = buttons_of(card)["approve"]
    await harness.stop()
    # A new process: new engine and Bolt app on the same database and Slack workspace.
    await harness.start()
    status, _ = await harness.click("UBOB", approve, channel="CDEV", message=card, message_ts=ts)
    assert status == 200
    await harness.settle()
    rid = approve["value"].split(":")[1]
    assert harness.work.runs("rumpleprod") == [rid]
    assert "Approved by <@UBOB>" in all_text(harness.fake.messages[("CDEV", ts)])


async def test_a_button_with_a_changed_plan_hash_does_nothing(harness: Harness) -> None:
    ts, card = await approval_card(harness)
    approve = dict(buttons_of(card)["approve"])
    verb, rid, _ = approve["value"].split(":", 2)
    approve["value"] = f"{verb}:{rid}:{'0' * 64}"
    await harness.click("UBOB", approve, channel="CDEV", message=card, message_ts=ts)
    await harness.settle()
    assert harness.work.runs("rumpleprod") == []
    assert "not the plan" in all_text(harness.fake.of("chat.postEphemeral")[-1])
    row = harness.engine.store.get(rid) if harness.engine else None
    assert row is not None and row.status == "pending_approval"


async def test_confirmation_card_is_private_and_the_run_is_public(harness: Harness) -> None:
    await harness.slash("UALICE", "touch rumpledev")
    eph = (await harness.fake.wait_for(lambda f: f.of("chat.postEphemeral")))[0]
    await harness.settle()
    assert eph["user"] == "UALICE" and set(buttons_of(eph)) == {"confirm", "cancel"}
    assert harness.fake.of("chat.postMessage") == []
    confirm = buttons_of(eph)["confirm"]
    # Someone else's click on it (it was ephemeral, but payloads can be forged) is refused.
    await harness.click("UBOB", confirm, channel="CDEV", message=None, message_ts="1.000001", ephemeral=True)
    await harness.settle()
    assert harness.work.runs("rumpledev") == []
    hook = harness.fake.response_url("confirm-card")
    await harness.click("UALICE", confirm, channel="CDEV", message=None, message_ts="1.000001", ephemeral=True,
                        response_url=hook)
    await harness.settle()
    assert len(harness.work.runs("rumpledev")) == 1
    replaced = [c for c in harness.fake.of("response_url") if c["hook"] == "confirm-card"]
    assert replaced and replaced[0].get("replace_original") is True
    public = harness.fake.of("chat.postMessage")
    assert public and public[0]["channel"] == "CDEV"
    final = harness.fake.messages[("CDEV", harness.fake.of("chat.update")[-1]["ts"])]
    assert "Confirmed by <@UALICE>" in all_text(final) and "wrote the marker" in all_text(final)


# -- mentions, DMs, threads, identity --------------------------------------------

async def test_mentions_answer_in_a_thread_and_follow_ups_need_no_mention(harness: Harness) -> None:
    await harness.event({"type": "app_mention", "user": "UALICE", "channel": "CDEV", "ts": "100.000001",
                         "text": "<@UBOT> whoami", "channel_type": "channel", "event_ts": "100.000001"})
    first = (await harness.fake.wait_for(lambda f: f.of("chat.postMessage")))[0]
    assert first["thread_ts"] == "100.000001"
    assert "<@UALICE>" in all_text(first) and "approver" in all_text(first)
    assert "rumpledev" in all_text(first)  # the channel's default environment
    # A follow-up in that thread, without a mention, is a request too; the channel default applies.
    await harness.event({"type": "message", "user": "UALICE", "channel": "CDEV", "ts": "101.000001",
                         "thread_ts": "100.000001", "text": "quicktouch", "channel_type": "channel"})
    await harness.fake.wait_for(lambda f: len(f.of("chat.postMessage")) >= 2)
    await harness.settle()
    assert harness.work.runs("rumpledev") and len(harness.work.runs("rumpledev")) == 1
    assert all(m["thread_ts"] == "100.000001" for m in harness.fake.of("chat.postMessage"))
    # Chatter in that thread gets no "I didn't catch that"; a half-understood request does get a question.
    await harness.event({"type": "message", "user": "UBOB", "channel": "CDEV", "ts": "101.000002",
                         "thread_ts": "100.000001", "text": "thanks, nice one", "channel_type": "channel"})
    await harness.settle()
    assert len(harness.fake.of("chat.postMessage")) == 2
    await harness.event({"type": "message", "user": "UBOB", "channel": "CDEV", "ts": "101.000003",
                         "thread_ts": "100.000001", "text": "quicktouch nowhere", "channel_type": "channel"})
    await harness.settle()
    assert len(harness.fake.of("chat.postMessage")) == 3
    assert "nowhere" in all_text(harness.fake.of("chat.postMessage")[-1])
    posted_before = 3
    # Chatter in another thread or the channel itself is not for the bot.
    await harness.event({"type": "message", "user": "UALICE", "channel": "CDEV", "ts": "102.000001",
                         "thread_ts": "90.000001", "text": "quicktouch", "channel_type": "channel"})
    await harness.event({"type": "message", "user": "UALICE", "channel": "CDEV", "ts": "103.000001",
                         "text": "quicktouch", "channel_type": "channel"})
    await harness.settle()
    assert len(harness.work.runs("rumpledev")) == 1
    assert len(harness.fake.of("chat.postMessage")) == posted_before


async def test_the_slash_echo_pings_nobody_and_shows_no_secret(harness: Harness) -> None:
    # Slack sends the slash text escaped; "<!channel>" is what a person typed, not a ping they may make.
    secret = "ghp_" + "a1B2" * 9
    await harness.slash("UALICE", f"whoami ` &lt;!channel&gt; {secret}")
    post = (await harness.fake.wait_for(lambda f: f.of("chat.postMessage") + f.of("chat.postEphemeral")))[0]
    await harness.settle()
    shown = all_text(post)
    assert "<@UALICE>" in shown and "/ops whoami" in shown  # who asked what, still shown
    assert "<!channel>" not in shown and "&lt;!channel&gt;" in shown
    assert secret not in shown


async def test_a_thread_reply_also_sent_to_the_channel_is_a_follow_up(harness: Harness) -> None:
    await harness.event({"type": "app_mention", "user": "UALICE", "channel": "CDEV", "ts": "100.000001",
                         "text": "<@UBOT> whoami", "channel_type": "channel", "event_ts": "100.000001"})
    await harness.fake.wait_for(lambda f: f.of("chat.postMessage"))
    await harness.event({"type": "message", "subtype": "thread_broadcast", "user": "UALICE", "channel": "CDEV",
                         "ts": "101.000001", "thread_ts": "100.000001", "text": "quicktouch rumpletest",
                         "channel_type": "channel"})
    # An edit of a message is not a new request.
    await harness.event({"type": "message", "subtype": "message_changed", "hidden": True, "channel": "CDEV",
                         "ts": "102.000001", "channel_type": "channel",
                         "message": {"type": "message", "user": "UALICE", "text": "quicktouch rumpledev",
                                     "ts": "101.000002", "thread_ts": "100.000001"}})
    await harness.fake.wait_for(lambda f: len(f.of("chat.postMessage")) >= 2)
    await harness.settle()
    assert len(harness.work.runs("rumpletest")) == 1 and harness.work.runs("rumpledev") == []


async def test_a_click_on_an_expired_card_names_no_approver(harness: Harness) -> None:
    from sqlalchemy import text

    ts, card = await approval_card(harness)
    approve = buttons_of(card)["approve"]
    rid = approve["value"].split(":")[1]
    with harness.db.engine.begin() as c:
        c.execute(text("UPDATE requests SET expires_at = '2000-01-01 00:00:00' WHERE id = :r"), {"r": rid})
    await harness.click("UVIEW", approve, channel="CDEV", message=card, message_ts=ts)
    await harness.settle()
    final = all_text(harness.fake.messages[("CDEV", ts)])
    assert "expired" in final.lower() and "Approved by" not in final and "<@UVIEW>" not in final
    row = harness.engine.store.get(rid) if harness.engine else None
    assert row is not None and row.status == "expired" and row.approver is None


async def test_the_bot_ignores_its_own_and_other_bots_messages(harness: Harness) -> None:
    dm = {"type": "message", "channel": "D0ALICE", "channel_type": "im", "text": "quicktouch rumpledev"}
    await harness.event({**dm, "user": "UBOT", "ts": "200.000001", "bot_id": "BBOT"})
    await harness.event({**dm, "user": "UBOT", "ts": "200.000002"})
    await harness.event({**dm, "user": "UOTHER", "ts": "200.000003", "bot_id": "BOTHER"})
    await harness.event({**dm, "ts": "200.000004", "subtype": "bot_message", "bot_id": "BOTHER"})
    await harness.event({"type": "app_mention", "user": "UOTHER", "bot_id": "BOTHER", "channel": "CDEV",
                         "ts": "200.000005", "text": "<@UBOT> quicktouch rumpledev"})
    await harness.settle()
    assert harness.fake.of("chat.postMessage") == []
    assert harness.work.runs("rumpledev") == []
    # A person's DM is answered (in the DM, not in a thread), so the silence above was a choice.
    await harness.event({**dm, "user": "UALICE", "ts": "200.000006"})
    await harness.settle()
    posts = harness.fake.of("chat.postMessage")
    assert len(posts) == 1 and posts[0]["channel"] == "D0ALICE" and posts[0].get("thread_ts") is None
    assert len(harness.work.runs("rumpledev")) == 1


async def test_an_event_delivered_twice_is_handled_once(harness: Harness) -> None:
    mention = {"type": "app_mention", "user": "UALICE", "channel": "CDEV", "ts": "300.000001",
               "text": "<@UBOT> quicktouch", "channel_type": "channel"}
    await harness.event(mention, event_id="Ev0REDELIVER")
    await harness.event(mention, event_id="Ev0REDELIVER")
    await harness.settle()
    assert len(harness.work.runs("rumpledev")) == 1
    await harness.event(mention, event_id="Ev0ANOTHER")
    await harness.settle()
    assert len(harness.work.runs("rumpledev")) == 2


async def test_a_slash_command_in_a_channel_the_bot_is_not_in_answers_via_response_url(
        harness: Harness) -> None:
    harness.fake.channel_errors["CPRIV"] = "not_in_channel"
    await harness.slash("UALICE", "whoami", channel="CPRIV")
    await harness.fake.wait_for(lambda f: f.of("response_url"))
    await harness.settle()
    sent = harness.fake.of("response_url")[0]
    assert sent["response_type"] == "in_channel" and "approver" in all_text(sent)
    # A run that reports progress there posts its first step and its result, not every step.
    await harness.slash("UALICE", "quicktouch rumpledev", channel="CPRIV")
    await harness.settle()
    assert len(harness.work.runs("rumpledev")) == 1
    sent = harness.fake.of("response_url")[1:]
    assert len(sent) == 2
    assert "writing the marker" in all_text(sent[0]) and "wrote the marker" in all_text(sent[1])


def test_the_manifest_declares_what_the_adapter_uses() -> None:
    import yaml

    manifest = yaml.safe_load((Path(__file__).resolve().parent.parent / "slack-app-manifest.yaml").read_text())
    assert [c["command"] for c in manifest["features"]["slash_commands"]] == ["/ops"]
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "chat:write", "app_mentions:read", "im:history", "channels:history",
            "files:write"} <= scopes
    settings = manifest["settings"]
    assert {"app_mention", "message.im", "message.channels"} <= set(settings["event_subscriptions"]["bot_events"])
    assert settings["interactivity"]["is_enabled"] and settings["socket_mode_enabled"]


# -- rendering ---------------------------------------------------------------------

async def test_a_large_reply_fits_slack_and_the_rest_is_uploaded(harness: Harness) -> None:
    await harness.slash("UALICE", "bigreport")
    await harness.fake.wait_for(lambda f: f.of("files.completeUploadExternal"))
    await harness.settle()
    post = harness.fake.of("chat.postMessage")[0]
    blocks = post["blocks"]
    assert len(blocks) <= MAX_BLOCKS
    assert harness.fake.violations == []
    done = harness.fake.of("files.completeUploadExternal")[0]
    files = json.loads(done["files"])
    names = {json.loads(json.dumps(f)).get("title") for f in files}
    assert {"GPU chart", "full output", "rows"} <= names
    ts = next(iter(harness.fake.messages))[1]
    assert done["channel_id"] == "CDEV" and done["thread_ts"] == ts
    assert PNG in harness.fake.uploads.values()
    table_file = max(harness.fake.uploads.values(), key=lambda b: b.count(b"row"))
    assert b"row399" in table_file


def test_render_keeps_within_block_kit_limits() -> None:
    reply = Reply("a & b < c > d " + "z" * 5000, title="T" * 400, tone=Tone.error,
                  fields=[(f"k{i}", f"v{i}") for i in range(600)] + [("long", "line\n" * 2000)],
                  mentions=["slack:UBOB", "console:bob"], request_id="r1")
    msg = render(reply)
    assert len(msg.blocks) <= MAX_BLOCKS
    for b in msg.blocks:
        if b["type"] == "section":
            assert len(b.get("text", {}).get("text", "")) <= 3000
            assert len(b.get("fields", [])) <= 10
        if b["type"] == "header":
            assert len(b["text"]["text"]) <= 150
    assert "a &amp; b &lt; c &gt; d" in json.dumps(msg.blocks)
    assert "<@UBOB>" in json.dumps(msg.blocks) and "<@UBOB>" in msg.text
    assert {f.filename for f in msg.files} >= {"output.txt", "reply.txt"}


def test_render_makes_slack_ids_mentions_and_escapes_the_rest() -> None:
    msg = render(Reply("Approved r1 (restart for slack:UALICE) <script>", tone=Tone.success))
    text = json.dumps(msg.blocks)
    assert "<@UALICE>" in text and "&lt;script&gt;" in text and ":white_check_mark:" in text


def test_plain_text_unwraps_slack_markup() -> None:
    assert plain_text("<@UBOT> restart <http://n8n.example|n8n> on &lt;dev&gt;", "UBOT") == \
        "restart n8n on <dev>"
    assert plain_text("deploy <#C123|ops> <https://x.example>") == "deploy ops https://x.example"


# -- serving ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_serve_http_answers_and_stops(fake: FakeSlack, config: Config, db: Database, tmp_path: Path) -> None:
    cfg = slack_config(config, f"{fake.base}/api")  # no trailing slash: the adapter adds it
    engine = make_engine(cfg, db)
    await engine.start()
    app = App(cfg, db, engine)
    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, http=True, port=port, stop=stop))
    h = Harness(fake, cfg, db, Work(tmp_path))
    h.url = f"http://127.0.0.1:{port}/slack/events"
    for _ in range(200):
        try:
            status, _ = await h.slash("UALICE", "whoami")
            break
        except aiohttp.ClientConnectorError:
            await asyncio.sleep(0.05)
    assert status == 200
    await fake.wait_for(lambda f: f.of("chat.postMessage"))
    stop.set()
    await asyncio.wait_for(task, 10)
    await engine.close()
    with pytest.raises(aiohttp.ClientConnectorError):
        await h.slash("UALICE", "whoami")


async def test_serve_socket_mode_by_default(fake: FakeSlack, config: Config, db: Database,
                                            tmp_path: Path) -> None:
    cfg = slack_config(config, f"{fake.base}/api/")
    work = Work(tmp_path)
    engine = make_engine(cfg, db, registry=build_registry(work))
    await engine.start()
    stop = asyncio.Event()
    task = asyncio.create_task(serve(App(cfg, db, engine), http=False, port=0, stop=stop))
    try:
        work.gate.clear()
        ack = await fake.socket_send("slash_commands", {
            "command": "/ops", "text": "quicktouch rumpledev", "user_id": "UALICE", "user_name": "alice",
            "channel_id": "CDEV", "team_id": fake.team, "api_app_id": "A1",
            "response_url": fake.response_url(), "trigger_id": "t1"})
        assert ack["envelope_id"]  # acknowledged while the change is still held open
        await asyncio.wait_for(work.started.wait(), 10)
        assert work.runs("rumpledev") == []
        work.gate.set()
        await fake.wait_for(lambda f: any("wrote the marker" in all_text(u) for u in f.of("chat.update")))
        # Socket Mode tokens: the app token opened the connection, the bot token posts.
        opened = fake.of("apps.connections.open")
        assert opened and all(c.token == fake.app_token for c in fake.calls if c.method == "apps.connections.open")
        assert all(c.token == fake.token for c in fake.calls if c.method.startswith("chat."))
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await engine.close()
    assert work.runs("rumpledev") and len(work.runs("rumpledev")) == 1
    assert fake.violations == []


async def test_missing_credentials_are_named(config: Config, engine: Engine) -> None:
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        SlackBot(engine, Settings(SLACK_BOT_TOKEN=None))
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        SlackBot(engine, Settings(SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET=None), http=True)
    cfg = dataclasses.replace(config, settings=Settings(SLACK_BOT_TOKEN="xoxb-1", SLACK_APP_TOKEN=None))
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN"):
        await serve(App(cfg, None, engine), http=False, port=0, stop=asyncio.Event())  # type: ignore[arg-type]


def test_where_knows_direct_messages() -> None:
    assert Where("D123", "U1").is_dm and not Where("C123", "U1").is_dm
