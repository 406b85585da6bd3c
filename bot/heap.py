"""Start-up objects out of the cyclic garbage collector's way.

A started bot holds about 100,000 long-lived objects (config, command registry, the language
tables, SQLAlchemy's mappers).  A full collection walks every one of them: 40-60 ms on the
2-vCPU test machine, and a burst of requests triggers one every few hundred requests, stalling
every request in flight (it was the p95 of 64 requests at once, docs/PERFORMANCE.md).
`gc.freeze()` after start-up moves them to a generation the collector never scans; reference
counting still frees them as usual.

Only the long-running commands call this (`chatops serve`, `chatops console`), once, when the
app is built and before its loop runs: a process that makes many engines (the tests) would keep
their reference cycles alive.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect what start-up left over, then freeze the rest; returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
