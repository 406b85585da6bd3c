"""Compose stacks: what exists under compose/, deploy and rollback."""

from __future__ import annotations

from typing import Any

from bot.request import Reply, Table
from commands.args import ENV, ENV_OPT, STACK
from commands.context import Context
from commands.registry import Arg, Kind, command


@command("stacks", summary="stacks known under compose/, and where deployed at which revision",
         args=(ENV_OPT,), examples=("stacks", "stacks test"))
async def stacks(ctx: Context, args: dict[str, Any]) -> Reply:
    env = args.get("env")
    rows = []
    for name, stack in ctx.config.inventory.stacks.items():
        if env and stack.runs_on and env not in stack.runs_on:
            continue
        services = ", ".join(ctx.config.stack_services.get(name, ()))
        rows.append([name, services, ", ".join(stack.runs_on), stack.description])
    where = f" for {env}" if env else ""
    return Reply(f"{len(rows)} stacks{where} (from {ctx.config.base_dir / 'compose'}).",
                 tables=[Table(["stack", "services", "runs on", "what"], rows)])


@command("deploy", summary="deploy or update a stack on an environment, recording the revision deployed",
         args=(STACK, ENV, Arg("ref", Kind.word, required=False, positional=False,
                               help="git ref of compose/ to deploy")),
         changes=True, backend="docker",
         examples=("deploy chat rumpletest", "deploy chat to test ref=v1.4.2"))
async def deploy(ctx: Context, args: dict[str, Any]) -> Reply:
    ctx.backends.docker(args["env"])
    raise NotImplementedError("deploy needs the Docker backend")


@command("rollback", summary="redeploy the previous (or a given) recorded revision",
         args=(STACK, ENV, Arg("to", Kind.word, required=False, positional=False,
                               help="revision id to roll back to")),
         changes=True, backend="docker", examples=("rollback chat test", "rollback web prod to=7"))
async def rollback(ctx: Context, args: dict[str, Any]) -> Reply:
    ctx.backends.docker(args["env"])
    raise NotImplementedError("rollback needs the Docker backend")
