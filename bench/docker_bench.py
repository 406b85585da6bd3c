"""Deploy and status against the real test Docker engine (scripts/services.d/20-dockerd.sh).

1. The bot's `deploy` of a 3-service stack against plain `docker compose up -d` of the
   same stack, alternating, each from nothing (the project is removed between runs).
   The bot also validates (`config`), pings, waits until every container runs and
   records the revision, so the ratio is what that safety costs.
2. `status` of an environment with 30 containers (CPU % and memory sampled per container).

    .venv/bin/python bench/docker_bench.py [--runs 5]
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

from bot.engine import Engine
from bot.request import Actor, Request, Tone
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


async def main(runs: int) -> None:
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

    async def ask(text: str) -> float:
        t0 = time.perf_counter()
        reply = await engine.handle(Request(actor=actor, text=text, confirmed=True))
        took = time.perf_counter() - t0
        assert reply.tone in (Tone.success, Tone.info), reply.text
        return took

    plain, bot = [], []
    folder = tmp / "compose" / "three"
    for _ in range(runs):
        t0 = time.perf_counter()
        compose(f"{prefix}-plain", folder, "up", "-d")
        plain.append(time.perf_counter() - t0)
        compose(f"{prefix}-plain", folder, "down", "-t", "1")
        bot.append(await ask("deploy three bench"))
        compose(f"{prefix}-three", folder, "down", "-t", "1")
    p, b = statistics.median(plain), statistics.median(bot)
    print(f"deploy 3 services: plain compose up -d median {p:.2f}s, bot deploy median {b:.2f}s, "
          f"ratio {b / p:.2f} (runs={runs}; plain {[round(x, 2) for x in plain]}, bot {[round(x, 2) for x in bot]})")

    await ask("deploy thirty bench")
    times = [await ask("status bench") for _ in range(runs)]
    print(f"status, 30 containers: median {statistics.median(times):.2f}s, "
          f"max {max(times):.2f}s ({[round(x, 2) for x in times]})")
    compose(f"{prefix}-thirty", tmp / "compose" / "thirty", "down", "-t", "1")
    await engine.close()
    db.dispose()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    asyncio.run(main(ap.parse_args().runs))
