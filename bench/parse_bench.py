"""Benchmark of the grammar route: parse time, the typo path and `chatops parse` start-up, at the
default inventory and at a large one (200 stacks × 100 environments by default).

    .venv/bin/python bench/parse_bench.py [--cases tests/data/nl-cases.jsonl] [--rounds 20] [--starts 10]
                                          [--stacks 200 --envs 100]

Parse time: every case text through `Planner.grammar`, `rounds` times, after one warm-up
round; reports mean, p50, p95 and max per request.  Typo path: requests with a misspelt word
(`Planner.grammar`), and one look-up in the typo index (`Vocabulary.correct`) alone.  Start-up:
wall time of `chatops parse --json TEXT` as a fresh process, `starts` times, with bytecode
caches (as deployed) and without (PYTHONDONTWRITEBYTECODE=1, caches removed), wall and CPU
time, and which heavy packages `python -X importtime` sees on that path (there should be none).
The large inventory is the shipped one plus generated stacks (one compose file each) and
environments with aliases, written to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
HEAVY = ("langchain", "langchain_core", "langchain_openai", "openai", "sqlalchemy", "alembic", "matplotlib",
         "docker", "proxmoxer", "slack_bolt", "slack_sdk", "discord", "aiohttp", "httpx", "requests")


TYPOS = ("restrat n8n on dev", "logs ngnix on dev", "deplyo chat to stagign", "show grafnaa logs on prod",
         "bounce redsi on test", "snapshto the dev vm", "what is nginx sayign on live", "statsu of stagign")
TYPO_WORDS = ("ngnix", "stagign", "grafnaa", "restrat", "snapshto", "productoin", "prometheous", "paperles")


def big_config(folder: Path, stacks: int, envs: int) -> Path:
    """The shipped inventory plus `stacks` generated stacks and `envs` environments (with aliases)."""
    import yaml

    base = yaml.safe_load((ROOT / "chatops.yaml").read_text())
    for name, stack in base["stacks"].items():
        stack["path"] = str(ROOT / stack.get("path", f"compose/{name}"))
    for i in range(stacks - len(base["stacks"])):
        name = f"team{i:03d}-app"
        d = folder / "compose" / name
        d.mkdir(parents=True)
        (d / "compose.yaml").write_text(f"services:\n  svc{i:03d}-api:\n    image: busybox\n"
                                        f"  svc{i:03d}-worker:\n    image: busybox\n")
        base["stacks"][name] = {"path": str(d)}
    for i in range(envs - len(base["environments"])):
        base["environments"][f"site{i:03d}"] = {"aliases": [f"region{i:03d}", f"cluster-{i:03d}"],
                                               "protected": i % 2 == 0}
    path = folder / "chatops.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def _timed(planner: object, texts: list[str], rounds: int) -> dict[str, float]:
    grammar = planner.grammar  # type: ignore[attr-defined]
    for t in texts:
        grammar(t)
    samples: list[float] = []
    for _ in range(rounds):
        for t in texts:
            t0 = time.perf_counter()
            grammar(t)
            samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return {"requests": len(texts), "rounds": rounds, "mean_ms": statistics.fmean(samples),
            "p50_ms": samples[len(samples) // 2], "p95_ms": samples[int(len(samples) * 0.95)],
            "max_ms": samples[-1]}


def parse_times(cases: Path, rounds: int, config: Path | None = None) -> dict[str, object]:
    from commands.registry import registry
    from infra.config import load_config
    from llm.eval import load_cases
    from llm.planner import Planner

    cfg = load_config(config)
    t0 = time.perf_counter()
    planner = Planner(cfg, registry())
    built_ms = (time.perf_counter() - t0) * 1000
    texts = [c.text for c in load_cases(cases)]
    vocab = planner.nl.vocab
    lookups: list[float] = []
    for _ in range(rounds * 20):
        for w in TYPO_WORDS:
            t1 = time.perf_counter()
            vocab.correct(w)
            lookups.append((time.perf_counter() - t1) * 1000)
    lookups.sort()
    return {"inventory": {"stacks": len(cfg.inventory.stacks), "environments": len(cfg.inventory.environments),
                          "typo_index_words": len(vocab.meanings)},
            "planner_build_ms": built_ms, "parse": _timed(planner, texts, rounds),
            "typo_requests": _timed(planner, list(TYPOS), rounds * 20),
            "typo_lookup": {"p50_ms": lookups[len(lookups) // 2], "p95_ms": lookups[int(len(lookups) * 0.95)],
                            "mean_ms": statistics.fmean(lookups)}}


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


def start_times(starts: int, config: Path | None = None) -> dict[str, object]:
    exe = Path(sys.executable).parent / "chatops"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "bot.cli"]
    out: dict[str, object] = {"starts": starts}
    # As deployed: bytecode caches present (one warm-up start writes them).
    cached = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if config is not None:
        cached["CHATOPS_CONFIG"] = str(config)
    _starts(cmd, 1, cached)
    # Without caches: every project module compiled on each start (PYTHONDONTWRITEBYTECODE=1 and no __pycache__).
    for label, env in (("bytecode", cached), ("no_bytecode", {**cached, "PYTHONDONTWRITEBYTECODE": "1"})):
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
    ap.add_argument("--stacks", type=int, default=200)
    ap.add_argument("--envs", type=int, default=100)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        big = big_config(Path(tmp), a.stacks, a.envs)
        result = {"default": {"parse": parse_times(a.cases, a.rounds), "start": start_times(a.starts)},
                  "large": {"parse": parse_times(a.cases, a.rounds, big), "start": start_times(a.starts, big)}}
    if a.json:
        print(json.dumps(result, indent=2))
        return
    for name, r in result.items():
        p, s = r["parse"], r["start"]
        inv = p["inventory"]
        print(f"== {name} inventory: {inv['stacks']} stacks × {inv['environments']} environments, "
              f"{inv['typo_index_words']} words in the typo index (planner built in {p['planner_build_ms']:.0f} ms)")
        for key, label in (("parse", "parse"), ("typo_requests", "typo requests")):
            q = p[key]
            print(f"{label}: {q['requests']} requests × {q['rounds']} rounds: mean {q['mean_ms']:.3f} ms, "
                  f"p50 {q['p50_ms']:.3f} ms, p95 {q['p95_ms']:.3f} ms, max {q['max_ms']:.3f} ms")
        q = p["typo_lookup"]
        print(f"typo index look-up: p50 {q['p50_ms'] * 1000:.1f} µs, p95 {q['p95_ms'] * 1000:.1f} µs")
        for label in ("bytecode", "no_bytecode"):
            t = s[label]
            print(f"start ({label}): `chatops parse` × {s['starts']}: median wall {t['median_wall_s']:.3f} s "
                  f"(min {t['min_wall_s']:.3f}), median CPU {t['median_cpu_s']:.3f} s")
        print(f"heavy imports on the parse path: {s['heavy_imports'] or 'none'}")


if __name__ == "__main__":
    main()
