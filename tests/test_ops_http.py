"""Metrics and health scraped over real HTTP from a running bot (serve_app, loopback, port 0)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import App
from bot.engine import Engine
from bot.logs import setup_logging
from bot.ops_http import OpsServer, parse_address, start_ops_server
from bot.request import Actor, Request
from bot.serve import serve_app
from infra.config import Config
from infra.db.store import AuditStore, Database
from tests.ops_support import HeldJob, docker_backends, registry_with, restart, wait_for


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


@dataclass
class Running:
    app: App
    server: OpsServer
    stop: asyncio.Event
    job: HeldJob


@pytest.fixture
async def running(config: Config, db: Database) -> AsyncIterator[Running]:
    """A bot under serve_app with the ops endpoint on a free loopback port."""
    job = HeldJob(hold=False)
    eng = Engine(config, AuditStore(db), docker_backends(config), registry=registry_with(job))
    app = App(config, db, eng)
    stop = asyncio.Event()
    ready: asyncio.Future[OpsServer] = asyncio.get_running_loop().create_future()

    async def idle_adapter(app: App, *, http: bool, port: int, stop: asyncio.Event) -> None:
        await stop.wait()

    def on_ready(server: OpsServer | None) -> None:
        assert server is not None
        ready.set_result(server)

    task = asyncio.create_task(serve_app(app, [("idle", idle_adapter)], metrics=("127.0.0.1", 0),
                                         stop=stop, signals=False, on_ready=on_ready))
    server = await asyncio.wait_for(ready, 10)
    yield Running(app, server, stop, job)
    stop.set()
    await asyncio.wait_for(task, 20)


async def test_metrics_count_requests_by_command_and_outcome(running: Running) -> None:
    eng = running.app.engine
    async with httpx.AsyncClient(base_url=running.server.url) as http:
        before = (await http.get("/metrics")).text
        assert (await eng.handle(Request(actor=Actor("console:alice"), text="whoami"))).ok
        assert (await eng.handle(restart("console:alice", "n8n", "rumpledev"))).ok
        refused = await eng.handle(restart("console:nobody", "n8n", "rumpledev"))
        assert not refused.ok
        pending = await eng.handle(restart("console:alice", "n8n", "rumpleprod"))
        assert "needs approval" in pending.text
        await eng.handle(Request(actor=Actor("console:alice"), text="make me a sandwich"))
        resp = await http.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    after = resp.text

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("chatops_requests_total", command="whoami", outcome="succeeded") == 1
    assert delta("chatops_requests_total", command="restart", outcome="succeeded") == 1
    assert delta("chatops_requests_total", command="restart", outcome="refused") == 1
    assert delta("chatops_requests_total", command="restart", outcome="pending_approval") == 1
    assert delta("chatops_requests_total", command="none", outcome="not_understood") == 1
    assert delta("chatops_plan_duration_seconds_count", route="grammar") == 2  # whoami, sandwich
    assert delta("chatops_handler_duration_seconds_count", command="restart", backend="docker") == 1
    assert delta("chatops_handler_duration_seconds_count", command="whoami", backend="none") == 1
    assert delta("chatops_request_duration_seconds_count", command="restart") == 3
    # Database-backed gauges are the true numbers in the audit log, not per-process counts.
    assert value(after, "chatops_pending_approvals") == 1
    assert value(after, "chatops_requests_open", status="pending_approval") == 1
    assert value(after, "chatops_database_up") == 1
    assert value(after, "chatops_jobs_running") == 0
    assert value(after, "chatops_accepting_requests") == 1


async def test_jobs_running_gauge_and_errors(running: Running) -> None:
    eng = running.app.engine
    running.job.hold = True
    async with httpx.AsyncClient(base_url=running.server.url) as http:
        before = (await http.get("/metrics")).text
        task = asyncio.create_task(eng.handle(restart("console:alice", "n8n", "rumpledev")))
        await wait_for(running.job.started)
        during = (await http.get("/metrics")).text
        assert value(during, "chatops_jobs_running") == 1
        assert (await http.get("/healthz")).json()["jobs_running"] == 1
        running.job.fail = RuntimeError("the handler broke")
        running.job.release.set()
        reply = await task
        after = (await http.get("/metrics")).text
    assert not reply.ok and "failed on my side" in reply.text
    assert value(after, "chatops_jobs_running") == 0
    assert value(after, "chatops_errors_total", kind="handler") - value(before, "chatops_errors_total",
                                                                         kind="handler") == 1
    assert value(after, "chatops_requests_total", command="restart", outcome="failed") - value(
        before, "chatops_requests_total", command="restart", outcome="failed") == 1


async def test_healthz_reports_database_and_shutdown(running: Running) -> None:
    async with httpx.AsyncClient(base_url=running.server.url) as http:
        ok = await http.get("/healthz")
        assert ok.status_code == 200
        assert ok.json() == {"status": "ok", "database": "ok", "jobs_running": 0, "accepting": True}
        running.app.engine.jobs.stop_accepting()
        stopping = await http.get("/healthz")
        assert stopping.status_code == 503 and stopping.json()["status"] == "stopping"


async def test_healthz_is_503_when_the_database_is_unreachable(config: Config) -> None:
    dead = Database("postgresql+psycopg://postgres@127.0.0.1:1/none", connect_timeout=2)
    app = App(config, dead, Engine(config, AuditStore(dead)))
    server = await start_ops_server(app, "127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            health = await http.get("/healthz")
            metrics = await http.get("/metrics")
    finally:
        await server.stop()
        dead.dispose()
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "unhealthy" and body["database"].startswith("unreachable")
    # A scrape still answers, and says the database is down.
    assert metrics.status_code == 200 and value(metrics.text, "chatops_database_up") == 0


async def test_ops_endpoint_listens_on_loopback_only(running: Running) -> None:
    assert running.server.host == "127.0.0.1"
    assert parse_address(None) is None and parse_address("off") is None
    assert parse_address("9464") == ("127.0.0.1", 9464)
    assert parse_address("0.0.0.0:9100") == ("0.0.0.0", 9100)
    assert parse_address("[::1]:9464") == ("::1", 9464)
    for bad in ("localhost:http", "70000"):
        with pytest.raises(ValueError):
            parse_address(bad)


async def test_json_logs_carry_the_correlation_id_the_user_sees(running: Running) -> None:
    buf = io.StringIO()
    handler = setup_logging("json", "INFO", buf)
    try:
        running.job.fail = RuntimeError("boom")
        req = restart("console:alice", "n8n", "rumpledev")
        reply = await running.app.engine.handle(req)
    finally:
        logging.getLogger().removeHandler(handler)
    assert f"ref {req.correlation_id}" in reply.text
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    mine = [line for line in lines if line.get("correlation_id") == req.correlation_id]
    failure = next(line for line in mine if line["logger"] == "chatops.engine")
    assert failure["level"] == "error" and "RuntimeError: boom" in failure["exc"]
    assert failure["request_id"] == reply.request_id and failure["command"] == "restart"
    summary = next(line for line in mine if line["msg"] == "request finished")
    assert summary["outcome"] == "failed" and summary["actor"] == "console:alice"
    assert summary["request_id"] == reply.request_id and summary["duration_ms"] >= 0
