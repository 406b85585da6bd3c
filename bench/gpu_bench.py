"""GPU benchmarks: nvidia-smi CSV parsing, vLLM /metrics parsing, the chart, and a local
nvidia-smi source read through the stand-in executable (process start-up included).

Run by hand (never in the test suite):
    .venv/bin/python bench/gpu_bench.py
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, timed  # importing common also puts ROOT on sys.path (for tests.fakes)

from infra.gpu.chart import render_png
from infra.gpu.model import History, Series
from infra.gpu.nvidia_smi import NvidiaSmiSource, parse_apps, parse_gpus
from infra.gpu.vllm_metrics import parse_metrics
from tests.fakes.vllm_server import FakeVllm


def report(name: str, ms: list[float]) -> None:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    print(f"| {name} | {statistics.median(ms):.3f} ms | {p95:.3f} ms |")


def eight_gpus() -> tuple[str, str]:
    gpus = "".join(f"{i}, GPU-0000000{i}-aaaa-bbbb-cccc-dddddddddddd, NVIDIA H100 80GB HBM3, {i * 12}, "
                   f"{i * 9000}, 81559, {40 + i}, {100 + i * 50}.25, 700.00\n" for i in range(8))
    apps = "".join(f"GPU-0000000{i % 8}-aaaa-bbbb-cccc-dddddddddddd, {1000 + i}, {512 + i}, /usr/bin/python3\n"
                   for i in range(64))
    return gpus, apps


async def source_reads(n: int) -> list[float]:
    tmp = Path(tempfile.mkdtemp())
    exe = tmp / "nvidia-smi"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{ROOT / "tests/fakes/nvidia_smi_standin.py"}" "$@"\n')
    exe.chmod(0o755)
    os.environ.update(PATH=f"{tmp}:{os.environ['PATH']}", FAKE_NVSMI_DATA=str(ROOT / "tests/data/nvidia-smi"),
                      FAKE_NVSMI_SCENARIO="phoenix")
    src = NvidiaSmiSource("phoenix")
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await src.read()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    gpus, apps = eight_gpus()
    fake = FakeVllm(engines=2)
    fake.set(3, 2, 0.4)
    page = fake.render()
    now = time.time()
    history = History(
        util=[Series(f"GPU {g}", [(now - 3600 + 15 * k, float((k * 7 + g * 13) % 100)) for k in range(241)])
              for g in range(2)],
        memory_pct=[Series(f"GPU {g}", [(now - 3600 + 15 * k, 60.0 + g) for k in range(241)]) for g in range(2)],
        start=now - 3600, end=now)
    render_png(history, "warm-up")  # first call imports matplotlib
    print("| measurement | median | p95 |\n|---|---|---|")
    report("parse nvidia-smi CSV, 8 GPUs + 64 processes", timed(lambda: parse_gpus(gpus, parse_apps(apps)), 2000))
    report(f"parse vLLM /metrics ({len(page)} bytes, 2 engines)", timed(lambda: parse_metrics(page), 500))
    report("render the chart PNG (2 GPUs x 241 points x 2 panels)", timed(lambda: render_png(history, "t"), 20))
    report("nvidia-smi source read via stand-in (2 processes started)", asyncio.run(source_reads(30)))
    t = time.perf_counter()
    os.system(f'"{sys.executable}" -c "import matplotlib.figure, matplotlib.backends.backend_agg"')
    took = (time.perf_counter() - t) * 1000
    print(f"(matplotlib import in a fresh interpreter, incl. interpreter start: {took:.0f} ms)")


if __name__ == "__main__":
    main()
