"""The Discord adapter end to end over loopback: recorded gateway payloads in, the real
discord.py HTTP client out to a Discord REST stand-in, the real engine and PostgreSQL between."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import discord
import pytest
from discord import app_commands

from bot.adapters.discord import DiscordBot, message_request, serve
from bot.app import App
from bot.engine import Engine
from commands.registry import registry as default_registry
from infra.config import Config, Settings, load_config
from infra.db.common import AuditFilter
from infra.db.models import RequestRow
from infra.db.store import Database
from tests.conftest import ROOT, make_engine
from tests.discord_kit import (
    ALICE,
    CAROL,
    CHANNEL,
    THREAD,
    deliver,
    discord_config,
    make_registry,
    payload,
    settle,
    slash,
    start_bot,
)
from tests.fakes.discord_api import BOT_ID, FakeDiscord, command_problems


@pytest.fixture
def dconfig(config: Config) -> Config:
    return discord_config(config)


@pytest.fixture
async def default_bot(dconfig: Config, db: Database, api: FakeDiscord) -> AsyncIterator[DiscordBot]:
    engine = make_engine(dconfig, db, registry=default_registry())
    await engine.start()
    bot = await start_bot(engine, api)
    yield bot
    await bot.close()
    await engine.close()


@pytest.fixture
async def test_bot(dconfig: Config, db: Database, api: FakeDiscord, tmp_path: Path) -> AsyncIterator[DiscordBot]:
    engine = make_engine(dconfig, db, registry=make_registry(tmp_path / "touched"))
    await engine.start()
    bot = await start_bot(engine, api)
    yield bot
    await bot.close()
    await engine.close()


def rows(engine: Engine) -> list[RequestRow]:
    return list(reversed(engine.store.query(AuditFilter(limit=1000))))


def original_edits(api: FakeDiscord, token: str) -> list[Any]:
    return [c for c in api.of("edit") if f"/{token}/messages/@original" in c.path]


# -- start-up: login and command sync --------------------------------------------------

async def test_login_syncs_ops_to_the_guild_with_valid_options(default_bot: DiscordBot, api: FakeDiscord) -> None:
    put = api.of("commands")
    assert len(put) == 1 and put[0].path.endswith("/guilds/444444444444444444/commands")
    body = put[0].body
    assert isinstance(body, list) and command_problems(body) == [] and api.problems == []
    (ops,) = body
    subs = {o["name"]: o for o in ops["options"]}
    more = {o["name"]: o for o in subs.get("more", {}).get("options", [])}
    typed = (set(subs) - {"more"}) | set(more)
    assert typed == {"ask", *(s.name for s in default_registry() if s.slash)}  # none cut off by the limit
    assert len(subs) <= 25 and len(more) <= 25 and {"pending", "cancel", "logs", "deploy"} <= set(subs)
    deploy = {o["name"]: o for o in subs["deploy"]["options"]}
    assert [o["name"] for o in subs["deploy"]["options"]] == ["stack", "env", "ref"]
    assert deploy["stack"]["required"] and deploy["stack"]["autocomplete"]
    assert deploy["env"]["required"] and deploy["env"]["type"] == 3
    assert deploy["ref"]["required"] is False and deploy["ref"]["description"] == "git ref of compose/ to deploy"
    audit = {o["name"]: o for o in subs["audit"]["options"]}
    assert audit["limit"]["type"] == 4 and (audit["limit"]["min_value"], audit["limit"]["max_value"]) == (1, 500)
    assert "failed" in {c["value"] for c in audit["status"]["choices"]}
    assert subs["ask"]["options"][0]["name"] == "text" and subs["ask"]["options"][0]["required"]
    assert default_bot.intents.message_content is False


# -- slash commands → Requests ---------------------------------------------------------

async def test_typed_slash_command_becomes_a_structured_request(default_bot: DiscordBot, api: FakeDiscord) -> None:
    data = payload("slash_deploy.json")
    deliver(default_bot, api, data)
    await settle()
    (cb,) = [c for c in api.of("callback") if data["token"] in c.path]
    assert cb.body == {"type": 5, "data": {"flags": 64}}  # deferred at once, privately (a change)
    (row,) = rows(default_bot.engine)
    assert (row.actor, row.platform, row.channel, row.thread) == (
        f"discord:{ALICE['id']}", "discord", f"discord:{CHANNEL}", None)
    assert row.command == "deploy" and row.args == {"stack": "chat", "env": "rumpletest", "ref": "v1.4.2"}
    assert row.source == "slash" and row.text == "/ops deploy stack=chat env=test ref=v1.4.2"
    # No Docker host is configured for rumpletest: the refusal replaces the "thinking" message.
    assert row.status == "refused"
    final = original_edits(api, data["token"])[-1].body
    assert final["embeds"][0]["color"] == 0xED4245 and "rumpletest" in final["embeds"][0]["description"]
    assert api.problems == []


async def test_plain_language_in_a_thread_uses_the_parent_channel(default_bot: DiscordBot, api: FakeDiscord) -> None:
    data = payload("slash_ask_thread.json")
    deliver(default_bot, api, data)
    await settle()
    (cb,) = [c for c in api.of("callback") if data["token"] in c.path]
    assert cb.body["type"] == 5 and not (cb.body.get("data") or {}).get("flags")  # a read: public
    (row,) = rows(default_bot.engine)
    assert (row.channel, row.thread, row.command, row.text) == (f"discord:{CHANNEL}", THREAD, "whoami", "whoami")
    embed = original_edits(api, data["token"])[-1].body["embeds"][0]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Identity"] == f"discord:{ALICE['id']}" and fields["Roles"] == "approver, operator, viewer"
    assert fields["Channel default environment"] == "rumpletest"
    assert embed["footer"]["text"] == f"request {row.id}"


async def test_autocomplete_offers_inventory_names(default_bot: DiscordBot, api: FakeDiscord) -> None:
    data = payload("autocomplete_env.json")
    deliver(default_bot, api, data)
    await settle()
    (cb,) = [c for c in api.of("callback") if data["token"] in c.path]
    assert cb.body["type"] == 8
    values = [c["value"] for c in cb.body["data"]["choices"]]
    assert values[0] == "rumpleprod"
    assert "phoenix" not in values  # the chat stack does not run there
    assert rows(default_bot.engine) == []  # suggestions are not requests


async def test_slash_options_are_validated_by_the_engine(default_bot: DiscordBot, api: FakeDiscord) -> None:
    data = slash("restart", {"service": "n8n", "env": "narnia"})
    deliver(default_bot, api, data)
    await settle()
    text = original_edits(api, data["token"])[-1].body["embeds"][0]["description"]
    assert "narnia" in text and "rumpletest" in text  # names the unknown value and the choices
    assert api.problems == []


# -- mentions → Requests ----------------------------------------------------------------

async def test_mention_becomes_a_request_and_is_answered_in_a_reply(default_bot: DiscordBot,
                                                                    api: FakeDiscord) -> None:
    data = payload("message_mention.json")
    default_bot._connection.parse_message_create(data)  # type: ignore[arg-type]
    await settle()
    (row,) = rows(default_bot.engine)
    assert (row.actor, row.channel, row.text, row.command) == (f"discord:{ALICE['id']}", f"discord:{CHANNEL}",
                                                                "whoami", "whoami")
    (sent,) = api.of("send")
    assert sent.path == f"/api/v10/channels/{CHANNEL}/messages"
    assert str(sent.body["message_reference"]["message_id"]) == data["id"]
    assert sent.body["allowed_mentions"] == {"parse": [], "users": [], "replied_user": False}
    assert f"discord:{ALICE['id']}" in sent.body["embeds"][0]["description"]
    assert api.of("typing")


async def test_messages_without_a_mention_are_ignored(default_bot: DiscordBot, api: FakeDiscord) -> None:
    default_bot._connection.parse_message_create(payload("message_plain.json"))  # type: ignore[arg-type]
    own = payload("message_mention.json")
    own["author"] = {"id": BOT_ID, "username": "chatops", "discriminator": "0", "bot": True, "avatar": None}
    default_bot._connection.parse_message_create(own)  # type: ignore[arg-type]
    await settle()
    assert rows(default_bot.engine) == [] and api.of("send") == []


def test_message_request_strips_both_mention_forms(default_bot: DiscordBot) -> None:
    data = payload("message_mention.json", content=f"<@!{BOT_ID}>  restart n8n <@{BOT_ID}> on dev")
    msg = discord.Message(state=default_bot._connection, channel=discord.Object(int(CHANNEL)),  # type: ignore[arg-type]
                          data=data)  # type: ignore[arg-type]
    assert default_bot.user is not None
    req = message_request(msg, default_bot.user)
    assert req is not None and req.text == "restart n8n on dev"
    data["author"] = CAROL
    other = discord.Message(state=default_bot._connection, channel=discord.Object(int(CHANNEL)),  # type: ignore[arg-type]
                            data=data)  # type: ignore[arg-type]
    req2 = message_request(other, default_bot.user)
    assert req2 is not None and req2.actor.id == f"discord:{CAROL['id']}"


# -- rendering through the real HTTP client ----------------------------------------------

async def test_long_output_and_chart_go_as_attachments(test_bot: DiscordBot, api: FakeDiscord) -> None:
    data = slash("report", {"rows": 400})
    deliver(test_bot, api, data)
    await settle()
    final = original_edits(api, data["token"])[-1]
    names = [n for n, _ in final.files]
    assert "chart.png" in names and "reply.txt" in names and any(n.startswith("table") for n in names)
    files = dict(final.files)
    assert files["chart.png"].startswith(b"\x89PNG")
    assert b"gpu399" in next(v for n, v in final.files if n.startswith("table"))
    assert len(files["reply.txt"]) > 5000
    embed = final.body["embeds"][0]
    assert embed["image"]["url"] == "attachment://chart.png"
    assert api.problems == []


# -- serve(): the entry point `chatops serve discord` calls ------------------------------

def _app(config: Config, db: Database, engine: Engine, **settings: str) -> App:
    cfg = Config(inventory=config.inventory, path=config.path, settings=Settings(**settings))  # type: ignore[arg-type]
    return App(cfg, db, engine)


async def test_serve_without_a_token_says_what_to_set(dconfig: Config, db: Database, engine: Engine) -> None:
    with pytest.raises(SystemExit, match="DISCORD_TOKEN is not set"):
        await serve(_app(dconfig, db, engine), http=False, port=0, stop=asyncio.Event())


async def test_serve_rejects_a_bad_guild_id(dconfig: Config, db: Database, engine: Engine) -> None:
    app = _app(dconfig, db, engine, DISCORD_TOKEN="test-token", DISCORD_GUILD_ID="ops-server")
    with pytest.raises(SystemExit, match="numeric id, not 'ops-server'"):
        await serve(app, http=False, port=0, stop=asyncio.Event())


async def test_serve_reports_a_refused_token(dconfig: Config, db: Database, engine: Engine,
                                             api: FakeDiscord) -> None:
    app = _app(dconfig, db, engine, DISCORD_TOKEN="wrong-token", DISCORD_GUILD_ID="444444444444444444")
    with pytest.raises(SystemExit, match="Discord refused DISCORD_TOKEN"):
        await serve(app, http=False, port=0, stop=asyncio.Event())
    assert [c.route for c in api.calls] == ["me"]  # nothing synced with a refused token


async def test_a_stale_subcommand_gets_a_clear_private_answer(default_bot: DiscordBot, api: FakeDiscord) -> None:
    data = slash("reboot-everything", {"env": "prod"})  # an old client's command list
    deliver(default_bot, api, data)
    await settle()
    (cb,) = [c for c in api.of("callback") if data["token"] in c.path]
    assert cb.body["type"] == 4 and cb.body["data"]["flags"] & 64
    assert "'reboot-everything'" in cb.body["data"]["content"] and "/ops ask" in cb.body["data"]["content"]
    assert rows(default_bot.engine) == []


def test_commands_past_discords_limit_go_one_level_down_not_missing() -> None:
    """Discord takes 25 options per level: the 26th command is `/ops more NAME`, never dropped."""
    from typing import cast

    from bot.adapters.discord_slash import MAX_SUBCOMMANDS, Source, Suggestions, all_subcommands, ops_group
    from commands.registry import Arg, Kind, Registry, command
    from llm.resolve import Resolver

    reg = Registry()
    for n in range(30):
        async def handler(ctx: Any, args: dict[str, Any]) -> Any:
            return None
        command(f"cmd{n:02d}", summary=f"command {n}", args=(Arg("env", Kind.env),), registry=reg)(handler)

    async def noop(*_: Any) -> None:
        return None

    config = load_config(ROOT / "chatops.yaml")
    source = cast(Source, SimpleNamespace(resolver=Resolver(config), registry=reg, store=None))
    group = ops_group(reg, noop, Suggestions(source))
    tree = app_commands.CommandTree(discord.Client(intents=discord.Intents.none()))
    payload = group.to_dict(tree)  # what discord.py sends when it syncs the tree
    assert len(payload["options"]) <= MAX_SUBCOMMANDS
    more = next(o for o in payload["options"] if o["name"] == "more")
    assert len(more["options"]) <= MAX_SUBCOMMANDS
    names = sorted(c.name for c in all_subcommands(group))
    assert names == sorted(["ask", *(f"cmd{n:02d}" for n in range(30))])
