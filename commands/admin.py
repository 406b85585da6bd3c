"""Commands about the bot itself: help, identity, environments, freezes, approvals, health."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.request import Action, Decision, Reply, Table, Tone
from commands.args import ENV, REASON, REQUEST
from commands.context import Context
from commands.examples import examples_for, sample_requests
from commands.registry import Arg, Candidates, Kind, Phrasing, Registry, Whose, command
from infra.backends import Health
from infra.config import Role
from infra.db.common import DatabaseUnavailable, aware, utcnow
from infra.errors import CannotSucceed, CommandError
from infra.status import ACTIVE, APPROVABLE, PENDING
from infra.wording import agrees, counted

if TYPE_CHECKING:
    from infra.db.models import RequestRow


def meaning(ctx: Context, arg: Arg) -> str:
    """An argument's help; for names from the inventory, the configured ones (not the shipped examples)."""
    if not arg.kind.is_entity:
        return arg.help
    names = ctx.resolver.choices(arg.kind)
    base = arg.help.split(" (", 1)[0]
    return f"{base} ({', '.join(names[:6])}{', …' if len(names) > 6 else ''})" if names else base


def closest_commands(reg: Registry, word: str, limit: int = 3) -> list[str]:
    """Commands whose name or words are spelt closest to `word` (help never acts on a guess)."""
    from rapidfuzz import fuzz, process

    words = reg.words
    found = process.extract(word.strip().lower(), list(words), scorer=fuzz.WRatio, limit=limit * 3,
                            score_cutoff=60)
    return list(dict.fromkeys(words[w] for w, _, _ in found))[:limit]


@command("help", summary="list commands, or explain one",
         args=(Arg("topic", Kind.text, required=False, help="a command name"),),
         examples=("help", "help deploy"), words=("commands", "usage"),
         phrasing=Phrasing(nouns=("help", "commands", "usage", "what can you do", "what do you do",
                                  "what do you support", "how do you work", "man", "manual"),
                           answers_howto=True))
async def help_(ctx: Context, args: dict[str, Any]) -> Reply:
    reg = ctx.engine.registry  # the engine's own registry: team plugins included
    topic = args.get("topic")
    if topic:
        name = reg.command_for_word(topic.strip().split()[0])
        if name is None:
            near = closest_commands(reg, topic)
            hint = f" Closest: {', '.join(near)}; say 'help {near[0]}'." if near else ""
            raise CommandError(f"There is no command '{topic}'.{hint} Say 'help' for the list.")
        spec = reg[name]
        rows = [[a.name, a.kind.value, "yes" if a.required else "no",
                 "position or key=" if a.positional else "key=value only",
                 str(a.default) if a.default is not None else "", meaning(ctx, a)] for a in spec.args]
        kind = ("changes a system: needs the operator role, is confirmed, and needs an approval "
                "on protected targets") if spec.changes and spec.approval else (
                f"needs the {spec.needed_role} role")
        text = f"{spec.usage}\n{spec.summary}. It {kind}."
        if spec.details:
            text += f"\n{spec.details}"
        examples = "\n".join(f"  {e}" for e in examples_for(spec, ctx.config, ctx.resolver, reg))
        if examples:
            text += f"\nExamples:\n{examples}"
        tables = [Table(["argument", "kind", "required", "given as", "default", "meaning"], rows)] if rows else []
        return Reply(text, title=f"help: {spec.name}", tables=tables)
    rows = [[s.usage, s.summary, "change" if s.changes else "read"] for s in reg]
    hint = " or ".join(f"'{e}'" for e in sample_requests(ctx.config, ctx.resolver, reg, ("restart",)))
    return Reply("Commands (say 'help COMMAND' for one). Plain sentences work too"
                 + (f", e.g. {hint}." if hint else "."), title="chatops help",
                 tables=[Table(["usage", "what it does", "kind"], rows)])


