"""Core benchmarks: parse time, engine overhead of a read command, audit queries over 1M rows.

Every filter combination at 5M rows is bench/audit_bench.py; many requests at once is
bench/concurrency_bench.py.

Run by hand (never in the test suite):
    .venv/bin/python bench/core_bench.py [--rows 1000000] [--database-url URL]
It creates and drops its own schema in the given PostgreSQL database.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import timedelta

from common import scratch_schema, timed  # bench/ is the script's folder, so on sys.path
from sqlalchemy import text

from bot.engine import Engine
from bot.request import Actor, Request
from commands.registry import registry
from infra.backends import Backends
from infra.config import load_config
from infra.db.common import AuditFilter, utcnow
from infra.db.store import AuditStore, Database
from llm.grammar import parse_explicit
from llm.resolve import Resolver

REQUESTS = ["deploy chat to test ref=v1.4.2", "restart n8n on dev", "logs nginx live tail=200 since=30m",
            "snapshot rumpleprod name=pre-upgrade", "restore rumpledev pre-upgrade", "audit env=prod since=1d",
            "status rumpletest", "restart foo on dev", "stop rtmp on test stack=video", "gpu", "whoami",
            "deploy chat", "vm status", "unlock gpu box"]


def report(name: str, ms: list[float]) -> None:
    ms = sorted(ms)
    p95 = ms[int(len(ms) * 0.95) - 1]
    print(f"{name:<48} median {statistics.median(ms):8.3f} ms   p95 {p95:8.3f} ms   n={len(ms)}")


def bench_parse() -> None:
    cfg = load_config()
    resolver, reg = Resolver(cfg), registry()
    for r in REQUESTS:  # warm
        parse_explicit(r, resolver, reg)
    per = []
    for _ in range(200):
        t = time.perf_counter()
        for r in REQUESTS:
            parse_explicit(r, resolver, reg)
        per.append((time.perf_counter() - t) * 1000 / len(REQUESTS))
    report("parse (explicit grammar) per request", per)


async def bench_engine(url: str) -> None:
    cfg = load_config()
    db = Database(url)
    db.migrate()
    eng = Engine(cfg, AuditStore(db), Backends(cfg))
    await eng.start()
    alice = Actor("console:alice")
    for _ in range(20):
        await eng.handle(Request(actor=alice, text="whoami"))
    ms = []
    for _ in range(300):
        t = time.perf_counter()
        await eng.handle(Request(actor=alice, text="whoami"))
        ms.append((time.perf_counter() - t) * 1000)
    report("engine: read command incl. audit writes (PG)", ms)
    await eng.close()
    db.dispose()


def bench_audit(url: str, rows: int) -> None:
    db = Database(url)
    db.migrate()
    now = utcnow()
    t = time.perf_counter()
    with db.engine.begin() as c:
        c.execute(text("""
            INSERT INTO requests (id, created_at, updated_at, actor, platform, channel, text, source, command,
                                  args, env, target, changes, status, correlation_id, approver)
            SELECT 'b-' || lpad(to_hex(g), 8, '0'),
                   :now - (g * interval '30 seconds'), :now - (g * interval '30 seconds'),
                   (ARRAY['slack:U1','slack:U2','slack:U3','discord:4','console:alice','console:bob'])[1 + g % 6],
                   'slack', 'slack:C1', 'text', 'grammar',
                   (ARRAY['status','logs','restart','deploy','audit','gpu','snapshot','whoami'])[1 + g % 8],
                   '{}', (ARRAY['rumple','rumpleprod','rumpletest','rumpledev','phoenix'])[1 + g % 5], NULL,
                   g % 3 = 0,
                   (ARRAY['succeeded','succeeded','succeeded','failed','refused','denied'])[1 + g % 6], 'c',
                   CASE WHEN g % 97 = 0 THEN 'slack:U9' END
            FROM generate_series(1, :rows) AS g"""), {"now": now, "rows": rows})
        c.execute(text("ANALYZE requests"))
    print(f"inserted {rows} rows in {time.perf_counter() - t:.1f} s")
    store = AuditStore(db)
    since = now - timedelta(days=1)
    cases = {
        "audit (no filter, limit 20)": AuditFilter(),
        "audit user=alice": AuditFilter(user="console:alice"),
        "audit env=prod since=1d": AuditFilter(env="rumpleprod", since=since),
        "audit command=deploy status=failed": AuditFilter(command="deploy", status="failed"),
        "audit status=denied limit=500": AuditFilter(status="denied", limit=500),
        "audit user=bob command=restart (no row matches)": AuditFilter(user="console:bob", command="restart"),
        "audit env=prod status=failed": AuditFilter(env="rumpleprod", status="failed"),
        "audit env=prod status=expired (no row matches)": AuditFilter(env="rumpleprod", status="expired"),
        "audit env=dev command=gpu status=denied": AuditFilter(env="rumpledev", command="gpu", status="denied"),
        "audit status=pending (no match)": AuditFilter(status="pending_approval"),
        "audit status=approved (1 row in 97)": AuditFilter(status="approved"),
        "audit user=alice status=approved": AuditFilter(user="console:alice", status="approved"),
        # A viewer's own audit (user forced to themselves) with a status filter: the case issue 15 found slow.
        "audit as a viewer (user=self) status=refused": AuditFilter(user="console:alice", status="refused"),
        "audit as a viewer (user=self) status=failed (no row matches)": AuditFilter(user="console:alice",
                                                                                     status="failed"),
    }
    for name, f in cases.items():
        got = store.query(f)
        if "no row matches" in name and got:  # the label must be true
            raise AssertionError(f"{name}: returns {len(got)} rows")
        report(f"{name} over {rows:,} rows", timed(lambda f=f: store.query(f), 30))  # type: ignore[misc]
    db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--rows", type=int, default=1_000_000)
    opts = ap.parse_args()
    bench_parse()
    with scratch_schema(opts.database_url) as url:
        asyncio.run(bench_engine(url))
        bench_audit(url, opts.rows)


if __name__ == "__main__":
    main()
