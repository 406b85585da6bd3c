"""Proxmox benchmarks: the bot's own cost around Proxmox calls, against the loopback HTTPS fake.

Run by hand (never in the test suite):
    .venv/bin/python bench/proxmox_bench.py [--n 50] [--database-url URL]
It creates and drops its own schema in the given PostgreSQL database.  Proxmox itself is
the fake, answering at once, so the numbers are the bot's overhead (TLS, proxmoxer, thread
hops, audit writes), not how long a real snapshot takes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from common import scratch_schema  # bench/ is the script's folder, so on sys.path
from pydantic import SecretStr

from bot.engine import Engine
from bot.request import Actor, Request
from commands.vms import checkpoint_before_deploy
from infra.config import Config, Proxmox, load_config
from infra.db.models import RequestRow
from infra.db.store import AuditStore, Database, new_request_id
from infra.proxmox import Guest, ProxmoxClient
from infra.wiring import make_backends
from tests.fakes.proxmox_api import ProxmoxFake

TOKEN_ID, SECRET = "chatops@pve!bot", "bench-secret-0123456789"


def report(name: str, ms: list[float]) -> None:
    ms = sorted(ms)
    p95 = ms[max(0, int(len(ms) * 0.95) - 1)]
    print(f"{name:<58} median {statistics.median(ms):8.2f} ms   p95 {p95:8.2f} ms   n={len(ms)}")


async def timed(coro_fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await coro_fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


async def main(n: int, db_url: str) -> None:
    base = load_config()
    fake = ProxmoxFake(Path(tempfile.mkdtemp()), tokens={TOKEN_ID: SECRET}, task_seconds=0.0).start()
    for name, vm in base.inventory.vms.items():
        fake.add_guest(vm.node, vm.kind, vm.vmid, name)
    prox = Proxmox(host=fake.host, token_id=TOKEN_ID, token_secret=SecretStr(SECRET), ca_bundle=str(fake.ca_path),
                   poll_s=0.05, snapshot_retention=3)
    envs = dict(base.inventory.environments)
    envs["rumpletest"] = envs["rumpletest"].model_copy(update={"checkpoint_before_deploy": True})
    cfg = Config(inventory=base.inventory.model_copy(update={"proxmox": prox, "environments": envs}),
                 path=base.path, settings=base.settings)
    with scratch_schema(db_url) as url:
        await _run(cfg, fake, Database(url), n)


async def _run(cfg: Config, fake: ProxmoxFake, db: Database, n: int) -> None:
    try:
        db.migrate()
        store = AuditStore(db)
        engine = Engine(cfg, store, make_backends(cfg))
        await engine.start()
        client: ProxmoxClient = engine.backends.proxmox()
        guest = Guest("rumpletest", "phoenix", "qemu", 102)
        await client.snapshots(guest)  # warm the connection
        report("client: list snapshots (one HTTPS GET, keep-alive)", await timed(lambda: client.snapshots(guest), n))

        async def say(t: str) -> None:
            reply = await engine.handle(Request(actor=Actor("console:alice"), text=t, confirmed=True))
            assert reply.ok, reply.text

        report("engine: vm-status, all 5 guests (5 GETs in parallel)", await timed(lambda: say("vm-status"), n))
        report("engine: snapshots rumpletest", await timed(lambda: say("snapshots rumpletest"), n))
        counter = iter(range(10**6))
        report("engine: snapshot (task ends at once; poll_s 0.05; prunes nothing)",
               await timed(lambda: say(f"snapshot rumpletest name=b{next(counter)}"), max(5, n // 5)))

        async def refused() -> None:
            reply = await engine.handle(Request(actor=Actor("console:alice"), text="restore rumpleprod nope"))
            assert "has no snapshot" in reply.text, reply.text

        report("engine: restore of a missing snapshot, refused before the card", await timed(refused, n))

        async def checkpoint() -> None:
            row = RequestRow(id=new_request_id(), actor="console:alice", platform="console", text="deploy",
                             command="deploy", args={"stack": "chat", "env": "rumpletest"}, env="rumpletest",
                             changes=True, status="started")
            await asyncio.to_thread(store.create, row, [("started", {})])
            # One checkpoint a second per person is all names allow (a real deploy takes longer).
            who = Actor(f"console:a{next(counter)}")
            ctx = engine._context(Request(actor=who, text="deploy"), row.id, cfg.roles_of("console:alice"))
            assert await checkpoint_before_deploy(ctx, "rumpletest")

        report("engine: checkpoint before deploy (snapshot, retention 3: list + one pruning)",
               await timed(checkpoint, max(5, n // 5)))
        await engine.close()
    finally:
        fake.stop()
        db.dispose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    a = ap.parse_args()
    asyncio.run(main(a.n, a.database_url))
