"""Deploy and status against the real test Docker engine (scripts/services.d/20-dockerd.sh).

1. The bot's `deploy` of a 3-service stack against plain `docker compose up -d` of the same
   stack, each from nothing (the project is removed between runs), the arms taking turns in
   a rotating order.  Kept honest:
   - every bot deploy is a fresh request with its own preview: no validation is carried over
     from an earlier run (the cache is cleared before each run);
   - "confirmed" is the chat flow: the card (validation, diff) is shown first, untimed, as a
     person reads it; the time is from "Run it" to the reply, which reuses the card's
     validation of the same files;
   - "--yes" has no card: it validates inside the deploy (`chatops run --yes`), reported too;
   - the bot waits until every container runs and records the revision; plain `up -d` does not;
   - beside the ratio, the bot's own time before its `up` process starts and after it ends is
     reported (its `up` is timed where the bot runs it): a number the engine's spread does not blur;
   - every timed run starts with the engine idle: `--settle` seconds (1 by default) after the last
     `down`, whose clean-up the engine finishes after the command returns (it landed on whichever
     arm came next and spread one arm's runs by ±20 %); both arms get the same pause, untimed, and
     the confirmed arm gets it again between its card and "Run it", as a person reading it would.
2. `status` of an environment with 30 containers (CPU % and memory sampled per container).
3. Start-up with 200 stacks: stack files read by loading the config and building the engine.

    .venv/bin/python bench/docker_bench.py [--runs 11] [--settle 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import infra.compose
from bot.engine import Engine
from bot.request import Actor, Request, Tone
from commands.registry import Kind
from infra.compose import compose_binary
from infra.config import load_config
from infra.db.store import AuditStore, Database
from infra.wiring import make_backends

SOCK = os.environ.get("CHATOPS_TEST_DOCKER_HOST", "unix:///run/chatops-docker.sock")
SERVICE = """  s{i}:
    image: chatops-busybox:1
    network_mode: none
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    stop_grace_period: 1s
"""


def write_stack(folder: Path, services: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compose.yaml").write_text("services:\n" + "".join(SERVICE.format(i=i) for i in range(services)))


def compose(project: str, folder: Path, *args: str) -> None:
    subprocess.run([compose_binary(), "-p", project, "-f", str(folder / "compose.yaml"), *args],
                   check=True, capture_output=True, env={**os.environ, "DOCKER_HOST": SOCK})


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def rounded(xs: list[float]) -> list[float]:
    return [round(x, 2) for x in xs]


async def main(runs: int, settle: float = 1.0) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="chatops-bench-"))
    prefix = "bench" + uuid.uuid4().hex[:6]
    write_stack(tmp / "compose" / "three", 3)
    write_stack(tmp / "compose" / "thirty", 30)
    cfg = tmp / "chatops.yaml"
    cfg.write_text(f"""environments:
  bench: {{docker: {{host: "{SOCK}"}}, project_prefix: "{prefix}-", deploy_timeout_s: 120}}
stacks:
  three: {{path: compose/three}}
  thirty: {{path: compose/thirty}}
