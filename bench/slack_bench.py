"""Slack adapter benchmarks: ack latency under load, answer latency, Block Kit rendering.

Run by hand (never in the test suite):
    .venv/bin/python bench/slack_bench.py [--concurrent 50] [--database-url URL]
It drives the real Bolt app in HTTP mode with signed requests against the loopback Slack
stand-in of the tests, and creates and drops its own schema in the given PostgreSQL database.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import scratch_schema  # bench/ is the script's folder, so on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.render.slack import render
from bot.request import Attachment, Reply, Table, Tone
from infra.config import load_config
from infra.db.store import Database
from tests.fakes.slack_api import FakeSlack
from tests.test_slack import Harness, Work, slack_config


def report(name: str, ms: list[float]) -> None:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    print(f"{name:60s} n={len(ms):4d} median={statistics.median(ms):8.2f} ms  p95={p95:8.2f} ms  "
          f"max={ms[-1]:8.2f} ms")


def bench_render(n: int = 200) -> None:
    reply = Reply("line of output\n" * 400, title="A big report", tone=Tone.warning,
                  fields=[(f"key{i}", f"value {i}") for i in range(25)],
                  tables=[Table(["name", "filler", "n"], [[f"row{i}", "x" * 30, str(i)] for i in range(400)])],
                  attachments=[Attachment("gpu.png", b"\x89PNG" + b"\0" * 4096, "image/png")])
    small = Reply("Restarted n8n on rumpledev.", tone=Tone.success, fields=[("Env", "rumpledev")],
                  request_id="r-12345678")
    for name, r in (("render: small reply", small), ("render: large reply (400-row table, 6 KB text)", reply)):
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            render(r)
            times.append((time.perf_counter() - t0) * 1000)
        report(name, times)


async def bench_http(url: str, concurrent: int, tmp: Path) -> None:
    fake = FakeSlack()
    await fake.start()
    cfg = slack_config(load_config(), f"{fake.base}/api/")
    db = Database(url)
    db.migrate()
    work = Work(tmp)
    h = Harness(fake, cfg, db, work)
    await h.start()
    try:
        # Warm up (auth.test is called once, on the first request).
        await h.slash("UALICE", "whoami")
        await h.settle()
        # 1. Acks while `concurrent` slow changes are held open by the gate.
        work.gate.clear()

        async def one() -> float:
            t0 = time.perf_counter()
            status, _ = await h.slash("UALICE", "quicktouch rumpledev")
            assert status == 200
            return (time.perf_counter() - t0) * 1000

        acks = await asyncio.gather(*(one() for _ in range(concurrent)))
        report(f"/ops ack, {concurrent} changes at once (one runs, held open)", list(acks))
        work.gate.set()
        await h.settle()
        assert h.engine is not None
        print(f"{'':60s} outcomes: {h.engine.store.count_by_status()}, runs: {len(work.runs('rumpledev'))}")
        # 2. A read command: signed request in → answer posted to the Web API.
        answer = []
        for _ in range(30):
            before = len(fake.of("chat.postMessage"))
            t0 = time.perf_counter()
            await h.slash("UALICE", "whoami")
            await fake.wait_for(lambda f, b=before: len(f.of("chat.postMessage")) > b)  # type: ignore[misc]
            answer.append((time.perf_counter() - t0) * 1000)
        await h.settle()
        report("/ops whoami: request in → chat.postMessage (incl. audit writes)", answer)
        assert fake.violations == [], fake.violations
    finally:
        await h.stop()
        await fake.stop()
        db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--concurrent", type=int, default=50)
    opts = ap.parse_args()
    bench_render()
    with scratch_schema(opts.database_url) as url, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(bench_http(url, opts.concurrent, Path(tmp)))


if __name__ == "__main__":
    main()
