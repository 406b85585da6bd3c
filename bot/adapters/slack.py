"""The Slack adapter: a slack-bolt async app in front of the engine.

It converts at the edge and nothing more: a slash command, a mention, a direct message
or a thread follow-up becomes one `Request`; the engine's `Reply` becomes Block Kit
(bot.render.slack).  Every listener acks at once and does the work in a tracked
background task, because Slack retries (and shows an error) after 3 seconds.

Approval state lives in the audit database, and a button carries the request id and
plan hash (`Button.value`), so a click still works after the bot restarts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from slack_bolt.app.async_server import AsyncSlackAppServer
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.adapters import slack_body
from bot.adapters.bounds import BUSY_TEXT, InFlight
from bot.engine import Engine
from bot.render.slack import ACTION_PREFIX, SlackMessage, escape, mention, render, render_progress
from bot.request import Action, Actor, Reply, Request, Tone
from infra.config import ConfigError, Settings
from infra.status import Status

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger("chatops.slack")

PLATFORM = "slack"
EVENTS_PATH = "/slack/events"
ACTIONS = tuple(Action)
_ACTION_ID = re.compile(rf"^{ACTION_PREFIX}({'|'.join(ACTIONS)})(?:\.\d+)?$")
# Posting into a channel the bot is not a member of fails with these; a slash command
# can still answer through its response_url.
_NOT_THERE = ("not_in_channel", "channel_not_found", "is_archived")
_OUTCOME = {a.value: a.past.capitalize() for a in Action}
# Message events that are a person's new message: plain, "also send to #channel" from a thread, with a
# file attached, /me. Edits (message_changed), deletions and joins are not requests.
NEW_MESSAGE_SUBTYPES = frozenset({None, "thread_broadcast", "file_share", "me_message"})


def plain_text(text: str, bot_user: str | None = None) -> str:
    """Slack's message markup back to what the user typed: no bot mention, links unwrapped."""
    if bot_user:
        text = text.replace(f"<@{bot_user}>", " ")
    # another person's mention stays a mention ("@U123 can you restart redis" is addressed to them)
    text = re.sub(r"<@([A-Z0-9]+)(?:\|[^<>]*)?>", r"@\1", text)
    text = re.sub(r"<(?:[^<>|]+)\|([^<>]+)>", r"\1", text)  # <url|label>, <#C1|chan>
    text = re.sub(r"<(?:mailto:)?([^<>@#!][^<>]*)>", r"\1", text)  # <url>
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(text.split())


@dataclass
class Where:
    """Where an answer goes: a channel, the user it is for, a thread, a slash response_url."""

    channel: str
    user: str
    thread_ts: str | None = None
    response_url: str | None = None

    @property
    def is_dm(self) -> bool:
        return self.channel.startswith("D")


class Live:
    """One Slack message that progress reports and then the final reply edit in place.

    It is created lazily: a request that reports no progress gets one plain post.
    """

    def __init__(self, bot: SlackBot, where: Where, *, ts: str | None = None,
                 keep: list[dict[str, Any]] | None = None, note: str | None = None,
                 asked: str | None = None) -> None:
        self.bot = bot
        self.where = where
        self.ts = ts
        self.keep = keep
        self.note = note
        self.asked = asked
        self.lines: list[str] = []
        self._last = 0.0
        self._uneditable = False

    async def progress(self, reply: Reply) -> None:
        """The engine's progress sink: never lets a Slack error stop the handler."""
        self.lines.append(reply.text)
        loop = asyncio.get_running_loop()
        if self._uneditable or (self.ts is not None and loop.time() - self._last < self.bot.progress_interval):
            return
        self._last = loop.time()
        msg = render_progress(self.lines, request_id=reply.request_id, keep=self.keep, note=self.note,
                              asked=self.asked)
        try:
            if self.ts is None:
                self.ts = await self.bot.post(self.where, msg)
                # Answered through a response_url (bot not in the channel): nothing to edit, and
                # a response_url takes only five posts, so the final answer waits for the end.
                self._uneditable = self.ts is None
            else:
                await self.bot.update(self.where.channel, self.ts, msg)
        except SlackApiError as exc:
            log.warning("progress update failed: %s", exc.response.get("error"))

    async def finish(self, reply: Reply) -> None:
        msg = render(reply, keep=self.keep, note=self.note, asked=self.asked)
        private = (reply.private or (self.bot.slash_quiet and reply.tone is Tone.question and self.asked)) \
            and not self.where.is_dm
        if private:
            await self.bot.ephemeral(self.where, msg)
            return
        if self.ts is not None:
            await self.bot.update(self.where.channel, self.ts, msg)
        else:
            self.ts = await self.bot.post(self.where, msg)
        await self.bot.upload(self.where, msg, self.ts)
        await self.bot.notify(reply)


