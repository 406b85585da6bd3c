"""Decision buttons over loopback: confirm, approve across a restart, refusals, double clicks.

The changing command of the test registry appends a line to a file, so "ran once" is
counted on disk, not inferred from replies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.adapters.discord import DiscordBot
from bot.engine import Engine
from commands.registry import Registry
from infra.config import Config
from infra.db.store import Database
from tests.conftest import make_engine
from tests.discord_kit import (
    ALICE,
    BOB,
    CAROL,
    buttons,
    click,
    deliver,
    discord_config,
    make_registry,
    settle,
    slash,
    start_bot,
)
from tests.fakes.discord_api import FakeDiscord


class Bots:
    """Starts bot processes (engine + discord client) on one database; closes them all."""

    def __init__(self, config: Config, db: Database, registry: Registry, api: FakeDiscord) -> None:
        self.config, self.db, self.registry, self.api = config, db, registry, api
        self.running: list[tuple[DiscordBot, Engine]] = []

    async def start(self) -> DiscordBot:
        engine = make_engine(self.config, self.db, registry=self.registry)
        await engine.start()
        bot = await start_bot(engine, self.api)
        self.running.append((bot, engine))
        return bot

    async def stop(self, bot: DiscordBot) -> None:
        for pair in list(self.running):
            if pair[0] is bot:
                await bot.close()
                await pair[1].close()
                self.running.remove(pair)

    async def close(self) -> None:
        for bot, _ in list(self.running):
            await self.stop(bot)


@pytest.fixture
def touched(tmp_path: Path) -> Path:
    return tmp_path / "touched"


@pytest.fixture
async def bots(config: Config, db: Database, api: FakeDiscord, touched: Path) -> AsyncIterator[Bots]:
    b = Bots(discord_config(config), db, make_registry(touched), api)
    yield b
    await b.close()


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def final_original(api: FakeDiscord, token: str) -> dict[str, Any]:
    mid = api.interactions[token]["original"]
    return api.messages[mid]


def followups(api: FakeDiscord, token: str) -> list[Any]:
    return [c for c in api.of("followup") if c.path.endswith(f"/{token}")]


async def request_touch(bot: DiscordBot, api: FakeDiscord, env: str) -> tuple[str, dict[str, str]]:
    """/ops touch env:ENV by alice; returns the private confirm card's message id and buttons."""
    data = slash("touch", {"env": env})
    deliver(bot, api, data)
    await settle()
    card = final_original(api, data["token"])
    assert card["flags"] & 64, "the confirm card is private to the requester"
    return card["id"], buttons(card)


async def test_confirm_runs_once_and_the_outcome_is_posted(bots: Bots, api: FakeDiscord, touched: Path) -> None:
    bot = await bots.start()
    card_id, btn = await request_touch(bot, api, "dev")
    assert set(btn) == {"Run it", "Cancel"}
    assert btn["Run it"].startswith("chatops:confirm:r-") and len(btn["Run it"]) <= 100
    assert lines(touched) == []  # nothing before the confirmation

    data = click(api, card_id, btn["Run it"], ALICE)
    deliver(bot, api, data)
    await settle()
    assert len(lines(touched)) == 1 and lines(touched)[0].startswith("rumpledev -")
    (cb,) = [c for c in api.of("callback") if data["token"] in c.path]
    assert cb.body == {"type": 6}  # deferred update of the card, within the 3 s
    # Progress went onto the card in place, then the card says where the outcome is.
    edits = [c.body for c in api.of("edit") if c.message_id == card_id]
    progress = [e["embeds"][-1]["description"] for e in edits]
    assert any("writing to rumpledev" in p for p in progress) and any("written" in p for p in progress)
    assert api.messages[card_id]["components"] == []  # buttons gone
    (outcome,) = followups(api, data["token"])
    assert not (int(outcome.body.get("flags") or 0) & 64)  # the team sees the change
    assert "Touched rumpledev." in outcome.body["embeds"][0]["description"]
    assert api.problems == []


async def test_cancel_changes_nothing(bots: Bots, api: FakeDiscord, touched: Path) -> None:
    bot = await bots.start()
    card_id, btn = await request_touch(bot, api, "dev")
    deliver(bot, api, click(api, card_id, btn["Cancel"], ALICE))
    await settle()
    assert lines(touched) == []
    assert "Cancelled" in api.messages[card_id]["embeds"][0]["description"]
    assert api.messages[card_id]["components"] == []


