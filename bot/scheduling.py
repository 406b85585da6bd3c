"""Schedules: "snapshot rumpleprod every night at 02:00", "deploy chat to prod at 22:00 today".

A request whose text carries a time phrase (llm/when.py) becomes a *schedule* instead of
running: it is confirmed like any change and, on a protected target, approved either now
(`schedules.approval: at_schedule`, the approval bound to the plan hash and ending with the
schedule) or at every run (`at_run`).  The scheduling request ends `scheduled`; each run is a
request of its own, asked by the owner through the same engine path (channel, roles as
configured *then*, freeze, locks, audit), so a person who lost a role sees their schedule
refuse to run, with the reason, in the channel it was made in.

`Scheduler` is the loop every replica runs: it claims due occurrences (one conditional
UPDATE per occurrence, `FOR UPDATE SKIP LOCKED` on PostgreSQL, so exactly one replica runs
each) and runs them, or reports them missed when the bot was down at their time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.metrics import SCHEDULE_RUNS
from bot.policy import needs_approval, roles_for, targets_of
from bot.request import Actor, Button, Reply, Request, Tone
from commands.registry import CommandSpec
from infra.config import ApprovalTime, Notice, Role
from infra.db.common import DatabaseUnavailable, aware, utcnow
from infra.db.events import Claimed, EventStore, new_schedule_id
from infra.db.models import RequestRow, ScheduleRow
from infra.db.store import named_problem
from infra.errors import CannotSucceed, CommandError
from infra.status import ScheduleState, Status
from llm.plan import Plan, plan_hash
from llm.when import Recurrence, WhenError

if TYPE_CHECKING:
    from collections.abc import Callable

    from bot.engine import Engine

log = logging.getLogger("chatops.schedules")
NO_APPROVAL = "none"


class Scheduling:
    """The engine's schedule side: propose, arm, look up, cancel, and run due occurrences."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rows = EventStore(engine.store)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.engine.config.inventory.schedules.timezone)

    def local(self, when: datetime | None) -> str:
        if when is None:
            return "never"
        return f"{aware(when).astimezone(self.tz):%Y-%m-%d %H:%M} {self.tz.key}"  # type: ignore[union-attr]

    def describe(self, sched: ScheduleRow) -> str:
        how = Recurrence.parse(sched.recurrence).describe() if sched.recurrence else sched.said
        return f"{how} (next {self.local(sched.next_run)})" if sched.next_run else how

    # -- asking for one -------------------------------------------------------
    async def propose(self, req: Request, plan: Plan, spec: CommandSpec, roles: frozenset[Role]) -> Reply:
        """A request with a time phrase: store a proposed schedule and confirm/approve it like a change."""
        e = self.engine
        cfg = e.config.inventory.schedules
        assert plan.when is not None
        if not spec.schedulable:
            return await e._refuse(req, plan, f"'{spec.name}' can't be scheduled; ask for it when it is needed.")
        try:
            first = plan.when.first_run(e.clock.now(), self.tz)
            e.backends.require(spec.backend, plan.args)
        except (WhenError, CommandError) as exc:
            return await e._refuse(req, plan, str(exc), Tone.question if isinstance(exc, WhenError) else Tone.error)
        if (secret := e.secret_argument(plan)) is not None:
            return await e._refuse(req, plan, secret)
        if await e._db(self.rows.count_active, req.actor.id) >= cfg.max_per_user:
            return await e._refuse(req, plan, f"You have {cfg.max_per_user} schedules already (the limit); "
                                              "'schedules' lists them and 'unschedule ID' removes one.")
        digest = plan_hash(spec.name, plan.args)
        mode = cfg.approval.value if needs_approval(e.config, spec, plan.args) else NO_APPROVAL
        env = plan.args.get("env") if isinstance(plan.args.get("env"), str) else None
        sched = ScheduleRow(
            id=new_schedule_id(), owner=req.actor.id, platform=req.platform, channel=req.channel,
            thread=req.thread, text=req.text[:2000], command=spec.name, args=plan.args, env=env,
            plan_hash=digest, said=plan.when.said[:128],
            recurrence=plan.when.every.spec if plan.when.every else None, timezone=self.tz.key,
            next_run=first, state=ScheduleState.proposed, approval=mode, runs=0)
        from bot.engine import describe, shown

        lines: list[str] = []
        if spec.changes:
            # The card says what each run will do (a schedule's snapshots are pruned among their own).
            try:
                lines = await e._preview(dataclasses.replace(req, schedule=sched.id), spec, plan.args, roles)
            except CannotSucceed as exc:
                return await e._refuse(req, plan, str(exc))

        confirm = e.must_confirm(req, plan, spec)
        status = (Status.awaiting_confirmation if confirm else
                  Status.pending_approval if mode == ApprovalTime.at_schedule else Status.requested)
        expires = utcnow() + timedelta(minutes=e.config.inventory.approvals.expiry_minutes)
        row = e._row(req, plan, status, plan_hash=digest, schedule_id=sched.id,
                     expires_at=expires if status is not Status.requested else None)
        sched.request_id = row.id
        await e._db(self.rows.add_schedule, sched)
        row.schedule_id = sched.id
        later = [(status, {"plan_hash": digest, "schedule": sched.id, "preview": shown(lines)})] \
            if status is not Status.requested else []
        await e._create(req, row, *later)
        if row.id != sched.request_id:  # the request id was drawn again on a collision
            await e._db(self.rows.set_state, sched.id, (ScheduleState.proposed,), ScheduleState.proposed,
                        request_id=row.id)
        when = self.describe(sched)
        if status is Status.awaiting_confirmation:
            note = {ApprovalTime.at_schedule.value: " It needs an approver's OK after that (protected target).",
                    ApprovalTime.at_run.value: " Each run will need an approver's OK (protected target)."}
            return Reply(f"I understood: {describe(spec, plan.args)}, {when}. Schedule it?{note.get(mode, '')}",
                         tone=Tone.question, title="Confirm schedule",
                         fields=[*e._card(spec, plan.args, lines), ("When", when)],
                         buttons=[Button("Schedule it", "confirm", row.id, digest, "primary"),
                                  Button("Cancel", "cancel", row.id, digest)],
                         request_id=row.id, private=True)
        if status is Status.pending_approval:
            return await e._approval_card(req, spec, row, lines)
        return await self.arm(row, (Status.requested,), req.actor)

    async def is_scheduling(self, row: RequestRow) -> bool:
        """Whether this request asked for a schedule (rather than being one of its runs)."""
        if not row.schedule_id:
            return False
        sched = await self.engine._db(self.rows.schedule, row.schedule_id)
        return sched is not None and sched.request_id == row.id

    async def approve_now(self, row: RequestRow) -> bool:
        """Whether a confirmed request on a protected target is approved now (not per run)."""
        if not await self.is_scheduling(row):
            return True
        sched = await self.engine._db(self.rows.schedule, row.schedule_id or "")
        return sched is not None and sched.approval == ApprovalTime.at_schedule

    async def when_of(self, row: RequestRow) -> str:
        """For an approval card: when a scheduled request runs (or which schedule a run is of)."""
        if not row.schedule_id:
            return ""
        try:
            sched = await self.engine._db(self.rows.schedule, row.schedule_id)
        except DatabaseUnavailable:
            return ""  # the card still says what it needs; the schedule is in the audit row
        if sched is None:
            return ""
        if sched.request_id == row.id:
            every = " (the approval holds for every run of this exact plan)" if sched.recurrence else ""
            return f"scheduled {self.describe(sched)}{every}"
        return f"a run of schedule {sched.id}, {sched.said}"

    async def arm(self, row: RequestRow, from_status: tuple[Status, ...], actor: Actor) -> Reply:
        """The scheduling request is confirmed (and approved): the schedule becomes active."""
        e = self.engine
        sched = await e._db(self.rows.schedule, row.schedule_id or "")
        if sched is None:
            return e._error(f"The schedule of request {row.id} is gone; nothing was scheduled.", row.id)
        now = e.clock.now()
        next_run = aware(sched.next_run)
        if next_run is not None and next_run <= now and sched.recurrence:
            next_run = Recurrence.parse(sched.recurrence).next_after(now, self.tz)
        if next_run is None or next_run <= now:
            why = f"its time ({self.local(next_run)}) passed before it was confirmed and approved"
            await e._write(e.store.transition_later, row.id, from_status, Status.refused, actor.id, {"reason": why},
                           reason=why)
            await e._db(self.rows.set_state, sched.id, (ScheduleState.proposed,), ScheduleState.cancelled,
                        reason=why)
            return e._error(f"Not scheduled: {why}. Ask again with a later time.", row.id)
        moved = await e._write(e.store.transition_later, row.id, from_status, Status.scheduled, actor.id,
                               {"schedule": sched.id, "next_run": next_run.isoformat(),
                                "recurrence": sched.recurrence, "approval": sched.approval})
        if moved is None:
            return (await e._already(row.id)).reply
        approved_by = row.approver if sched.approval == ApprovalTime.at_schedule else None
        active = await e._db(self.rows.set_state, sched.id, (ScheduleState.proposed,), ScheduleState.active,
                             next_run=next_run, approved_by=approved_by, approved_at=now if approved_by else None)
        assert active is not None
        from bot.engine import describe

        spec = e.registry[sched.command]
        lines = [f"Scheduled {sched.id}: {describe(spec, sched.args)}, {self.describe(active)}."]
        if approved_by:
            lines.append(f"Approved by {approved_by}" + (" for every run" if sched.recurrence else "")
                         + " of exactly this plan; 'unschedule' ends the approval with the schedule.")
        elif sched.approval == ApprovalTime.at_run:
            lines.append("Each run asks an approver first (protected target).")
        lines.append(f"It runs as {sched.owner}, with the roles they have then. "
                     f"'unschedule {sched.id}' cancels it.")
        return Reply(" ".join(lines), tone=Tone.success, title=f"Scheduled {sched.id}", request_id=row.id,
                     fields=[("Command", describe(spec, sched.args)), ("When", self.describe(active)),
                             ("Schedule", sched.id)])

    async def preapproved(self, req: Request, digest: str) -> str | None:
        """The approver of a run's schedule when that approval still holds: same plan hash, the
        schedule not cancelled, the approver still an approver there."""
        if not req.schedule:
            return None
        sched = await self.engine._db(self.rows.schedule, req.schedule)
        if (sched is None or sched.approval != ApprovalTime.at_schedule or not sched.approved_by
                or sched.state == ScheduleState.cancelled or sched.plan_hash != digest):
            return None
        if Role.approver not in roles_for(self.engine.config, sched.approved_by, sched.args):
            return None
        return sched.approved_by

    async def cancel(self, sid: str, actor: Actor, roles_check: bool = True) -> Reply:
        """`unschedule`: the owner, or an admin where the schedule acts, ends it (and its approval)."""
        e = self.engine
        found = await e._db(self.rows.find_schedules, sid)
        several = named_problem("schedule", sid, found) if found else None  # (none is said below)
        if several:
            raise CommandError(several)
        sched = found[0] if found else None
        sid = sched.id if sched else sid
        if sched is None or sched.state not in (ScheduleState.active, ScheduleState.proposed):
            state = f"is {sched.state}" if sched else "does not exist"
            raise CommandError(f"Schedule {sid} {state}; 'schedules' lists the active ones.")
        admin = Role.admin in roles_for(e.config, actor.id, sched.args)
        if roles_check and actor.id != sched.owner and not admin:
            raise CommandError(f"Schedule {sid} is {sched.owner}'s; only they or an admin there can cancel it.")
        done = await e._db(self.rows.set_state, sid, (ScheduleState.active, ScheduleState.proposed),
                           ScheduleState.cancelled, ended_by=actor.id, next_run=None,
                           reason=f"unscheduled by {actor.id}")
        if done is None:
            raise CommandError(f"Schedule {sid} was ended by someone else just now.")
        return Reply(f"Unscheduled {sid} ({sched.command}, {sched.said}); it will not run again"
                     + (" and its approval ends with it." if sched.approved_by else "."), tone=Tone.success)

    # -- buttons that offer a plan -------------------------------------------
    async def suggested(self, sid: str, digest: str, actor: Actor, req: Request) -> Reply:
        """A click on a suggested plan (an alert's "Logs", "Restart"): ask for it as the clicker."""
        e = self.engine
        sug = await e._db(self.rows.suggestion, sid)
        if sug is None:
            return e._error(f"That button's plan ({sid}) is unknown; nothing was done.")
        if digest and digest != sug.plan_hash:
            return e._error(f"That button ({sid}) does not match the plan it was made for; nothing was done.")
        spec = e.registry.get(sug.command)
        from bot.engine import describe

        text = describe(spec, sug.args) if spec else sug.command
        ask = Request(actor=actor, text=text, platform=req.platform, channel=req.channel, thread=req.thread,
                      command=sug.command, args=dict(sug.args), route="alert", on_progress=req.on_progress)
        return await e.handle(ask)

    # -- running ---------------------------------------------------------------
    def _advance(self, row: ScheduleRow, now: datetime) -> tuple[datetime | None, ScheduleState]:
        if not row.recurrence:
            return None, ScheduleState.done
        due = aware(row.next_run) or now
        return Recurrence.parse(row.recurrence).next_after(max(now, due), ZoneInfo(row.timezone)), \
            ScheduleState.active

    async def run_due(self) -> list[tuple[str, str]]:
        """One tick: claim what is due now and run it (or report it missed); (schedule, status) pairs."""
        e = self.engine
        now = e.clock.now()
        grace = timedelta(minutes=e.config.inventory.schedules.grace_minutes)
        claimed = await e._db(self.rows.claim_due, now, self._advance)
        out = []
        for c in claimed:
            status = await self._missed(c, now) if now - c.due > grace else await self._run(c)
            SCHEDULE_RUNS.labels(status).inc()
            out.append((c.row.id, status))
        return out

    def _request(self, sched: ScheduleRow, due: datetime) -> Request:
        return Request(actor=Actor(sched.owner), text=sched.text, platform=sched.platform,
                       channel=sched.channel, thread=sched.thread, command=sched.command,
                       args=dict(sched.args), confirmed=True, route="schedule", schedule=sched.id,
                       scheduled_for=due)

    async def _run(self, c: Claimed) -> str:
        e = self.engine
        sched = c.row
        log.info("running schedule %s (%s, due %s)", sched.id, sched.command, c.due.isoformat())
        reply = await e.handle(self._request(sched, c.due))
        row = await e._db(e.store.get, reply.request_id) if reply.request_id else None
        status = row.status if row else ("refused" if reply.tone is Tone.error else "unknown")
        await e._db(self.rows.record_run, sched.id, reply.request_id, status, c.due)
        head = f"Schedule {sched.id} ({sched.said})"
        reply.text = f"{head} did not run: {reply.text}" if status == Status.refused else f"{head}: {reply.text}"
        await self._tell(sched, reply, also_ops=status == Status.refused)
        return status

    async def _missed(self, c: Claimed, now: datetime) -> str:
        e = self.engine
        sched = c.row
        nxt = c.following
        reason = (f"Schedule {sched.id} ({sched.command}, {sched.said}) was due at {self.local(c.due)}, but no "
                  f"bot was running then; it was not run late." + (f" Next run: {self.local(nxt)}." if nxt else ""))
        req = self._request(sched, c.due)
        plan = Plan(sched.command, dict(sched.args), source="schedule")
        row = e._row(req, plan, Status.missed, reason=reason, schedule_id=sched.id)
        await e._create(req, row, (Status.missed, {"reason": reason, "due": c.due.isoformat()}))
        await e._db(self.rows.record_run, sched.id, row.id, Status.missed, c.due)
        log.warning("%s", reason)
        await self._tell(sched, Reply(reason, tone=Tone.warning, title=f"Missed: schedule {sched.id}",
                                      request_id=row.id), also_ops=True)
        return Status.missed

    async def _tell(self, sched: ScheduleRow, reply: Reply, *, also_ops: bool) -> None:
        """The run's answer goes to the channel it was scheduled in; refusals and misses to ops too."""
        from bot.notify import Target
        from bot.redaction import redact_reply

        e = self.engine
        reply = redact_reply(e.redactor, reply)
        targets: list[Target] = []
        if sched.channel and ":" in sched.channel:
            platform, _, channel = sched.channel.partition(":")
            if platform in e.notify.posters:
                targets.append(Target(platform, channel))
        if also_ops:
            targets += [t for t in e.notify.targets(targets_of(e.config, sched.args), Notice.schedules)
                        if t not in targets]
        if targets:
            await e.notify.post_all(targets, reply)


class Scheduler:
    """The loop each replica runs: every `schedules.tick_seconds`, run what is due."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def tick(self) -> list[tuple[str, str]]:
        try:
            return await self.engine.schedules.run_due()
        except Exception:
            log.exception("schedule tick failed; trying again at the next one")
            return []

    async def run(self, stop: asyncio.Event, on_run: Callable[[str, str], None] | None = None) -> None:
        """Until `stop`; `on_run(schedule, status)` after each run (the console prints it)."""
        while not stop.is_set():
            if self.engine.jobs.accepting:
                for sid, status in await self.tick():
                    if on_run is not None:
                        on_run(sid, status)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.engine.config.inventory.schedules.tick_seconds)
