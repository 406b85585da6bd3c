"""Services of Compose stacks: status, restart, stop, start, logs."""

from __future__ import annotations

from typing import Any

from bot.request import Reply
from commands.args import ENV, SERVICE, STACK_KV, STACK_OPT
from commands.context import Context
from commands.registry import Arg, Kind, command


async def _docker_only(ctx: Context, args: dict[str, Any]) -> Reply:
    ctx.backends.docker(args["env"])
    raise NotImplementedError("needs the Docker backend")


@command("status", summary="services of a stack (or all stacks) on an environment: state, health, uptime, image",
         args=(ENV, STACK_OPT), backend="docker", examples=("status rumpletest", "status dev chat"))
async def status(ctx: Context, args: dict[str, Any]) -> Reply:
    return await _docker_only(ctx, args)


@command("restart", summary="restart a service's containers", args=(SERVICE, ENV, STACK_KV),
         changes=True, backend="docker", examples=("restart n8n on dev", "restart nginx prod"))
async def restart(ctx: Context, args: dict[str, Any]) -> Reply:
    return await _docker_only(ctx, args)


@command("stop", summary="stop a service", args=(SERVICE, ENV, STACK_KV), changes=True,
         backend="docker", examples=("stop rtmp on test",))
async def stop(ctx: Context, args: dict[str, Any]) -> Reply:
    return await _docker_only(ctx, args)


@command("start", summary="start a stopped service", args=(SERVICE, ENV, STACK_KV), changes=True,
         backend="docker", examples=("start rtmp on test",))
async def start(ctx: Context, args: dict[str, Any]) -> Reply:
    return await _docker_only(ctx, args)


@command("logs", summary="recent log lines, secrets redacted",
         args=(SERVICE, ENV, STACK_KV,
               Arg("tail", Kind.integer, required=False, positional=False, default=50, minimum=1,
                   maximum=5000, help="number of lines"),
               Arg("since", Kind.duration, required=False, positional=False,
                   help="15m, 2h, 1d or an ISO date")),
         backend="docker", examples=("logs nginx live tail=200 since=30m", "logs n8n dev"))
async def logs(ctx: Context, args: dict[str, Any]) -> Reply:
    return await _docker_only(ctx, args)
