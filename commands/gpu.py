"""GPU load on the GPU hosts, with the LLM server's queue."""

from __future__ import annotations

from typing import Any

from bot.request import Reply
from commands.context import Context
from commands.registry import Arg, Kind, command


@command("gpu", summary="per-GPU utilisation, memory, temperature, power, processes; the LLM server's queue",
         args=(Arg("host", Kind.host, required=False, help="GPU host (phoenix)"),),
         backend="gpu", examples=("gpu", "gpu phoenix"), words=("gpus",))
async def gpu(ctx: Context, args: dict[str, Any]) -> Reply:
    hosts = [args["host"]] if args.get("host") else list(ctx.config.inventory.gpu_hosts)
    for host in hosts:
        ctx.backends.gpu(host)
    raise NotImplementedError("needs a GPU source")