class SlackBot:
    """The Bolt app and its listeners, bound to one engine."""

    def __init__(self, engine: Engine, settings: Settings, *, http: bool = True,
                 progress_interval: float = 1.0) -> None:
        token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
        if not token:
            raise ConfigError("SLACK_BOT_TOKEN is not set: give the bot token (xoxb-…) of the Slack app "
                              "(docs/slack.md, step 4).")
        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
        if http and not secret:
            raise ConfigError("SLACK_SIGNING_SECRET is not set: HTTP mode checks every request's "
                              "signature with it (Basic Information → App Credentials).")
        base_url = settings.slack_api_url or AsyncWebClient.BASE_URL
        if not base_url.endswith("/"):
            base_url += "/"
        self.engine = engine
        self.client = AsyncWebClient(token=token, base_url=base_url)
        self.progress_interval = progress_interval
        self.slash_quiet = True
        self.bolt = AsyncApp(client=self.client, signing_secret=secret or "",
                             request_verification_enabled=http, ignoring_self_events_enabled=True)
        self._tasks: set[asyncio.Task[None]] = set()
        self.in_flight = InFlight(PLATFORM, lambda: engine.config.inventory.limits.max_in_flight)
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        self._holders: dict[str, tuple[str, str]] = {}
        # Threads the bot answered in, so follow-ups there need no mention (bounded, per process).
        self._threads: OrderedDict[tuple[str, str], None] = OrderedDict()
        # Event ids already taken: Slack redelivers an event it thinks was not acked.
        self._events: OrderedDict[str, None] = OrderedDict()
        self.bolt.command("/ops")(self._on_ops)
        self.bolt.event("app_mention")(self._on_mention)
        self.bolt.event("message")(self._on_message)
        self.bolt.action(re.compile(rf"^{ACTION_PREFIX}"))(self._on_action)

    # -- background work ---------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, None], busy: Where | None = None) -> bool:
        """Work on an acked request in a tracked task, within `limits.max_in_flight`.

        Beyond the bound the request is not started (so nothing is audited): whoever sent it
        (`busy`) is told privately to try again.  False when it was turned away.
        """
        if not self.in_flight.take():
            coro.close()
            if busy is not None:
                self._track(self.ephemeral(busy, render(Reply(BUSY_TEXT, tone=Tone.warning))), counted=False)
            return False
        self._track(coro, counted=True)
        return True

    def _track(self, coro: Coroutine[Any, Any, None], counted: bool) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, counted))

    def _done(self, task: asyncio.Task[None], counted: bool) -> None:
        self._tasks.discard(task)
        if counted:
            self.in_flight.done()
        if not task.cancelled() and task.exception() is not None:
            log.error("slack task failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for the work already acked (tests, and a clean shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- the Web API ---------------------------------------------------------
    async def post(self, where: Where, msg: SlackMessage) -> str | None:
        """chat.postMessage; a slash command in a channel the bot is not in answers via response_url."""
        try:
            resp = await self.client.chat_postMessage(channel=where.channel, thread_ts=where.thread_ts,
                                                      text=msg.text, blocks=msg.blocks, unfurl_links=False)
        except SlackApiError as exc:
            if exc.response.get("error") in _NOT_THERE and where.response_url:
                await AsyncWebhookClient(where.response_url).send(
                    text=msg.text, blocks=msg.blocks, response_type="in_channel")
                return None
            raise
        if where.thread_ts is None and not where.is_dm:
            self.remember_thread(where.channel, str(resp["ts"]))
        return str(resp["ts"])

    async def notify(self, reply: Reply) -> None:
        """Post a reply's notices for Slack places (the requester's thread hears a decision made elsewhere)."""
        for n in reply.relays:
            if n.platform != PLATFORM:
                continue
            try:
                await self.post(Where(n.where, "", n.thread), render(n.reply))
            except SlackApiError as exc:
                log.warning("could not tell %s about %s: %s", n.channel, n.reply.request_id,
                            exc.response.get("error"))

    async def update(self, channel: str, ts: str, msg: SlackMessage) -> None:
        await self.client.chat_update(channel=channel, ts=ts, text=msg.text, blocks=msg.blocks)

    async def ephemeral(self, where: Where, msg: SlackMessage) -> None:
        try:
            await self.client.chat_postEphemeral(channel=where.channel, user=where.user, text=msg.text,
                                                 blocks=msg.blocks, thread_ts=where.thread_ts)
        except SlackApiError as exc:
            if exc.response.get("error") in _NOT_THERE and where.response_url:
                await AsyncWebhookClient(where.response_url).send(
                    text=msg.text, blocks=msg.blocks, response_type="ephemeral")
                return
            raise

    async def upload(self, where: Where, msg: SlackMessage, ts: str | None) -> None:
        """Long output, whole tables and charts, in the thread of the message they belong to."""
        if not msg.files:
            return
        try:
            await self.client.files_upload_v2(
                channel=where.channel, thread_ts=where.thread_ts or ts,
                file_uploads=[{"content": f.content, "filename": f.filename, "title": f.title or f.filename}
                              for f in msg.files])
        except SlackApiError as exc:
            log.warning("file upload failed: %s", exc.response.get("error"))
            await self.post(Where(where.channel, where.user, where.thread_ts or ts),
                            SlackMessage(text=f"(The attachment could not be uploaded: "
                                              f"{exc.response.get('error')}.)",
                                         blocks=[]))

    def remember_thread(self, channel: str, ts: str) -> None:
        _remember(self._threads, (channel, ts))

    def _first_delivery(self, body: dict[str, Any]) -> bool:
        event_id = body.get("event_id")
        if not event_id:
            return True
        if event_id in self._events:
            log.info("event %s delivered again; already handled", event_id)
            return False
        _remember(self._events, event_id)
        return True

    # -- requests --------------------------------------------------------------
    def _request(self, user: str, text: str, channel: str, thread: str | None,
                 sink: Callable[[Reply], Awaitable[None]], name: str = "") -> Request:
        return Request(actor=Actor(f"{PLATFORM}:{user}", display=name), text=text, platform=PLATFORM,
                       channel=f"{PLATFORM}:{channel}", thread=thread, on_progress=sink)

    async def _answer(self, where: Where, user: str, text: str, *, asked: str | None = None,
                      name: str = "", chatter_ok: bool = False) -> None:
        live = Live(self, where, asked=asked)
        req = self._request(user, text or "help", where.channel, where.thread_ts, live.progress, name)
        reply = await self.engine.handle(req)  # never raises: errors come back as replies
        if chatter_ok and reply.tone is Tone.question and reply.request_id is None:
            return  # "thanks!" in a thread the bot answered in is not addressed to it
        try:
            await live.finish(reply)
        except SlackApiError as exc:
            log.error("could not answer in %s [%s]: %s", where.channel, req.correlation_id,
                      exc.response.get("error"))

    async def _on_ops(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any]) -> None:
        await ack()
        text = plain_text(body.get("text", ""))
        user, channel = body.get("user_id"), body.get("channel_id")
        if not user or not channel:  # nobody to act for or answer: run nothing
            log.warning("ignored a /ops payload without user_id or channel_id")
            return
        where = Where(channel, user, None, body.get("response_url"))
        # What was asked, echoed in the channel: masked like every reply, and escaped, so that "<!channel>"
        # typed after /ops is shown, not sent as a ping to everyone.
        said = escape(self.engine.redactor.text(text)).replace("`", "'")
        asked = f"{mention('slack:' + user)}: `/ops {said}`" if text else f"{mention('slack:' + user)}: `/ops`"
        self.spawn(self._answer(where, user, text, asked=asked, name=body.get("user_name", "")), busy=where)

    async def _on_mention(self, body: dict[str, Any], context: Any) -> None:
        event = body.get("event", {})
        if self._from_a_bot(event, context) or event.get("channel_type") == "im":
            return
        if not event.get("channel") or not event.get("ts"):
            log.warning("ignored an app_mention without channel or ts")
            return
        if not self._first_delivery(body):
            return
        channel, ts = event["channel"], event["ts"]
        thread = event.get("thread_ts") or ts
        self.remember_thread(channel, thread)
        where = Where(channel, event["user"], thread)
        self.spawn(self._answer(where, event["user"], plain_text(event.get("text", ""), context.bot_user_id)),
                   busy=where)

    async def _on_message(self, body: dict[str, Any], context: Any) -> None:
        event = body.get("event", {})
        if self._from_a_bot(event, context) or event.get("subtype") not in NEW_MESSAGE_SUBTYPES:
            return  # an edit, a deletion, a join: not a new request (docs/slack.md)
        channel, text = event.get("channel", ""), event.get("text", "")
        thread = event.get("thread_ts")
        if event.get("channel_type") == "im":
            where = Where(channel, event["user"], thread)
        elif thread and (channel, thread) in self._threads and f"<@{context.bot_user_id}>" not in text:
            # A follow-up in a thread the bot is part of (a mention there is an app_mention).
            where = Where(channel, event["user"], thread)
        else:
            return
        if self._first_delivery(body):
            self.spawn(self._answer(where, event["user"], plain_text(text, context.bot_user_id),
                                    chatter_ok=where.thread_ts is not None and not where.is_dm), busy=where)

    @staticmethod
    def _from_a_bot(event: dict[str, Any], context: Any) -> bool:
        """Our own messages and other bots' (Bolt drops ours too; this is the explicit rule)."""
        return bool(event.get("bot_id") or event.get("subtype") == "bot_message"
                    or event.get("user") in (None, context.bot_user_id))

    # -- buttons ----------------------------------------------------------------
    async def _on_action(self, ack: Callable[..., Awaitable[None]], body: dict[str, Any],
                         action: dict[str, Any]) -> None:
        await ack()
        container = body.get("container") or {}
        where = Where(container.get("channel_id") or (body.get("channel") or {}).get("id", ""),
                      (body.get("user") or {}).get("id", ""), None, body.get("response_url"))
        self.spawn(self._click(body, action), busy=where if where.channel and where.user else None)

    async def _click(self, body: dict[str, Any], action: dict[str, Any]) -> None:
        m = _ACTION_ID.match(action.get("action_id", ""))
        verb, rid, digest = [*action.get("value", "").split(":", 2), "", ""][:3]
        user = body.get("user", {}).get("id", "")
        container = body.get("container", {})
        channel = container.get("channel_id") or body.get("channel", {}).get("id", "")
        message = body.get("message") or {}
        thread = container.get("thread_ts") or message.get("thread_ts")
        where = Where(channel, user, thread, body.get("response_url"))
        if not m or verb != m.group(1) or not rid or not user or not channel:
            await self.ephemeral(where, render(Reply("That button is not one of mine; nothing was done.",
                                                     tone=Tone.error)))
            return
        if self._holders.get(rid) == (user, verb):
            # The same person clicking the same button again while the first click runs.
            await self.ephemeral(where, render(Reply(
                f"Request {rid} is being handled right now; nothing was done twice.", tone=Tone.info,
                request_id=rid)))
            return
        # Clicks on one request are taken one at a time, so each sees the state the last one left.
        lock, waiting = self._locks.setdefault(rid, (asyncio.Lock(), [0]))
        waiting[0] += 1
        async with lock:
            waiting[0] -= 1
            self._holders[rid] = (user, verb)
            try:
                if verb == "run":
                    await self._suggested(rid, digest, user, where, container, message)
                else:
                    await self._decide(verb, rid, digest, user, where, container, message)
            except Exception:
                # The engine has recorded whatever it did; the clicker learns something went wrong.
                log.exception("button %s on %s failed", verb, rid)
                await self.ephemeral(where, render(Reply(
                    f"Something went wrong on my side handling '{verb}' for {rid}; the log has the details "
                    "and the audit log shows what was done.", tone=Tone.error, request_id=rid)))
            finally:
                del self._holders[rid]
                if waiting[0] == 0:  # no other click queued: forget the lock
                    self._locks.pop(rid, None)

    async def _decide(self, verb: str, rid: str, digest: str, user: str, where: Where,
                      container: dict[str, Any], message: dict[str, Any]) -> None:
        actor = Actor(f"{PLATFORM}:{user}")
        note = f"{_OUTCOME[verb]} by {mention(actor.id)}"
        card_ts = container.get("message_ts") or message.get("ts")
        on_card = not container.get("is_ephemeral") and card_ts is not None
        if on_card:
            # The card stays a record of what was asked; the outcome goes below it.
            keep = [b for b in message.get("blocks", []) if b.get("type") != "actions"]
            live = Live(self, where, ts=card_ts, keep=keep, note=note)
        else:
            live = Live(self, Where(where.channel, user, where.thread_ts), note=note)
        req = Request(actor=actor, text=f"{verb} {rid}", platform=PLATFORM,
                      channel=f"{PLATFORM}:{where.channel}", thread=where.thread_ts, on_progress=live.progress)
        decision = await self.engine.decide(verb, rid, actor, digest, None, req)
        reply = decision.reply
        if not decision.applied and decision.status is not Status.expired:
            # Refused (requester, non-approver, wrong plan) or already decided: only the clicker sees it.
            await self.ephemeral(where, render(reply))
            return
        # A click that found the request expired decided nothing: the card must not say the clicker did.
        outcome = _OUTCOME[verb] if decision.applied else "Expired"
        if not decision.applied:
            live.note = outcome
        if not on_card and where.response_url:
            # An ephemeral confirm card: replace it with a one-liner; the outcome is posted for all.
            await AsyncWebhookClient(where.response_url).send(
                text=f"{outcome} {rid}.", replace_original=True)
        await live.finish(reply)


    async def _suggested(self, sid: str, digest: str, user: str, where: Where, container: dict[str, Any],
                         message: dict[str, Any]) -> None:
        """A button offering a plan (an alert's Logs/Restart): ask for it as the clicker, in the card's thread."""
        actor = Actor(f"{PLATFORM}:{user}")
        thread = where.thread_ts or container.get("message_ts") or message.get("ts")
        here = Where(where.channel, user, thread, where.response_url)
        live = Live(self, here)
        req = Request(actor=actor, text=f"run {sid}", platform=PLATFORM, channel=f"{PLATFORM}:{where.channel}",
                      thread=thread, on_progress=live.progress)
        decision = await self.engine.decide("run", sid, actor, digest, None, req)
        if not decision.reply.ok and live.ts is None:  # refused (roles, channel): only the clicker hears it
            await self.ephemeral(here, render(decision.reply))
            return
        await live.finish(decision.reply)


