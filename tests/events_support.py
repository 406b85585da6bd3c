"""Shared pieces for the event tests (API, alerts, schedules, notifications, scoped roles).

The commands that would reach Docker are swapped for recorders that write what ran (command,
arguments, who, request id) to a list, so "ran once, as alice, with these arguments" is
counted, not inferred.  Everything around them is real: the engine, PostgreSQL, the HTTP API
server, slack_sdk and discord.py talking to the stand-ins in tests/fakes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from bot.adapters.slack import SlackBot, SlackPoster, start_http
from bot.engine import Engine
from bot.http_api import ApiServer
from bot.http_api import start as start_api
from bot.request import Reply, Tone
from commands.context import Context
from commands.registry import Registry
from commands.registry import registry as load_registry
from infra.api_tokens import token_hash
from infra.clock import Clock
from infra.config import ApiToken, Channel, Config, Environment, Grant, Notify, Role, Settings
from infra.db.store import AuditStore, Database
from tests.ops_support import docker_backends

SIGNING_SECRET = "e1f0c0ffee0ddba11deadbeef0ddf00d"
OPS = "COPSPROD"            # Slack ops channel of rumpleprod
DEV = "CDEV"                # a Slack channel whose default env is rumpledev
DISCORD_OPS = "777777777777777777"
TOKENS = {"n8n": "chatops_n8n-test-token-0123456789abcdefghij",
          "viewer": "chatops_viewer-test-token-0123456789abcdefg",
          "devonly": "chatops_devonly-test-token-0123456789abcdef",
          "admin": "chatops_admin-test-token-0123456789abcdefghi",
          "alertmanager": "chatops_am-test-token-0123456789abcdefghijk"}
RECORDED = ("restart", "logs", "status", "deploy", "stop", "start")


@dataclass
class Ran:
    command: str
    args: dict[str, Any]
    actor: str
    request_id: str


@dataclass
class Recorder:
    """The swapped handlers: each run is appended; `gate` can hold runs open."""

    runs: list[Ran] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    def handler(self, name: str) -> Any:
        async def run(ctx: Context, args: dict[str, Any]) -> Reply:
            await ctx.progress(f"{name} running")
            await self.gate.wait()
            self.runs.append(Ran(name, dict(args), ctx.actor.id, ctx.request_id))
            what = args.get("service") or args.get("stack") or ""
            return Reply(f"{name} {what} on {args.get('env')} done", tone=Tone.success)
        return run

    def of(self, command: str) -> list[Ran]:
        return [r for r in self.runs if r.command == command]


def recording_registry(rec: Recorder, names: tuple[str, ...] = RECORDED) -> Registry:
    reg = Registry()
    for spec in load_registry():
        reg.add(dataclasses.replace(spec, handler=rec.handler(spec.name)) if spec.name in names else spec)
    return reg


def events_config(config: Config, *, slack_url: str = "", notify: dict[str, Any] | None = None,
                  users: dict[str, Any] | None = None, channels: dict[str, Channel] | None = None,
                  **sections: Any) -> Config:
    """The shipped inventory with chat identities, API tokens and rumpleprod's ops channels."""
    inv = config.inventory
    all_users: dict[str, Any] = {
        **inv.users,
        "slack:UALICE": [Role.operator], "slack:UBOB": [Role.operator, Role.approver],
        "slack:UCAROL": [Role.admin], "slack:UVIEW": [Role.viewer],
        "discord:111111111111111111": [Role.operator], "discord:222222222222222222": [Role.operator, Role.approver],
        **(users or {})}
    tokens = {"n8n": ApiToken(hash=token_hash(TOKENS["n8n"]), roles=[Role.operator]),
              "viewer": ApiToken(hash=token_hash(TOKENS["viewer"]), roles=[Role.viewer]),
              "devonly": ApiToken(hash=token_hash(TOKENS["devonly"]), roles=[Role.operator], envs=["rumpledev"]),
              "admin": ApiToken(hash=token_hash(TOKENS["admin"]), roles=[Role.admin]),
              "alertmanager": ApiToken(hash=token_hash(TOKENS["alertmanager"]), roles=[Role.viewer])}
    envs: dict[str, Environment] = dict(inv.environments)
    prod_notify = Notify.model_validate(notify if notify is not None else {"slack": OPS, "discord": DISCORD_OPS})
    envs["rumpleprod"] = envs["rumpleprod"].model_copy(update={"notify": prod_notify})
    update: dict[str, Any] = {"users": all_users, "api_tokens": tokens, "environments": envs,
                              "channels": channels if channels is not None else
                              {f"slack:{DEV}": Channel(default_env="rumpledev")}, **sections}
    settings = Settings(SLACK_BOT_TOKEN="xoxb-test-token", SLACK_SIGNING_SECRET=SIGNING_SECRET,
                        SLACK_API_URL=slack_url or None)
    return dataclasses.replace(config, inventory=inv.model_copy(update=update), settings=settings)


