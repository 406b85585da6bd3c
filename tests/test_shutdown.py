"""Graceful shutdown: no new work, running jobs finish within the grace period or are
recorded as interrupted; SIGTERM drives it through `serve_app` the way `docker stop` does."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from bot.app import App
from bot.engine import Engine
from bot.request import Actor, Request
from bot.serve import serve_app
from infra.config import Config
from infra.db.models import ExecLock, Worker
from infra.db.store import AuditStore, Database
from tests.ops_support import HeldJob, docker_backends, registry_with, restart, wait_for


def _engine(config: Config, db: Database, job: HeldJob) -> Engine:
    return Engine(config, AuditStore(db), docker_backends(config), registry=registry_with(job))


async def test_running_job_finishes_within_grace_and_new_work_is_refused(config: Config, db: Database) -> None:
    job = HeldJob()
    eng = _engine(config, db, job)
    await eng.start()
    try:
        running = asyncio.create_task(eng.handle(restart("console:alice", "n8n", "rumpledev")))
        await wait_for(job.started)
        draining = asyncio.create_task(eng.shutdown(grace_s=10))
        await asyncio.sleep(0.05)
        assert not eng.jobs.accepting and len(eng.jobs) == 1
        late = await eng.handle(Request(actor=Actor("console:bob"), text="whoami"))
        assert not late.ok and "not taking new requests" in late.text and "nothing was run" in late.text
        late_click = await eng.act("approve", "r-00000000", Actor("console:bob"))
        assert not late_click.ok and "restarting" in late_click.text
        job.release.set()
        assert await draining == []
        reply = await running
        assert reply.ok and "restarted n8n" in reply.text
        row = eng.store.get(reply.request_id or "")
        assert row is not None and row.status == "succeeded"
        assert len(job.runs) == 1
    finally:
        await eng.close()


async def test_job_past_grace_is_recorded_interrupted_and_its_lock_freed(config: Config, db: Database) -> None:
    job = HeldJob()  # never released: a deploy that hangs
    eng = _engine(config, db, job)
    await eng.start()
    try:
        running = asyncio.create_task(eng.handle(restart("console:alice", "n8n", "rumpledev")))
        await wait_for(job.started)
        rid = job.runs[0][0]
        assert [lk.request_id for lk in _locks(db)] == [rid, rid]  # env:rumpledev + vm:rumpledev
        cut = await eng.shutdown(grace_s=0.2)
        assert cut == [rid]
        reply = await running
        assert not reply.ok and "interrupted because the bot shut down" in reply.text
        assert reply.request_id == rid
        row = eng.store.get(rid)
        assert row is not None and row.status == "interrupted"
        assert row.error and "not known" in row.error
        kinds = [e.kind for e in eng.store.events(rid)]
        assert kinds == ["requested", "started", "interrupted"]
        assert _locks(db) == []
        assert eng.store.verify() == []
    finally:
        await eng.close()


async def test_cancelled_caller_records_interrupted_too(config: Config, db: Database) -> None:
    """An adapter task cancelled mid-request (its connection dropped) leaves no 'started' row."""
    job = HeldJob()
    eng = _engine(config, db, job)
    await eng.start()
    try:
        running = asyncio.create_task(eng.handle(restart("console:alice", "n8n", "rumpledev")))
        await wait_for(job.started)
        running.cancel()
        try:
            await running
            raise AssertionError("the cancelled request should not return normally")
        except asyncio.CancelledError:
            pass
        row = eng.store.get(job.runs[0][0])
        assert row is not None and row.status == "interrupted"
        assert row.error and "caller went away" in row.error
        assert len(eng.jobs) == 0 and _locks(db) == []
    finally:
        await eng.close()


async def test_sigterm_stops_serve_gracefully_with_a_job_in_flight(config: Config, db: Database) -> None:
    """The real signal path: SIGTERM → stop event → drain (grace) → interrupted row → closed."""
    job = HeldJob()
    eng = _engine(config, db, job)
    app = App(config, db, eng)
    seen: dict[str, Any] = {}

    async def adapter(app: App, *, http: bool, port: int, stop: asyncio.Event) -> None:
        # What a chat adapter does: take an event, hand it to the engine in a task.
        seen["task"] = asyncio.create_task(app.engine.handle(restart("console:alice", "n8n", "rumpledev")))
        await stop.wait()
        seen["stopped"] = True

    async def send_sigterm() -> None:
        await wait_for(job.started)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = asyncio.create_task(send_sigterm())
    await asyncio.wait_for(serve_app(app, [("fake", adapter)], metrics=None, grace_s=0.3), 20)
    await killer
    assert seen["stopped"]
    reply = await seen["task"]
    assert not reply.ok and "interrupted" in reply.text
    row = AuditStore(db).get(job.runs[0][0])
    assert row is not None and row.status == "interrupted"
    with db.sessions() as s:  # the worker deregistered itself on the way out
        assert s.query(Worker).count() == 0
    # serve_app removed its signal handlers on the way out
    assert asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM) is False


async def test_sigterm_lets_a_short_job_finish(config: Config, db: Database) -> None:
    job = HeldJob()
    eng = _engine(config, db, job)
    app = App(config, db, eng)
    seen: dict[str, Any] = {}

    async def adapter(app: App, *, http: bool, port: int, stop: asyncio.Event) -> None:
        seen["task"] = asyncio.create_task(app.engine.handle(restart("console:alice", "n8n", "rumpledev")))
        await stop.wait()

    async def sigterm_then_finish() -> None:
        await wait_for(job.started)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.2)
        job.release.set()  # finishes well inside the 10 s grace

    helper = asyncio.create_task(sigterm_then_finish())
    await asyncio.wait_for(serve_app(app, [("fake", adapter)], metrics=None, grace_s=10), 20)
    await helper
    reply = await seen["task"]
    assert reply.ok
    row = AuditStore(db).get(job.runs[0][0])
    assert row is not None and row.status == "succeeded"


def _locks(db: Database) -> list[ExecLock]:
    with db.sessions() as s:
        return list(s.query(ExecLock).order_by(ExecLock.target))



async def test_shutdown_during_an_approval_typed_in_chat_interrupts_both_jobs(config: Config, db: Database) -> None:
    """'approve r-…' is itself a job that runs the approved request as a nested job."""
    job = HeldJob()
    eng = _engine(config, db, job)
    await eng.start()
    try:
        pending = await eng.handle(restart("console:alice", "n8n", "rumpleprod"))
        rid = pending.request_id or ""
        approving = asyncio.create_task(eng.handle(Request(actor=Actor("console:bob"), text=f"approve {rid}")))
        await wait_for(job.started)
        cut = await eng.shutdown(grace_s=0.1)
        assert rid in cut and len(cut) == 2
        reply = await approving
        assert not reply.ok and "interrupted" in reply.text
        assert eng.store.get(rid).status == "interrupted"  # type: ignore[union-attr]
        approve_row = eng.store.get(next(c for c in cut if c != rid))
        assert approve_row is not None and approve_row.command == "approve"
        assert approve_row.status == "interrupted" and approve_row.approver is None
        assert len(eng.jobs) == 0 and _locks(db) == [] and eng.store.verify() == []
    finally:
        await eng.close()


async def test_engine_cancel_stops_one_request_records_who_and_frees_its_lock(config: Config, db: Database) -> None:
    """`Engine.cancel` (the console's Ctrl-C): only the named request stops; its caller gets a reply."""
    job = HeldJob()
    eng = _engine(config, db, job)
    await eng.start()
    try:
        req = restart("console:alice", "n8n", "rumpledev")
        running = asyncio.create_task(eng.handle(req))
        await wait_for(job.started)
        rid = job.runs[0][0]
        assert eng.jobs.running_for("r-00000000") == []  # nothing of that id runs
        assert eng.jobs.running_for(req.correlation_id) == [rid]  # the console knows only its own id
        decision = await eng.cancel(rid, Actor("console:alice"), "Ctrl-C in the console")
        assert decision.applied
        reply = await running  # the caller is not cancelled: it hears what happened
        assert reply.request_id == rid
        assert "interrupted because console:alice cancelled it (Ctrl-C in the console)" in reply.text
        row = eng.store.get(rid)
        assert row is not None and row.status == "interrupted"
        assert row.error and "console:alice cancelled it (Ctrl-C in the console)" in row.error
        assert [e.kind for e in eng.store.events(rid)] == ["requested", "started", "interrupted"]
        assert _locks(db) == [] and eng.jobs.accepting
        assert eng.store.verify() == []
    finally:
        await eng.close()