class SlackPoster:
    """Posts and edits messages in a channel with the bot token (bot/notify.py's Poster)."""

    platform = PLATFORM

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def post(self, channel: str, reply: Reply) -> str | None:
        msg = render(reply)
        resp = await self.client.chat_postMessage(channel=channel, text=msg.text, blocks=msg.blocks,
                                                  unfurl_links=False)
        ts = str(resp["ts"])
        if msg.files:
            await self.client.files_upload_v2(channel=channel, thread_ts=ts, file_uploads=[
                {"content": f.content, "filename": f.filename, "title": f.title or f.filename} for f in msg.files])
        return ts

    async def edit(self, channel: str, message: str, reply: Reply) -> None:
        msg = render(reply)
        await self.client.chat_update(channel=channel, ts=message, text=msg.text, blocks=msg.blocks)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


def poster(settings: Settings) -> SlackPoster | None:
    """A poster for the ops channels when SLACK_BOT_TOKEN is set (also without the Slack adapter running)."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    if not token:
        return None
    base_url = settings.slack_api_url or AsyncWebClient.BASE_URL
    return SlackPoster(AsyncWebClient(token=token, base_url=base_url if base_url.endswith("/") else base_url + "/"))


def _remember(seen: OrderedDict[Any, None], key: Any, size: int = 2000) -> None:
    seen[key] = None
    seen.move_to_end(key)
    while len(seen) > size:
        seen.popitem(last=False)


@web.middleware
async def _malformed_is_4xx(request: web.Request, handler: Any) -> web.StreamResponse:
    """Bolt parses the body and the timestamp before it checks the signature, assuming Slack's
    shapes: anything else is refused here (bot/adapters/slack_body.py), a 4xx, not a 500."""
    if request.method == "POST":
        refused = slack_body.problem(request.headers, await request.read())
        if refused is not None:
            status, why = refused
            log.warning("refused a malformed Slack request (HTTP %d): %s", status, why)
            return web.Response(status=status, text=f"malformed request: {why}")
    try:
        return await handler(request)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        log.warning("refused a malformed Slack request body: %s", exc)
        return web.Response(status=400, text="malformed request body")


async def start_http(bot: SlackBot, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve Bolt's aiohttp app at /slack/events; returns the runner and the bound port."""
    server = AsyncSlackAppServer(port=port, path=EVENTS_PATH, app=bot.bolt, host=host)
    server.web_app.middlewares.append(_malformed_is_4xx)
    runner = web.AppRunner(server.web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    return runner, int(bound)


async def serve(app: App, *, http: bool, port: int, stop: asyncio.Event) -> None:
    """`chatops serve slack`: Socket Mode unless `http`, until `stop` is set or the task is cancelled."""
    settings = app.config.settings
    bot = SlackBot(app.engine, settings, http=http)
    app.engine.notify.register(SlackPoster(bot.client))
    if http:
        runner, bound = await start_http(bot, "127.0.0.1", port)
        log.info("Slack HTTP mode on http://127.0.0.1:%d%s", bound, EVENTS_PATH)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
            await bot.drain()
        return
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
    if not app_token:
        raise ConfigError("SLACK_APP_TOKEN is not set: Socket Mode needs an app-level token (xapp-…) with "
                          "connections:write (docs/slack.md, step 3), or run with --http.")
    handler = AsyncSocketModeHandler(bot.bolt, app_token)
    await handler.connect_async()
    log.info("Slack Socket Mode connected")
    try:
        await stop.wait()
    finally:
        await handler.close_async()
        await bot.drain()
