"""One bot replica for the two-process schedule test (tests/test_schedules.py).

    python -m tests.schedule_worker DATABASE_URL WORKDIR NOW_ISO GO_FILE

It starts an engine on the shared PostgreSQL with the observable test registry (its `touch`
command appends a line to WORKDIR/NAME) and a clock standing at NOW_ISO, waits until GO_FILE
exists (so both replicas race for the same occurrence), runs one scheduler tick and prints
what it ran as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime
from pathlib import Path

from bot.engine import Engine
from infra.backends import Backends
from infra.clock import ManualClock
from infra.config import load_config
from infra.db.store import AuditStore, Database
from tests.support import observable_registry


async def main(url: str, workdir: str, now: str, go: str) -> None:
    config = load_config(Path(__file__).resolve().parent.parent / "chatops.yaml")
    db = Database(url)
    engine = Engine(config, AuditStore(db), Backends(config), registry=observable_registry(Path(workdir)),
                    clock=ManualClock(datetime.fromisoformat(now)))
    await engine.start()
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not Path(go).exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    ran = await engine.schedules.run_due()
    print(json.dumps(ran), flush=True)
    await engine.close()
    db.dispose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
