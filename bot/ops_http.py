"""The operations endpoint: `/metrics` for Prometheus and `/healthz` for health checks.

It listens on loopback by default (127.0.0.1:9464): metrics name commands, users'
outcomes and timings, which is nobody's business outside the host.  In a container it
listens on the container's own interface and Compose publishes it on the host's
loopback only (compose/chatops/compose.yaml).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.app import App
from bot.metrics import REGISTRY, AuditCollector
from infra.db.common import DatabaseUnavailable

log = logging.getLogger("chatops.ops_http")

HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9464
HEALTH_TIMEOUT_S = 5.0


def parse_address(value: str | None) -> tuple[str, int] | None:
    """`9464`, `127.0.0.1:9464`, `0.0.0.0:9464`, `[::1]:9464`, or `off` (None)."""
    if value is None or value.strip().lower() in ("", "off", "none", "no", "false", "0"):
        return None
    text = value.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = DEFAULT_HOST, text
    host = host.strip("[]") or DEFAULT_HOST
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"'{value}' is not PORT, HOST:PORT or off") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"port {number} is out of range")
    return host, number


@dataclass
class OpsServer:
    runner: web.AppRunner
    host: str
    port: int
    collector: AuditCollector

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        with contextlib.suppress(KeyError):
            REGISTRY.unregister(self.collector)
        await self.runner.cleanup()


async def start_ops_server(app: App, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> OpsServer:
    """Serve /metrics and /healthz for `app`; port 0 picks a free one."""
    collector = AuditCollector(app.engine.store)
    REGISTRY.register(collector)

    async def metrics(_request: web.Request) -> web.Response:
        # The collector reads the database: keep that off the event loop.
        body = await asyncio.to_thread(generate_latest, REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        jobs = app.engine.jobs
        state = {"database": "ok", "jobs_running": len(jobs), "accepting": jobs.accepting}
        try:
            await asyncio.wait_for(asyncio.to_thread(app.db.ping), HEALTH_TIMEOUT_S)
        except (DatabaseUnavailable, TimeoutError) as exc:
            state["database"] = f"unreachable: {exc}" if str(exc) else "unreachable: timed out"
            return web.json_response({"status": "unhealthy", **state}, status=503)
        if not jobs.accepting:
            return web.json_response({"status": "stopping", **state}, status=503)
        return web.json_response({"status": "ok", **state})

    web_app = web.Application()
    web_app.router.add_get(METRICS_PATH, metrics)
    web_app.router.add_get(HEALTH_PATH, healthz)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        REGISTRY.unregister(collector)
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("metrics and health on http://%s:%d (%s, %s)", host, bound, METRICS_PATH, HEALTH_PATH)
    return OpsServer(runner, host, bound, collector)