@command("whoami", summary="the caller's identity and roles", examples=("whoami",),
         words=("who am i",), slash=False,
         phrasing=Phrasing(nouns=("whoami", "who am i", "my roles", "my role", "my permissions", "my access",
                                  "what am i allowed", "am i an admin", "am i admin", "am i an operator",
                                  "permissions", "what roles do i have", "my identity", "am i an approver",
                                  "am i an", "am i a", "rights", "my rights", "operator rights", "admin rights",
                                  "approver rights", "privileges", "my privileges", "access rights", "what user am i",
                                  "which user am i", "what roles have i", "what roles have i got",
                                  "which roles do i have", "what is my role", "what are my roles", "my user",
                                  "which roles i have", "what roles i have", "approver role", "operator role",
                                  "admin role", "viewer role", "perms", "my perms", "what perms", "my account")))
async def whoami(ctx: Context, args: dict[str, Any]) -> Reply:
    roles = ", ".join(sorted(r.value for r in ctx.roles)) or "none"
    fields = [("Identity", ctx.actor.id), ("Roles", roles)]
    scope = ctx.config.scoped(ctx.actor.id)
    if scope is not None:
        elsewhere = ", ".join(sorted(r.value for r in ctx.config.roles_of(ctx.actor.id, frozenset({"*"})))) or "none"
        fields.append(("Only on", ", ".join(scope) or "no environment"))
        fields.append(("Elsewhere", elsewhere))
    default = ctx.config.default_env(ctx.request.channel)
    if default:
        fields.append(("Channel default environment", default))
    return Reply(f"You are {ctx.actor.id} with roles: {roles}.", fields=fields)


async def _reachability(ctx: Context, env: str) -> str:
    try:
        client = ctx.backends.docker(env)
    except CommandError:
        return "not configured"
    ping = getattr(client, "ping", None)
    if ping is None:
        return "configured"
    try:
        await asyncio.wait_for(ping(), timeout=5)
        return "reachable"
    except Exception as exc:  # reported in the table, never raised
        return f"unreachable: {' '.join(str(exc).split()) or type(exc).__name__}"


@command("envs", summary="environments, reachability, protection, locks", examples=("envs",),
         words=("environments",),
         phrasing=Phrasing(nouns=("envs", "environments", "environment list", "list envs", "which envs",
                                  "anything frozen", "anything locked", "what is frozen", "what is locked",
                                  "any freezes", "any locks", "docker hosts", "hosts", "docker engines"),
                           hints=("locked", "frozen", "locks", "freezes")))
async def envs(ctx: Context, args: dict[str, Any]) -> Reply:
    locks = await asyncio.to_thread(ctx.store.env_locks)
    names = list(ctx.config.inventory.environments)
    reach = await asyncio.gather(*(_reachability(ctx, n) for n in names))
    rows = []
    for name, status in zip(names, reach, strict=True):
        env = ctx.config.inventory.environments[name]
        lk = locks.get(name)
        frozen = f"frozen by {lk.locked_by}" + (f" ({lk.reason})" if lk.reason else "") if lk else ""
        rows.append([name, ", ".join(env.aliases), "yes" if env.protected else "no", status,
                     env.vm or "", frozen])
    return Reply(f"{len(rows)} environments.",
                 tables=[Table(["env", "aliases", "protected", "docker", "vm", "lock"], rows)])


@command("lock", summary="freeze changes to an environment", args=(ENV, REASON), changes=True,
         role="admin", confirm=False, approval=False, examples=("lock prod release freeze",),
         words=("freeze",),
         notice="freezes",
         phrasing=Phrasing(verbs=("lock", "freeze", "lock down", "block changes", "code freeze", "change freeze"),
                           nouns=("freeze", "code freeze", "change freeze", "lock"),
                           past=("locked", "froze", "frozen")))
