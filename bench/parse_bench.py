"""Benchmark of the grammar route: parse time per request and `chatops parse` start-up.

    .venv/bin/python bench/parse_bench.py [--cases tests/data/nl-cases.jsonl] [--rounds 20] [--starts 10]

Parse time: every case text through `Planner.grammar`, `rounds` times, after one warm-up
round; reports mean, p50, p95 and max per request.  Start-up: wall time of
`chatops parse --json TEXT` as a fresh process, `starts` times, with bytecode caches (as
deployed) and without (PYTHONDONTWRITEBYTECODE=1, caches removed), wall and CPU time, and
which heavy packages `python -X importtime` sees on that path (there should be none).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
HEAVY = ("langchain", "langchain_core", "langchain_openai", "openai", "sqlalchemy", "alembic", "matplotlib",
         "docker", "proxmoxer", "slack_bolt", "slack_sdk", "discord", "aiohttp", "httpx", "requests")


def parse_times(cases: Path, rounds: int) -> dict[str, float]:
    from commands.registry import registry
    from infra.config import load_config
    from llm.eval import load_cases
    from llm.planner import Planner

    planner = Planner(load_config(None), registry())
    texts = [c.text for c in load_cases(cases)]
    for t in texts:
        planner.grammar(t)
    samples: list[float] = []
    for _ in range(rounds):
        for t in texts:
            t0 = time.perf_counter()
            planner.grammar(t)
            samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {"requests": len(texts), "rounds": rounds, "mean_ms": statistics.fmean(samples),
            "p50_ms": samples[len(samples) // 2], "p95_ms": samples[int(len(samples) * 0.95)],
            "max_ms": samples[-1]}


def _starts(cmd: list[str], starts: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """Wall and CPU (user+sys of the child) seconds of each start."""
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(starts):
        before = os.times()
        t0 = time.perf_counter()
        subprocess.run([*cmd, "parse", "--json", "bounce n8n on dev please"], cwd=ROOT, check=True,
                       capture_output=True, env=env)
        walls.append(time.perf_counter() - t0)
        after = os.times()
        cpus.append((after.children_user - before.children_user) + (after.children_system - before.children_system))
    return walls, cpus


def start_times(starts: int) -> dict[str, object]:
    exe = Path(sys.executable).parent / "chatops"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "bot.cli"]
    out: dict[str, object] = {"starts": starts}
    # As deployed: bytecode caches present (one warm-up start writes them).
    cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    _starts(cmd, 1, cached)
    # Without caches: every project module compiled on each start (PYTHONDONTWRITEBYTECODE=1 and no __pycache__).
    for label, env in (("bytecode", cached), ("no_bytecode", {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})):
        if label == "no_bytecode":
            for cache in ROOT.glob("[bcil]*/**/__pycache__"):
                shutil.rmtree(cache, ignore_errors=True)
        walls, cpus = _starts(cmd, starts, env)
        out[label] = {"median_wall_s": statistics.median(walls), "min_wall_s": min(walls),
                      "median_cpu_s": statistics.median(cpus)}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "bot.cli", "parse", "--json", "status dev"],
                          cwd=ROOT, check=True, capture_output=True, text=True)
    top = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    out["heavy_imports"] = sorted(top & set(HEAVY))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=Path, default=ROOT / "tests" / "data" / "nl-cases.jsonl")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--starts", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    result = {"parse": parse_times(a.cases, a.rounds), "start": start_times(a.starts)}
    if a.json:
        print(json.dumps(result, indent=2))
        return
    p, s = result["parse"], result["start"]
    print(f"parse: {p['requests']} requests × {p['rounds']} rounds: mean {p['mean_ms']:.3f} ms, "
          f"p50 {p['p50_ms']:.3f} ms, p95 {p['p95_ms']:.3f} ms, max {p['max_ms']:.3f} ms")
    for label in ("bytecode", "no_bytecode"):
        r = s[label]
        print(f"start ({label}): `chatops parse` × {s['starts']}: median wall {r['median_wall_s']:.3f} s "
              f"(min {r['min_wall_s']:.3f}), median CPU {r['median_cpu_s']:.3f} s")
    print(f"heavy imports on the parse path: {s['heavy_imports'] or 'none'}")


if __name__ == "__main__":
    main()
