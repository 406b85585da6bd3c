"""The Discord adapter: a discord.py bot that turns interactions and mentions into Requests.

Kept thin on purpose: it defers every interaction at once (Discord allows 3 seconds),
builds one platform-neutral `Request` (actor `discord:USER`, channel `discord:CHANNEL`,
thread id), lets the engine do everything else, and renders the `Reply` with
bot.render.discord.  Decision buttons are `DecisionButton` dynamic items: their custom
id holds action, request id and plan hash, so clicks keep working after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.adapters.bounds import BUSY_TEXT, InFlight
from bot.adapters.discord_slash import Suggestions, ops_group
from bot.engine import Engine
from bot.render.discord import CUSTOM_ID_TEMPLATE, DecisionButton, Rendered, render, status_line
from bot.request import Action, Actor, Decision, Reply, Request, Tone
from infra.status import Status
from infra.wording import counted

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger("chatops.discord")
PLATFORM = "discord"
PROGRESS_LINES = 12
_PAST = {a.value: a.past for a in Action}


# -- mapping ----------------------------------------------------------------------------

def actor_of(user: discord.abc.User) -> Actor:
    return Actor(f"{PLATFORM}:{user.id}", display=getattr(user, "display_name", "") or user.name)


def place_of(channel: Any, channel_id: int | None) -> tuple[str | None, str | None]:
    """(channel, thread): a thread counts as its parent channel, so the parent's default env applies."""
    if isinstance(channel, discord.Thread) and channel.parent_id:
        return f"{PLATFORM}:{channel.parent_id}", str(channel.id)
    cid = getattr(channel, "id", None) or channel_id
    return (f"{PLATFORM}:{cid}" if cid else None), None


def interaction_request(interaction: discord.Interaction[Any], text: str, command: str | None = None,
                        args: dict[str, Any] | None = None) -> Request:
    channel, thread = place_of(interaction.channel, interaction.channel_id)
    return Request(actor=actor_of(interaction.user), text=text, platform=PLATFORM, channel=channel,
                   thread=thread, command=command, args=dict(args or {}) if command else None)


def guild_of(message: discord.Message) -> int | None:
    """The server a message came from (None: a direct message), cached by discord.py or not."""
    if message.guild is not None:
        return message.guild.id
    gid = getattr(message.channel, "guild_id", None)
    return int(gid) if gid else None


def mention_text(content: str, bot_id: int, channels: dict[int, str] | None = None) -> str:
    """The message without the bot's own mention tokens (`<@ID>` or the legacy `<@!ID>`); another person's
    mention becomes `@ID`, so a request addressed to them stays addressed to them. Discord's other markup
    goes back to what the user saw: a custom emoji (`<:party:123>`, `<a:wave:123>`) to nothing, as a
    standard emoji is nothing to the reader; a role mention to `@role`; a channel mention to `#name`
    (`channels`: the message's mentioned channels), or `#channel`, never to a word the reader ignores."""
    text = re.sub(rf"<@!?{bot_id}>", " ", content)
    text = re.sub(r"<a?:\w+:\d+>", " ", text)
    text = re.sub(r"<@&\d+>", "@role", text)
    text = re.sub(r"<#(\d+)>", lambda m: "#" + (channels or {}).get(int(m.group(1)), "channel"), text)
    return " ".join(re.sub(r"<@!?(\d+)>", r"@\1", text).split())


def message_request(message: discord.Message, me: discord.abc.User) -> Request | None:
    """A Request for a message that mentions the bot (or any DM to it); None for everything else.

    Discord sends the content of messages that mention the bot (and of DMs) even without the
    privileged message-content intent, so this works without it.
    """
    if message.author.bot or message.author.id == me.id:
        return None
    direct = isinstance(message.channel, discord.DMChannel)
    if not direct and not any(u.id == me.id for u in message.mentions):
        return None
    channel, thread = place_of(message.channel, message.channel.id)
    named = {c.id: c.name for c in message.channel_mentions if hasattr(c, "name")}
    return Request(actor=actor_of(message.author), text=mention_text(message.content, me.id, named),
                   platform=PLATFORM, channel=channel, thread=thread)


# -- where a reply goes -------------------------------------------------------------------

Show = Callable[[Rendered], Awaitable[None]]


def _send_kwargs(r: Rendered) -> dict[str, Any]:
    kw: dict[str, Any] = {"embeds": r.embeds, "allowed_mentions": r.allowed_mentions}
    if r.content:
        kw["content"] = r.content
    if r.attachments:
        kw["files"] = r.files()
    view = r.view()
    if view is not None:
        kw["view"] = view
    return kw