async def lock(ctx: Context, args: dict[str, Any]) -> Reply:
    """Only bot state changes: admins freeze without a second approval, so a freeze is never slowed."""
    env = args["env"]
    existing = await asyncio.to_thread(ctx.store.lock_env, env, ctx.actor.id, args.get("reason"))
    if existing:
        return Reply(f"{env} was already frozen by {existing.locked_by} since "
                     f"{aware(existing.locked_at):%Y-%m-%d %H:%M} UTC.", tone=Tone.info)
    return Reply(f"{env} is frozen: no changes run there until 'unlock {env}'.", tone=Tone.success)


@command("unlock", summary="lift a freeze", args=(ENV,), changes=True, role="admin", confirm=False,
         approval=False, examples=("unlock prod",), words=("unfreeze",),
         notice="freezes",
         phrasing=Phrasing(verbs=("unlock", "unfreeze", "thaw", "unblock"),
                           object_verbs=("end", "lift", "remove", "clear", "stop", "cancel", "undo", "release",
                                         "drop", "call off", "unlock"),
                           objects=("lock",),
                           formats=("take the lock off {env}", "take the freeze off {env}",
                                    "take the lock off of {env}", "lift the lock on {env}", "lift the freeze on {env}"),
                           past=("unlocked", "unfroze", "thawed")))
async def unlock(ctx: Context, args: dict[str, Any]) -> Reply:
    env = args["env"]
    existing = await asyncio.to_thread(ctx.store.unlock_env, env)
    if existing is None:
        return Reply(f"{env} was not frozen.", tone=Tone.info)
    return Reply(f"{env} is open for changes again (it was frozen by {existing.locked_by}).",
                 tone=Tone.success)


TO_DECIDE = dataclasses.replace(REQUEST, candidates=Candidates(APPROVABLE, Whose.others, "Waiting for a decision",
                                                                "pending"))
TO_WITHDRAW = dataclasses.replace(REQUEST, candidates=Candidates(PENDING, Whose.own, "Yours that wait", "pending"))
TO_CANCEL = dataclasses.replace(REQUEST, candidates=Candidates(ACTIVE, Whose.anyone, "Running now",
                                                                "audit status=started"))


@command("approve", summary="approve a pending request (by its id)", args=(TO_DECIDE,), changes=True,
         role="approver", confirm=False, approval=False, examples=("approve r-1a2b3c4d",),
         schedulable=False,
         phrasing=Phrasing(verbs=("approve", "lgtm", "sign off", "sign off on", "ack", "go ahead with"),
                           nouns=("approval", "approvals", "sign-off", "sign-offs"),
                           object_verbs=("approve", "lgtm", "sign off on", "ack", "go ahead with"), objects=("*",),
                           past=("approved", "signed off", "okayed", "ok'd", "greenlit", "green-lit"),
                           past_status="approved", performative=True))
async def approve(ctx: Context, args: dict[str, Any]) -> Reply:
    return as_command(await ctx.engine.decide("approve", args["request"], ctx.actor, req=ctx.request))


@command("deny", summary="deny a pending request", args=(TO_DECIDE, REASON), changes=True,
         role="approver", confirm=False, approval=False,
         examples=("deny r-1a2b3c4d not during the demo",), words=("reject",),
         schedulable=False,
         phrasing=Phrasing(verbs=("deny", "reject", "decline", "veto", "refuse", "nack"),
                           nouns=("denial", "denials", "rejection", "rejections", "veto", "vetoes"),
                           object_verbs=("deny", "reject", "decline", "veto", "refuse", "nack"), objects=("*",),
                           past=("denied", "rejected", "declined", "vetoed", "turned down"), past_status="denied",
                           performative=True))
async def deny(ctx: Context, args: dict[str, Any]) -> Reply:
    return as_command(await ctx.engine.decide("deny", args["request"], ctx.actor, reason=args.get("reason"),
                                              req=ctx.request))


