"""GPU sources (NVML, nvidia-smi, Prometheus/DCGM) and the vLLM queue, one client per GPU host."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config import Config, GpuHost
from infra.errors import NotConfigured
from infra.gpu.model import GpuReading, GpuSample, GpuSource, History
from infra.gpu.vllm_metrics import VllmMetrics, VllmQueue

__all__ = ["GpuHostClient", "GpuReading", "GpuSample", "History", "VllmQueue", "make_gpu_client",
           "make_gpu_clients"]


@dataclass
class GpuHostClient:
    """What `Backends.gpu(host)` returns: the host's GPU source, its vLLM queue and its thresholds."""

    host: str
    settings: GpuHost
    source: GpuSource | None = None
    vllm: VllmMetrics | None = None

    def require_source(self) -> GpuSource:
        if self.source is None:
            raise NotConfigured(f"No GPU source is configured for {self.host}: set gpu_hosts.{self.host}.source "
                                "to nvml, nvidia-smi or prometheus.")
        return self.source

    async def read(self) -> GpuReading:
        return await self.require_source().read()

    async def history(self) -> History | None:
        """The last hour, where the source keeps one (Prometheus); None elsewhere."""
        fn = getattr(self.source, "history", None)
        return await fn() if fn is not None else None

    async def queue(self) -> VllmQueue | None:
        return await self.vllm.queue() if self.vllm is not None else None

    async def ping(self) -> str:
        parts = []
        if self.source is not None:
            parts.append(await self.source.ping())
        if self.vllm is not None:
            parts.append(await self.vllm.ping())
        return "; ".join(parts) or "nothing to probe"


class Misconfigured:
    """Stands in for a source whose settings are incomplete, so the bot starts and the answer says why."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message

    async def read(self) -> GpuReading:
        raise NotConfigured(self.message)

    async def ping(self) -> str:
        raise NotConfigured(self.message)


def make_source(host: str, cfg: GpuHost) -> GpuSource | None:
    """The configured source; a source named without the settings it needs is a NotConfigured."""
    if cfg.source is None:
        return None
    if cfg.source == "nvml":
        from infra.gpu.nvml import NvmlSource
        return NvmlSource(host, timeout_s=cfg.timeout_s)
    if cfg.source == "nvidia-smi":
        from infra.gpu.nvidia_smi import NvidiaSmiSource
        return NvidiaSmiSource(host, ssh=cfg.ssh, timeout_s=cfg.timeout_s)
    if not cfg.prometheus_url:
        raise NotConfigured(f"gpu_hosts.{host}.source is prometheus but gpu_hosts.{host}.prometheus_url "
                            "is not set (or PROMETHEUS_URL is empty).")
    from infra.gpu.prometheus import PrometheusSource
    return PrometheusSource(host, cfg.prometheus_url, selector=cfg.prometheus_selector, timeout_s=cfg.timeout_s)


def make_gpu_client(host: str, cfg: GpuHost) -> GpuHostClient | None:
    """None when the host has neither a GPU source nor a vLLM metrics URL."""
    try:
        source = make_source(host, cfg)
    except (NotConfigured, ValueError) as exc:
        source = Misconfigured(cfg.source or "?", str(exc))
    vllm = VllmMetrics(cfg.vllm_metrics_url, timeout_s=min(cfg.timeout_s, 5.0)) if cfg.vllm_metrics_url else None
    if source is None and vllm is None:
        return None
    return GpuHostClient(host, cfg, source, vllm)


def make_gpu_clients(config: Config) -> dict[str, GpuHostClient]:
    out = {}
    for host, cfg in config.inventory.gpu_hosts.items():
        client = make_gpu_client(host, cfg)
        if client is not None:
            out[host] = client
    return out
