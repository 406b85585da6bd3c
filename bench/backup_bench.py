"""Backup, verify and restore of a populated audit database, and the schema check every start pays.

    .venv/bin/python bench/backup_bench.py [--requests N] [--runs R] [--database-url URL]

Fills a scratch schema with N finished requests (3 chained events each), then times, R times:
`backup()` (pg_dump --snapshot + CSV export + chain check + manifest, what `chatops db backup`
runs), `verify_dump()` (restore into a new scratch database, verify, drop it: `--verify`),
`restore()` over the live schema (safety copy + one-transaction clean and load: `chatops db
restore`), and `schema_status()` (read-only revision check of every non-migrating command and of
the engine's start).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from common import median_p95, scratch_schema, timed

from infra.db.backup import backup, restore, verify_dump
from infra.db.migrate import schema_status
from infra.db.store import AuditStore, Database
from tests.db_support import record

PG = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--database-url", default=PG)
    opts = ap.parse_args()
    with scratch_schema(opts.database_url) as url, tempfile.TemporaryDirectory() as tmp:
        db = Database(url)
        db.migrate()
        store = AuditStore(db)
        began = time.perf_counter()
        for _ in range(opts.requests):
            record(store)
        print(f"filled {opts.requests} requests in {time.perf_counter() - began:.1f} s")
        out = Path(tmp)
        dumps: list[Path] = []

        def one_backup() -> None:
            time.sleep(1.01)  # one dump per second (the file name's stamp)
            t = time.perf_counter()
            dumps.append(backup(db, out).dump)
            samples.append((time.perf_counter() - t) * 1000)

        samples: list[float] = []
        for _ in range(opts.runs):
            one_backup()
        report("backup (dump + CSV + chain check, one snapshot)", samples)
        report("verify_dump (scratch database: create, restore, verify, drop)",
               timed(lambda: verify_dump(db, dumps[-1]), opts.runs))
        report("restore over the live schema (safety copy + one transaction)",
               timed(lambda: restore(db, dumps[-1], copy_dir=out, check_workers=True), opts.runs))
        report("schema_status (read-only revision check)", timed(lambda: schema_status(db.engine), 50))
        print(f"dump size: {dumps[-1].stat().st_size / 1e6:.1f} MB")
        db.dispose()


def report(what: str, ms: list[float]) -> None:
    med, p95 = median_p95(ms)
    print(f"{what}: median {med:.0f} ms, p95 {p95:.0f} ms over {len(ms)} runs")


if __name__ == "__main__":
    main()