async def approval_card(bot: DiscordBot, api: FakeDiscord) -> tuple[str, dict[str, str]]:
    """alice asks for a change on protected rumpleprod and confirms; returns the public card."""
    card_id, btn = await request_touch(bot, api, "prod")
    data = click(api, card_id, btn["Run it"], ALICE)
    deliver(bot, api, data)
    await settle()
    (posted,) = followups(api, data["token"])
    assert posted.message_id is not None
    card = api.messages[posted.message_id]
    assert not card["flags"] & 64 and "<@222222222222222222>" in card["content"]  # bob is pinged
    assert [str(u) for u in posted.body["allowed_mentions"]["users"]] == ["222222222222222222"]
    return card["id"], buttons(card)


async def test_a_change_asked_by_mention_pings_the_approvers_with_a_new_message(
        bots: Bots, api: FakeDiscord, touched: Path) -> None:
    from tests.discord_kit import payload

    bot = await bots.start()
    assert bot.user is not None
    bot._connection.parse_message_create(  # type: ignore[arg-type]
        payload("message_mention.json", content=f"<@{bot.user.id}> touch prod"))
    await settle()
    confirm = api.of("send")[-1]
    assert confirm.message_id is not None
    card_id = confirm.message_id
    data = click(api, card_id, buttons(api.messages[card_id])["Run it"], ALICE)
    deliver(bot, api, data)
    await settle()
    # Discord notifies nobody of a mention added by an edit: the approval card is a new message that pings bob.
    (posted,) = followups(api, data["token"])
    card = api.messages[posted.message_id]
    assert "<@222222222222222222>" in card["content"] and "Approve" in buttons(card)
    assert [str(u) for u in posted.body["allowed_mentions"]["users"]] == ["222222222222222222"]
    assert buttons(api.messages[card_id]) == {}  # the confirm card says it was confirmed, with no buttons left
    assert lines(touched) == []


async def test_approval_survives_a_restart_and_refuses_the_wrong_people(
        bots: Bots, api: FakeDiscord, touched: Path) -> None:
    bot = await bots.start()
    card_id, btn = await approval_card(bot, api)
    assert set(btn) == {"Approve", "Deny", "Withdraw"}
    rid = btn["Approve"].split(":")[2]
    assert (await bot.engine._db(bot.engine.store.get, rid)).status == "pending_approval"  # type: ignore[union-attr]

    # The requester and a viewer are refused privately; the card is left alone.
    for who, says in ((ALICE, "can't approve your own request"), (CAROL, "need the approver role")):
        data = click(api, card_id, btn["Approve"], who)
        deliver(bot, api, data)
        await settle()
        (answer,) = followups(api, data["token"])
        assert int(answer.body["flags"]) & 64 and says in answer.body["embeds"][0]["description"]
        assert [c for c in api.of("edit") if data["token"] in c.path] == []
    assert lines(touched) == []

    # The bot restarts: a new process, a new engine, the same database and the same card.
    await bots.stop(bot)
    bot2 = await bots.start()
    data = click(api, card_id, btn["Approve"], BOB)
    deliver(bot2, api, data)
    await settle()
    (line,) = lines(touched)
    assert line.startswith("rumpleprod -") and line.endswith(rid)
    card = api.messages[card_id]
    # The run's outcome is the card's text; the approval a field of its own (issue #19: one outcome a line).
    decision = {f["name"]: f["value"] for f in card["embeds"][0]["fields"]}["Decision"]
    assert card["components"] == [] and decision.startswith(f"Approved by discord:{BOB['id']}")
    assert "Approved" not in card["embeds"][0]["description"]
    assert card["content"] == f"Requested by: <@{ALICE['id']}>"  # the requester hears the decision
    progress = [c.body["embeds"][-1]["description"] for c in api.of("edit") if data["token"] in c.path][:-1]
    assert progress and all("Approved by Bob" in p for p in progress)
    row = await bot2.engine._db(bot2.engine.store.get, rid)
    assert row is not None and (row.status, row.approver) == ("succeeded", f"discord:{BOB['id']}")
    assert api.problems == []


async def test_double_click_acts_once(bots: Bots, api: FakeDiscord, touched: Path) -> None:
    bot = await bots.start()
    card_id, btn = await approval_card(bot, api)
    first, second = (click(api, card_id, btn["Approve"], BOB) for _ in range(2))
    deliver(bot, api, first)
    deliver(bot, api, second)  # before the first has finished
    await settle()
    assert len(lines(touched)) == 1
    answers = followups(api, first["token"]) + followups(api, second["token"])
    (dup,) = answers
    assert int(dup.body["flags"]) & 64 and "nothing was done twice" in dup.body["embeds"][0]["description"]
    rid = btn["Approve"].split(":")[2]
    events = await bot.engine._db(bot.engine.store.events, rid)
    assert [e.kind for e in events].count("started") == 1


