"""scripts/gpu-check on a machine without a GPU: it must say so clearly and exit non-zero.

(On real hardware it is run by hand or with the device tool; see docs/gpu.md.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.gpu_helpers import install_standins

SCRIPT = ROOT / "scripts" / "gpu-check"


def run_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ), cwd=ROOT)


def nvml_present() -> bool:
    try:
        import pynvml
        pynvml.nvmlInit()
        pynvml.nvmlShutdown()
        return True
    except Exception:
        return False


@pytest.fixture(autouse=True)
def _no_gpu() -> None:
    if nvml_present():
        pytest.skip("this machine has a working NVML; these tests cover the no-GPU answer")


def test_no_gpu_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_standins(tmp_path, monkeypatch, with_nvsmi=False)
    out = run_check()
    assert out.returncode == 1, out.stdout + out.stderr
    assert "NVML is not available" in out.stdout
    assert "nvidia-smi is not installed" in out.stdout
    assert "RESULT: FAILED" in out.stdout and "Traceback" not in out.stderr


def test_nvidia_smi_only_and_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = install_standins(tmp_path, monkeypatch)
    out = run_check("--record", str(tmp_path / "rec"))
    assert out.returncode == 1  # NVML still missing
    assert "== nvidia-smi\n  2 GPU(s) in" in out.stdout
    assert "GPU 1 NVIDIA GeForce RTX 3090 GPU-b81e4d20-97c3-2af5-6c0d-e54a13f8b972" in out.stdout
    assert (tmp_path / "rec" / "real.gpus.csv").read_text() == (s.data / "phoenix.gpus.csv").read_text()
    assert (tmp_path / "rec" / "real.apps.csv").read_text() == (s.data / "phoenix.apps.csv").read_text()


async def test_nvml_source_without_a_gpu(db, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from infra.config import load_config
    from infra.errors import BackendUnavailable
    from infra.gpu.nvml import NvmlSource
    from infra.wiring import make_backends
    from tests.conftest import make_engine
    from tests.gpu_helpers import ask

    with pytest.raises(BackendUnavailable, match="NVML is not available"):
        await NvmlSource("phoenix").read()
    monkeypatch.setenv("GPU_SOURCE", "nvml")
    monkeypatch.delenv("VLLM_METRICS_URL", raising=False)
    config = load_config(ROOT / "chatops.yaml")
    engine = make_engine(config, db, backends=make_backends(config))
    reply = await ask(engine, "gpu")
    assert not reply.ok and "NVML is not available" in reply.text
    assert "set gpu_hosts.phoenix.source to nvidia-smi or prometheus" in reply.text
    health = await ask(engine, "health")
    row = next(r for t in health.tables for r in t.rows if r[0] == "gpu:phoenix")
    assert "NVML is not available" in " ".join(row)