def _edit_kwargs(r: Rendered) -> dict[str, Any]:
    """Edits replace everything: content, embeds, files and buttons (none removes them)."""
    return {"content": r.content, "embeds": r.embeds, "attachments": r.files(), "view": r.view(),
            "allowed_mentions": r.allowed_mentions}


def needs_others(reply: Reply, r: Rendered) -> bool:
    """Whether a reply is for others too (an approval card, a mention): it goes out as a new message,
    since Discord notifies nobody of a mention added by editing one."""
    return bool(r.mention_ids) or any(b.action in ("approve", "deny") for b in reply.buttons)


def original(interaction: discord.Interaction[Any]) -> Show:
    """Edit the interaction's own message (the deferred reply, or the card a button sits on)."""
    async def show(r: Rendered) -> None:
        await interaction.edit_original_response(**_edit_kwargs(r))
    return show


def followup(interaction: discord.Interaction[Any], ephemeral: bool) -> Show:
    """A new follow-up message the first time, edited in place after that."""
    sent: list[discord.WebhookMessage] = []

    async def show(r: Rendered) -> None:
        if sent:
            await sent[0].edit(**_edit_kwargs(r))
        else:
            sent.append(await interaction.followup.send(wait=True, ephemeral=ephemeral, **_send_kwargs(r)))
    return show


def replying_to(message: discord.Message) -> Show:
    """A reply to a mention the first time, edited in place after that."""
    sent: list[discord.Message] = []

    async def show(r: Rendered) -> None:
        if sent:
            await sent[0].edit(**_edit_kwargs(r))
        else:
            sent.append(await message.reply(mention_author=False, **_send_kwargs(r)))
    return show


class ProgressCard:
    """The run's progress under a card: the card's embeds, then the latest progress lines."""

    def __init__(self, show: Show, head: list[discord.Embed] | None = None, title: str = "") -> None:
        self.show, self.head, self.title = show, list(head or []), title
        self.lines: list[str] = []

    def rendered(self) -> Rendered:
        text = "\n".join(f"• {line}" for line in self.lines[-PROGRESS_LINES:])
        status = status_line(f"{self.title}\n{text}".strip())
        return Rendered(content=None, embeds=[*self.head[:9], status])

    async def update(self, reply: Reply) -> None:
        self.lines.append(reply.text.splitlines()[0] if reply.text else "…")
        try:
            await self.show(self.rendered())
        except discord.HTTPException as exc:  # progress is best effort; the audit log has it all
            log.warning("could not show progress for %s: %s", reply.request_id, exc)


# -- the bot ----------------------------------------------------------------------------

def default_intents() -> discord.Intents:
    """Guilds, guild and DM messages; not the privileged message-content intent (not needed)."""
    intents = discord.Intents.default()
    intents.message_content = False
    intents.members = False
    intents.presences = False
    return intents


NOT_HERE = "I only take requests in the team's own server; nothing was run."