async def test_deny_updates_the_card_and_runs_nothing(bots: Bots, api: FakeDiscord, touched: Path) -> None:
    bot = await bots.start()
    card_id, btn = await approval_card(bot, api)
    deliver(bot, api, click(api, card_id, btn["Deny"], BOB))
    await settle()
    assert lines(touched) == []
    card = api.messages[card_id]
    assert card["components"] == [] and "Denied" in card["embeds"][0]["description"]
    # The buttons are gone; a late "/ops approve" of the same request cannot revive it.
    rid = btn["Approve"].split(":")[2]
    late = slash("approve", {"request": rid}, user=BOB)
    deliver(bot, api, late)
    await settle()
    assert lines(touched) == []
    assert "already denied" in final_original(api, late["token"])["embeds"][0]["description"]


async def test_a_button_for_another_plan_is_refused(bots: Bots, api: FakeDiscord, touched: Path) -> None:
    bot = await bots.start()
    card_id, btn = await approval_card(bot, api)
    prefix, action, rid, digest = btn["Approve"].split(":")
    forged = f"chatops:approve:{rid}:{'0' * 64}"
    assert (prefix, action, len(digest)) == ("chatops", "approve", 64) and forged != btn["Approve"]
    api.messages[card_id]["components"][0]["components"][0]["custom_id"] = forged
    deliver(bot, api, click(api, card_id, forged, BOB))
    await settle()
    assert lines(touched) == []
    row = await bot.engine._db(bot.engine.store.get, rid)
    assert row is not None and row.status == "pending_approval"


async def test_an_expired_request_is_refused_and_its_card_says_so(bots: Bots, api: FakeDiscord,
                                                                   touched: Path) -> None:
    bot = await bots.start()
    card_id, btn = await approval_card(bot, api)
    rid = btn["Approve"].split(":")[2]
    with bot.engine.store.db.engine.begin() as c:
        c.execute(text("UPDATE requests SET expires_at = now() - interval '1 minute' WHERE id = :id"), {"id": rid})
    data = click(api, card_id, btn["Approve"], BOB)
    deliver(bot, api, data)
    await settle()
    assert lines(touched) == []
    (answer,) = followups(api, data["token"])
    assert int(answer.body["flags"]) & 64 and "expired" in answer.body["embeds"][0]["description"]
    assert "expired before it was decided" in api.messages[card_id]["embeds"][-1]["description"]
    row = await bot.engine._db(bot.engine.store.get, rid)
    assert row is not None and row.status == "expired"


async def test_the_requester_withdraws_with_the_cards_button(bots: Bots, api: FakeDiscord, touched: Path) -> None:
    bot = await bots.start()
    card_id, btn = await approval_card(bot, api)
    assert btn["Withdraw"].startswith("chatops:withdraw:r-")
    data = click(api, card_id, btn["Withdraw"], BOB)  # not bob's request: refused privately
    deliver(bot, api, data)
    await settle()
    (answer,) = followups(api, data["token"])
    assert int(answer.body["flags"]) & 64 and "can withdraw" in answer.body["embeds"][0]["description"]
    deliver(bot, api, click(api, card_id, btn["Withdraw"], ALICE))
    await settle()
    card = api.messages[card_id]
    assert card["components"] == [] and "Withdrew" in card["embeds"][0]["description"]
    rid = btn["Approve"].split(":")[2]
    row = await bot.engine._db(bot.engine.store.get, rid)
    assert row is not None and (row.status, row.actor) == ("withdrawn", f"discord:{ALICE['id']}")
    assert lines(touched) == [] and api.problems == []


async def test_an_approval_typed_in_another_channel_is_told_where_it_was_asked(
        bots: Bots, api: FakeDiscord, touched: Path) -> None:
    bot = await bots.start()
    card_id, btn = await approval_card(bot, api)
    rid = btn["Approve"].split(":")[2]
    data = slash("approve", {"request": rid}, user=BOB)
    other = "666666666666666666"
    data["channel_id"] = data["channel"]["id"] = other
    deliver(bot, api, data)
    await settle()
    assert len(lines(touched)) == 1
    told = [c for c in api.of("send") if f"/channels/{api.messages[card_id]['channel_id']}/" in c.path]
    assert len(told) == 1, [c.path for c in api.of("send")]
    assert told[0].body["content"] == f"Requested by: <@{ALICE['id']}>"
    assert f"Decision: Approved by discord:{BOB['id']}" in told[0].body["embeds"][0]["description"]
    assert api.problems == []
