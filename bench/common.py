"""Helpers the benchmarks share: a scratch PostgreSQL schema and timing percentiles.

Every benchmark runs the same way from the repository root, `.venv/bin/python bench/NAME.py`:
Python puts bench/ on sys.path (so `common` imports), and importing `common` puts the
repository root there too, for the protocol fakes under tests/ (not an installed package).
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@contextmanager
def scratch_schema(database_url: str) -> Iterator[str]:
    """A new schema for one run, dropped afterwards; yields a URL whose search_path is that schema."""
    schema = "bench_" + uuid.uuid4().hex[:8]
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in database_url else "?"
    try:
        yield f"{database_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def reference_ms() -> float:
    """Milliseconds this machine takes for a fixed piece of pure-Python work (best of five): the same
    code's latencies differ by 3x between machines of this project, so a result is read beside it."""
    import json

    doc = {"command": "whoami", "args": {"env": "rumpleprod", "n": 3}, "actor": "console:alice", "text": "x" * 40}
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for i in range(20000):
            json.loads(json.dumps({**doc, "i": i}))
        best = min(best, time.perf_counter() - t)
    return best * 1000


def median_p95(ms: list[float]) -> tuple[float, float]:
    ordered = sorted(ms)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def timed(fn: Callable[[], object], n: int) -> list[float]:
    """Milliseconds of `n` calls of `fn`, one sample per call."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out
