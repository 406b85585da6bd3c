"""GPU readings through NVML (nvidia-ml-py), for a bot running on the GPU host itself.

`pynvml` is imported on first use so that machines without a GPU (and `chatops parse`)
never pay for it; NVML calls block, so they run in a worker thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from infra.errors import BackendUnavailable
from infra.gpu.model import GpuProcess, GpuReading, GpuSample

T = TypeVar("T")
MIB = 1024 * 1024
_LOCK = threading.Lock()  # NVML init/shutdown is reference-counted per process; keep it serial


def _load() -> Any:
    try:
        import pynvml
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise BackendUnavailable("nvidia-ml-py is not installed, so NVML can't be used.") from exc
    return pynvml


def _opt(fn: Callable[..., T], *args: Any) -> T | None:
    """An NVML query a card may not support (NOT_SUPPORTED, NO_PERMISSION...): None, not an error."""
    nv = _load()
    try:
        return fn(*args)
    except nv.NVMLError:
        return None


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _process_name(nv: Any, pid: int) -> str:
    name = _opt(nv.nvmlSystemGetProcessName, pid)
    if name:
        return Path(_text(name)).name or _text(name)
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() or "?"
    except OSError:
        return "?"  # another PID namespace (containers): NVML sees it, we don't


def read_nvml(host: str) -> GpuReading:
    """One blocking NVML pass over every device."""
    nv = _load()
    with _LOCK:
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            raise BackendUnavailable(f"NVML is not available on the bot's machine ({exc}); set "
                                     f"gpu_hosts.{host}.source to nvidia-smi or prometheus if the "
                                     "GPUs are elsewhere.") from exc
        try:
            gpus: list[GpuSample] = []
            for i in range(nv.nvmlDeviceGetCount()):
                h = nv.nvmlDeviceGetHandleByIndex(i)
                util = _opt(nv.nvmlDeviceGetUtilizationRates, h)
                mem = _opt(nv.nvmlDeviceGetMemoryInfo, h)
                temp = _opt(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU)
                power = _opt(nv.nvmlDeviceGetPowerUsage, h)
                limit = _opt(nv.nvmlDeviceGetEnforcedPowerLimit, h)
                procs_raw = _opt(nv.nvmlDeviceGetComputeRunningProcesses, h)
                procs = None if procs_raw is None else sorted(
                    (GpuProcess(pid=p.pid, name=_process_name(nv, p.pid),
                                memory_mib=(p.usedGpuMemory / MIB) if p.usedGpuMemory else None)
                     for p in procs_raw), key=lambda p: -(p.memory_mib or 0))
                gpus.append(GpuSample(
                    index=i, name=_text(_opt(nv.nvmlDeviceGetName, h) or f"GPU {i}"),
                    uuid=_text(_opt(nv.nvmlDeviceGetUUID, h) or ""),
                    util_pct=float(util.gpu) if util is not None else None,
                    memory_used_mib=mem.used / MIB if mem is not None else None,
                    memory_total_mib=mem.total / MIB if mem is not None else None,
                    temperature_c=float(temp) if temp is not None else None,
                    power_w=power / 1000.0 if power is not None else None,
                    power_limit_w=limit / 1000.0 if limit is not None else None,
                    processes=procs))
        except nv.NVMLError as exc:
            raise BackendUnavailable(f"NVML failed while reading the GPUs of {host}: {exc}") from exc
        finally:
            _opt(nv.nvmlShutdown)
    return GpuReading(host, "nvml", gpus, datetime.now(UTC))


class NvmlSource:
    kind = "nvml"

    def __init__(self, host: str, timeout_s: float = 10.0) -> None:
        self.host = host
        self.timeout_s = timeout_s

    async def read(self) -> GpuReading:
        try:
            return await asyncio.wait_for(asyncio.to_thread(read_nvml, self.host), self.timeout_s)
        except TimeoutError as exc:
            raise BackendUnavailable(f"NVML did not answer within {self.timeout_s:g}s.") from exc

    async def ping(self) -> str:
        reading = await self.read()
        return f"NVML: {len(reading.gpus)} GPU(s)"
