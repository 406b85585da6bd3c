"""A team's own command, as a plugin: `scale SERVICE ENV N` (docs/plugins.md).

Load it with `plugins: [team_scale]` in the config (the module on the bot's Python path) or
install it as a package with an entry point in the group `chatops.commands`.  Its phrasing,
help, LLM tool schema and Discord `/ops scale` come from the registry; nothing in the core
changes.  The engine validates, authorises, confirms, approves on protected environments,
locks and audits it like every built-in command.
"""

from __future__ import annotations

from typing import Any

from bot.request import Reply, Tone
from commands.args import ENV, SERVICE
from commands.context import Context
from commands.registry import Arg, Kind, Phrasing, Registry, command
from infra.errors import CommandError
from infra.wording import counted

REPLICAS = Arg("replicas", Kind.integer, minimum=0, maximum=20, help="how many containers to run",
               # plain language: "to 3", "3 replicas", "3 copies"
               cues=("to", "replicas", "instances", "copies"),
               cues_after=("replicas", "instances", "copies", "containers", "x"))

PHRASING = Phrasing(
    verbs=("scale", "scale out", "scale up", "scale down", "resize"),
    nouns=("scaling",),
    past=("scaled",),
    formats=("run {replicas} copies of {service} on {env}", "give {service} {replicas} replicas on {env}"),
)


async def scale(ctx: Context, args: dict[str, Any]) -> Reply:
    """Run N containers of a service with `docker compose up --scale` on the environment's engine."""
    from commands.docker_ops import host_for
    from infra.compose import run_compose, source_for
    from infra.docker_hosts import docker_env_for

    service, env, n = args["service"], args["env"], int(args["replicas"])
    stack = next((s for s, svcs in ctx.config.stack_services.items() if service in svcs), None)
    if stack is None:
        raise CommandError(f"{service} belongs to no stack under compose/.")
    host = host_for(ctx, env)
    src = source_for(ctx.config, stack, env=env)
    files = [a for f in src.files for a in ("-f", str(f))]
    res = await run_compose(["-p", host.project(stack), "--project-directory", str(src.workdir), *files,
                             "up", "-d", "--no-deps", "--scale", f"{service}={n}", service],
                            env=docker_env_for(host), cwd=src.workdir)
    if res.code != 0:
        raise CommandError(f"Scaling {service} on {env} failed: {res.out.strip()[-500:]}")
    return Reply(f"{service} ({stack}) on {env} now runs {counted(n, 'container')}.", tone=Tone.success)


def register(registry: Registry) -> None:
    """Called by the loader with the registry to declare into (the bot's, or a test's own)."""
    command("scale", summary="run N containers of a service", args=(SERVICE, ENV, REPLICAS), changes=True,
            backend="docker", examples=("scale n8n dev 3", "scale n8n on dev to 3 replicas"),
            phrasing=PHRASING, registry=registry)(scale)
