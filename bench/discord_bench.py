"""Discord adapter benchmarks: rendering, and the time from an interaction to its answer.

Run by hand (never in the test suite):
    .venv/bin/python bench/discord_bench.py [--n 200] [--database-url URL]
The round trips use the real discord.py client against the REST stand-in on loopback
(tests/fakes/discord_api.py), the real engine and PostgreSQL (its own schema, dropped after).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import discord
from common import scratch_schema  # bench/ is the script's folder, so on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.engine import Engine
from bot.render.discord import render
from bot.request import Button, Reply, Table, Tone
from infra.backends import Backends
from infra.config import load_config
from infra.db.store import AuditStore, Database
from tests.discord_kit import (
    ALICE,
    BOB,
    buttons,
    click,
    deliver,
    discord_config,
    make_registry,
    settle,
    slash,
    start_bot,
)
from tests.fakes.discord_api import FakeDiscord


def report(name: str, ms: list[float]) -> None:
    ms = sorted(ms)
    p95 = ms[max(0, int(len(ms) * 0.95) - 1)]
    print(f"{name:<52} median {statistics.median(ms):8.3f} ms   p95 {p95:8.3f} ms   n={len(ms)}")


def bench_render(n: int) -> None:
    card = Reply("deploy chat rumpleprod targets a protected system and needs approval.", tone=Tone.pending,
                 title="Approval needed: r-1a2b3c4d",
                 fields=[("Command", "deploy chat rumpleprod"), ("Env", "rumpleprod"),
                         ("What will happen", "\n".join(f"- pull image {i}" for i in range(30)))],
                 buttons=[Button("Approve", "approve", "r-1a2b3c4d", "f" * 64, "primary"),
                          Button("Deny", "deny", "r-1a2b3c4d", "f" * 64, "danger")], request_id="r-1a2b3c4d")
    big = Reply("audit", tables=[Table(["id", "when", "who", "command", "env", "status"],
                                       [[f"r-{i:08x}", "2024-11-26 10:00:00", "discord:1", "restart", "rumpledev",
                                         "succeeded"] for i in range(500)])])
    for name, reply in (("render: approval card", card), ("render: 500-row audit table (spills to a file)", big)):
        ms = []
        for _ in range(n):
            t = time.perf_counter()
            render(reply)
            ms.append((time.perf_counter() - t) * 1000)
        report(name, ms)


async def bench_round_trips(url: str, n: int) -> None:
    db = Database(url)
    db.migrate()
    cfg = discord_config(load_config())
    engine = Engine(cfg, AuditStore(db), Backends(cfg), registry=make_registry(Path(tempfile.mkdtemp()) / "t"))
    await engine.start()
    async with FakeDiscord() as api:
        discord.http.Route.BASE = api.base  # this process talks only to the stand-in
        bot = await start_bot(engine, api)
        read, decide = [], []
        for i in range(n + 10):
            data = slash("whoami", {})
            t = time.perf_counter()
            deliver(bot, api, data)
            await settle()
            if i >= 10:
                read.append((time.perf_counter() - t) * 1000)
        report("slash read: gateway payload → final edit", read)
        for i in range(n // 4 + 3):
            data = slash("touch", {"env": "prod"})
            deliver(bot, api, data)
            await settle()
            card_id = api.interactions[data["token"]]["original"]
            confirm = click(api, card_id, buttons(api.messages[card_id])["Run it"], ALICE)
            deliver(bot, api, confirm)
            await settle()
            posted = next(c for c in api.of("followup") if c.path.endswith(confirm["token"]))
            approve = click(api, posted.message_id or "", buttons(api.messages[posted.message_id or ""])["Approve"],
                            BOB)
            t = time.perf_counter()
            deliver(bot, api, approve)
            await settle()
            if i >= 3:
                decide.append((time.perf_counter() - t) * 1000)
        report("approve click → card edited with the result", decide)
        assert api.problems == [], api.problems
        await bot.close()
    await engine.close()
    db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--n", type=int, default=200)
    opts = ap.parse_args()
    bench_render(opts.n)
    with scratch_schema(opts.database_url) as url:
        asyncio.run(bench_round_trips(url, opts.n))


if __name__ == "__main__":
    main()
