"""nvidia-smi source: recorded outputs in the real CSV format, replayed by a stand-in on PATH."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.request import Tone
from infra.config import GpuHost, load_config
from infra.errors import BackendUnavailable
from infra.gpu.nvidia_smi import NvidiaSmiSource, parse_gpus
from infra.wiring import make_backends
from tests.conftest import ROOT, make_engine
from tests.gpu_helpers import StandIns, ask, install_standins


@pytest.fixture
def standins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandIns:
    return install_standins(tmp_path, monkeypatch)


async def test_two_gpus_with_processes(standins: StandIns) -> None:
    reading = await NvidiaSmiSource("phoenix").read()
    assert [g.index for g in reading.gpus] == [0, 1]
    g0, g1 = reading.gpus
    assert g0.name == "NVIDIA GeForce RTX 3090"
    assert (g0.util_pct, g0.memory_used_mib, g0.memory_total_mib) == (87, 22716, 24576)
    assert (g0.temperature_c, g0.power_w, g0.power_limit_w) == (71, 301.45, 350)
    assert g1.uuid == "GPU-b81e4d20-97c3-2af5-6c0d-e54a13f8b972"
    assert g0.processes is not None and [(p.pid, p.name) for p in g0.processes] == [(48213, "python3")]
    # Biggest first; a comma inside the process name survives.
    assert g1.processes is not None
    assert [(p.pid, p.name, p.memory_mib) for p in g1.processes] == [
        (48214, "python3", 22198), (51877, "python, jupyter kernel", 674)]
    # Both queries, exactly as recorded.
    recorded = (standins.data / "QUERIES").read_text().splitlines()
    assert sorted(standins.calls()) == sorted(recorded)


async def test_gpus_without_processes_and_several_cards(standins: StandIns) -> None:
    standins.scenario("four")
    reading = await NvidiaSmiSource("phoenix").read()
    assert len(reading.gpus) == 4
    assert reading.gpus[0].processes is not None and len(reading.gpus[0].processes) == 6
    assert reading.gpus[2].processes == [] and reading.gpus[3].processes == []
    standins.scenario("idle")
    idle = await NvidiaSmiSource("phoenix").read()
    assert all(g.processes == [] for g in idle.gpus)


async def test_not_available_fields_become_none(standins: StandIns) -> None:
    standins.scenario("na")
    g0, g1 = (await NvidiaSmiSource("phoenix").read()).gpus
    assert (g0.util_pct, g0.temperature_c) == (3, 45)
    assert g0.power_w is None and g0.power_limit_w is None
    assert g1.util_pct is None and g1.temperature_c is None and g1.power_limit_w is None
    assert g1.memory_used_mib == 0 and g1.memory_pct == 0
    assert g0.processes is not None
    (proc,) = g0.processes
    assert (proc.pid, proc.name, proc.memory_mib) == (3187, "?", None)


async def test_driver_error_exit_is_a_clear_message(standins: StandIns) -> None:
    standins.scenario("nodriver")
    with pytest.raises(BackendUnavailable) as err:
        await NvidiaSmiSource("phoenix").read()
    msg = str(err.value)
    assert "exit 9" in msg and "couldn't communicate with the NVIDIA driver" in msg and "phoenix" in msg


async def test_process_query_failure_keeps_the_gpus(standins: StandIns) -> None:
    (standins.data / "phoenix.apps.exit").write_text("15")
    reading = await NvidiaSmiSource("phoenix").read()
    assert len(reading.gpus) == 2 and all(g.processes is None for g in reading.gpus)
    assert any("processes unavailable" in n and "exit 15" in n for n in reading.notes)


async def test_timeout_kills_and_reports(standins: StandIns) -> None:
    standins.scenario("hang")
    with pytest.raises(BackendUnavailable, match=r"did not answer within 0.5s"):
        await NvidiaSmiSource("phoenix", timeout_s=0.5).read()


async def test_missing_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_standins(tmp_path, monkeypatch, with_nvsmi=False)
    with pytest.raises(BackendUnavailable, match="nvidia-smi is not installed on the bot's machine"):
        await NvidiaSmiSource("phoenix").read()


async def test_over_ssh(standins: StandIns) -> None:
    reading = await NvidiaSmiSource("phoenix", ssh="deploy@phoenix", timeout_s=7).read()
    assert len(reading.gpus) == 2
    calls = standins.ssh_calls()
    assert len(calls) == 2
    for call in calls:
        assert call.startswith("-o BatchMode=yes -o ConnectTimeout=7 deploy@phoenix nvidia-smi --query-")
    assert "over SSH" in NvidiaSmiSource("phoenix", ssh="deploy@phoenix").where


async def test_ssh_unreachable(standins: StandIns) -> None:
    with pytest.raises(BackendUnavailable) as err:
        await NvidiaSmiSource("phoenix", ssh="deploy@unreachable").read()
    assert "could not reach deploy@unreachable over SSH" in str(err.value)
    assert "Connection refused" in str(err.value)
    assert standins.calls() == []  # nvidia-smi never ran


def test_ssh_target_must_not_be_an_option() -> None:
    with pytest.raises(ValidationError, match="plain"):
        GpuHost(source="nvidia-smi", ssh="-oProxyCommand=touch /tmp/x")
    with pytest.raises(ValueError, match="plain"):
        NvidiaSmiSource("phoenix", ssh="host; rm -rf /")


def test_unreadable_output_is_an_error_not_a_guess() -> None:
    with pytest.raises(BackendUnavailable, match="can't read"):
        parse_gpus("0, GPU-x, only three fields\n")
    with pytest.raises(BackendUnavailable, match="without an index"):
        parse_gpus("[N/A], GPU-x, n, 1, 2, 3, 4, 5, 6\n")


# -- through the engine, from the shipped config ------------------------------------------

@pytest.fixture
def smi_engine(standins: StandIns, monkeypatch: pytest.MonkeyPatch, db):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GPU_SOURCE", "nvidia-smi")
    monkeypatch.delenv("PROMETHEUS_URL", raising=False)
    monkeypatch.delenv("VLLM_METRICS_URL", raising=False)
    config = load_config(ROOT / "chatops.yaml")
    return make_engine(config, db, backends=make_backends(config))


async def test_gpu_command_tables_and_warning(smi_engine, standins: StandIns) -> None:  # type: ignore[no-untyped-def]
    reply = await ask(smi_engine, "gpu")
    assert reply.tone is Tone.warning, reply.text  # GPU 1 at 84 °C, memory 95% → over the defaults
    assert [t.title for t in reply.tables] == ["phoenix · GPU 0 · NVIDIA GeForce RTX 3090",
                                               "phoenix · GPU 1 · NVIDIA GeForce RTX 3090"]
    t0 = dict((r[0], r[1]) for r in reply.tables[0].rows if r[0] != "process")
    assert t0 == {"utilisation": "87%", "memory": "22.2 / 24.0 GiB (92%)", "temperature": "71 °C",
                  "power": "301 / 350 W"}
    assert ["process", "python3 (pid 48213): 21.7 GiB"] in reply.tables[0].rows
    assert reply.text.splitlines()[0] == ("phoenix: 2 GPUs (nvidia-smi), utilisation 76% average, "
                                          "memory 45.0 / 48.0 GiB (94%), hottest 84 °C")
    assert "⚠ phoenix GPU 1 is at 84 °C (warning at 83 °C)" in reply.text
    assert "⚠ phoenix GPU 1 memory is 95% full (warning at 95%)" in reply.text
    assert "GPU 0 is at" not in reply.text
    assert reply.attachments == []  # no history without Prometheus


async def test_gpu_command_idle_and_many_processes(smi_engine, standins: StandIns) -> None:  # type: ignore[no-untyped-def]
    standins.scenario("idle")
    reply = await ask(smi_engine, "gpu phoenix")
    assert reply.tone is Tone.success and "⚠" not in reply.text
    assert ["processes", "none"] in reply.tables[0].rows
    standins.scenario("four")
    reply = await ask(smi_engine, "gpu")
    procs = [r[1] for r in reply.tables[0].rows if r[0] == "process"]
    assert procs == ["python (pid 1001): 30.0 GiB", "python (pid 1002): 10.0 GiB", "trainer (pid 1003): 8.0 GiB",
                     "… and 3 more"]
    assert "⚠ phoenix: expected 2 GPUs, the nvidia-smi source reports 4" in reply.text


async def test_gpu_command_na_fields_render(smi_engine, standins: StandIns) -> None:  # type: ignore[no-untyped-def]
    standins.scenario("na")
    reply = await ask(smi_engine, "gpu")
    rows = dict((r[0], r[1]) for r in reply.tables[1].rows)
    assert rows["utilisation"] == "n/a" and rows["power"] == "n/a" and rows["temperature"] == "n/a"
    assert rows["memory"] == "0.0 / 8.0 GiB (0%)"
    assert ["process", "? (pid 3187): n/a"] in reply.tables[0].rows


async def test_gpu_command_source_down_is_an_answer(smi_engine, standins: StandIns) -> None:  # type: ignore[no-untyped-def]
    standins.scenario("nodriver")
    reply = await ask(smi_engine, "gpu")
    assert reply.tone is Tone.error
    assert reply.text.startswith("I couldn't read any GPUs:")
    assert "couldn't communicate with the NVIDIA driver" in reply.text
    assert "Traceback" not in reply.text and "ref " not in reply.text


async def test_health_probes_the_gpu_source(smi_engine, standins: StandIns) -> None:  # type: ignore[no-untyped-def]
    reply = await ask(smi_engine, "health")
    row = next(r for t in reply.tables for r in t.rows if r[0] == "gpu:phoenix")
    assert row[1:] == ["ok", "nvidia-smi: 2 GPU(s)"]
    standins.scenario("nodriver")
    reply = await ask(smi_engine, "health")
    row = next(r for t in reply.tables for r in t.rows if r[0] == "gpu:phoenix")
    assert row[1] != "ok" and "exit 9" in row[2]
