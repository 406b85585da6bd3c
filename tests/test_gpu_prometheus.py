"""Prometheus source: a real Prometheus on loopback scraping a DCGM-exporter stand-in every second.

The bot's code talks to the real HTTP API; values set on the exporter reach it only the way
they would in production (scraped, stored, queried).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.request import Tone
from infra.config import load_config
from infra.errors import BackendUnavailable
from infra.gpu.chart import render_png
from infra.gpu.prometheus import PrometheusSource
from infra.wiring import make_backends
from tests.conftest import ROOT, make_engine
from tests.fakes.dcgm_exporter import FakeGpu, render_dcgm
from tests.fakes.metrics_http import MetricsServer
from tests.fakes.prometheus_server import PrometheusProcess, free_port
from tests.fakes.vllm_server import FakeVllm
from tests.gpu_helpers import ask, eventually

GPUS = [FakeGpu(0, "GPU-3f9c2a71-5b0e-8d4c-1e6f-a27b9d04c3e5"), FakeGpu(1, "GPU-b81e4d20-97c3-2af5-6c0d-e54a13f8b972")]


@pytest.fixture(scope="module")
def exporter() -> Iterator[MetricsServer]:
    with MetricsServer(lambda: render_dcgm(GPUS, hostname="phoenix")) as server:
        yield server


@pytest.fixture(scope="module")
def prometheus(exporter: MetricsServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusProcess]:
    prom = PrometheusProcess(tmp_path_factory.mktemp("prometheus"), {"dcgm": exporter.address})
    prom.start()
    try:
        yield prom
    finally:
        prom.stop()


def set_gpu(i: int, **values: float) -> None:
    for k, v in values.items():
        setattr(GPUS[i], k, v)


async def settled(src: PrometheusSource, index: int, util: float) -> object:
    """Wait until Prometheus has scraped the exporter's current values."""
    async def check() -> object:
        reading = await src.read()
        g = next((g for g in reading.gpus if g.index == index), None)
        return reading if g is not None and g.util_pct == util else None
    return await eventually(check, what=f"GPU {index} utilisation {util} in Prometheus")


async def test_read_current_values(prometheus: PrometheusProcess) -> None:
    set_gpu(0, util=91, fb_used=20480, fb_free=4096, temp=66, power=288.5)
    set_gpu(1, util=7, fb_used=1024, fb_free=23552, temp=41, power=35.25)
    src = PrometheusSource("phoenix", prometheus.url, timeout_s=5)
    await settled(src, 1, 7)
    reading = await settled(src, 0, 91)
    g0, g1 = reading.gpus  # type: ignore[attr-defined]
    assert (g0.index, g0.name, g0.uuid) == (0, "NVIDIA GeForce RTX 3090", GPUS[0].uuid)
    assert (g0.memory_used_mib, g0.memory_total_mib, g0.temperature_c, g0.power_w) == (20480, 24576, 66, 288.5)
    assert g0.power_limit_w is None  # not among the exporter's default counters
    assert g0.processes is None  # DCGM does not list processes: unknown, not "none"
    assert (g1.util_pct, g1.memory_used_mib, g1.power_w) == (7, 1024, 35.25)
    assert await src.ping() == "Prometheus: 2 GPU(s)"


async def test_history_and_chart(prometheus: PrometheusProcess) -> None:
    set_gpu(0, util=55, fb_used=12288, fb_free=12288)
    src = PrometheusSource("phoenix", prometheus.url, timeout_s=5)
    await settled(src, 0, 55)
    history = await src.history()
    assert history.end - history.start == 3600
    assert [s.label for s in history.util] == ["GPU 0", "GPU 1"]
    assert history.util[0].points and history.util[0].points[-1][1] == 55
    assert history.memory_pct[0].points[-1][1] == pytest.approx(50.0)
    png = render_png(history, "GPU load on phoenix, last hour")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    from matplotlib.image import imread
    assert imread(io.BytesIO(png)).shape[:2] == (500, 800)


async def test_selector_for_another_host_finds_nothing(prometheus: PrometheusProcess) -> None:
    src = PrometheusSource("phoenix", prometheus.url, selector='Hostname="elsewhere"', timeout_s=5)
    with pytest.raises(BackendUnavailable, match="no current DCGM metrics for phoenix"):
        await src.read()
    ok = PrometheusSource("phoenix", prometheus.url, selector='Hostname="phoenix"', timeout_s=5)
    assert len((await eventually(ok.read, what="selected metrics")).gpus) == 2


async def test_bad_selector_is_refused_with_prometheus_reason(prometheus: PrometheusProcess) -> None:
    src = PrometheusSource("phoenix", prometheus.url, selector='Hostname=="x', timeout_s=5)
    with pytest.raises(BackendUnavailable, match=r"refused the query \(HTTP 400\)"):
        await src.read()