users: {{"console:bench": [operator]}}
""")
    os.environ["CHATOPS_DATA_DIR"] = str(tmp / "data")
    config = load_config(cfg)
    db = Database(f"sqlite:///{tmp}/audit.sqlite3")
    db.migrate()
    engine = Engine(config, AuditStore(db), make_backends(config))
    await engine.start()
    actor = Actor("console:bench")

    async def ask(text: str, yes: bool = True) -> tuple[float, str | None]:
        t0 = time.perf_counter()
        reply = await engine.handle(Request(actor=actor, text=text, confirmed=yes))
        took = time.perf_counter() - t0
        assert reply.tone in (Tone.success, Tone.info, Tone.question), reply.text
        return took, reply.request_id

    ups = _time_up()
    folder = tmp / "compose" / "three"
    await ask("deploy three bench")  # warm: the engine's client, the host check, imports
    compose(f"{prefix}-three", folder, "down", "-t", "1")
    plain: list[float] = []
    confirmed: list[float] = []
    cards: list[float] = []
    direct: list[float] = []
    around: list[tuple[float, float]] = []  # confirmed: the bot's own time before and after its `up`

    def run_plain() -> None:
        t0 = time.perf_counter()
        compose(f"{prefix}-plain", folder, "up", "-d")
        plain.append(time.perf_counter() - t0)
        compose(f"{prefix}-plain", folder, "down", "-t", "1")

    async def run_confirmed() -> None:
        infra.compose._VALIDATED.clear()
        took, rid = await ask("deploy three bench", yes=False)
        cards.append(took)
        assert rid
        await asyncio.sleep(settle)  # a person reads the card before "Run it"
        ups.clear()
        t0 = time.perf_counter()
        reply = await engine.act("confirm", rid, actor)
        confirmed.append(time.perf_counter() - t0)
        (began, ended), = ups
        around.append((began - t0, confirmed[-1] - (ended - t0)))
        assert reply.tone is Tone.success, reply.text
        compose(f"{prefix}-three", folder, "down", "-t", "1")

    async def run_direct() -> None:
        infra.compose._VALIDATED.clear()
        took, _ = await ask("deploy three bench")
        direct.append(took)
        compose(f"{prefix}-three", folder, "down", "-t", "1")

    arms = ["plain", "confirmed", "direct"]
    for i in range(runs):
        for arm in arms[i % 3:] + arms[:i % 3]:
            await asyncio.sleep(settle)
            if arm == "plain":
                run_plain()
            elif arm == "confirmed":
                await run_confirmed()
            else:
                await run_direct()
    p = med(plain)
    print(f"deploy 3 services, {runs} runs each, from nothing, rotating order; plain compose up -d median {p:.3f}s")
    print(f"  confirmed (card first, untimed; timed from 'Run it' to the reply): median {med(confirmed):.3f}s, "
          f"ratio {med(confirmed) / p:.2f}")
    print(f"  --yes (no card: validation inside the deploy): median {med(direct):.3f}s, ratio {med(direct) / p:.2f}")
    print(f"  the card itself (validation, config hashes, what runs): median {med(cards):.3f}s")
    own = med([a + b for a, b in around]) * 1000
    print(f"  confirmed, the bot's own time around its `up` process: median {own:.0f} ms (before it starts "
          f"{med([a for a, _ in around]) * 1000:.0f} ms, after it ends {med([b for _, b in around]) * 1000:.0f} ms)")
    print(f"  plain {rounded(plain)}\n  confirmed {rounded(confirmed)}\n  --yes {rounded(direct)}")

    await ask("deploy thirty bench")
    times = [(await ask("status bench"))[0] for _ in range(5)]
    print(f"status, 30 containers: median {med(times):.2f}s, max {max(times):.2f}s ({rounded(times)})")
    compose(f"{prefix}-thirty", tmp / "compose" / "thirty", "down", "-t", "1")
    await engine.close()
    db.dispose()
    startup(tmp)


def _time_up() -> list[tuple[float, float]]:
    """Start and end of each Compose `up` the bot runs (the one thing both arms share), so the
    bot's own time can be read without the engine's run-to-run spread."""
    spans: list[tuple[float, float]] = []
    run = infra.compose.run_compose

    async def timed(args: list[str], **kw: Any) -> infra.compose.ComposeResult:
        began = time.perf_counter()
        try:
            return await run(args, **kw)
        finally:
            if "up" in args:
                spans.append((began, time.perf_counter()))

    infra.compose.run_compose = timed  # type: ignore[assignment]
    return spans


def startup(tmp: Path, stacks: int = 200) -> None:
    """Loading a config with many stacks and building the engine reads none of their files."""
    root = tmp / "many"
    lines = ["environments:", "  dev: {}", "stacks:"]
    for i in range(stacks):
        (root / f"s{i}").mkdir(parents=True)
        (root / f"s{i}" / "compose.yaml").write_text(f"services:\n  svc{i}:\n    image: chatops-busybox:1\n")
        lines.append(f"  s{i}: {{path: many/s{i}}}")
    (tmp / "many.yaml").write_text("\n".join(lines) + "\n")
    db = Database(f"sqlite:///{tmp}/many.sqlite3")
    db.migrate()
    t0 = time.perf_counter()
    config = load_config(tmp / "many.yaml")
    engine = Engine(config, AuditStore(db), make_backends(config))
    built = time.perf_counter() - t0
    read = len(config.stack_services._cache)
    t1 = time.perf_counter()
    engine.resolver.resolve(Kind.service, "svc1")
    first = time.perf_counter() - t1
    print(f"start-up with {stacks} stacks: config + engine {built * 1000:.0f} ms, stack files read {read}; "
          f"the first service lookup reads them: {first * 1000:.0f} ms")
    db.dispose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--settle", type=float, default=1.0, help="idle seconds before each timed run")
    opts = ap.parse_args()
    asyncio.run(main(opts.runs, opts.settle))
