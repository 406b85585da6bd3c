"""Schedules, listed and cancelled from chat (asking for one is any request with "at …" or "every …")."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.request import Reply, Table
from commands.args import ENV_OPT
from commands.context import Context
from commands.registry import Arg, Kind, Phrasing, command
from infra.db.common import aware
from infra.wording import counted


@command("schedules", summary="scheduled requests (optionally of one environment)", args=(ENV_OPT,),
         examples=("schedules", "schedules prod"), words=("scheduled",), schedulable=False)
async def schedules(ctx: Context, args: dict[str, Any]) -> Reply:
    """Active schedules, the next run first: what, when, whose, approved by whom, how the last run went."""
    sch = ctx.engine.schedules
    rows = await asyncio.to_thread(sch.rows.schedules, env=args.get("env"))
    table = [[r.id, r.command + " " + " ".join(f"{v}" for v in r.args.values()), sch.describe(r), r.owner,
              r.approved_by or ("each run" if r.approval == "at_run" else "-"),
              (f"{r.last_status} {aware(r.last_run_at):%Y-%m-%d %H:%M}" if r.last_run_at else "-")]
             for r in rows]
    where = f" on {args['env']}" if args.get("env") else ""
    if not table:
        return Reply(f"No schedules{where}. Add one by asking with a time, e.g. "
                     "'snapshot rumpleprod every night at 02:00'.")
    return Reply(f"{counted(len(table), 'schedule')}{where}; times in {sch.tz.key}. 'unschedule ID' cancels one.",
                 tables=[Table(["id", "what", "when", "owner", "approved", "last run"], table)])


@command("unschedule", summary="cancel a scheduled request", changes=True, confirm=False, approval=False,
         args=(Arg("id", Kind.schedule, help="schedule id, like s-1a2b3c4d"),),
         examples=("unschedule s-1a2b3c4d",), words=("cancel schedule",), schedulable=False,
         # "cancel the scheduled request 4d9e": a schedule is what those verbs end here, not a running change
         phrasing=Phrasing(verbs=("unschedule",), nouns=("schedule", "scheduled request", "scheduled job",
                                                           "scheduled run", "scheduled restart", "scheduled deploy"),
                           object_verbs=("cancel", "drop", "remove", "delete", "kill", "stop", "call off"),
                           object_needs=("id",)),
         slash=False)  # Discord's 25 subcommands are taken; `/ops ask unschedule s-…` reaches it
async def unschedule(ctx: Context, args: dict[str, Any]) -> Reply:
    """Its owner, or an admin on its environment, ends it; an approval given when it was scheduled ends too."""
    return await ctx.engine.schedules.cancel(args["id"], ctx.actor)
