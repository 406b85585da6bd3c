"""The vLLM server's own queue, read from its Prometheus `/metrics` text.

Gauges are summed over their labels (one series per model, and per engine in vLLM's V1
data-parallel mode).  The KV-cache gauge was renamed over vLLM versions
(`vllm:gpu_cache_usage_perc` → `vllm:kv_cache_usage_perc`); either is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from infra.errors import BackendUnavailable
from infra.gpu.prometheus import safe_url

RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")
MAX_BODY = 4 << 20


@dataclass(frozen=True)
class VllmQueue:
    running: int
    waiting: int
    kv_cache_pct: float | None
    models: tuple[str, ...] = ()

    @property
    def in_flight(self) -> int:
        return self.running + self.waiting


def parse_metrics(text: str) -> VllmQueue:
    """Read the queue gauges out of exposition text; no vLLM gauges at all means it isn't vLLM."""
    sums: dict[str, float] = {}
    kv: dict[str, list[float]] = {}
    models: set[str] = set()
    try:
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name in (RUNNING, WAITING):
                    sums[s.name] = sums.get(s.name, 0.0) + s.value
                    if s.labels.get("model_name"):
                        models.add(s.labels["model_name"])
                elif s.name in KV_CACHE:
                    kv.setdefault(s.name, []).append(s.value)
    except ValueError as exc:
        raise BackendUnavailable(f"the vLLM /metrics page is not Prometheus text: {exc}") from exc
    if RUNNING not in sums and WAITING not in sums:
        raise BackendUnavailable(f"the metrics page has no {RUNNING} or {WAITING}; is it vLLM's /metrics?")
    usage = next((vals for name in KV_CACHE if (vals := kv.get(name))), None)
    return VllmQueue(running=int(sums.get(RUNNING, 0)), waiting=int(sums.get(WAITING, 0)),
                     kv_cache_pct=100.0 * max(usage) if usage else None, models=tuple(sorted(models)))


class VllmMetrics:
    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    async def queue(self) -> VllmQueue:
        where = safe_url(self.url)
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                resp = await client.get(self.url)
        except httpx.TimeoutException as exc:
            raise BackendUnavailable(f"vLLM metrics at {where} did not answer within {self.timeout_s:g}s.") from exc
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"vLLM metrics at {where} are unreachable: {exc or type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise BackendUnavailable(f"vLLM metrics at {where} answered HTTP {resp.status_code}.")
        if len(resp.content) > MAX_BODY:
            raise BackendUnavailable(f"vLLM metrics at {where} sent {len(resp.content)} bytes; too much to read.")
        try:
            return parse_metrics(resp.text)
        except BackendUnavailable as exc:
            raise BackendUnavailable(f"vLLM metrics at {where}: {exc}") from exc

    async def ping(self) -> str:
        q = await self.queue()
        return f"vLLM: {q.running} running, {q.waiting} waiting"
