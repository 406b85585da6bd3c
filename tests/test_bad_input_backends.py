"""Backends that are down, slow or fail half-way: a clear answer, an audit row, honest partial reports."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.engine import Engine
from bot.request import Actor, Reply, Request, Tone
from commands.context import Context
from commands.registry import Arg, Kind, Registry, command
from infra.backends import Backends
from infra.config import Config
from infra.db.store import AuditStore, Database
from infra.docker_hosts import DockerHost
from infra.errors import BackendUnavailable
from infra.proxmox import ProxmoxClient

from .conftest import make_engine
from .fakes.docker_engine import FakeDockerEngine, silent_socket
from .fakes.tcp_cut import CuttableRelay
from .support import Gate, observable_registry

ALICE = Actor("console:alice")


def docker_engine(config: Config, db: Database, host: DockerHost) -> Engine:
    backends = Backends(config)
    backends.override("docker:rumpledev", host)
    return make_engine(config, db, backends=backends)


# -- Docker ---------------------------------------------------------------------------------

async def test_a_docker_engine_that_never_answers_times_out_clearly(config: Config, db: Database,
                                                                    tmp_path: Path) -> None:
    sock = silent_socket(tmp_path / "docker.sock")
    host = DockerHost("rumpledev", f"unix://{tmp_path / 'docker.sock'}", timeout=1)
    eng = docker_engine(config, db, host)
    await eng.start()
    try:
        reply = await eng.handle(Request(actor=ALICE, text="status dev"))
        assert reply.tone is Tone.error and "rumpledev" in reply.text
        assert "timed out" in reply.text or "did not answer" in reply.text, reply.text
        row = eng.store.get(reply.request_id or "")
        assert row is not None and row.status == "failed" and row.error
        assert "went wrong on my side" not in reply.text
    finally:
        await eng.close()
        host.close()
        sock.close()


async def test_a_docker_call_that_times_out_does_not_claim_nothing_changed(tmp_path: Path) -> None:
    sock = silent_socket(tmp_path / "docker.sock")
    host = DockerHost("rumpledev", f"unix://{tmp_path / 'docker.sock'}", timeout=1)
    host._client = __import__("docker").DockerClient(base_url=host.base_url, version="1.43", timeout=1)
    try:
        with pytest.raises(BackendUnavailable) as err:
            await host.restart("abc")
        assert "did not answer within 1s" in str(err.value)
        assert "not known" in str(err.value) and "Nothing was changed" not in str(err.value)
    finally:
        host.close()
        sock.close()


def two_n8n(tmp_path: Path) -> FakeDockerEngine:
    fake = FakeDockerEngine(tmp_path / "fake-docker.sock")
    fake.add("a" * 64, "workflows-n8n-1", "workflows", "n8n")
    fake.add("b" * 64, "workflows-n8n-2", "workflows", "n8n")
    return fake


async def test_restart_where_the_second_container_fails_reports_one_of_two(config: Config, db: Database,
                                                                           tmp_path: Path) -> None:
    with two_n8n(tmp_path) as fake:
        fake.refuse_restart = {"b" * 64}
        host = DockerHost("rumpledev", fake.url, timeout=5)
        eng = docker_engine(config, db, host)
        await eng.start()
        try:
            reply = await eng.handle(Request(actor=ALICE, text="restart n8n dev", confirmed=True))
        finally:
            await eng.close()
            host.close()
    assert fake.restarted == ["a" * 64]
    assert reply.tone is Tone.error
    assert "1 of 2 containers restarted, 1 failed" in reply.text
    assert "workflows-n8n-2" in reply.text and "device busy" in reply.text
    row = eng.store.get(reply.request_id or "")
    assert row is not None and row.status == "failed" and "1 of 2" in (row.error or "")


async def test_restart_when_the_engine_dies_half_way_says_what_was_done(config: Config, db: Database,
                                                                        tmp_path: Path) -> None:
    with two_n8n(tmp_path) as fake:
        fake.die_after_restarts = 1
        host = DockerHost("rumpledev", fake.url, timeout=5)
        eng = docker_engine(config, db, host)
        await eng.start()
        try:
            reply = await eng.handle(Request(actor=ALICE, text="restart n8n dev", confirmed=True))
        finally:
            await eng.close()
            host.close()
    assert len(fake.restarted) == 1
    first = "workflows-n8n-1" if fake.restarted[0] == "a" * 64 else "workflows-n8n-2"
    assert reply.tone is Tone.error
    assert f"1 of 2 containers restarted ({first})" in reply.text, reply.text
    assert "could not be read" in reply.text
    assert "Nothing was changed" not in reply.text and "not known" in reply.text
    row = eng.store.get(reply.request_id or "")
    assert row is not None and row.status == "failed" and "1 of 2" in (row.error or "")


# -- Proxmox ----------------------------------------------------------------------------------

async def test_proxmox_api_slower_than_its_timeout_is_a_clear_answer(tmp_path: Path) -> None:
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)  # accepts at the kernel, never answers
    port = srv.getsockname()[1]
    client = ProxmoxClient(f"127.0.0.1:{port}", "chatops@pve!bot", "secret-value", verify_ssl=False,
                           timeout_s=1)
    try:
        with pytest.raises(BackendUnavailable) as err:
            await client.ping()
        msg = str(err.value)
        assert f"127.0.0.1:{port}" in msg and ("did not answer in time" in msg or "unreachable" in msg)
        assert "secret-value" not in msg
    finally:
        srv.close()


# -- the audit database going away mid-run ----------------------------------------------------

def relay_url(pg_url: str, port: int) -> str:
    assert "127.0.0.1:5432" in pg_url, "the relay test expects the local PostgreSQL"
    return pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{port}")


async def test_database_lost_after_started_is_reported_and_recovered_as_interrupted(
        config: Config, db: Database, pg_url: str, tmp_path: Path) -> None:
    relay = CuttableRelay("127.0.0.1", 5432)
    await relay.start()
    gate = Gate()
    far = Database(relay_url(pg_url, relay.port))
    eng = make_engine(config, far, observable_registry(tmp_path, gate))
    await eng.start()
    run = asyncio.create_task(eng.handle(Request(actor=ALICE, text="touch dev marker", confirmed=True)))
    await asyncio.wait_for(gate.entered.wait(), 30)
    await relay.cut()  # the database goes away while the handler runs
    gate.release.set()
    reply = await asyncio.wait_for(run, 60)
    # It ran (the file is there) and says so, and that the result is not recorded.
    assert (tmp_path / "marker").exists()
    assert "could not be written to the audit log" in reply.text
    assert "nothing was run" not in reply.text
    rid = reply.request_id or ""
    assert AuditStore(db).get(rid).status == "started"  # type: ignore[union-attr]
    far.dispose()
    # The next start (the database is back) marks it interrupted and frees its lock.
    restarted = make_engine(config, db, observable_registry(tmp_path))
    interrupted = await restarted.start()
    try:
        assert rid in [r.id for r in interrupted]
        assert restarted.store.get(rid).status == "interrupted"  # type: ignore[union-attr]
        assert restarted.store.acquire(["env:rumpledev"], "r-00000002") is None
    finally:
        await restarted.close()


def two_step_registry(out: Path, gate: Gate) -> Registry:
    reg = Registry()

    @command("twostep", summary="write one file, report, write another", args=(Arg("env", Kind.env),),
             changes=True, confirm=False, backend="files", registry=reg)
    async def twostep(ctx: Context, args: dict[str, Any]) -> Reply:
        (out / "step1").write_text("done")
        gate.entered.set()
        await gate.release.wait()
        await ctx.progress("step 1 done")  # the audit note fails: the database is gone
        (out / "step2").write_text("done")
        return Reply("both steps done", tone=Tone.success)

    return reg


async def test_database_lost_during_a_progress_note_does_not_say_nothing_ran(
        config: Config, db: Database, pg_url: str, tmp_path: Path) -> None:
    relay = CuttableRelay("127.0.0.1", 5432)
    await relay.start()
    gate = Gate()
    far = Database(relay_url(pg_url, relay.port))
    eng = make_engine(config, far, two_step_registry(tmp_path, gate))
    await eng.start()
    run = asyncio.create_task(eng.handle(Request(actor=ALICE, text="twostep dev")))
    await asyncio.wait_for(gate.entered.wait(), 30)
    await relay.cut()
    gate.release.set()
    reply = await asyncio.wait_for(run, 60)
    far.dispose()
    assert (tmp_path / "step1").exists() and not (tmp_path / "step2").exists()
    assert reply.tone is Tone.error
    assert "became unreachable while twostep was running" in reply.text
    assert "not known" in reply.text and "nothing was run" not in reply.text
    assert reply.request_id and AuditStore(db).get(reply.request_id).status == "started"  # type: ignore[union-attr]



async def test_an_engine_that_is_not_there_changed_nothing_and_says_so(tmp_path: Path) -> None:
    host = DockerHost("rumpledev", f"unix://{tmp_path / 'absent.sock'}", timeout=1)
    host._client = __import__("docker").DockerClient(base_url=host.base_url, version="1.43", timeout=1)
    try:
        with pytest.raises(BackendUnavailable, match=r"is unreachable.*Nothing was changed"):
            await host.restart("abc")
    finally:
        host.close()