class DiscordBot(discord.Client):
    """Slash commands, mentions and decision buttons, all routed to one Engine.

    `guild_ids` (DISCORD_GUILD_ID, comma-separated) are the servers it serves: /ops is synced
    to each, and an event from any other server is ignored with a log line (a direct message
    only from a user the config names).  Without guild ids it serves every server (global).
    """

    def __init__(self, engine: Engine, *, guild_ids: Sequence[int] = (), guild_id: int | None = None,
                 sync: bool = True, intents: discord.Intents | None = None) -> None:
        super().__init__(intents=intents or default_intents(),
                         allowed_mentions=discord.AllowedMentions.none())
        self.engine = engine
        self.guild_ids = frozenset(guild_ids or ([guild_id] if guild_id else []))
        self.guilds_synced = [discord.Object(g) for g in sorted(self.guild_ids)]
        self.sync_commands = sync
        self.tree = app_commands.CommandTree(self)
        self.tree.on_error = self._on_tree_error  # type: ignore[method-assign]
        self.tree.interaction_check = self._serves_interaction  # type: ignore[method-assign]
        group = ops_group(engine.registry, self.on_slash, Suggestions(engine),
                          text_limit=engine.config.inventory.limits.max_text_chars)
        if self.guilds_synced:
            self.tree.add_command(group, guilds=self.guilds_synced)
        else:
            self.tree.add_command(group)
        self.synced: list[app_commands.AppCommand] = []
        self._deciding: dict[str, asyncio.Lock] = {}
        self.in_flight = InFlight(PLATFORM, lambda: engine.config.inventory.limits.max_in_flight)

    # -- which events are ours ------------------------------------------------------
    def serves(self, guild_id: int | None, user_id: int | None) -> bool:
        """A configured guild (any, when none is configured); a DM only from a user the config names."""
        if not self.guild_ids:
            return True
        if guild_id is None:
            return f"{PLATFORM}:{user_id}" in self.engine.config.inventory.users
        return guild_id in self.guild_ids

    def _ignored(self, what: str, guild_id: int | None, user_id: int | None) -> None:
        where = f"guild {guild_id}" if guild_id else "a direct message"
        log.warning("ignored %s from %s by discord:%s: not a server in DISCORD_GUILD_ID", what, where, user_id)

    async def _serves_interaction(self, interaction: discord.Interaction[Any]) -> bool:
        """Slash commands and autocomplete from elsewhere go no further (no command lookup, no advice)."""
        if self.serves(interaction.guild_id, interaction.user.id):
            return True
        self._ignored("a slash command", interaction.guild_id, interaction.user.id)
        if interaction.type is discord.InteractionType.application_command:
            with contextlib.suppress(discord.HTTPException):
                await interaction.response.send_message(NOT_HERE, ephemeral=True)
        return False

    async def setup_hook(self) -> None:
        # Every button whose custom id matches the template reaches `decide`, whichever
        # process posted it; the requests they point at are read from the database.
        self.add_dynamic_items(DecisionButton)
        pending = await asyncio.to_thread(self.engine.store.pending)
        if pending:
            log.info("%s await a decision; their buttons stay live: %s", counted(len(pending), "request"),
                     ", ".join(r.id for r in pending[:20]))
        if self.sync_commands:
            targets: list[discord.Object | None] = list(self.guilds_synced) or [None]
            for guild in targets:
                self.synced = await self.tree.sync(guild=guild)
                where = f"guild {guild.id}" if guild else "all guilds (global; may take up to an hour)"
                log.info("synced /ops with %d subcommands to %s",
                         len(self.synced[0].options) if self.synced else 0, where)

    # -- slash commands -------------------------------------------------------------
    async def on_slash(self, interaction: discord.Interaction[Any], command: str | None,
                       args: dict[str, Any], text: str) -> None:
        if not self.in_flight.take():
            await self._busy(interaction)
            return
        try:
            spec = self.engine.registry.get(command) if command else None
            # A change is first confirmed on a private card, so its deferral is private too.
            private = bool(spec and spec.changes and spec.confirm)
            await interaction.response.defer(ephemeral=private, thinking=True)
            req = interaction_request(interaction, text, command, args)
            req.on_progress = ProgressCard(original(interaction), title="Working…").update
            reply = await self.engine.handle(req)
            await self.deliver(interaction, reply, deferred_private=private)
        finally:
            self.in_flight.done()

    @staticmethod
    async def _busy(interaction: discord.Interaction[Any]) -> None:
        try:
            await interaction.response.send_message(BUSY_TEXT, ephemeral=True)
        except discord.HTTPException as exc:
            log.warning("could not say 'busy' to %s: %s", interaction.id, exc)

    async def deliver(self, interaction: discord.Interaction[Any], reply: Reply, *, deferred_private: bool) -> None:
        """Over the deferred message, unless others must see it (an approval card) or only the asker may."""
        r = render(reply)
        try:
            if deferred_private and needs_others(reply, r):
                await original(interaction)(Rendered(None, [status_line(
                    "Posted in the channel for an approver.", Tone.info)]))
                await followup(interaction, False)(r)
            elif r.ephemeral and not deferred_private:
                await original(interaction)(Rendered(None, [status_line("Sent to you privately.", Tone.info)]))
                await followup(interaction, True)(r)
            else:
                await original(interaction)(r)
        except discord.HTTPException as exc:
            log.error("could not deliver the reply to %s [%s]: %s", reply.request_id, interaction.id, exc)
        await self.notify(reply)

    async def _on_tree_error(self, interaction: discord.Interaction[Any],
                             error: app_commands.AppCommandError) -> None:
        ref = f"{interaction.id}"
        if isinstance(error, app_commands.CommandNotFound):
            log.warning("unknown slash command %s [%s]", error.name, ref)
            text = (f"I don't have a '{error.name}' command (any more); the command list is refreshed when "
                    "I start. Try `/ops ask` in plain language.")
        else:
            log.error("slash command failed [%s]", ref, exc_info=error)
            text = f"Something went wrong on my side (ref {ref}); nothing more was done."
        try:
            if interaction.response.is_done():
                await interaction.followup.send(text, ephemeral=True)
            else:
                await interaction.response.send_message(text, ephemeral=True)
        except discord.HTTPException:
            pass

    # -- buttons --------------------------------------------------------------------
    async def decide(self, interaction: discord.Interaction[Any], action: str, request_id: str,
                     digest: str) -> None:
        """A click on a decision button: act once, update the card in place, or refuse privately."""
        if not self.serves(interaction.guild_id, interaction.user.id):
            self._ignored("a button click", interaction.guild_id, interaction.user.id)
            return
        if not self.in_flight.take():
            await self._busy(interaction)
            return
        if action == "run":
            try:
                await self.suggested(interaction, request_id, digest)
            finally:
                self.in_flight.done()
            return
        try:
            await interaction.response.defer()  # deferred update of the message the button is on
            # Clicks on one request take turns in this process, so each can tell whether it was the
            # one that moved the request (a second click then hears "already …" privately). Across
            # processes the engine's conditional transitions still let exactly one click act.
            lock = self._deciding.setdefault(request_id, asyncio.Lock())
            try:
                async with lock:
                    await self._decide(interaction, action, request_id, digest)
            finally:
                if not lock.locked():
                    self._deciding.pop(request_id, None)
        finally:
            self.in_flight.done()

    async def suggested(self, interaction: discord.Interaction[Any], sid: str, digest: str) -> None:
        """A button offering a plan (an alert's Logs/Restart): asked for as the clicker, answered privately
        (an approval card it leads to is posted for the approvers); the alert message stays as it is."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        req = interaction_request(interaction, f"run {sid}")
        req.on_progress = ProgressCard(original(interaction), title="Working…").update
        decision = await self.engine.decide("run", sid, actor_of(interaction.user), digest, req=req)
        await self.deliver(interaction, decision.reply, deferred_private=True)

    async def _decide(self, interaction: discord.Interaction[Any], action: str, request_id: str,
                      digest: str) -> None:
        actor = actor_of(interaction.user)
        card = list(interaction.message.embeds) if interaction.message else []
        on_card = ProgressCard(original(interaction), card,
                               f"{_PAST.get(action, action).capitalize()} by {actor.name}; running…")
        req = interaction_request(interaction, f"{action} {request_id}")
        req.on_progress = on_card.update
        decision = await self.engine.decide(action, request_id, actor, digest, req=req)
        reply = decision.reply
        try:
            if not decision.applied:
                await self._refused(interaction, request_id, decision)
                return
            r = render(reply)
            was_private = bool(interaction.message and interaction.message.flags.ephemeral)
            if action == "confirm" and ((was_private and not r.ephemeral) or needs_others(reply, r)):
                # A confirmed change: the card says so; the team sees the outcome or the approval card
                # in a new message (Discord pings nobody a mention added by an edit, so an approval
                # card edited over a public confirm card reached no approver).
                where = "see the channel" if was_private else "see below"
                await original(interaction)(Rendered(None, [*card[:9], status_line(
                    f"{_PAST.get(action, action).capitalize()}; {where}.", Tone.info)]))
                await followup(interaction, False)(r)
            else:
                await original(interaction)(r)
        except discord.HTTPException as exc:
            log.error("could not show the decision on %s: %s", request_id, exc)
        await self.notify(reply)

    async def _refused(self, interaction: discord.Interaction[Any], rid: str, decision: Decision) -> None:
        """Nothing moved for this clicker (not allowed, or already decided): tell only them."""
        await followup(interaction, True)(render(decision.reply))
        if decision.status is Status.expired and interaction.message is not None:
            embeds = list(interaction.message.embeds)[:9]
            await original(interaction)(Rendered(None, [*embeds, status_line(
                f"Request {rid} expired before it was decided.", Tone.warning)]))

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """A click on a component no DecisionButton claims would otherwise fail silently in Discord."""
        if interaction.type is not discord.InteractionType.component:
            return
        if not self.serves(interaction.guild_id, interaction.user.id):
            return  # `decide` logs a decision button from elsewhere; anything else is not ours either
        data: dict[str, Any] = dict(interaction.data or {})  # type: ignore[arg-type]
        cid = str(data.get("custom_id", ""))
        if re.fullmatch(CUSTOM_ID_TEMPLATE, cid):
            return
        log.warning("click on a component that is not a decision button: %.100r", cid)
        try:
            await interaction.response.send_message("That button is not one of mine; nothing was done.",
                                                    ephemeral=True)
        except discord.HTTPException as exc:
            log.warning("could not answer the stray click: %s", exc)

    # -- mentions -------------------------------------------------------------------
    async def on_message(self, message: discord.Message) -> None:
        if self.user is None:
            return
        req = message_request(message, self.user)
        if req is None:
            return
        guild_id = guild_of(message)
        if not self.serves(guild_id, message.author.id):
            self._ignored("a mention", guild_id, message.author.id)
            return
        show = replying_to(message)
        if not self.in_flight.take():
            try:
                await show(render(Reply(BUSY_TEXT, tone=Tone.warning)))
            except discord.HTTPException as exc:
                log.warning("could not say 'busy' to message %s: %s", message.id, exc)
            return
        try:
            req.on_progress = ProgressCard(show, title="Working…").update
            if not req.text:
                req.text = "help"
            async with message.channel.typing():
                reply = await self.engine.handle(req)
            try:
                await show(render(reply))
            except discord.HTTPException as exc:
                log.error("could not reply to message %s: %s", message.id, exc)
            await self.notify(reply)
        finally:
            self.in_flight.done()

    async def notify(self, reply: Reply) -> None:
        """Post a reply's notices for Discord places (the requester's thread hears a decision made elsewhere)."""
        for n in reply.relays:
            if n.platform != PLATFORM or not (n.thread or n.where).isdigit():
                continue
            try:
                await self.get_partial_messageable(int(n.thread or n.where)).send(**_send_kwargs(render(n.reply)))
            except discord.HTTPException as exc:
                log.warning("could not tell %s about %s: %s", n.channel, n.reply.request_id, exc)


# -- the ops channels ---------------------------------------------------------------------

class DiscordPoster:
    """Posts and edits messages in a channel over Discord's REST API (bot/notify.py's Poster).

    It needs a logged-in client, not a gateway connection: the adapter's bot when it runs, or a
    client of its own (`poster`) when only the HTTP API runs in this process.
    """

    platform = PLATFORM

    def __init__(self, client: discord.Client, token: str | None = None) -> None:
        self.client = client
        self._token = token

    async def post(self, channel: str, reply: Reply) -> str | None:
        msg = await self.client.get_partial_messageable(int(channel)).send(**_send_kwargs(render(reply)))
        return str(msg.id)

    async def edit(self, channel: str, message: str, reply: Reply) -> None:
        target = self.client.get_partial_messageable(int(channel)).get_partial_message(int(message))
        await target.edit(**_edit_kwargs(render(reply)))

    async def start(self) -> None:
        if self._token is not None:
            await self.client.login(self._token)

    async def close(self) -> None:
        if self._token is not None:
            await self.client.close()


def poster(settings: Any) -> DiscordPoster | None:
    """A REST-only poster when DISCORD_TOKEN is set (also without the Discord adapter running)."""
    token = settings.discord_token.get_secret_value().strip() if settings.discord_token else ""
    if not token:
        return None
    client = discord.Client(intents=discord.Intents.none(), allowed_mentions=discord.AllowedMentions.none())
    return DiscordPoster(client, token)


# -- entry point ------------------------------------------------------------------------

def guild_ids(raw: str | None) -> list[int]:
    """DISCORD_GUILD_ID: one numeric server id, or several separated by commas."""
    out = []
    for part in (raw or "").split(","):
        if not part.strip():
            continue
        if not part.strip().isdigit():
            raise SystemExit(f"DISCORD_GUILD_ID must be the server's numeric id, not '{part.strip()}' "
                             "(several servers: their ids separated by commas).")
        out.append(int(part.strip()))
    return out


async def serve(app: App, *, http: bool, port: int, stop: asyncio.Event) -> None:
    """`chatops serve discord`: run the bot until `stop` is set (or the connection ends)."""
    settings = app.config.settings
    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        raise SystemExit("DISCORD_TOKEN is not set: create a bot in the Discord developer portal "
                         "(docs/discord.md) and export its token.")
    guilds = guild_ids(settings.discord_guild_id)
    if not guilds:
        log.warning("DISCORD_GUILD_ID is not set: every server the bot is in is served, and /ops is synced "
                    "globally, which can take an hour to show")
    bot = DiscordBot(app.engine, guild_ids=guilds)
    app.engine.notify.register(DiscordPoster(bot))
    async with bot:
        runner = asyncio.create_task(bot.start(settings.discord_token.get_secret_value().strip()))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if runner in done:
            try:
                runner.result()
            except discord.LoginFailure as exc:
                raise SystemExit(f"Discord refused DISCORD_TOKEN ({exc}); check the bot token.") from exc
        else:
            await bot.close()
            await asyncio.gather(runner, return_exceptions=True)
