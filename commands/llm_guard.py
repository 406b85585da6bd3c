"""The in-flight guard for changes that interrupt the LLM server.

Restarting or stopping `vllm`, deploying or rolling back the `llm` stack, or restoring
the `llm` container drops every request vLLM is serving.  The preview below reads
vLLM's queue so the confirmation card says how many people that is.  Attach it with
`preview=with_llm_guard("restart", existing_preview)` in the command's declaration.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from commands.context import Context
from commands.registry import Preview
from infra.errors import CommandError

if TYPE_CHECKING:
    from infra.gpu import VllmQueue

# (command, argument, value) triples that interrupt the inference server.
GUARDED: dict[str, tuple[str, str]] = {
    "restart": ("service", "vllm"),
    "stop": ("service", "vllm"),
    "deploy": ("stack", "llm"),
    "rollback": ("stack", "llm"),
    "restore": ("vm", "llm"),
}
VERB = {"restart": "restarting vllm", "stop": "stopping vllm", "deploy": "deploying the llm stack",
        "rollback": "rolling back the llm stack", "restore": "restoring the llm container"}


def guard_applies(command: str, args: dict[str, Any]) -> bool:
    rule = GUARDED.get(command)
    return rule is not None and args.get(rule[0]) == rule[1]


def _hosts(ctx: Context, env: str | None) -> list[str]:
    """The GPU hosts whose vLLM to ask: the one named like the environment, else all with a vLLM URL."""
    hosts = list(ctx.config.inventory.gpu_hosts)
    if env and env in hosts:
        return [env]
    return hosts


async def read_queues(ctx: Context, env: str | None = None) -> list[tuple[str, VllmQueue | str]]:
    """(host, queue) for each vLLM configured, or (host, why it could not be read)."""
    clients = []
    for host in _hosts(ctx, env):
        try:
            client = ctx.backends.gpu(host)
        except CommandError:
            continue
        if getattr(client, "vllm", None) is not None:
            clients.append((host, client))

    async def one(host: str, client: Any) -> tuple[str, VllmQueue | str]:
        try:
            return host, await client.vllm.queue()
        except CommandError as exc:
            return host, str(exc)

    return list(await asyncio.gather(*(one(h, c) for h, c in clients)))


async def llm_in_flight(ctx: Context, env: str | None = None) -> int | None:
    """Requests vLLM is running or queueing; None when no vLLM queue could be read at all."""
    counts = [q.in_flight for _, q in await read_queues(ctx, env) if not isinstance(q, str)]
    return sum(counts) if counts else None


async def llm_guard_lines(ctx: Context, command: str, args: dict[str, Any]) -> list[str]:
    """Lines for the confirmation card; [] when the change does not touch the inference server."""
    if not guard_applies(command, args):
        return []
    verb = VERB[command]
    queues = await read_queues(ctx, args.get("env"))
    if not queues:
        return [f"vLLM's queue is not configured (gpu_hosts.*.vllm_metrics_url), so I can't tell how "
                f"many requests {verb} would drop."]
    lines = []
    for host, q in queues:
        where = f" on {host}" if len(queues) > 1 else ""
        if isinstance(q, str):
            lines.append(f"vLLM{where}: queue unreadable ({q}); requests in flight may be dropped by {verb}.")
        elif q.in_flight == 0:
            lines.append(f"vLLM{where} is idle (no requests in flight).")
        else:
            n = q.in_flight
            lines.append(f"vLLM{where} is serving {n} request{'s' if n != 1 else ''} ({q.waiting} waiting); "
                         f"{verb} drops them.")
    return lines


def with_llm_guard(command: str, preview: Preview | None = None) -> Preview:
    """A preview for `command` that adds the guard's lines to what `preview` already says."""

    async def guarded(ctx: Context, args: dict[str, Any]) -> list[str]:
        lines = list(await preview(ctx, args)) if preview is not None else []
        return lines + await llm_guard_lines(ctx, command, args)

    return guarded
