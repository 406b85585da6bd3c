"""Event features: the HTTP API's round trip, Alertmanager deliveries, schedule claims by two replicas.

Run by hand (never in the test suite), from the repository root:
    .venv/bin/python bench/events_bench.py [--database-url URL] [-n 200] [--schedules 200]
Real aiohttp server and client on loopback, the Slack stand-in for the ops channel, and a
scratch schema in the given PostgreSQL database (created and dropped here). Handlers that
would reach Docker are recorders, so the numbers are the bot's own overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

from common import ROOT, median_p95, scratch_schema

from bot.request import Actor, Request
from infra.clock import ManualClock
from infra.config import Schedules, load_config
from infra.db.store import Database
from tests.events_support import TOKENS, Recorder, Stack, engine_for, events_config, recording_registry
from tests.fakes.slack_api import FakeSlack


def line(name: str, ms: list[float]) -> None:
    med, p95 = median_p95(ms)
    print(f"{name:58s} n={len(ms):4d} median={med:8.2f} ms  p95={p95:8.2f} ms")


async def bench_api(st: Stack, n: int) -> None:
    for name, body in (("POST /api/v1/requests: a read (status dev)", {"text": "status dev"}),
                       ("POST /api/v1/requests: change, protected (202 + card)", {"text": "restart n8n on prod"})):
        ms = []
        for _ in range(n):
            t = time.perf_counter()
            status, _ = await st.call("POST", "/api/v1/requests", body=body)
            ms.append((time.perf_counter() - t) * 1000)
            assert status in (200, 202), status
        line(name, ms)
    ms = []
    for _ in range(n):
        t = time.perf_counter()
        status, _ = await st.call("POST", "/api/v1/requests", token="wrong", body={"text": "restart n8n on dev"})
        ms.append((time.perf_counter() - t) * 1000)
        assert status == 401
    line("POST /api/v1/requests: bad token (401 + audit row)", ms)
    await st.settle()


async def bench_alerts(st: Stack, n: int) -> None:
    payload = json.loads((ROOT / "tests" / "data" / "alertmanager" / "firing.json").read_text())
    first, repeat = [], []
    for i in range(n):
        payload["groupKey"] = f"bench-{i}"
        t = time.perf_counter()
        status, body = await st.call("POST", "/api/v1/alertmanager", token=TOKENS["alertmanager"], body=payload)
        first.append((time.perf_counter() - t) * 1000)
        assert status == 200 and body["posted"], body
        t = time.perf_counter()
        status, body = await st.call("POST", "/api/v1/alertmanager", token=TOKENS["alertmanager"], body=payload)
        repeat.append((time.perf_counter() - t) * 1000)
        assert status == 200 and body["edited"], body
    line("POST /api/v1/alertmanager: new group (3 buttons, post)", first)
    line("POST /api/v1/alertmanager: repeat (edit in place)", repeat)


async def bench_schedules(a: Stack, b: Stack, rec: Recorder, clock: ManualClock, count: int) -> None:
    for _ in range(count):
        reply = await a.engine.handle(Request(actor=Actor("slack:UALICE"), text="status dev every hour at :05",
                                              platform="slack"))
        assert reply.ok, reply.text
    clock.set(clock.now() + timedelta(minutes=5, seconds=30))  # all due at 12:05, within the grace
    t = time.perf_counter()
    rounds = 0
    while True:
        got = await asyncio.gather(a.engine.schedules.run_due(), b.engine.schedules.run_due())
        rounds += 1
        if not any(got):
            break
    took = time.perf_counter() - t
    ran = len(rec.runs)
    assert ran == count, (ran, count)
    print(f"{'schedules: ' + str(count) + ' due, two replicas claiming':58s} ran each once in {took * 1000:8.1f} ms "
          f"({took * 1000 / count:.2f} ms per occurrence, {rounds} ticks of up to 20 per replica)")


async def main(url: str, n: int, schedules: int) -> None:
    fake = FakeSlack()
    await fake.start()
    with scratch_schema(url) as schema_url:
        db = Database(schema_url)
        db.migrate()
        rec = Recorder()
        clock = ManualClock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
        cfg = events_config(load_config(ROOT / "chatops.yaml"), slack_url=f"{fake.base}/api/",
                            schedules=Schedules(max_per_user=100_000))
        one = await Stack(engine_for(cfg, db, recording_registry(rec), clock)).start()
        two = await Stack(engine_for(cfg, db, recording_registry(rec), clock)).start(slack=False)
        try:
            await bench_api(one, n)
            await bench_alerts(one, max(n // 4, 10))
            rec.runs.clear()
            await bench_schedules(one, two, rec, clock, schedules)
        finally:
            await one.stop()
            await two.stop()
            db.dispose()
    await fake.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--schedules", type=int, default=200)
    args = ap.parse_args()
    asyncio.run(main(args.database_url, args.n, args.schedules))
