"""Several bot processes against one PostgreSQL database stay correct.

Each engine here has its own AuditStore (its own owner id, connection pool and advisory
lock), exactly as two replicas of the container would.  Races are real: both sides run
concurrently on the event loop, their database calls on separate threads and connections.
"""

from __future__ import annotations

import asyncio

from bot.engine import Engine
from bot.request import Actor
from infra.config import Config
from infra.db.store import Database
from tests.conftest import make_engine
from tests.ops_support import HeldJob, docker_backends, registry_with, restart, wait_for

ROUNDS = 5


def replicas(config: Config, db: Database, job: HeldJob) -> tuple[Engine, Engine]:
    reg = registry_with(job)
    return (make_engine(config, db, registry=reg, backends=docker_backends(config)),
            make_engine(config, db, registry=reg, backends=docker_backends(config)))


async def started(*engines: Engine) -> None:
    for eng in engines:
        await eng.start()


async def test_two_approvers_on_two_replicas_run_it_exactly_once(config: Config, db: Database) -> None:
    job = HeldJob(hold=False)
    a, b = replicas(config, db, job)
    await started(a, b)
    try:
        for _ in range(ROUNDS):
            job.runs.clear()
            pending = await a.handle(restart("console:alice", "n8n", "rumpleprod"))
            rid = pending.request_id or ""
            assert "needs approval" in pending.text
            digest = pending.buttons[0].plan_hash
            bob, carol = Actor("console:bob"), Actor("console:carol")
            one, two = await asyncio.gather(a.act("approve", rid, bob, digest), b.act("approve", rid, carol, digest))
            assert len(job.runs) == 1 and job.runs[0][0] == rid
            winners = [r for r in (one, two) if dict(r.fields).get("Decision", "").startswith("Approved by")]
            losers = [r for r in (one, two) if "nothing was done twice" in r.text]
            assert len(winners) == 1 and len(losers) == 1, (one.text, two.text)
            row = a.store.get(rid)
            assert row is not None and row.status == "succeeded"
            assert [e.kind for e in a.store.events(rid)] == ["requested", "pending_approval", "approved",
                                                             "started", "succeeded"]
        assert a.store.verify() == []
    finally:
        await a.close()
        await b.close()


async def test_two_changes_racing_for_one_lock_one_runs_the_other_is_told_busy(config: Config,
                                                                              db: Database) -> None:
    job = HeldJob()
    a, b = replicas(config, db, job)
    await started(a, b)
    try:
        first = asyncio.create_task(a.handle(restart("console:alice", "n8n", "rumpledev")))
        await wait_for(job.started)
        holder = job.runs[0][0]
        # Same environment, other service, other replica, other user: the env lock is shared.
        busy = await b.handle(restart("console:bob", "nginx", "rumpledev"))
        assert not busy.ok
        assert busy.text.startswith(f"Another change ({holder}) is running on env:rumpledev")
        assert "nothing was changed" in busy.text
        row = b.store.get(busy.request_id or "")
        assert row is not None and row.status == "refused" and row.owner is None  # it never ran
        assert len(job.runs) == 1
        # A different environment is not blocked.
        job.hold = False
        assert (await b.handle(restart("console:bob", "nginx", "rumpletest"))).ok
        job.release.set()
        assert (await first).ok
        # Lock released: the second change can now run on the other replica.
        assert (await b.handle(restart("console:bob", "nginx", "rumpledev"))).ok
    finally:
        await a.close()
        await b.close()


async def test_simultaneous_changes_for_one_lock_never_overlap(config: Config, db: Database) -> None:
    """Both replicas ask at the same instant; whichever wins, exactly one handler runs at a time."""
    job = HeldJob()
    a, b = replicas(config, db, job)
    await started(a, b)
    try:
        for _ in range(ROUNDS):
            job.runs.clear()
            job.started.clear()
            job.release.clear()
            job.hold = True
            t1 = asyncio.create_task(a.handle(restart("console:alice", "n8n", "rumpledev")))
            t2 = asyncio.create_task(b.handle(restart("console:bob", "nginx", "rumpledev")))
            done, _ = await asyncio.wait({t1, t2}, return_when=asyncio.FIRST_COMPLETED, timeout=10)
            assert len(done) == 1, "one of the two must be turned away while the other runs"
            loser = done.pop().result()
            assert "is running on env:rumpledev" in loser.text
            job.release.set()
            replies = [await t1, await t2]
            assert len(job.runs) == 1
            assert sum(r.ok for r in replies) == 1
    finally:
        await a.close()
        await b.close()


async def test_a_confirmation_delivered_to_two_replicas_claims_the_job_once(config: Config, db: Database) -> None:
    """A double click that two replicas both receive: the `requested → started` claim has one winner."""
    job = HeldJob(hold=False)
    a, b = replicas(config, db, job)
    await started(a, b)
    try:
        for _ in range(ROUNDS):
            job.runs.clear()
            ask = await a.handle(restart("console:alice", "n8n", "rumpledev", confirmed=False))
            rid = ask.request_id or ""
            assert ask.buttons and ask.buttons[0].action == "confirm"
            alice = Actor("console:alice")
            one, two = await asyncio.gather(a.act("confirm", rid, alice, ask.buttons[0].plan_hash),
                                            b.act("confirm", rid, alice, ask.buttons[0].plan_hash))
            assert len(job.runs) == 1
            assert sum("restarted n8n" in r.text for r in (one, two)) == 1
            assert sum("nothing was done twice" in r.text or "nothing was run twice" in r.text
                       for r in (one, two)) == 1
            row = a.store.get(rid)
            assert row is not None and row.status == "succeeded"
    finally:
        await a.close()
        await b.close()


async def test_one_replica_shuts_down_mid_job_the_other_carries_on(config: Config, db: Database) -> None:
    job = HeldJob()
    a, b = replicas(config, db, job)
    await started(a, b)
    try:
        running = asyncio.create_task(a.handle(restart("console:alice", "n8n", "rumpledev")))
        await wait_for(job.started)
        rid = job.runs[0][0]
        assert "is running on" in (await b.handle(restart("console:bob", "nginx", "rumpledev"))).text
        assert await a.shutdown(grace_s=0.2) == [rid]
        assert "interrupted" in (await running).text
        await a.close()
        # The interrupted job freed its lock; the surviving replica takes the next change.
        job.hold = False
        assert (await b.handle(restart("console:bob", "nginx", "rumpledev"))).ok
        # A later start of any replica finds nothing left 'started' by the one that stopped.
        assert b.store.recover() == []
        assert b.store.get(rid).status == "interrupted"  # type: ignore[union-attr]
        assert b.store.verify() == []
    finally:
        await b.close()
