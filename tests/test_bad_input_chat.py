"""Broken payloads from Slack and Discord: refused clearly, nothing run, the adapter keeps serving."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.adapters.discord import DiscordBot
from bot.render.slack import ACTION_PREFIX
from tests import test_discord_adapter as _dadapter
from tests import test_discord_approvals as _dapprovals
from tests import test_slack as _slack
from tests.discord_kit import BOB, deliver, payload, settle, slash
from tests.fakes.discord_api import FakeDiscord
from tests.test_discord_adapter import original_edits, rows
from tests.test_discord_approvals import Bots, followups, lines
from tests.test_discord_approvals import approval_card as discord_card
from tests.test_slack import Harness, all_text, approval_card, buttons_of

# The fixtures these tests share with the adapters' own suites.
fake, harness = _slack.fake, _slack.harness
dconfig, default_bot = _dadapter.dconfig, _dadapter.default_bot  # fixtures (`api` is in conftest)
bots, touched = _dapprovals.bots, _dapprovals.touched

# -- Slack (HTTP mode, signed requests) ------------------------------------------------------


async def still_answers(h: Harness) -> None:
    before = len(h.fake.of("chat.postMessage")) + len(h.fake.of("chat.postEphemeral"))
    status, _ = await h.slash("UALICE", "whoami")
    assert status == 200
    await h.fake.wait_for(lambda f: len(f.of("chat.postMessage")) + len(f.of("chat.postEphemeral")) > before)


async def test_signed_body_that_is_not_json_is_refused_and_runs_nothing(harness: Harness) -> None:
    status, _ = await harness.send("{not json at all", "application/json")
    assert status == 400
    await harness.settle()
    assert harness.fake.of("chat.postMessage") == [] and harness.work.runs("rumpledev") == []
    await still_answers(harness)


async def test_signed_event_missing_its_fields_is_dropped(harness: Harness) -> None:
    for event in ({"type": "app_mention", "text": "<@UBOT> restart n8n dev"},
                  {"type": "app_mention", "user": "UALICE", "text": "hi"},
                  {"type": "message", "channel_type": "im", "text": "whoami"}):
        status, _ = await harness.event(event)
        assert status == 200, status
    await harness.settle()
    assert harness.fake.of("chat.postMessage") == [] and harness.work.runs("rumpledev") == []
    await still_answers(harness)


async def test_slash_command_missing_user_or_channel_runs_nothing(harness: Harness) -> None:
    body = harness.slash_body("UALICE", "quicktouch rumpledev").replace("user_id=UALICE&", "")
    status, _ = await harness.send(body, "application/x-www-form-urlencoded")
    assert status == 200
    await harness.settle()
    assert harness.work.runs("rumpledev") == []
    await still_answers(harness)


async def test_oversized_slash_text_gets_the_limit(harness: Harness) -> None:
    status, _ = await harness.slash("UALICE", "quicktouch rumpledev " + "x" * 5000)
    assert status == 200
    await harness.settle()
    said = [all_text(m) for m in harness.fake.of("chat.postEphemeral") + harness.fake.of("chat.postMessage")]
    assert any("too long" in s and "the limit is" in s for s in said), said
    assert harness.work.runs("rumpledev") == []


async def test_a_button_for_a_request_that_does_not_exist(harness: Harness) -> None:
    ts, card = await approval_card(harness)
    approve = dict(buttons_of(card)["approve"])
    approve["value"] = f"approve:r-00000bad:{'0' * 64}"
    status, _ = await harness.click("UBOB", approve, channel="CDEV", message=card, message_ts=ts)
    assert status == 200
    await harness.settle()
    assert "There is no request r-00000bad" in all_text(harness.fake.of("chat.postEphemeral")[-1])
    assert harness.work.runs("rumpleprod") == []


async def test_an_unknown_action_id_is_not_one_of_mine(harness: Harness) -> None:
    ts, card = await approval_card(harness)
    rid = buttons_of(card)["approve"]["value"].split(":")[1]
    odd = {"action_id": f"{ACTION_PREFIX}launch", "value": f"launch:{rid}:", "text": {"type": "plain_text",
                                                                                   "text": "Launch"}}
    status, _ = await harness.click("UBOB", odd, channel="CDEV", message=card, message_ts=ts)
    assert status == 200
    await harness.settle()
    assert "not one of mine" in all_text(harness.fake.of("chat.postEphemeral")[-1])
    row = harness.engine.store.get(rid) if harness.engine else None
    assert row is not None and row.status == "pending_approval"


async def test_a_block_actions_payload_that_is_not_json(harness: Harness) -> None:
    from urllib.parse import urlencode

    status, _ = await harness.send(urlencode({"payload": "{broken"}), "application/x-www-form-urlencoded")
    assert status == 400
    await harness.settle()
    assert harness.work.runs("rumpleprod") == []
    await still_answers(harness)


# -- Discord (gateway payloads through discord.py's own parsers) -------------------------------

def _click(api: FakeDiscord, card_id: str, custom_id: str) -> dict[str, Any]:
    """A click on the card's first button, its custom id replaced (Discord sends what the message holds)."""
    from tests.discord_kit import click

    api.messages[card_id]["components"][0]["components"][0]["custom_id"] = custom_id
    return click(api, card_id, custom_id, BOB)


