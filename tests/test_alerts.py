"""Alertmanager's webhook in, one card per group in the ops channel, buttons that work, edits in place.

The payloads are Alertmanager's documented webhook JSON (tests/data/alertmanager); the card goes
to the Slack and Discord stand-ins through the real clients, and the buttons are clicked the way
each platform delivers a click.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.adapters.discord import DiscordPoster
from infra.config import Config
from infra.db.store import Database
from tests.conftest import DATA
from tests.discord_kit import ALICE, buttons, click, deliver, settle, start_bot
from tests.events_support import (
    DISCORD_OPS,
    OPS,
    TOKENS,
    Recorder,
    Stack,
    engine_for,
    events_config,
    recording_registry,
    slack_buttons,
    slack_text,
)
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import FakeSlack

AM = TOKENS["alertmanager"]


def firing(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "alertmanager" / "firing.json").read_text())
    data.update(changes)
    return data


def resolved() -> dict[str, Any]:
    data = firing(status="resolved")
    for a in data["alerts"]:
        a["status"] = "resolved"
        a["endsAt"] = "2026-03-01T22:20:00Z"
    return data


@pytest.fixture
async def bot(config: Config, db: Database, slack: FakeSlack, rec: Recorder) -> AsyncIterator[Stack]:
    stack = await Stack(engine_for(events_config(config, slack_url=f"{slack.base}/api/"), db,
                                   recording_registry(rec))).start()
    yield stack
    rec.gate.set()
    await stack.stop()


def ops_posts(slack: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in slack.of("chat.postMessage") if m["channel"] == OPS and not m.get("thread_ts")]


async def test_an_alert_is_one_card_with_working_buttons_and_repeats_edit_it(bot: Stack, slack: FakeSlack,
                                                                               rec: Recorder) -> None:
    status, body = await bot.call("POST", "/api/v1/alertmanager", token=AM, body=firing())
    assert status == 200, body
    assert [p["channel"] for p in body["posted"]] == [f"slack:{OPS}"] and body["unrouted"] == []
    (card,) = ops_posts(slack)
    ts = next(k[1] for k in slack.messages if k[0] == OPS)
    text = slack_text(card)
    assert "FIRING (1): ContainerRestarting on rumpleprod" in text and "n8n restarted 5 times" in text
    labels = list(slack_buttons(card))
    assert labels == ["Status workflows", "Logs n8n", "Restart n8n…"]  # reads first, the change last
    # Alertmanager repeats the group (repeat_interval): the same message is edited, nothing new posted.
    again = firing()
    again["alerts"][0]["annotations"]["summary"] = "n8n restarted 9 times in 15 minutes"
    status, body = await bot.call("POST", "/api/v1/alertmanager", token=AM, body=again)
    assert status == 200 and [e["channel"] for e in body["edited"]] == [f"slack:{OPS}"] and body["posted"] == []
    assert len(ops_posts(slack)) == 1
    assert "restarted 9 times" in slack_text(slack.messages[(OPS, ts)])
    card = slack.messages[(OPS, ts)]

    # A read button runs the read as whoever clicked (a viewer may read logs), answered in the thread.
    assert await bot.slack_click("UVIEW", slack_buttons(card)["Logs n8n"], channel=OPS, message=card,
                                 message_ts=ts) == 200
    await bot.settle()
    assert [(r.command, r.args["service"], r.args["env"], r.actor) for r in rec.runs] == [
        ("logs", "n8n", "rumpleprod", "slack:UVIEW")]
    answer = [m for m in slack.messages.values() if m.get("thread_ts") == ts]
    assert len(answer) == 1 and "logs n8n on rumpleprod done" in slack_text(answer[0])
    # The suggested change is not run by a viewer: refused, privately.
    assert await bot.slack_click("UVIEW", slack_buttons(card)["Restart n8n…"], channel=OPS, message=card,
                                 message_ts=ts) == 200
    await bot.settle()
    assert rec.of("restart") == []
    assert "needs the operator role" in slack_text(slack.of("chat.postEphemeral")[-1])

    # An operator's click asks for the restart: confirmation first, then an approver (prod is protected).
    assert await bot.slack_click("UALICE", slack_buttons(card)["Restart n8n…"], channel=OPS, message=card,
                                 message_ts=ts) == 200
    await bot.settle()
    confirm_card = slack.of("chat.postEphemeral")[-1]
    assert confirm_card["user"] == "UALICE" and "Run it" in slack_buttons(confirm_card)
    assert confirm_card.get("thread_ts") == ts  # in the alert's thread, seen by alice only
    assert await bot.slack_click("UALICE", slack_buttons(confirm_card)["Run it"], channel=OPS, message=None,
                                 message_ts="1.000001", ephemeral=True, thread_ts=ts) == 200
    await bot.settle()
    assert rec.of("restart") == []
    approval = [m for m in slack.of("chat.postMessage") if "Approve" in slack_buttons(m)]
    assert len(approval) == 1 and approval[0].get("thread_ts") == ts
    approval_ts = next(k[1] for k, v in slack.messages.items() if v is approval[0] or v == approval[0])
    assert await bot.slack_click("UBOB", slack_buttons(approval[0])["Approve"], channel=OPS, message=approval[0],
                                 message_ts=approval_ts) == 200
    await bot.settle()
    assert [(r.command, r.actor) for r in rec.of("restart")] == [("restart", "slack:UALICE")]
    row = bot.engine.store.get(rec.of("restart")[0].request_id)
    assert row is not None and row.source == "alert" and row.approver == "slack:UBOB"

    # Resolved: the card is edited once more, without buttons.
    status, body = await bot.call("POST", "/api/v1/alertmanager", token=AM, body=resolved())
    assert status == 200 and body["edited"] and body["posted"] == []
    final = slack.messages[(OPS, ts)]
    assert "RESOLVED: ContainerRestarting on rumpleprod" in slack_text(final) and slack_buttons(final) == {}
    assert len(ops_posts(slack)) == 1


async def test_the_card_and_its_buttons_on_discord(config: Config, db: Database, api: FakeDiscord,
                                                   rec: Recorder) -> None:
    cfg = events_config(config, notify={"discord": DISCORD_OPS})
    stack = await Stack(engine_for(cfg, db, recording_registry(rec))).start(slack=False)
    bot = await start_bot(stack.engine, api)
    stack.engine.notify.register(DiscordPoster(bot))
    try:
        status, body = await stack.call("POST", "/api/v1/alertmanager", token=AM, body=firing())
        assert status == 200 and [p["channel"] for p in body["posted"]] == [f"discord:{DISCORD_OPS}"]
        (sent,) = api.of("send")
        card = api.messages[sent.message_id or ""]
        assert "ContainerRestarting" in json.dumps(card["embeds"])
        assert list(buttons(card)) == ["Status workflows", "Logs n8n", "Restart n8n…"]
        status, body = await stack.call("POST", "/api/v1/alertmanager", token=AM, body=firing())
        assert body["edited"] and len(api.of("send")) == 1 and api.of("channel_edit")
        deliver(bot, api, click(api, card["id"], buttons(api.messages[card["id"]])["Logs n8n"], ALICE))
        await settle()
        await stack.settle()
        assert [(r.command, r.actor) for r in rec.runs] == [("logs", f"discord:{ALICE['id']}")]
        status, body = await stack.call("POST", "/api/v1/alertmanager", token=AM, body=resolved())
        assert body["edited"]
        final = api.messages[card["id"]]
        assert "RESOLVED" in json.dumps(final["embeds"]) and not final["components"]
        assert api.problems == []
    finally:
        await bot.close()
        await stack.stop()


async def test_bad_payloads_and_unroutable_alerts(bot: Stack, slack: FakeSlack) -> None:
    assert (await bot.call("POST", "/api/v1/alertmanager", token=None, body=firing()))[0] == 401
    assert (await bot.call("POST", "/api/v1/alertmanager", token="wrong", body=firing()))[0] == 401
    status, body = await bot.call("POST", "/api/v1/alertmanager", token=AM, raw=b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]
    no_alerts = firing(alerts=[])
    status, body = await bot.call("POST", "/api/v1/alertmanager", token=AM, body=no_alerts)
    assert status == 400 and "alerts" in body["error"]
    bad_status = firing(status="burning")
    status, body = await bot.call("POST", "/api/v1/alertmanager", token=AM, body=bad_status)
    assert status == 400 and "status" in body["error"]
    # Labels that name no environment, or one without an ops channel: said, not posted anywhere.
    nowhere = firing()
    nowhere["commonLabels"].pop("env")
    nowhere["alerts"][0]["labels"]["env"] = "moon"
    status, body = await bot.call("POST", "/api/v1/alertmanager", token=AM, body=nowhere)
    assert status == 200 and body["unrouted"][0]["reason"] == "no known environment in its labels"
    test_env = firing(groupKey="{}:{alertname=\"X\"}")
    test_env["commonLabels"]["env"] = "staging"  # an alias of rumpletest, which has no ops channel
    test_env["alerts"][0]["labels"]["env"] = "staging"
    status, body = await bot.call("POST", "/api/v1/alertmanager", token=AM, body=test_env)
    assert status == 200 and body["unrouted"] == [{"env": "rumpletest", "reason": "no ops channel takes alerts there"}]
    limit = bot.engine.config.inventory.api.max_alert_body_bytes
    status, _ = await bot.call("POST", "/api/v1/alertmanager", token=AM, raw=b"[" + b" " * limit + b"]")
    assert status == 413
    assert slack.of("chat.postMessage") == []


async def test_two_replicas_receiving_the_same_group_post_it_once(config: Config, db: Database, slack: FakeSlack,
                                                                   rec: Recorder) -> None:
    cfg = events_config(config, slack_url=f"{slack.base}/api/")
    one = await Stack(engine_for(cfg, db, recording_registry(rec))).start()
    two = await Stack(engine_for(cfg, db, recording_registry(rec))).start()
    try:
        results = await asyncio.gather(*(s.call("POST", "/api/v1/alertmanager", token=AM, body=copy.deepcopy(firing()))
                                         for s in (one, two)))
        assert [r[0] for r in results] == [200, 200]
        outcomes = sorted(k for _, body in results for k in ("posted", "edited", "skipped") if body[k])
        assert outcomes in (["posted", "skipped"], ["edited", "posted"])
        assert len(ops_posts(slack)) == 1
    finally:
        await one.stop()
        await two.stop()
