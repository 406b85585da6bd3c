"""Notifications out: outcomes, approval cards and freezes reach the environment's ops channels.

The posters are the real ones (slack_sdk against the Slack stand-in, discord.py against the
Discord stand-in); requests are asked from the console, so everything seen in the ops
channels was posted by the notifier, not as a reply.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from bot.adapters.discord import DiscordPoster, poster
from bot.adapters.slack import SlackPoster
from bot.adapters.slack import poster as slack_poster
from bot.engine import Engine
from bot.request import Actor, Reply, Request, Tone
from infra.config import Config, Settings
from infra.db.common import utcnow
from infra.db.store import Database
from tests.events_support import DISCORD_OPS, OPS, Recorder, engine_for, events_config, recording_registry, slack_text
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import FakeSlack


async def running(config: Config, db: Database, slack: FakeSlack, api: FakeDiscord, rec: Recorder,
                  notify: dict[str, Any]) -> tuple[Engine, DiscordPoster]:
    cfg = events_config(config, slack_url=f"{slack.base}/api/", notify=notify)
    e = engine_for(cfg, db, recording_registry(rec))
    await e.start()
    slack_side = slack_poster(cfg.settings)
    assert isinstance(slack_side, SlackPoster)
    e.notify.register(slack_side)
    discord_side = poster(Settings(DISCORD_TOKEN="test-token"))
    assert discord_side is not None
    await discord_side.start()
    e.notify.register(discord_side)
    return e, discord_side


async def say(e: Engine, user: str, text: str) -> Reply:
    reply = await e.handle(Request(actor=Actor(user), text=text, platform="console", confirmed=True))
    await e.notify.drain()
    return reply


def slack_in(slack: FakeSlack, channel: str) -> list[str]:
    return [slack_text(m) for m in slack.of("chat.postMessage") if m["channel"] == channel]


def discord_in(api: FakeDiscord, channel: str) -> list[str]:
    return [json.dumps(c.body) for c in api.of("send") if c.path.endswith(f"/channels/{channel}/messages")]


async def test_approvals_outcomes_and_freezes_reach_both_platforms(config: Config, db: Database, slack: FakeSlack,
                                                                   api: FakeDiscord) -> None:
    rec = Recorder()
    e, discord_side = await running(config, db, slack, api, rec, {"slack": OPS, "discord": DISCORD_OPS})
    try:
        pending = await say(e, "console:alice", "restart n8n on prod")
        assert pending.tone is Tone.pending
        for posted in (slack_in(slack, OPS), discord_in(api, DISCORD_OPS)):
            assert len(posted) == 1 and pending.request_id in posted[0] and "Approve" in posted[0]
        approved = await e.act("approve", pending.request_id or "", Actor("console:bob"))
        await e.notify.drain()
        assert approved.ok and len(rec.runs) == 1
        for posted in (slack_in(slack, OPS), discord_in(api, DISCORD_OPS)):
            assert len(posted) == 2
            assert "restart n8n rumpleprod" in posted[1] and "succeeded" in posted[1]
            assert "console:bob" in posted[1]  # who approved it
        lock = await say(e, "console:carol", "lock prod release freeze")
        assert lock.ok
        assert "frozen" in slack_in(slack, OPS)[-1] and "frozen" in discord_in(api, DISCORD_OPS)[-1]
        denied = await say(e, "console:alice", "restart nginx on prod")  # frozen: refused up front
        assert not denied.ok and len(slack_in(slack, OPS)) == 3  # a refusal before any card: no notice
        # Changes elsewhere (rumpledev has no ops channel) post nothing.
        assert (await say(e, "console:alice", "restart n8n on dev")).ok
        assert len(slack_in(slack, OPS)) == 3 and len(discord_in(api, DISCORD_OPS)) == 3
        assert api.problems == []
    finally:
        await discord_side.close()
        await e.close()


async def test_events_are_chosen_per_platform(config: Config, db: Database, slack: FakeSlack, api: FakeDiscord) -> None:
    rec = Recorder()
    notify = {"slack": {"channel": OPS, "events": ["approvals"]}, "discord": DISCORD_OPS, "events": ["outcomes"]}
    e, discord_side = await running(config, db, slack, api, rec, notify)
    try:
        pending = await say(e, "console:alice", "restart n8n on prod")
        assert len(slack_in(slack, OPS)) == 1 and discord_in(api, DISCORD_OPS) == []
        await e.act("deny", pending.request_id or "", Actor("console:bob"), reason="not now")
        await e.notify.drain()
        assert len(slack_in(slack, OPS)) == 1  # Slack takes approvals only
        (outcome,) = discord_in(api, DISCORD_OPS)
        assert "denied" in outcome and "not now" in outcome
    finally:
        await discord_side.close()
        await e.close()


async def test_a_platform_that_fails_never_fails_the_request(config: Config, db: Database, slack: FakeSlack,
                                                             api: FakeDiscord) -> None:
    rec = Recorder()
    slack.channel_errors[OPS] = "channel_not_found"
    e, discord_side = await running(config, db, slack, api, rec, {"slack": OPS, "discord": DISCORD_OPS})
    try:
        pending = await say(e, "console:alice", "restart n8n on prod")
        assert pending.tone is Tone.pending  # the card was still made and stands in the audit log
        assert len(discord_in(api, DISCORD_OPS)) == 1
        assert (await e.act("approve", pending.request_id or "", Actor("console:bob"))).ok
        assert len(rec.runs) == 1
    finally:
        await discord_side.close()
        await e.close()


async def test_a_request_nobody_decided_expires_on_its_own_and_the_ops_channel_hears_of_it(
        config: Config, db: Database, slack: FakeSlack, api: FakeDiscord) -> None:
    rec = Recorder()
    e, discord_side = await running(config, db, slack, api, rec, {"slack": OPS, "discord": DISCORD_OPS})
    try:
        pending = await say(e, "console:alice", "restart n8n on prod")
        rid = pending.request_id or ""
        assert await e.expire_due() == []  # not due yet: nothing moves, nothing is posted
        expired = await e.expire_due(now=utcnow() + timedelta(hours=2))
        await e.notify.drain()
        assert [r.id for r in expired] == [rid] and rec.runs == []
        row = e.store.get(rid)
        assert row is not None and row.status == "expired"
        for posted in (slack_in(slack, OPS), discord_in(api, DISCORD_OPS)):
            assert len(posted) == 2 and rid in posted[1] and "expired" in posted[1] and "console:alice" in posted[1]
        late = await e.act("approve", rid, Actor("console:bob"))
        assert "already expired" in late.text and rec.runs == []  # a click after the expiry runs nothing
    finally:
        await discord_side.close()
