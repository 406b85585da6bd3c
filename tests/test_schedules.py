"""Schedules: asked for in words, stored in PostgreSQL, run by the engine as their owner.

Time is a `ManualClock` the test moves (never a real wait).  "Exactly once with two replicas"
is checked with two real bot processes (tests/schedule_worker.py) racing for one occurrence,
and with two engines in this process racing for many.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from bot.engine import Engine
from bot.request import Actor, Reply, Request, Tone
from infra.backends import Backends
from infra.clock import ManualClock
from infra.config import ApprovalTime, Config, Grant, Role, Schedules
from infra.db.store import AuditStore, Database
from infra.status import ScheduleState, Status
from llm.when import Recurrence, WhenError, split_when
from tests.conftest import ROOT
from tests.events_support import (
    DEV,
    OPS,
    Recorder,
    Stack,
    engine_for,
    events_config,
    recording_registry,
    slack_text,
)
from tests.fakes.slack_api import FakeSlack
from tests.support import observable_registry

NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
UTCZ = ZoneInfo("UTC")


# -- the time phrase -----------------------------------------------------------------------------

@pytest.mark.parametrize(("said", "rest", "first", "every"), [
    ("deploy chat to prod at 22:00 today", "deploy chat to prod", "2026-03-02T22:00", None),
    ("snapshot rumpleprod every night at 02:00", "snapshot rumpleprod", "2026-03-03T02:00", "daily 02:00"),
    ("restart n8n on dev in 10 minutes", "restart n8n on dev", "2026-03-02T12:10", None),
    ("tomorrow at 6:30am deploy chat to test", "deploy chat to test", "2026-03-03T06:30", None),
    ("status prod every hour at :15", "status prod", "2026-03-02T12:15", "hourly :15"),
    ("snapshot rumpleprod every friday and monday at 7pm", "snapshot rumpleprod", "2026-03-02T19:00",
     "weekly mon,fri 19:00"),
    ("deploy chat to test every weekday at 07:00", "deploy chat to test", "2026-03-03T07:00",
     "weekly mon,tue,wed,thu,fri 07:00"),
    ("restart n8n on dev at 09:00", "restart n8n on dev", "2026-03-03T09:00", None),  # the next 09:00
    ("deploy chat to test on 2026-04-01 at 06:30", "deploy chat to test", "2026-04-01T06:30", None),
])
def test_time_phrases_split_from_any_command(said: str, rest: str, first: str, every: str | None) -> None:
    got_rest, phrase = split_when(said)
    assert phrase is not None and phrase.problem is None
    assert got_rest == rest
    assert phrase.first_run(NOON, UTCZ) == datetime.fromisoformat(first).replace(tzinfo=UTC)
    assert (phrase.every.spec if phrase.every else None) == every
    if phrase.every:
        assert Recurrence.parse(phrase.every.spec) == phrase.every


@pytest.mark.parametrize(("said", "problem"), [
    ("deploy chat at 25:00", "not a time of day"),
    ("deploy chat at 13pm", "1 to 12"),
    ("deploy chat at 11:00 today", "has already passed"),
    ("deploy chat on 2026-02-30 at 10:00", "no such date"),
])
def test_times_that_are_no_time_are_questions(said: str, problem: str) -> None:
    _, phrase = split_when(said)
    assert phrase is not None
    with pytest.raises(WhenError, match=problem):
        phrase.first_run(NOON, UTCZ)


def test_no_phrase_no_schedule_and_the_zone_counts() -> None:
    for plain in ("logs nginx live tail=200 since=30m", "audit since=1d", "status prod"):
        assert split_when(plain) == (plain, None)
    _, phrase = split_when("snapshot rumpleprod every night at 02:00")
    assert phrase is not None
    berlin = phrase.first_run(NOON, ZoneInfo("Europe/Berlin"))
    assert berlin == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)  # 02:00 CET is 01:00 UTC


# -- fixtures -----------------------------------------------------------------------------------

@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOON)


class Bots:
    def __init__(self, config: Config, db: Database, rec: Recorder, clock: ManualClock) -> None:
        self.config, self.db, self.rec, self.clock = config, db, rec, clock
        self.stacks: list[Stack] = []

    async def start(self, config: Config | None = None) -> Stack:
        st = await Stack(engine_for(config or self.config, self.db, recording_registry(self.rec), self.clock)).start()
        self.stacks.append(st)
        return st

    async def close(self) -> None:
        self.rec.gate.set()
        for st in self.stacks:
            await st.stop()


@pytest.fixture
async def bots(config: Config, db: Database, slack: FakeSlack, rec: Recorder,
               clock: ManualClock) -> AsyncIterator[Bots]:
    b = Bots(events_config(config, slack_url=f"{slack.base}/api/"), db, rec, clock)
    yield b
    await b.close()


async def ask(engine: Engine, user: str, words: str, channel: str | None = f"slack:{DEV}") -> Reply:
    return await engine.handle(Request(actor=Actor(user), text=words, platform=user.split(":")[0], channel=channel))


async def confirm(engine: Engine, user: str, reply: Reply) -> Reply:
    assert reply.request_id and reply.buttons, reply.text
    return await engine.act("confirm", reply.request_id, Actor(user), reply.buttons[0].plan_hash)


async def schedule(engine: Engine, user: str, words: str, channel: str | None = f"slack:{DEV}") -> str:
    """Ask, confirm, return the schedule id (fails the test if it was not scheduled)."""
    reply = await ask(engine, user, words, channel)
    if reply.buttons and reply.buttons[0].action == "confirm":
        reply = await confirm(engine, user, reply)
    assert reply.ok and reply.title.startswith("Scheduled s-"), reply.text
    return reply.title.split()[-1]


def in_channel(slack: FakeSlack, channel: str) -> list[dict[str, Any]]:
    return [m for m in slack.of("chat.postMessage") if m["channel"] == channel]


# -- the requirement: a minute ahead, two processes, exactly once ------------------------------------

async def test_a_schedule_a_minute_ahead_runs_exactly_once_with_two_bot_processes(
        config: Config, db: Database, pg_url: str, tmp_path: Path) -> None:
    engine = Engine(config, AuditStore(db), Backends(config), registry=observable_registry(tmp_path),
                    clock=ManualClock(NOON))
    await engine.start()
    sid = await schedule(engine, "console:alice", "touch rumpledev marker at 12:01 today", channel=None)
    await engine.close()
    due = NOON + timedelta(minutes=1, seconds=5)
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-m", "tests.schedule_worker", pg_url, str(tmp_path),
                               due.isoformat(), str(go)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:  # both replicas are up before either may look
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready", p.stderr.read() if p.stderr else ""
    go.touch()
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(len(o) for o in outputs) == [0, 1]
    assert [o for o in outputs if o] == [[[sid, "succeeded"]]]
    lines = (tmp_path / "marker").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rumpledev console:alice status-while-running=started")
    from infra.db.events import EventStore

    store = AuditStore(db)
    sched = EventStore(store).schedule(sid)
    assert sched is not None and sched.state == ScheduleState.done and sched.runs == 1
    assert sched.last_status == "succeeded"
    run = store.get(sched.last_request_id or "")
    assert run is not None and run.actor == "console:alice" and run.source == "schedule"
    assert run.schedule_id == sid


async def test_many_occurrences_two_replicas_in_one_process_each_runs_once(bots: Bots, rec: Recorder,
                                                                          clock: ManualClock) -> None:
    one, two = await bots.start(), await bots.start()
    ids = [await schedule(one.engine, "slack:UALICE", f"restart n8n on dev every day at 12:0{i}")
           for i in range(1, 6)]
    for minute in range(1, 6):
        clock.set(NOON + timedelta(minutes=minute, seconds=10))
        await asyncio.gather(one.engine.schedules.run_due(), two.engine.schedules.run_due(),
                             one.engine.schedules.run_due())
    assert len(rec.runs) == 5 and len({r.request_id for r in rec.runs}) == 5
    # Tomorrow, once more each.
    for minute in range(1, 6):
        clock.set(NOON + timedelta(days=1, minutes=minute, seconds=1))
        await asyncio.gather(two.engine.schedules.run_due(), one.engine.schedules.run_due())
    assert len(rec.runs) == 10
    assert {r.actor for r in rec.runs} == {"slack:UALICE"}
    for sid in ids:
        sched = one.engine.schedules.rows.schedule(sid)
        assert sched is not None and sched.runs == 2 and sched.state == ScheduleState.active


# -- roles at run time ---------------------------------------------------------------------------------

async def test_an_owner_who_lost_the_role_is_not_run_for_and_the_channel_hears_why(
        bots: Bots, slack: FakeSlack, rec: Recorder, clock: ManualClock) -> None:
    st = await bots.start()
    sid = await schedule(st.engine, "slack:UALICE", "restart n8n on dev at 12:01 today")
    # alice is a viewer now (the config was edited while the schedule waited).
    users = {**st.engine.config.inventory.users, "slack:UALICE": [Role.viewer]}
    st.engine.reload(dataclasses.replace(st.engine.config, inventory=st.engine.config.inventory.model_copy(
        update={"users": users})))
    clock.set(NOON + timedelta(minutes=1, seconds=2))
    assert await st.engine.schedules.run_due() == [(sid, "refused")]
    await st.settle()
    assert rec.runs == []
    said = in_channel(slack, DEV)[-1]
    assert f"Schedule {sid}" in slack_text(said) and "did not run" in slack_text(said)
    assert "needs the operator role" in slack_text(said)
    sched = st.engine.schedules.rows.schedule(sid)
    assert sched is not None and sched.last_status == "refused"
    row = st.engine.store.get(sched.last_request_id or "")
    assert row is not None and row.actor == "slack:UALICE" and row.status == "refused"
    assert "needs the operator role" in (row.reason or "")


async def test_a_scoped_owner_keeps_running_in_scope_and_is_refused_outside_it(
        bots: Bots, slack: FakeSlack, rec: Recorder, clock: ManualClock) -> None:
    st = await bots.start()
    sid = await schedule(st.engine, "slack:UALICE", "restart n8n on dev every day at 12:01")
    clock.set(NOON + timedelta(minutes=1))
    assert await st.engine.schedules.run_due() == [(sid, "succeeded")]
    # Now alice is an operator on rumpletest only.
    users = {**st.engine.config.inventory.users, "slack:UALICE": Grant(roles=[Role.operator], envs=["rumpletest"])}
    st.engine.reload(dataclasses.replace(st.engine.config, inventory=st.engine.config.inventory.model_copy(
        update={"users": users})))
    clock.set(NOON + timedelta(days=1, minutes=1))
    assert await st.engine.schedules.run_due() == [(sid, "refused")]
    await st.settle()
    assert len(rec.runs) == 1
    assert "operator role on rumpledev" in slack_text(in_channel(slack, DEV)[-1])


# -- downtime --------------------------------------------------------------------------------------------

async def test_a_run_missed_while_the_bot_was_down_is_reported_not_run_late(
        bots: Bots, slack: FakeSlack, rec: Recorder, clock: ManualClock) -> None:
    st = await bots.start()
    once = await schedule(st.engine, "slack:UALICE", "restart n8n on dev at 12:01 today")
    daily = await schedule(st.engine, "slack:UALICE", "restart nginx on dev every day at 12:02")
    clock.set(NOON + timedelta(minutes=40))  # the bot was down from 12:00 to 12:40
    ran = dict(await st.engine.schedules.run_due())
    assert ran == {once: "missed", daily: "missed"}
    await st.settle()
    assert rec.runs == []
    texts = [slack_text(m) for m in in_channel(slack, DEV)[-2:]]
    assert all("no bot was running then; it was not run late" in t for t in texts)
    assert any("Next run: 2026-03-03 12:02 UTC" in t for t in texts)
    sched = st.engine.schedules.rows.schedule(daily)
    assert sched is not None and sched.state == ScheduleState.active
    row = st.engine.store.get(sched.last_request_id or "")
    assert row is not None and row.status == Status.missed and row.schedule_id == daily
    assert st.engine.schedules.rows.schedule(once).state == ScheduleState.done  # type: ignore[union-attr]
    # The next occurrence runs normally.
    clock.set(datetime(2026, 3, 3, 12, 2, 30, tzinfo=UTC))
    assert await st.engine.schedules.run_due() == [(daily, "succeeded")]
    assert [r.args["service"] for r in rec.runs] == ["nginx"]
    assert await st.engine.schedules.run_due() == []


# -- approvals -----------------------------------------------------------------------------------------------

async def test_a_protected_change_approved_when_scheduled_runs_on_that_approval_only(
        bots: Bots, slack: FakeSlack, rec: Recorder, clock: ManualClock) -> None:
    st = await bots.start()
    e = st.engine
    reply = await confirm(e, "slack:UALICE", await ask(e, "slack:UALICE", "restart n8n on prod every night at 02:00"))
    assert reply.tone is Tone.pending and "scheduled every day at 02:00" in reply.text
    await st.settle()
    card = in_channel(slack, OPS)[-1]  # the ops channel gets the approval card too
    assert "Approve" in slack_text(card)
    assert (await e.act("approve", reply.request_id or "", Actor("slack:UBOB"))).ok
    sid = next(s.id for s in e.schedules.rows.schedules())
    sched = e.schedules.rows.schedule(sid)
    assert sched is not None and sched.approved_by == "slack:UBOB" and sched.approval == ApprovalTime.at_schedule
    clock.set(datetime(2026, 3, 3, 2, 0, 30, tzinfo=UTC))
    assert await e.schedules.run_due() == [(sid, "succeeded")]
    run = e.store.get(rec.runs[0].request_id)
    assert run is not None and run.approver == "slack:UBOB" and run.actor == "slack:UALICE"
    kinds = [ev.kind for ev in e.store.events(run.id)]
    assert kinds[:2] == ["requested", "approved"]
    # The approval is bound to the plan's hash: the stored plan edited behind the bot's back needs a new one.
    with e.store.db.engine.begin() as c:
        c.execute(text("UPDATE schedules SET args = :a WHERE id = :i"),
                  {"a": json.dumps({"service": "nginx", "env": "rumpleprod"}), "i": sid})
    clock.set(datetime(2026, 3, 4, 2, 0, 30, tzinfo=UTC))
    assert await e.schedules.run_due() == [(sid, "pending_approval")]
    assert len(rec.runs) == 1
    # Unscheduled: the approval ends with it, nothing runs again.
    assert (await ask(e, "slack:UALICE", f"unschedule {sid}")).ok
    clock.set(datetime(2026, 3, 5, 2, 0, 30, tzinfo=UTC))
    assert await e.schedules.run_due() == []


async def test_approval_at_run_time_when_configured(config: Config, db: Database, slack: FakeSlack, rec: Recorder,
                                                    clock: ManualClock) -> None:
    cfg = events_config(config, slack_url=f"{slack.base}/api/", schedules=Schedules(approval=ApprovalTime.at_run))
    b = Bots(cfg, db, rec, clock)
    try:
        st = await b.start()
        e = st.engine
        asked = await ask(e, "slack:UALICE", "restart n8n on prod at 22:00 today")
        assert "Each run will need an approver's OK" in asked.text
        done = await confirm(e, "slack:UALICE", asked)  # no approver now: scheduled at once
        assert done.ok and "Each run asks an approver first" in done.text
        sid = done.title.split()[-1]
        clock.set(datetime(2026, 3, 2, 22, 0, 10, tzinfo=UTC))
        assert await e.schedules.run_due() == [(sid, "pending_approval")]
        await st.settle()
        assert rec.runs == []
        card = [m for m in in_channel(slack, OPS) if "Approve" in slack_text(m)][-1]
        assert f"a run of schedule {sid}" in slack_text(card)
        pending = e.store.get(e.schedules.rows.schedule(sid).last_request_id or "")  # type: ignore[union-attr]
        assert pending is not None and pending.status == "pending_approval"
        assert (await e.act("approve", pending.id, Actor("slack:UBOB"))).ok
        assert [(r.command, r.actor) for r in rec.runs] == [("restart", "slack:UALICE")]
    finally:
        await b.close()


# -- listing and cancelling --------------------------------------------------------------------------------------

async def test_schedules_lists_and_only_the_owner_or_an_admin_unschedules(bots: Bots, clock: ManualClock) -> None:
    e = (await bots.start()).engine
    sid = await schedule(e, "slack:UALICE", "restart n8n on dev every night at 02:00")
    listed = await ask(e, "slack:UVIEW", "schedules")
    assert listed.ok and listed.tables[0].rows[0][0] == sid
    assert "every day at 02:00 (next 2026-03-03 02:00 UTC)" in listed.tables[0].rows[0][2]
    assert (await ask(e, "slack:UVIEW", "schedules prod")).tables == []
    bob = await ask(e, "slack:UBOB", f"unschedule {sid}")
    assert not bob.ok and "only they or an admin" in bob.text
    assert (await ask(e, "slack:UCAROL", f"unschedule {sid}")).ok
    assert (await ask(e, "slack:UALICE", f"unschedule {sid}")).tone is Tone.error  # already gone
    assert "can't be scheduled" in (await ask(e, "slack:UBOB", "approve r-12345678 at 22:00")).text
    late = await ask(e, "slack:UALICE", "restart n8n on dev at 11:00 today")
    assert late.tone is Tone.question and "already passed" in late.text


# -- snapshots made by a schedule keep retention working --------------------------------------------------------------

async def test_scheduled_snapshots_are_named_for_their_time_and_retention_prunes_them(
        config: Config, db: Database, tmp_path: Path, clock: ManualClock) -> None:
    from infra.wiring import make_backends
    from tests.test_proxmox import pve_config, start_fake

    fake = start_fake(tmp_path / "pve", config, task_seconds=0.05)
    try:
        cfg = pve_config(config, fake, snapshot_retention=2)
        e = Engine(cfg, AuditStore(db), make_backends(cfg), clock=clock)
        await e.start()
        # The card of the schedule says what each run deletes before anyone confirms it.
        card = await e.handle(Request(actor=Actor("console:alice"), text="snapshot rumpledev every hour"))
        assert "Each run keeps the newest 2 snapshots this schedule took" in dict(card.fields)["What will happen"]
        await e.act("cancel", card.request_id or "", Actor("console:alice"))
        sid = await schedule(e, "console:alice", "snapshot rumpledev every hour", channel=None)
        names = []
        for hour in range(1, 4):
            clock.set(NOON + timedelta(hours=hour, seconds=3))
            assert await e.schedules.run_due() == [(sid, "succeeded")]
            names.append(f"chatops-20260302-{12 + hour:02d}0000-alice")
        listed = await ask(e, "console:alice", "snapshots rumpledev", channel=None)
        shown = {row[0].split()[0] for t in listed.tables for row in t.rows}
        assert names[1] in shown and names[2] in shown and names[0] not in shown  # the oldest pruned
        last = e.store.get(e.schedules.rows.schedule(sid).last_request_id or "")  # type: ignore[union-attr]
        assert last is not None
        retention = [ev.detail for ev in e.store.events(last.id) if ev.kind == "retention"]
        assert [(d["snapshot"], d["outcome"]) for d in retention] == [(names[0], "deleted")]
        await e.close()
    finally:
        fake.stop()


def test_chatops_parse_shows_the_time_phrase() -> None:
    from click.testing import CliRunner

    from bot.cli import main

    out = CliRunner().invoke(main, ["parse", "--json", "--no-llm", "snapshot rumpleprod every night at 02:00"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"command": "snapshot", "args": {"vm": "rumpleprod"}, "source": "grammar",
                                      "clarify": None, "confidence": 1.0, "outcome": "run",
                                      "when": "every night at 02:00"}
    plain = json.loads(CliRunner().invoke(main, ["parse", "--json", "--no-llm", "status prod"]).output)
    assert "when" not in plain


# -- a schedule read from plain language is a proposal, as a change is ---------------------------------------------

async def test_a_schedule_read_from_a_sentence_waits_for_its_requesters_yes(engine: Engine) -> None:
    """'lock' acts at once when said as itself; read out of a sentence it is confirmed first, now or scheduled
    (the schedule's path had its own copy of the rule, without the sentence case)."""
    carol = Actor("console:carol")
    card = await engine.handle(Request(actor=carol, text="please freeze rumpledev tonight at 23:30 for the upgrade"))
    assert card.tone is Tone.question and [b.label for b in card.buttons] == ["Schedule it", "Cancel"], card.text
    row = engine.store.get(card.request_id or "")
    assert row is not None and row.status == Status.awaiting_confirmation and row.schedule_id
    proposed = engine.schedules.rows.schedule(row.schedule_id)
    assert proposed is not None and proposed.state == ScheduleState.proposed  # nothing will run on its own
    now = await engine.handle(Request(actor=carol, text="please freeze rumpledev for the upgrade"))
    assert now.tone is Tone.question and [b.label for b in now.buttons] == ["Run it", "Cancel"]
    said = await engine.handle(Request(actor=carol, text="lock rumpledev tonight at 23:30"))
    assert said.text.startswith("Scheduled s-"), said.text  # the command said as itself: at once, as before


async def test_a_console_alone_on_its_database_runs_what_is_due_and_says_so(config: Config, tmp_path: Path) -> None:
    """The console on its SQLite file is the only bot there: a schedule made in it runs while it is open."""
    from bot.adapters.console import Screen, run_schedules

    quick = dataclasses.replace(config, inventory=config.inventory.model_copy(
        update={"schedules": Schedules(tick_seconds=0.05)}))
    clock = ManualClock(NOON)
    db = Database(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    db.migrate()
    engine = Engine(quick, AuditStore(db), Backends(quick), registry=observable_registry(tmp_path), clock=clock)
    await engine.start()
    lines: list[str] = []
    stop = asyncio.Event()
    ticking = asyncio.create_task(run_schedules(engine, Screen(write=lines.append), stop))
    try:
        sid = await schedule(engine, "console:alice", "touch rumpledev marker at 12:01 today", channel="console")
        clock.advance(timedelta(minutes=1, seconds=5))
        for _ in range(200):
            if any(sid in line for line in lines):
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(ticking, 10)  # the loop ends when asked, between ticks
        await engine.close()
        db.dispose()
    assert any(f"Schedule {sid} ran: succeeded" in line for line in lines), lines
    assert (tmp_path / "marker").read_text().startswith("rumpledev console:alice")
