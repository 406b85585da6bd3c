"""Commands about the bot itself: help, identity, environments, freezes, approvals, health."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.request import Reply, Table, Tone
from commands.args import ENV, REASON, REQUEST
from commands.context import Context
from commands.registry import Arg, Kind, command, registry
from infra.db.common import DatabaseUnavailable, aware
from infra.errors import CommandError


@command("help", summary="list commands, or explain one",
         args=(Arg("topic", Kind.text, required=False, help="a command name"),),
         examples=("help", "help deploy"), words=("commands", "usage"))
async def help_(ctx: Context, args: dict[str, Any]) -> Reply:
    reg = registry()
    topic = args.get("topic")
    if topic:
        name = reg.command_for_word(topic.strip().split()[0])
        if name is None:
            raise CommandError(f"There is no command '{topic}'. Say 'help' for the list.")
        spec = reg[name]
        rows = [[a.name, a.kind.value, "yes" if a.required else "no",
                 "position or key=" if a.positional else "key=value only",
                 str(a.default) if a.default is not None else "", a.help] for a in spec.args]
        kind = ("changes a system: needs the operator role, is confirmed, and needs an approval "
                "on protected targets") if spec.changes and spec.approval else (
                f"needs the {spec.needed_role} role")
        text = f"{spec.usage}\n{spec.summary}. It {kind}."
        if spec.details:
            text += f"\n{spec.details}"
        examples = "\n".join(f"  {e}" for e in spec.examples)
        if examples:
            text += f"\nExamples:\n{examples}"
        tables = [Table(["argument", "kind", "required", "given as", "default", "meaning"], rows)] if rows else []
        return Reply(text, title=f"help: {spec.name}", tables=tables)
    rows = [[s.usage, s.summary, "change" if s.changes else "read"] for s in reg]
    return Reply("Commands (say 'help COMMAND' for one). Plain sentences work too, "
                 "e.g. 'restart n8n on dev'.", title="chatops help",
                 tables=[Table(["usage", "what it does", "kind"], rows)])


@command("whoami", summary="the caller's identity and roles", examples=("whoami",),
         words=("who am i",))
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
        return f"unreachable: {str(exc)[:80]}"


@command("envs", summary="environments, reachability, protection, locks", examples=("envs",),
         words=("environments",))
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
         words=("freeze",), notice="freezes")
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
         notice="freezes")
async def unlock(ctx: Context, args: dict[str, Any]) -> Reply:
    env = args["env"]
    existing = await asyncio.to_thread(ctx.store.unlock_env, env)
    if existing is None:
        return Reply(f"{env} was not frozen.", tone=Tone.info)
    return Reply(f"{env} is open for changes again (it was frozen by {existing.locked_by}).",
                 tone=Tone.success)


@command("approve", summary="approve a pending request (by its id)", args=(REQUEST,), changes=True,
         role="approver", confirm=False, approval=False, examples=("approve r-1a2b3c4d",), schedulable=False)
async def approve(ctx: Context, args: dict[str, Any]) -> Reply:
    return await ctx.engine.act("approve", args["request"], ctx.actor, req=ctx.request)


@command("deny", summary="deny a pending request", args=(REQUEST, REASON), changes=True,
         role="approver", confirm=False, approval=False,
         examples=("deny r-1a2b3c4d not during the demo",), words=("reject",), schedulable=False)
async def deny(ctx: Context, args: dict[str, Any]) -> Reply:
    return await ctx.engine.act("deny", args["request"], ctx.actor, reason=args.get("reason"),
                                req=ctx.request)


@command("health", summary="reachability of every backend: Docker hosts, Proxmox, GPU source, LLM, database",
         examples=("health",), words=("ping",))
async def health(ctx: Context, args: dict[str, Any]) -> Reply:
    rows = []
    try:
        await asyncio.to_thread(ctx.store.db.ping)
        rows.append(["database", "ok", ctx.store.db.engine.dialect.name])
    except DatabaseUnavailable as exc:
        rows.append(["database", "DOWN", str(exc)[:120]])
    for res in await ctx.backends.health():
        state = "not configured" if res.ok is None else ("ok" if res.ok else "DOWN")
        rows.append([res.name, state, res.detail])
    down = [r[0] for r in rows if r[1] == "DOWN"]
    tone = Tone.warning if down else Tone.success
    text = f"Down: {', '.join(down)}." if down else "Everything configured answers."
    return Reply(text, tone=tone, tables=[Table(["backend", "state", "detail"], rows)])
