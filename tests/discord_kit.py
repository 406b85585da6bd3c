"""Shared pieces for the Discord tests: recorded payloads, a test registry, bot start-up.

Payloads in tests/data/discord are Discord gateway JSON (INTERACTION_CREATE and
MESSAGE_CREATE `d` objects); they reach the bot through discord.py's own
ConnectionState parsers, exactly as the gateway would deliver them.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from pathlib import Path
from typing import Any

import discord

from bot.adapters.discord import DiscordBot
from bot.engine import Engine
from bot.request import Attachment, Reply, Table, Tone
from commands.context import Context
from commands.registry import Arg, Kind, Registry, command
from infra.config import Channel, Config, Role
from tests.fakes.discord_api import FakeDiscord

DATA = Path(__file__).resolve().parent / "data" / "discord"
GUILD = 444444444444444444
CHANNEL = "555555555555555555"
THREAD = "666666666666666666"
ALICE = {"id": "111111111111111111", "username": "alice", "discriminator": "0", "global_name": "Alice",
         "avatar": None, "public_flags": 0}
BOB = {"id": "222222222222222222", "username": "bob", "discriminator": "0", "global_name": "Bob",
       "avatar": None, "public_flags": 0}
CAROL = {"id": "333333333333333333", "username": "carol", "discriminator": "0", "global_name": "Carol",
         "avatar": None, "public_flags": 0}
_ids = itertools.count(1_320_000_000_000_000_000)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def discord_config(config: Config) -> Config:
    """The shipped inventory plus Discord identities and a channel default."""
    users = dict(config.inventory.users)
    users[f"discord:{ALICE['id']}"] = [Role.operator, Role.approver]
    users[f"discord:{BOB['id']}"] = [Role.operator, Role.approver]
    channels = dict(config.inventory.channels)
    channels[f"discord:{CHANNEL}"] = Channel(default_env="rumpletest")
    inv = config.inventory.model_copy(update={"users": users, "channels": channels})
    return Config(inventory=inv, path=config.path, settings=config.settings)


def make_registry(out: Path) -> Registry:
    """A registry whose changing command writes a line to `out` (a real, countable effect)."""
    reg = Registry()

    @command("touch", summary="append a line to the test file", changes=True, backend="test",
             args=(Arg("env", Kind.env, help="environment"),
                   Arg("note", Kind.word, required=False, positional=False, help="what to write")),
             registry=reg)
    async def touch(ctx: Context, args: dict[str, Any]) -> Reply:
        await ctx.progress(f"writing to {args['env']}")
        with out.open("a") as f:
            f.write(f"{args['env']} {args.get('note') or '-'} {ctx.request_id}\n")
        await ctx.progress("written")
        return Reply(f"Touched {args['env']}.", tone=Tone.success)

    @command("report", summary="a long report with a chart", registry=reg,
             args=(Arg("rows", Kind.integer, required=False, positional=False, default=5, minimum=1,
                       maximum=5000, help="table rows"),))
    async def report(ctx: Context, args: dict[str, Any]) -> Reply:
        rows = [[f"gpu{i}", f"{i % 100}%", f"{(i * 7) % 80} GiB"] for i in range(args["rows"])]
        return Reply("GPU report. " + "x" * 5000, title="report", tables=[Table(["gpu", "util", "mem"], rows)],
                     attachments=[Attachment("chart.png", PNG, "image/png", "GPU chart")])

    @command("approve", summary="approve a pending request", args=(Arg("request", Kind.request),),
             changes=True, role="approver", confirm=False, approval=False, registry=reg)
    async def approve(ctx: Context, args: dict[str, Any]) -> Reply:
        return await ctx.engine.act("approve", args["request"], ctx.actor, req=ctx.request)

    @command("whoami", summary="who is asking", registry=reg)
    async def whoami(ctx: Context, args: dict[str, Any]) -> Reply:
        return Reply(f"You are {ctx.actor.id}.", fields=[("Roles", ", ".join(sorted(ctx.roles)))])

    return reg


def payload(name: str, **changes: Any) -> dict[str, Any]:
    """A recorded payload with a fresh id and token (each interaction is unique)."""
    data = copy.deepcopy(json.loads((DATA / name).read_text()))
    n = next(_ids)
    data["id"] = str(n)
    if "token" in data:
        data["token"] = f"tok-{n}"
    data.update(changes)
    return data


def slash(sub: str, options: dict[str, Any], user: dict[str, Any] = ALICE,
          base: str = "slash_deploy.json") -> dict[str, Any]:
    p = payload(base)
    p["member"]["user"] = user
    p["data"]["options"] = [{"name": sub, "type": 1, "options": [
        {"name": k, "type": 4 if isinstance(v, int) else 3, "value": v} for k, v in options.items()]}]
    return p


def click(api: FakeDiscord, message_id: str, custom_id: str, user: dict[str, Any]) -> dict[str, Any]:
    """A component interaction on a message the stand-in holds (as Discord would send it)."""
    p = payload("button_click.json")
    p["member"]["user"] = user
    p["data"]["custom_id"] = custom_id
    msg = copy.deepcopy(api.messages[message_id])
    p["message"] = msg
    p["channel_id"] = msg["channel_id"]
    return p


def buttons(msg: dict[str, Any]) -> dict[str, str]:
    """label → custom_id of a stored message's buttons."""
    return {b["label"]: b["custom_id"] for row in msg.get("components") or [] for b in row["components"]}


async def start_bot(engine: Engine, api: FakeDiscord) -> DiscordBot:
    """Log a bot in against the stand-in (the caller points discord.http.Route.BASE at `api.base`)."""
    assert api.base == discord.http.Route.BASE, "point discord.http.Route.BASE at the stand-in first"
    bot = DiscordBot(engine, guild_id=GUILD)
    await bot.login("test-token")
    return bot


def deliver(bot: DiscordBot, api: FakeDiscord, data: dict[str, Any]) -> None:
    api.interaction(data)
    bot._connection.parse_interaction_create(data)  # type: ignore[arg-type]


_WORK = ("CommandTree-invoker", "discord-ui-dynamic-item", "discord-ui-view-dispatch", "discord.py: ")


async def settle() -> None:
    """Wait for the tasks discord.py started for delivered events (commands, clicks, messages)."""
    me = asyncio.current_task()
    for _ in range(50):
        tasks = [t for t in asyncio.all_tasks() if t is not me and not t.done()
                 and t.get_name().startswith(_WORK)]
        if not tasks:
            return
        await asyncio.wait(tasks, timeout=30)
    raise AssertionError("discord.py tasks did not finish")
