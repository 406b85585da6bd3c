"""`chatops serve … api`: the API adapter, the schedule loop and the ops-channel posters in one
process, started and stopped the way the CLI does it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
from click.testing import CliRunner

from bot.adapters.slack import poster as slack_poster
from bot.app import App
from bot.cli import _adapter, main
from bot.request import Actor, Request
from bot.serve import serve_app
from infra.clock import ManualClock
from infra.config import Config, Schedules
from infra.db.store import Database
from tests.events_support import DEV, TOKENS, Recorder, engine_for, events_config, recording_registry, slack_text
from tests.fakes.prometheus_server import free_port
from tests.fakes.slack_api import FakeSlack
from tests.test_schedules import NOON


async def test_serve_api_runs_schedules_and_posts_without_the_slack_adapter(config: Config, db: Database) -> None:
    slack = FakeSlack()
    await slack.start()
    rec = Recorder()
    clock = ManualClock(NOON)
    cfg = events_config(config, slack_url=f"{slack.base}/api/", schedules=Schedules(tick_seconds=0.05))
    engine = engine_for(cfg, db, recording_registry(rec), clock)
    app = App(cfg, db, engine)
    port = free_port()
    stop = asyncio.Event()
    poster = slack_poster(cfg.settings)
    assert poster is not None
    serving = asyncio.create_task(serve_app(app, [("api", _adapter("api", port, "127.0.0.1"))], metrics=None,
                                            signals=False, stop=stop, posters=[poster]))
    try:
        url = f"http://127.0.0.1:{port}/api/v1/requests"
        body: dict[str, Any] = {}
        for _ in range(100):  # the adapter binds after start-up
            try:
                async with aiohttp.ClientSession() as s, s.post(url, json={"text": "status dev"}, headers={
                        "Authorization": f"Bearer {TOKENS['n8n']}"}) as r:
                    body = await r.json()
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        assert body.get("status") == "succeeded", body
        made = await engine.handle(Request(actor=Actor("slack:UALICE"), text="restart n8n on dev at 12:01 today",
                                           platform="slack", channel=f"slack:{DEV}", confirmed=True))
        assert made.ok and made.title.startswith("Scheduled")
        clock.set(NOON + timedelta(minutes=1, seconds=1))  # the loop (every 0.05 s here) takes it
        await slack.wait_for(lambda f: [m for m in f.of("chat.postMessage") if m["channel"] == DEV])
        assert [r.command for r in rec.runs] == ["status", "restart"]
        said = [m for m in slack.of("chat.postMessage") if m["channel"] == DEV][-1]
        assert "restart n8n on rumpledev done" in slack_text(said)
    finally:
        stop.set()
        await asyncio.wait_for(serving, 30)
        await slack.stop()


def test_serve_names_api_and_refuses_a_port_both_want() -> None:
    none = CliRunner().invoke(main, ["serve"], env={"CHATOPS_ADAPTERS": ""})
    assert none.exit_code == 2 and "slack discord api" in none.output
    clash = CliRunner().invoke(main, ["serve", "slack", "api", "--http", "--port", "3000", "--api-port", "3000"])
    assert clash.exit_code == 2 and "--api-port" in clash.output
