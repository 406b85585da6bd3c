"""GPU load on the GPU hosts, with the LLM server's queue.

Each host is read on its own: one host (or its chart, or its vLLM queue) failing becomes
a line in the answer, not a failed command.  infra.gpu (httpx, prometheus_client) and
matplotlib are imported inside the handler so that loading the command registry stays fast.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.request import Attachment, Reply, Table, Tone
from commands.context import Context
from commands.registry import Arg, Kind, Phrasing, command
from infra.errors import CommandError, NotConfigured

if TYPE_CHECKING:
    from infra.config import GpuHost
    from infra.gpu import GpuReading, GpuSample, History, VllmQueue

TOP_PROCESSES = 3


def size(mib: float) -> str:
    """MiB as people read it: GiB from 1 GiB up."""
    return f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"


def memory_text(g: GpuSample) -> str:
    used, total = g.memory_used_mib, g.memory_total_mib
    if used is None:
        return "n/a" if total is None else f"? / {size(total)}"
    if total is None:
        return f"{size(used)} / ?"
    gib = total >= 1024
    fmt = (lambda v: f"{v / 1024:.1f}") if gib else (lambda v: f"{v:.0f}")
    pct = f" ({g.memory_pct:.0f}%)" if g.memory_pct is not None else ""
    return f"{fmt(used)} / {fmt(total)} {'GiB' if gib else 'MiB'}{pct}"


def _num(v: float | None, unit: str, digits: int = 0) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}{unit}"


def power_text(g: GpuSample) -> str:
    if g.power_w is None:
        return "n/a"
    limit = f" / {g.power_limit_w:.0f} W" if g.power_limit_w is not None else " W"
    return f"{g.power_w:.0f}{limit}"


def gpu_table(host: str, g: GpuSample) -> Table:
    rows = [["utilisation", _num(g.util_pct, "%")], ["memory", memory_text(g)],
            ["temperature", _num(g.temperature_c, " °C")], ["power", power_text(g)]]
    if g.processes is None:
        rows.append(["processes", "not reported by this source"])
    elif not g.processes:
        rows.append(["processes", "none"])
    else:
        for p in g.processes[:TOP_PROCESSES]:
            who = f"{p.name} (pid {p.pid})" if p.pid is not None else p.name
            rows.append(["process", f"{who}: {size(p.memory_mib) if p.memory_mib is not None else 'n/a'}"])
        if len(g.processes) > TOP_PROCESSES:
            rows.append(["process", f"… and {len(g.processes) - TOP_PROCESSES} more"])
    return Table(columns=["", "value"], rows=rows, title=f"{host} · GPU {g.index} · {g.name}")


def warnings_for(host: str, reading: GpuReading, cfg: GpuHost) -> list[str]:
    out = []
    for g in reading.gpus:
        if g.temperature_c is not None and g.temperature_c >= cfg.temp_warn_c:
            out.append(f"{host} GPU {g.index} is at {g.temperature_c:.0f} °C (warning at {cfg.temp_warn_c:g} °C)")
        pct = g.memory_pct
        if pct is not None and pct >= cfg.memory_warn_pct:
            out.append(f"{host} GPU {g.index} memory is {pct:.0f}% full (warning at {cfg.memory_warn_pct:g}%)")
    if cfg.gpus is not None and len(reading.gpus) != cfg.gpus:
        out.append(f"{host}: expected {cfg.gpus} GPUs, the {reading.source} source reports {len(reading.gpus)}")
    return out


def summary_line(host: str, reading: GpuReading) -> str:
    gpus = reading.gpus
    utils = [g.util_pct for g in gpus if g.util_pct is not None]
    parts = [f"{host}: {len(gpus)} GPU{'s' if len(gpus) != 1 else ''} ({reading.source})"]
    if utils:
        parts.append(f"utilisation {sum(utils) / len(utils):.0f}% average")
    used = [g.memory_used_mib for g in gpus if g.memory_used_mib is not None]
    total = [g.memory_total_mib for g in gpus if g.memory_total_mib is not None]
    if used and total and len(used) == len(total) == len(gpus):
        parts.append(f"memory {sum(used) / 1024:.1f} / {sum(total) / 1024:.1f} GiB "
                     f"({100 * sum(used) / sum(total):.0f}%)")
    temps = [g.temperature_c for g in gpus if g.temperature_c is not None]
    if temps:
        parts.append(f"hottest {max(temps):.0f} °C")
    return ", ".join(parts)


def queue_line(host: str, q: VllmQueue) -> str:
    kv = f", KV cache {q.kv_cache_pct:.0f}% used" if q.kv_cache_pct is not None else ""
    busy = "idle" if q.in_flight == 0 else f"{q.running} running, {q.waiting} waiting"
    return f"vLLM on {host}: {busy}{kv}"


@dataclass
class HostReport:
    host: str
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    read_ok: bool = False


async def _guarded(coro: Any) -> Any:
    """A CommandError becomes the value, so one failing part never sinks the others."""
    try:
        return await coro
    except CommandError as exc:
        return exc


async def host_report(ctx: Context, host: str) -> HostReport:
    rep = HostReport(host)
    try:
        client = ctx.backends.gpu(host)
    except NotConfigured as exc:
        rep.problems.append(str(exc))
        return rep
    cfg = client.settings
    reading, queue, history = await asyncio.gather(
        _guarded(client.read()), _guarded(client.queue()), _guarded(client.history()))
    if isinstance(reading, CommandError):
        rep.problems.append(f"{host}: {reading}")
    else:
        rep.read_ok = True
        rep.lines.append(summary_line(host, reading))
        rep.lines.extend(f"{host}: {n}" for n in reading.notes)
        rep.tables.extend(gpu_table(host, g) for g in reading.gpus)
        rep.warnings.extend(warnings_for(host, reading, cfg))
    if isinstance(queue, CommandError):
        rep.problems.append(f"{host}: vLLM queue unavailable: {queue}")
    elif queue is not None:
        rep.lines.append(queue_line(host, queue))
    if isinstance(history, CommandError):
        if rep.read_ok:
            rep.problems.append(f"{host}: no chart: {history}")
    elif history is not None:
        rep.attachments.append(await chart_attachment(host, history))
    return rep


async def chart_attachment(host: str, history: History) -> Attachment:
    from infra.gpu.chart import render_png
    title = f"GPU load on {host}, last hour"
    png = await asyncio.to_thread(render_png, history, title)
    stamp = datetime.fromtimestamp(history.end, UTC).strftime("%Y%m%dT%H%MZ")
    return Attachment(filename=f"gpu-{host}-{stamp}.png", content=png, mime="image/png", title=title)


@command("gpu", summary="per-GPU utilisation, memory, temperature, power, processes; the LLM server's queue",
         args=(Arg("host", Kind.host, required=False, help="GPU host (phoenix)"),),
         backend="gpu", examples=("gpu", "gpu phoenix"), words=("gpus",),
         phrasing=Phrasing(
             nouns=("gpu", "gpus", "graphics cards", "graphics card", "vram", "cuda", "nvidia-smi", "nvidia",
                    "gpu usage", "gpu load", "gpu memory", "cards", "card", "power draw", "queue", "inference queue",
                    "request queue", "vllm queue", "model queue", "llm queue", "token throughput"),
             hints=("busy", "utilisation", "utilization", "temperature", "temps", "load", "loaded", "hot", "power",
                    "wattage", "watts")))
async def gpu(ctx: Context, args: dict[str, Any]) -> Reply:
    """Per-GPU load from the host's configured source, the vLLM queue, and (with Prometheus) a chart."""
    hosts = [args["host"]] if args.get("host") else list(ctx.config.inventory.gpu_hosts)
    if not hosts:
        raise NotConfigured("No GPU hosts are configured: add one under gpu_hosts in "
                            f"{ctx.config.path.name}.")
    reports = await asyncio.gather(*(host_report(ctx, h) for h in hosts))
    lines = [line for r in reports for line in r.lines]
    warnings = [w for r in reports for w in r.warnings]
    problems = [p for r in reports for p in r.problems]
    if not any(r.read_ok or r.lines for r in reports):
        return Reply("I couldn't read any GPUs:\n" + "\n".join(f"- {p}" for p in problems),
                     tone=Tone.error, title="GPU load")
    text = "\n".join(lines + [f"⚠ {w}" for w in warnings] + [f"(!) {p}" for p in problems])
    return Reply(text, tone=Tone.warning if warnings or problems else Tone.success, title="GPU load",
                 tables=[t for r in reports for t in r.tables],
                 attachments=[a for r in reports for a in r.attachments])
