"""GPU readings from a Prometheus server that scrapes NVIDIA's DCGM exporter.

Uses the HTTP API (`/api/v1/query`, `/api/v1/query_range`).  One instant query fetches
every field for every GPU; the last hour comes from range queries for the chart.  The
exporter does not report processes, so those are None (unknown), not an empty list.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from infra.errors import BackendUnavailable
from infra.gpu.model import GpuReading, GpuSample, History, Series

UTIL = "DCGM_FI_DEV_GPU_UTIL"
FB_USED = "DCGM_FI_DEV_FB_USED"
FB_FREE = "DCGM_FI_DEV_FB_FREE"
FB_RESERVED = "DCGM_FI_DEV_FB_RESERVED"
TEMP = "DCGM_FI_DEV_GPU_TEMP"
POWER = "DCGM_FI_DEV_POWER_USAGE"
POWER_LIMIT = "DCGM_FI_DEV_POWER_MGMT_LIMIT"
METRICS = (UTIL, FB_USED, FB_FREE, FB_RESERVED, TEMP, POWER, POWER_LIMIT)


def safe_url(url: str) -> str:
    """The URL without user:password, for messages."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _sel(selector: str | None, *extra: str) -> str:
    items = [e for e in (*extra, (selector or "").strip().strip("{}").strip()) if e]
    return "{" + ",".join(items) + "}"


def _float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f  # NaN


class PrometheusSource:
    kind = "prometheus"

    def __init__(self, host: str, url: str, selector: str | None = None, timeout_s: float = 10.0,
                 window_s: float = 3600.0) -> None:
        self.host = host
        self.url = url.rstrip("/")
        self.selector = selector
        self.timeout_s = timeout_s
        self.window_s = window_s

    async def _api(self, path: str, params: dict[str, str]) -> Any:
        where = safe_url(self.url)
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                resp = await client.get(f"{self.url}{path}", params=params)
        except httpx.TimeoutException as exc:
            raise BackendUnavailable(f"Prometheus at {where} did not answer within {self.timeout_s:g}s.") from exc
        except httpx.HTTPError as exc:
            raise BackendUnavailable(f"Prometheus at {where} is unreachable: {exc or type(exc).__name__}") from exc
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("status") != "success":
            why = body.get("error") if isinstance(body, dict) else resp.text[:200]
            raise BackendUnavailable(f"Prometheus at {where} refused the query (HTTP {resp.status_code}): {why}")
        return body.get("data") or {}

    async def query(self, promql: str) -> list[dict[str, Any]]:
        data = await self._api("/api/v1/query", {"query": promql})
        return list(data.get("result") or [])

    async def query_range(self, promql: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        data = await self._api("/api/v1/query_range", {"query": promql, "start": f"{start:.3f}",
                                                       "end": f"{end:.3f}", "step": f"{step:g}"})
        return list(data.get("result") or [])

    def _instant_query(self) -> str:
        names = "|".join(METRICS)
        return _sel(self.selector, f'__name__=~"{names}"')

    async def read(self) -> GpuReading:
        rows = await self.query(self._instant_query())
        by_gpu: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:
            m = row.get("metric") or {}
            key = (m.get("Hostname") or m.get("instance") or "", m.get("gpu", "?"))
            entry = by_gpu.setdefault(key, {"labels": m})
            entry[m.get("__name__", "")] = _float((row.get("value") or [None, None])[1])
        if not by_gpu:
            raise BackendUnavailable(
                f"Prometheus at {safe_url(self.url)} has no current DCGM metrics for {self.host} "
                f"(query {self._instant_query()}); is dcgm-exporter up and scraped?")
        hosts = {k[0] for k in by_gpu}
        gpus = []
        for (hostname, gpu), e in sorted(by_gpu.items(), key=lambda kv: (kv[0][0], _gpu_order(kv[0][1]))):
            labels = e["labels"]
            used, free, reserved = e.get(FB_USED), e.get(FB_FREE), e.get(FB_RESERVED)
            total = used + free + (reserved or 0.0) if used is not None and free is not None else None
            name = labels.get("modelName") or f"GPU {gpu}"
            gpus.append(GpuSample(
                index=_gpu_order(gpu), name=f"{hostname}: {name}" if len(hosts) > 1 else name,
                uuid=labels.get("UUID", ""), util_pct=e.get(UTIL), memory_used_mib=used,
                memory_total_mib=total, temperature_c=e.get(TEMP), power_w=e.get(POWER),
                power_limit_w=e.get(POWER_LIMIT), processes=None))
        return GpuReading(self.host, self.kind, gpus, datetime.now(UTC))

    async def history(self, now: float | None = None) -> History:
        end = now if now is not None else time.time()
        start = end - self.window_s
        step = max(1.0, round(self.window_s / 240))
        s = _sel(self.selector)
        util = await self.query_range(f"{UTIL}{s}", start, end, step)
        mem = await self.query_range(f"100 * {FB_USED}{s} / ({FB_USED}{s} + {FB_FREE}{s})", start, end, step)
        return History(util=_series(util), memory_pct=_series(mem), start=start, end=end)

    async def ping(self) -> str:
        rows = await self.query(_sel(self.selector, f'__name__="{UTIL}"'))
        if not rows:
            return "Prometheus answers, but has no current DCGM metrics"
        return f"Prometheus: {len(rows)} GPU(s)"


def _gpu_order(gpu: str) -> int:
    try:
        return int(gpu)
    except ValueError:
        return 1_000_000


def _series(rows: list[dict[str, Any]]) -> list[Series]:
    hosts = {(r.get("metric") or {}).get("Hostname") or (r.get("metric") or {}).get("instance") for r in rows}
    out = []
    for r in rows:
        m = r.get("metric") or {}
        label = f"GPU {m.get('gpu', '?')}"
        if len(hosts) > 1:
            label = f"{m.get('Hostname') or m.get('instance')} {label}"
        pts = [(float(t), v) for t, raw in r.get("values") or [] if (v := _float(raw)) is not None]
        out.append(Series(label, pts))
    return sorted(out, key=lambda s: s.label)