async def test_prometheus_down() -> None:
    src = PrometheusSource("phoenix", f"http://user:hunter2@127.0.0.1:{free_port()}", timeout_s=2)
    with pytest.raises(BackendUnavailable) as err:
        await src.read()
    assert "is unreachable" in str(err.value) and "hunter2" not in str(err.value)


async def test_exporter_down_means_no_current_metrics(prometheus: PrometheusProcess,
                                                      exporter: MetricsServer) -> None:
    src = PrometheusSource("phoenix", prometheus.url, timeout_s=5)
    exporter.status = 500
    try:
        async def gone() -> bool:
            try:
                await src.read()
            except BackendUnavailable as exc:
                return "no current DCGM metrics" in str(exc)
            return False
        assert await eventually(gone, what="stale series after the exporter failed")
    finally:
        exporter.status = 200
    assert len((await eventually(src.read, what="metrics again")).gpus) == 2


# -- the command, through the engine, from the shipped config --------------------------------

@pytest.fixture
def vllm() -> Iterator[tuple[FakeVllm, MetricsServer]]:
    fake = FakeVllm()
    with MetricsServer(fake.render) as server:
        yield fake, server


async def test_gpu_command_with_chart_queue_and_warnings(prometheus: PrometheusProcess, vllm, db,  # type: ignore[no-untyped-def]
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fake, server = vllm
    fake.set(running=3, waiting=2, kv=0.41)
    monkeypatch.setenv("GPU_SOURCE", "prometheus")
    monkeypatch.setenv("PROMETHEUS_URL", prometheus.url)
    monkeypatch.setenv("VLLM_METRICS_URL", server.url)
    config = load_config(ROOT / "chatops.yaml")
    engine = make_engine(config, db, backends=make_backends(config))
    set_gpu(0, util=99, fb_used=24000, fb_free=576, temp=70, power=340)
    set_gpu(1, util=20, fb_used=2048, fb_free=22528, temp=88, power=120)
    await settled(PrometheusSource("phoenix", prometheus.url), 0, 99)
    await settled(PrometheusSource("phoenix", prometheus.url), 1, 20)

    reply = await ask(engine, "gpu phoenix")
    assert reply.tone is Tone.warning, reply.text
    lines = reply.text.splitlines()
    assert lines[0] == ("phoenix: 2 GPUs (prometheus), utilisation 60% average, memory 25.4 / 48.0 GiB (53%), "
                        "hottest 88 °C")
    assert lines[1] == "vLLM on phoenix: 3 running, 2 waiting, KV cache 41% used"
    assert "⚠ phoenix GPU 1 is at 88 °C (warning at 83 °C)" in lines
    assert "⚠ phoenix GPU 0 memory is 98% full (warning at 95%)" in lines
    assert ["processes", "not reported by this source"] in reply.tables[0].rows
    (chart,) = reply.attachments
    assert chart.mime == "image/png" and chart.filename.startswith("gpu-phoenix-") and chart.content[:4] == b"\x89PNG"

    # vLLM gone: the GPUs still answer, the queue line says why it is missing.
    server.status = 503
    reply = await ask(engine, "gpu")
    assert reply.tables and "(!) phoenix: vLLM queue unavailable:" in reply.text and "HTTP 503" in reply.text


async def test_gpu_command_prometheus_without_url(db, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GPU_SOURCE", "prometheus")
    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    monkeypatch.delenv("VLLM_METRICS_URL", raising=False)
    config = load_config(ROOT / "chatops.yaml")
    engine = make_engine(config, db, backends=make_backends(config))
    reply = await ask(engine, "gpu")
    assert reply.tone is Tone.error
    assert "gpu_hosts.phoenix.prometheus_url is not set" in reply.text


async def test_gpu_command_nothing_configured(db, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    for var in ("GPU_SOURCE", "PROMETHEUS_URL", "VLLM_METRICS_URL"):
        monkeypatch.delenv(var, raising=False)
    config = load_config(ROOT / "chatops.yaml")
    engine = make_engine(config, db, backends=make_backends(config))
    reply = await ask(engine, "gpu")
    assert reply.tone is Tone.error
    assert "No GPU source is configured for phoenix" in reply.text and "Traceback" not in reply.text


def test_chart_with_no_points_still_renders(tmp_path: Path) -> None:
    from infra.gpu.model import History, Series
    png = render_png(History(util=[Series("GPU 0", [])], memory_pct=[], start=0.0, end=3600.0), "empty")
    assert png.startswith(b"\x89PNG")
