"""Concurrent read commands: engine latency while many requests write to the audit chain at once.

Run by hand (never in the test suite):
    .venv/bin/python bench/concurrency_bench.py [--concurrent 1,8,16,32,64] [--rounds 10]
                                               [--processes 1] [--database-url URL] [--no-settle]
                                               [--ask TEXT] [--history N]

Each round sends `concurrent` `whoami` requests (`--ask` another read command) at the same instant (split over
`--processes` bot processes on one database, as replicas would be) and times each from
`Engine.handle()` to its reply, audit writes included. Every request writes its
`requested`+`started` events, then its `succeeded` event, each committed before the request
goes on; writes that queue up together share a transaction (infra/db/writer.py).  After
start-up the engine's objects are frozen out of the garbage collector's scans, as `chatops
serve` does (bot/heap.py); `--no-settle` leaves them in.  The log holds `--history` finished
requests (20,000) and fresh statistics before the first round, as a bot's does after a while
(`fill_history` says why empty tables would mislead).
`--writes-only` times just those writes from `concurrent` threads (no engine).
`--per-round` prints each round's time, its median and slowest request, and the CPU the audit
linker spent in it (a round the linker ran in is slower by about that much: that is where p95 comes from).
It creates and drops its own schema in the given PostgreSQL database, and first prints how long this
machine takes for a fixed piece of Python work (`reference_ms`), to read the results beside.
Comparing two commits: run the other one from a worktree of it, `(cd /tmp/old && /work/main/.venv/bin/python
bench/concurrency_bench.py …)`; with `PYTHONPATH` instead, `common` would put this checkout first.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import time

from common import median_p95, reference_ms, scratch_schema  # bench/ is the script's folder, so on sys.path

from bot import heap
from bot.engine import Engine
from bot.request import Actor, Request
from infra.backends import Backends
from infra.config import load_config
from infra.db.store import AuditStore, Database


async def _worker(url: str, concurrent: int, rounds: int, start: float,
                  settle: bool = True, ask: str = "whoami", per_round: bool = False) -> tuple[list[float], float]:
    cfg = load_config()
    db = Database(url)
    eng = Engine(cfg, AuditStore(db), Backends(cfg))
    linked: list[tuple[float, float, float]] = []  # the linker's transactions: start, end, thread CPU
    if per_round:
        link = eng.store.link

        def timed_link(limit: int | None = None) -> int:
            began, cpu = time.perf_counter(), time.thread_time()
            try:
                return link(limit)
            finally:
                linked.append((began, time.perf_counter(), time.thread_time() - cpu))

        eng.store.link = timed_link  # type: ignore[method-assign]
    await eng.start()
    alice = Actor("console:alice")
    for _ in range(10):  # warm the pool and the caches
        await eng.handle(Request(actor=alice, text=ask))
    if settle:
        heap.settle()  # as `chatops serve` does before it runs
    while time.time() < start:  # every process begins together
        await asyncio.sleep(0.001)
    ms: list[float] = []

    async def one() -> None:
        t = time.perf_counter()
        reply = await eng.handle(Request(actor=alice, text=ask))
        assert reply.ok, reply.text
        ms.append((time.perf_counter() - t) * 1000)

    cpu = time.process_time()
    for _ in range(rounds):
        began, first = time.perf_counter(), len(ms)
        await asyncio.gather(*(one() for _ in range(concurrent)))
        if per_round:
            ended, mine = time.perf_counter(), sorted(ms[first:])
            spent = sum(c for a, b, c in linked if b > began and a < ended) * 1000
            print(f"  round {(ended - began) * 1000:6.1f} ms: median {mine[len(mine) // 2]:6.1f}, slowest "
                  f"{mine[-1]:6.1f} ms; audit linker {spent:5.1f} ms of CPU in it")
    cpu = time.process_time() - cpu
    await eng.close()
    db.dispose()
    return ms, cpu * 1000 / max(1, len(ms))


def _run(args: tuple[str, int, int, float, bool, str, bool]) -> tuple[list[float], float]:
    return asyncio.run(_worker(*args))


def bench(url: str, concurrent: int, rounds: int, processes: int, settle: bool, ask: str,
          per_round: bool = False) -> None:
    per = max(1, concurrent // processes)
    start = time.time() + 3.0
    began = time.perf_counter()
    if processes == 1:
        results = [_run((url, per, rounds, start, settle, ask, per_round))]
    else:
        with mp.get_context("spawn").Pool(processes) as pool:
            results = pool.map(_run, [(url, per, rounds, start, settle, ask, per_round)] * processes)
    wall = time.perf_counter() - began - 3.0
    ms = [m for r, _ in results for m in r]
    cpu = sum(c for _, c in results) / len(results)
    med, p95 = median_p95(ms)
    print(f"{ask} x{per * processes:<3} at once ({processes} process(es)): median {med:7.1f} ms   "
          f"p95 {p95:7.1f} ms   n={len(ms)}   {len(ms) / max(wall, 1e-9):6.0f} req/s   "
          f"CPU {cpu:4.1f} ms/request")


def bench_writes(url: str, concurrent: int, rounds: int) -> None:
    """Only the audit writes of a read command (request + requested/started, then succeeded), from
    `concurrent` threads at once: what the chain costs when no Python engine work is in the way."""
    from concurrent.futures import ThreadPoolExecutor

    from infra.db.models import RequestRow
    from infra.db.store import new_request_id

    db = Database(url)
    store = AuditStore(db)
    link = getattr(store, "link", None)  # linking happens off the request path (a thread here)

    def one() -> float:
        t = time.perf_counter()
        row = RequestRow(id=new_request_id(), actor="console:alice", platform="console", text="whoami",
                         command="whoami", args={}, changes=False, status="started", correlation_id="bench")
        store.create(row, [("requested", {"command": "whoami", "args": {}, "actor": row.actor}), ("started", {})])
        store.transition(row.id, ("started",), "succeeded", row.actor, {"result": "You are …"},  # type: ignore[arg-type]
                         result="You are …")
        return (time.perf_counter() - t) * 1000

    stop = False

    def linker() -> None:
        while not stop:
            if link is not None:
                link()
            time.sleep(0.01)

    ms: list[float] = []
    with ThreadPoolExecutor(concurrent + 1) as pool:
        background = pool.submit(linker)
        for _ in range(3):
            one()
        began = time.perf_counter()
        for _ in range(rounds):
            ms.extend(pool.map(lambda _i: one(), range(concurrent)))
        wall = time.perf_counter() - began
        stop = True
        background.result()
    med, p95 = median_p95(ms)
    print(f"audit writes x{concurrent:<3} at once (threads):          median {med:7.1f} ms   p95 {p95:7.1f} ms   "
          f"n={len(ms)}   {len(ms) / wall:6.0f} req/s")
    db.dispose()


def fill_history(url: str, n: int) -> None:
    """`n` finished requests (two events each) and fresh planner statistics, as a bot that has run a
    while has: PostgreSQL caches the plan of each foreign-key check per connection, and a plan made
    while the tables were empty scans them, so a benchmark on empty tables times its own growth."""
    from sqlalchemy import create_engine, text

    eng = create_engine(url)
    with eng.begin() as c:
        c.execute(text("""
            INSERT INTO requests (id, created_at, updated_at, actor, platform, text, source, command, args,
                                  changes, status, correlation_id, event_count)
            SELECT 'h-' || lpad(to_hex(g), 8, '0'), now() - g * interval '1 minute', now() - g * interval '1 minute',
                   'console:user' || (g % 7), 'console', 'whoami', 'grammar', 'whoami', '{}', false, 'succeeded',
                   '', 2
            FROM generate_series(1, :n) AS g"""), {"n": n})
        c.execute(text("""
            INSERT INTO audit_events (request_id, n, at, kind, actor, detail, seq, prev_hash, hash)
            SELECT id, k, created_at, CASE k WHEN 1 THEN 'requested' ELSE 'succeeded' END, actor, '{}',
                   row_number() OVER (ORDER BY created_at, k), repeat('0', 64), repeat('0', 64)
            FROM requests, generate_series(1, 2) AS k WHERE id LIKE 'h-%'"""))
        # already in the chain (the linker takes only unlinked events), and the head after them
        c.execute(text("""
            INSERT INTO audit_chain (id, seq, hash) VALUES (1, 2 * :n, repeat('0', 64))
            ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"""), {"n": n})
    with eng.connect() as c:
        c.execute(text("ANALYZE requests"))
        c.execute(text("ANALYZE audit_events"))
        c.commit()
    eng.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--concurrent", default="1,8,16,32,64")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--no-settle", action="store_true",
                    help="leave start-up objects in the collector's scans (what bot/heap.py avoids)")
    ap.add_argument("--ask", default="whoami", help="the read command every request sends")
    ap.add_argument("--history", type=int, default=20000,
                    help="finished requests in the log before the first round (0: start from empty tables)")
    ap.add_argument("--writes-only", action="store_true", help="time only the audit writes, from threads")
    ap.add_argument("--per-round", action="store_true", help="each round's time and the linker's CPU in it")
    opts = ap.parse_args()
    print(f"reference work: {reference_ms():.0f} ms on this machine (bench/common.py; compare results beside it)")
    with scratch_schema(opts.database_url) as url:
        db = Database(url)
        db.migrate()
        db.dispose()
        if opts.history:
            fill_history(url, opts.history)
        for n in (int(x) for x in opts.concurrent.split(",")):
            if opts.writes_only:
                bench_writes(url, n, opts.rounds)
            else:
                bench(url, n, opts.rounds, opts.processes, not opts.no_settle, opts.ask, opts.per_round)


if __name__ == "__main__":
    main()
