"""LLM route benchmark: what the route itself costs, and what a real model answers.

Run by hand (never in the test suite):

    .venv/bin/python bench/llm_route.py                     # against the scripted loopback server
    .venv/bin/python bench/llm_route.py --base-url http://phoenix:8000/v1 --model Qwen/Qwen2.5-7B-Instruct-AWQ \
        --api-key "$LLM_API_KEY"                            # against a real vLLM

Against the scripted server (which answers at once) the numbers are the bot's own overhead
per model request: prompt building, LangChain + openai client, HTTP on loopback, parsing
and validation.  Against a real server they add the model's latency and report tokens and
how many of a few phrasings came back as the expected plan (the full evaluation is
`chatops eval nl FILE --llm`).  Also measures the thread lookup on a large audit table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from common import scratch_schema  # bench/ is the script's folder, so on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the scripted server lives in tests/

from commands.registry import registry
from infra.config import load_config
from llm.planner import Planner
from tests.fakes.openai_server import FakeOpenAI, plan
from tests.llm_support import with_llm

# text → expected (command, args); plain phrasings the grammar alone may not read.
CASES: list[tuple[str, str | None, dict[str, Any]]] = [
    ("could you give the workflow engine on dev a kick", "restart", {"service": "n8n", "env": "rumpledev"}),
    ("what's running on staging right now", "status", {"env": "rumpletest"}),
    ("show me the last 100 lines from webui on test", "logs",
     {"service": "open-webui", "env": "rumpletest", "tail": 100}),
    ("please take a checkpoint of the prod vm before I upgrade", "snapshot", {"vm": "rumpleprod"}),
    ("how hot are the cards", "gpu", {}),
    ("ship the chat stack out to dev", "deploy", {"stack": "chat", "env": "rumpledev"}),
    ("don't restart nginx on live", None, {}),
    ("thanks, that fixed it", None, {}),
]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


async def model_route(planner: Planner, rounds: int) -> dict[str, Any]:
    lat: list[float] = []
    prompt: list[float] = []
    completion: list[float] = []
    right = 0
    for _ in range(rounds):
        for text, command, args in CASES:
            t = time.perf_counter()
            p = await planner.plan(text, use_llm=True)
            lat.append((time.perf_counter() - t) * 1000)
            if p.usage:
                prompt.append(p.usage.get("prompt_tokens", 0))
                completion.append(p.usage.get("completion_tokens", 0))
            right += (p.command, p.args if p.command else {}) == (command, args)
    n = rounds * len(CASES)
    return {"requests": n, "p50_ms": statistics.median(lat), "p95_ms": pct(lat, 0.95),
            "prompt_tokens": statistics.mean(prompt) if prompt else 0.0,
            "completion_tokens": statistics.mean(completion) if completion else 0.0,
            "right": f"{right}/{n}"}


def thread_lookup(rows: int, url: str) -> tuple[float, float]:
    """p50/p95 ms of the thread's-last-plan query on a requests table of `rows` rows."""

    from infra.db.store import Database

    with scratch_schema(url) as scratch:
        return _thread_lookup(Database(scratch), rows)


def _thread_lookup(db: Any, rows: int) -> tuple[float, float]:
    from sqlalchemy import text

    from infra.db.store import AuditStore
    from llm.thread import last_turn

    try:
        db.migrate()
        with db.engine.begin() as c:
            c.execute(text(
                "INSERT INTO requests (id, created_at, updated_at, actor, platform, channel, thread, text, source,"
                " command, args, changes, status, correlation_id) "
                "SELECT 'r-' || lpad(to_hex(g), 8, '0'), now() - g * interval '30 seconds', now(), 'slack:U1',"
                " 'slack', 'C' || (g % 20), 'th-' || (g / 5), 'x', 'grammar', 'status', '{\"env\": \"rumpletest\"}',"
                " false, 'succeeded', '' FROM generate_series(1, :n) g"), {"n": rows})
            c.execute(text("ANALYZE requests"))
        store = AuditStore(db)
        lat = []
        for i in range(200):
            g = 1 + (i * 7919) % rows
            t = time.perf_counter()
            turn = last_turn(store, f"C{g % 20}", f"th-{g // 5}", "slack:U1")
            lat.append((time.perf_counter() - t) * 1000)
            assert turn is not None
        return statistics.median(lat), pct(lat, 0.95)
    finally:
        db.dispose()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url")
    ap.add_argument("--model", default="Qwen/Qwen2.5-7B-Instruct-AWQ")
    ap.add_argument("--api-key")
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--rows", type=int, default=1_000_000, help="audit rows for the thread lookup (0: skip)")
    ap.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    a = ap.parse_args()
    config = load_config()
    server = None
    if a.base_url:
        cfg = with_llm(config, a.base_url, model=a.model, api_key=a.api_key, timeout_s=30.0)
        label = f"{a.model} at {a.base_url}"
    else:
        server = FakeOpenAI(model=a.model)
        expected = {text: (cmd, args) for text, cmd, args in CASES}

        def respond(body: dict[str, Any]) -> Any:
            cmd, args = expected[body["messages"][-1]["content"]]
            return plan(cmd or "none", **args)

        server.responder = respond
        cfg = with_llm(config, await server.start(), model=a.model, api_key=None)
        label = "scripted loopback server (route overhead only)"
    planner = Planner(cfg, registry())
    await planner.plan(CASES[0][0], use_llm=True)  # warm: imports, connection
    res = await model_route(planner, a.rounds)
    est = "" if a.base_url else " (estimated)"
    print(f"model route, {label}:")
    print(f"  {res['requests']} requests  p50 {res['p50_ms']:.1f} ms  p95 {res['p95_ms']:.1f} ms  "
          f"prompt {res['prompt_tokens']:.0f} tok{est}  completion {res['completion_tokens']:.0f} tok  "
          f"expected plan {res['right']}")
    t = time.perf_counter()
    for _ in range(1000):
        await planner.plan("restart n8n on dev")
    per = (time.perf_counter() - t) * 1000 / 1000
    print(f"grammar-first with the model configured: {per:.3f} ms per request (the model is not asked)")
    if server is not None:
        await server.stop()
    if a.rows:
        p50, p95 = thread_lookup(a.rows, a.database_url)
        print(f"thread's last plan over {a.rows:,} audit rows: p50 {p50:.2f} ms  p95 {p95:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