def scoped(roles: list[Role], envs: list[str]) -> Grant:
    return Grant(roles=roles, envs=envs)


def engine_for(config: Config, db: Database, registry: Registry, clock: Clock | None = None) -> Engine:
    return Engine(config, AuditStore(db), docker_backends(config), registry=registry, clock=clock)


# -- a running bot: engine + Slack (Bolt over HTTP) + the API server ---------------------------

class Stack:
    """One bot process as `chatops serve slack api` would run it, against the stand-ins."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.slack: SlackBot | None = None
        self.runners: list[web.AppRunner] = []
        self.api = ApiServer(engine)
        self.api_url = ""
        self.slack_url = ""

    async def start(self, slack: bool = True) -> Stack:
        await self.engine.start()
        if slack:
            self.slack = SlackBot(self.engine, self.engine.config.settings, progress_interval=0)
            self.engine.notify.register(SlackPoster(self.slack.client))
            runner, port = await start_http(self.slack, "127.0.0.1", 0)
            self.runners.append(runner)
            self.slack_url = f"http://127.0.0.1:{port}/slack/events"
        runner, port = await start_api(self.api, "127.0.0.1", 0)
        self.runners.append(runner)
        self.api_url = f"http://127.0.0.1:{port}"
        return self

    async def settle(self) -> None:
        """Wait for acked Slack work, API requests still running, and notifications in flight."""
        for _ in range(3):
            if self.slack is not None:
                await self.slack.drain()
            await self.api.drain()
            await self.engine.notify.drain()

    async def stop(self) -> None:
        await self.settle()
        for runner in self.runners:
            await runner.cleanup()
        await self.engine.close()

    # -- the HTTP API, as n8n would call it ---------------------------------------------------
    async def call(self, method: str, path: str, *, token: str | None = TOKENS["n8n"], body: Any = None,
                   raw: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        async with aiohttp.ClientSession() as s, s.request(method, self.api_url + path, data=data,
                                                           headers=hdrs) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except json.JSONDecodeError:
                return r.status, text

    # -- Slack, as the platform would call the bot -------------------------------------------
    async def slack_click(self, user: str, button: dict[str, Any], *, channel: str, message: dict[str, Any] | None,
                          message_ts: str, ephemeral: bool = False, thread_ts: str | None = None) -> int:
        payload = {"type": "block_actions", "team": {"id": "T0TEST", "domain": "fake"},
                   "user": {"id": user, "username": user.lower(), "team_id": "T0TEST"},
                   "api_app_id": "A1", "token": "legacy", "trigger_id": uuid.uuid4().hex,
                   "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                                 "is_ephemeral": ephemeral, **({"thread_ts": thread_ts} if thread_ts else {})},
                   "channel": {"id": channel, "name": "ops"},
                   "actions": [{"type": "button", "action_id": button["action_id"], "block_id": "b",
                                "value": button["value"], "text": button["text"], "action_ts": str(time.time())}]}
        if message is not None:
            payload["message"] = {"type": "message", "ts": message_ts, "user": "UBOT", "bot_id": "BBOT",
                                  "text": message.get("text", ""), "blocks": blocks_of(message)}
        body = urlencode({"payload": json.dumps(payload)})
        ts = int(time.time())
        sig = "v0=" + hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
        async with aiohttp.ClientSession() as s, s.post(self.slack_url, data=body.encode(), headers={
                "Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": str(ts),
                "X-Slack-Signature": sig}) as r:
            return r.status


def blocks_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = message.get("blocks") or []
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


def slack_buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """label → button element of a Slack message's actions blocks."""
    return {e["text"]["text"]: e for b in blocks_of(message) if b["type"] == "actions" for e in b["elements"]}


def slack_text(message: dict[str, Any]) -> str:
    return json.dumps(blocks_of(message)) + (message.get("text") or "")