@command("withdraw", summary="take back your own request while it waits for approval or confirmation",
         args=(TO_WITHDRAW, REASON),
         changes=True, confirm=False, approval=False, role="viewer",
         examples=("withdraw r-1a2b3c4d", "withdraw r-1a2b3c4d asked for the wrong snapshot"),
         words=("retract",), slash=False, schedulable=False,  # the approval card's Withdraw button, or /ops ask
         phrasing=Phrasing(verbs=("withdraw", "retract", "take back"),
                           object_verbs=("withdraw", "retract", "take back"), objects=("*",),
                           object_needs=("request",),
                           past=("withdrew", "withdrawn", "retracted"), performative=True))
async def withdraw(ctx: Context, args: dict[str, Any]) -> Reply:
    """Only the requester can withdraw (the engine checks); the request ends as `withdrawn`, nothing runs."""
    return as_command(await ctx.engine.decide(Action.withdraw, args["request"], ctx.actor,
                                              reason=args.get("reason"), req=ctx.request))


@command("cancel", summary="stop a change while it runs (its requester, an approver or an admin)",
         args=(TO_CANCEL, REASON),
         changes=True, confirm=False, approval=False, role="viewer",
         examples=("cancel r-1a2b3c4d", "cancel r-1a2b3c4d wrong stack"), schedulable=False,
         phrasing=Phrasing(verbs=("cancel", "stop", "abort", "kill", "halt", "interrupt", "terminate", "call off"),
                           object_verbs=("cancel", "stop", "abort", "kill", "halt", "interrupt", "terminate",
                                         "call off"), objects=("*",),
                           # "abort the web deploy" names no request: which one is not ours to guess
                           object_needs=("request",),
                           past=("cancelled", "canceled", "aborted", "interrupted"), performative=True))
async def cancel(ctx: Context, args: dict[str, Any]) -> Reply:
    """The run is stopped where it is and recorded as interrupted, naming who cancelled it.

    What it had done by then stays done (a half-finished deploy, a Proxmox task that
    carries on by itself): the reply and the audit log say so.  A request that has not
    started yet is withdrawn instead.
    """
    return as_command(await ctx.engine.cancel(args["request"], ctx.actor, args.get("reason"), req=ctx.request))


def as_command(decision: Decision) -> Reply:
    """A decision typed as a command (`approve r-…`), as that command's own outcome in the audit log.

    One that moved nothing (not allowed, already decided, expired) is refused: it changed nothing, and
    "succeeded" would say it did. One that moved the request succeeded even when the run it let go was
    then refused or failed (a freeze found at the start): that is the other request's outcome, which the
    reply tells, as a warning."""
    if not decision.applied:
        raise CannotSucceed(decision.reply.text)
    if decision.reply.tone is Tone.error:
        return dataclasses.replace(decision.reply, tone=Tone.warning)
    return decision.reply