async def test_discord_button_with_a_foreign_custom_id_gets_a_private_answer(
        bots: Bots, api: FakeDiscord, touched: Path) -> None:
    bot = await bots.start()
    card_id, _ = await discord_card(bot, api)
    data = _click(api, card_id, "someoneelse:launch:rockets")
    deliver(bot, api, data)
    await settle()
    said = [c.body for c in api.of("callback") if data["token"] in c.path]
    assert said and said[-1]["type"] == 4 and said[-1]["data"]["flags"] & 64
    assert "not one of mine" in said[-1]["data"]["content"]
    assert lines(touched) == []


async def test_discord_button_for_a_request_that_does_not_exist(
        bots: Bots, api: FakeDiscord, touched: Path) -> None:
    bot = await bots.start()
    card_id, _ = await discord_card(bot, api)
    data = _click(api, card_id, f"chatops:approve:r-00000bad:{'0' * 64}")
    deliver(bot, api, data)
    await settle()
    (private,) = followups(api, data["token"])
    assert private.body["flags"] & 64
    assert "There is no request r-00000bad" in json.dumps(private.body)
    assert lines(touched) == []


async def test_discord_oversized_ask_text_gets_the_limit(default_bot: DiscordBot,
                                                         api: FakeDiscord) -> None:
    data = slash("ask", {"text": "restart n8n on dev " + "now " * 1000})
    deliver(default_bot, api, data)
    await settle()
    text = original_edits(api, data["token"])[-1].body["embeds"][0]["description"]
    assert "too long" in text and "the limit is" in text
    # It starts with a command word, so an action was asked for: refused, and in the audit log.
    assert [(r.command, r.status) for r in rows(default_bot.engine)] == [("restart", "refused")]


async def test_discord_autocomplete_with_garbage_input_offers_nothing_odd(default_bot: DiscordBot,
                                                                         api: FakeDiscord) -> None:
    for junk in ("\x00\u202e💥" * 30, "%s%n{}" * 20, " " * 90, "zzzz-not-a-name"):
        data = payload("autocomplete_env.json")
        data["data"]["options"][0]["options"][1]["value"] = junk
        data["data"]["options"][0]["options"][0]["value"] = "\x00no-such-stack"
        deliver(default_bot, api, data)
        await settle()
        (cb,) = [c for c in api.of("callback") if data["token"] in c.path]
        assert cb.body["type"] == 8
        values = [c["value"] for c in cb.body["data"]["choices"]]
        envs = set(default_bot.engine.config.inventory.environments)
        assert set(values) <= envs and len(values) <= 25
    assert rows(default_bot.engine) == [] and api.problems == []