def _waited(row: RequestRow, now: datetime) -> str:
    created = aware(row.created_at) or now
    mins = int((now - created).total_seconds() // 60)
    return f"{mins} min" if mins else "just now"


def _left(row: RequestRow, now: datetime) -> str:
    expires = aware(row.expires_at)
    if expires is None:
        return ""
    return f"{max(0, int((expires - now).total_seconds() // 60))} min"


@command("pending", summary="what waits for your approval, and your own requests that wait",
         examples=("pending",), words=("approvals", "pending approvals"), schedulable=False,
         phrasing=Phrasing(nouns=("pending", "pending approvals", "approvals", "waiting for my approval",
                                  "waiting for approval", "awaiting my approval", "my approval", "my sign-off",
                                  "my sign off", "my signoff", "my waiting requests", "my pending requests",
                                  "my requests that wait", "what is waiting", "what waits", "needs my approval",
                                  "need my approval", "needs my sign-off", "need my sign-off", "my approvals",
                                  "approval queue", "my queue", "need to sign off", "need to approve",
                                  "have to sign off", "have to approve", "waiting on me", "waiting for me",
                                  "waiting on my approval", "waiting for me to approve", "for me to approve",
                                  "for me to sign off", "waiting for me to sign off")))
async def pending(ctx: Context, args: dict[str, Any]) -> Reply:
    """Approvers see what others asked for and waits for an approver; everyone sees their own waiting requests."""
    rows = await asyncio.to_thread(ctx.store.waiting)
    now = utcnow()
    me = ctx.actor.id
    approver = ctx.has(Role.approver)
    theirs = [r for r in rows if r.actor != me and r.status in APPROVABLE] if approver else []
    mine = [r for r in rows if r.actor == me]
    tables = []
    if theirs:
        tables.append(Table(["request", "asked by", "what", "waiting", "expires in"],
                            [[r.id, r.actor, ctx.engine.said(r), _waited(r, now), _left(r, now)] for r in theirs],
                            title="Waiting for your approval"))
    if mine:
        def state(r: RequestRow) -> str:
            if r.status not in APPROVABLE:
                return "waits for your confirmation"
            who = ctx.engine.approvers(r.actor)
            return f"waits for an approver ({', '.join(who) or 'none configured'})"

        tables.append(Table(["request", "what", "state", "waiting", "expires in"],
                            [[r.id, ctx.engine.said(r), state(r), _waited(r, now), _left(r, now)] for r in mine],
                            title="Your requests that wait"))
    if approver:
        head = (f"{counted(len(theirs), 'request')} {agrees(len(theirs), 'waits', 'wait')} for your approval" if theirs
                else "Nothing waits for your approval")
    else:
        head = "You don't have the approver role, so nothing waits for your approval"
    tail = (f"; {len(mine)} of your own requests {agrees(len(mine), 'waits', 'wait')}." if mine
            else "; none of your own requests waits.")
    hint = ""
    if theirs:
        hint += f" Decide with 'approve {theirs[0].id}' or 'deny {theirs[0].id}'."
    if mine:
        hint += f" Take one of yours back with 'withdraw {mine[0].id}'."
    return Reply(head + tail + hint, title="Pending requests", tables=tables)


@command("health", summary="reachability of every backend: Docker hosts, Proxmox, GPU source, LLM, database",
         examples=("health",), words=("ping",),
         phrasing=Phrasing(nouns=("health", "health check", "healthcheck", "health-check", "ping", "backends",
                                  "reachable", "connectivity", "everything ok", "is everything up", "all systems",
                                  "connections", "self-check", "self check", "selfcheck", "self test", "self-test",
                                  "diagnostics", "gpu source", "gpu sources", "llm endpoint", "can you reach",
                                  "you can reach", "reachability", "all answering", "all responding"),
                           hints=("proxmox",)))
async def health(ctx: Context, args: dict[str, Any]) -> Reply:
    from infra.db.migrate import schema_status  # reads the schema's revision; never migrates

    rows = []
    notes = []
    dialect = ctx.store.db.engine.dialect.name
    try:
        schema = await asyncio.to_thread(schema_status, ctx.store.db.engine)
        rows.append(["database", (Health.ok if schema.current else Health.down).value, f"{dialect}, {schema.short()}"])
        if not schema.current:
            notes.append(f"{schema.describe()}. {schema.advice()}")
    except DatabaseUnavailable as exc:
        rows.append(["database", Health.down.value, str(exc)])
    valid, detail = ctx.engine.config_status()
    rows.append(["config", "ok" if valid else "INVALID", detail])
    for res in await ctx.backends.health():
        rows.append([res.name, res.state.value, res.detail])
    down = [r[0] for r in rows if r[1] in (Health.down.value, "INVALID")]
    unset = [r[0] for r in rows if r[1] == Health.misconfigured.value]
    heads = ([f"Down: {', '.join(down)}."] if down else []) + (
        [f"Misconfigured (the detail says what to set): {', '.join(unset)}."] if unset else [])
    tone = Tone.warning if heads else Tone.success
    text = " ".join([*heads, *notes]) if heads else "Everything configured answers."
    return Reply(text, tone=tone, tables=[Table(["backend", "state", "detail"], rows)])
