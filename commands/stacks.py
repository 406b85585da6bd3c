"""Compose stacks: what exists under compose/, where which revision runs, deploy and rollback."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from bot.request import Reply, Table
from commands.args import ENV, ENV_OPT, STACK
from commands.context import Context
from commands.llm_guard import with_llm_guard
from commands.registry import Arg, Kind, Phrasing, command
from commands.vms import checkpoint_before_deploy, checkpoint_preview
from infra.errors import CannotSucceed

# Shapes of values people write without a key: a version or commit (deploy's ref), a revision number.
VERSION = r"v\d+(\.\d+)*[\w.-]*|\d+\.\d+(\.\d+)*[\w.-]*|[0-9a-f]{7,40}"
REVISION = r"\d{1,9}|v\d+(\.\d+)*[\w.-]*|\d+\.\d+(\.\d+)*[\w.-]*|[0-9a-f]{7,40}"

if TYPE_CHECKING:
    from infra.db.models import Deployment


@command("stacks", summary="stacks known under compose/, and where deployed at which revision",
         args=(ENV_OPT,), examples=("stacks", "stacks test"),
         phrasing=Phrasing(nouns=("stacks", "what is deployed", "which stacks", "list stacks", "revision", "revisions",
                                  "versions", "deployed where", "what is running where", "compose projects", "projects",
                                  "compose stacks", "compose files"),
                           hints=("deployed", "version")))
async def stacks(ctx: Context, args: dict[str, Any]) -> Reply:
    from commands.docker_ops import deployments

    env = args.get("env")
    latest = await asyncio.to_thread(deployments(ctx).latest, env)
    where: dict[str, list[Deployment]] = {}
    for d in latest:
        where.setdefault(d.stack, []).append(d)
    rows = []
    for name, stack in ctx.config.inventory.stacks.items():
        if env and stack.runs_on and env not in stack.runs_on and name not in where:
            continue
        services = ", ".join(ctx.config.stack_services.get(name, ()))
        deployed = sorted(where.get(name, []), key=lambda d: d.env)
        if not deployed:
            rows.append([name, services, "-", "not deployed by the bot", "", ""])
        for d in deployed:
            commit = (d.git_commit or "")[:12] or "no git"
            rows.append([name, services, d.env, f"rev {d.id} ({d.action}, {commit})",
                         f"{d.created_at:%Y-%m-%d %H:%M} UTC", d.actor])
    scope = f" for {env}" if env else ""
    return Reply(f"{len(ctx.config.inventory.stacks)} stacks known{scope}; {len(latest)} recorded deployments.",
                 tables=[Table(["stack", "services", "env", "revision", "when", "by"], rows)])


async def _deploy_preview(ctx: Context, args: dict[str, Any]) -> list[str]:
    from commands.docker_ops import deployments, host_for, preview_deploy
    from infra.compose import source_for

    env, stack = args["env"], args["stack"]
    host = host_for(ctx, env)
    src = await asyncio.to_thread(source_for, ctx.config, stack, args.get("ref"), env=env)
    history = await asyncio.to_thread(deployments(ctx).history, env, stack, 10)
    recorded = next((d for d in history if d.status == "succeeded"), None)
    # The checkpoint (and any checkpoint retention deletes) comes first, as it runs first.
    return await checkpoint_preview(ctx, env) + await preview_deploy(ctx, host, src, env, recorded)


@command("deploy", summary="deploy or update a stack on an environment, recording the revision deployed",
         args=(STACK, ENV, Arg("ref", Kind.word, required=False, positional=False,
                               help="git ref of compose/ to deploy",
                               cues=("ref", "version", "tag", "commit", "branch", "revision", "rev", "at", "@",
                                     "to"),
                               shape=VERSION)),
         changes=True, backend="docker", preview=with_llm_guard("deploy", _deploy_preview),
         examples=("deploy chat rumpletest", "deploy chat to test ref=v1.4.2"),
         phrasing=Phrasing(
             verbs=("deploy", "deploys", "deploying", "redeploy", "redeploying", "re-deploy", "ship", "ship it",
                    "push out", "push", "roll out", "put out", "update", "refresh"),
             nouns=("deploy", "deploys", "deployment", "deployments", "redeploy", "release", "rollout", "roll-out",
                    "update"),
             past=("deployed", "redeployed", "shipped", "pushed", "rolled out", "released")))
async def deploy(ctx: Context, args: dict[str, Any]) -> Reply:
    """Validate with `docker compose config`, bring the stack up, wait for it, record the revision."""
    from commands.docker_ops import host_for, run_deploy
    from infra.compose import source_for

    env, stack = args["env"], args["stack"]
    host = host_for(ctx, env)
    src = await asyncio.to_thread(source_for, ctx.config, stack, args.get("ref"), env=env)
    # Config may ask for a VM snapshot first; if it fails, nothing is deployed (CommandError).
    checkpoint = await checkpoint_before_deploy(ctx, env)
    reply = await run_deploy(ctx, host, src, env=env, action="deploy")
    if checkpoint:
        reply.text += "\n" + checkpoint
    return reply


def _revision_number(value: Any) -> int:
    m = re.fullmatch(r"(?:rev(?:ision)?-?|r)?(\d{1,9})", str(value).strip(), re.I)
    if not m:
        raise CannotSucceed(f"'{value}' is not a revision number; see 'stacks' for the recorded ones.")
    return int(m.group(1))


async def _rollback_target(ctx: Context, args: dict[str, Any]) -> Deployment:
    from commands.docker_ops import deployments

    env, stack = args["env"], args["stack"]
    store = deployments(ctx)
    if args.get("to") is not None:
        rev = await asyncio.to_thread(store.get, _revision_number(args["to"]))
        if rev is None or rev.env != env or rev.stack != stack:
            raise CannotSucceed(f"There is no revision {args['to']} of {stack} on {env}; "
                                f"'stacks {env}' lists what is recorded.")
        if rev.status != "succeeded":
            raise CannotSucceed(f"Revision {rev.id} of {stack} on {env} {rev.status}; only a revision "
                                "that ran successfully can be rolled back to.")
        return rev
    target = await asyncio.to_thread(store.rollback_target, env, stack)
    if target is None:
        raise CannotSucceed(f"No earlier successful revision of {stack} on {env} is recorded; "
                            "nothing to roll back to.")
    return target


def _pins(rev: Deployment) -> dict[str, str]:
    """The images a revision actually ran: repo@digest when a registry knows it, else the image ID."""
    return {svc: info.get("digest") or info["id"] for svc, info in (rev.images or {}).items()
            if info.get("digest") or info.get("id")}


async def _rollback_preview(ctx: Context, args: dict[str, Any]) -> list[str]:
    rev = await _rollback_target(ctx, args)
    lines = [f"redeploy revision {rev.id} of {rev.stack} on {rev.env} ({rev.action} by {rev.actor} at "
             f"{rev.created_at:%Y-%m-%d %H:%M} UTC, compose sha256 {rev.compose_hash[:12]})"]
    lines += [f"{svc}: {ref}" for svc, ref in sorted(_pins(rev).items())]
    return lines


@command("rollback", summary="redeploy the previous (or a given) recorded revision",
         args=(STACK, ENV, Arg("to", Kind.word, required=False, positional=False,
                               help="revision id to roll back to", cues=("revision", "rev", "version", "to"),
                               shape=REVISION)),
         changes=True, backend="docker", preview=with_llm_guard("rollback", _rollback_preview),
         examples=("rollback chat test", "rollback web prod to=7"),
         phrasing=Phrasing(
             verbs=("rollback", "roll back", "roll-back", "rolling back", "revert", "back out", "downgrade",
                    "go back to the previous", "put back", "take back", "move back", "set back", "bring back",
                    "go back", "get back", "have back", "return to"),
             nouns=("rollback", "rollbacks", "roll-back"),
             object_verbs=("undo", "revert", "reverse", "roll back", "back out", "rollback", "back"),
             objects=("deploy",),
             past=("rolled back", "reverted", "backed out"),
             formats=("put {stack} back on {env}",)))
async def rollback(ctx: Context, args: dict[str, Any]) -> Reply:
    """Redeploy a recorded revision exactly: the same compose file, the same image digests."""
    from commands.docker_ops import host_for, run_deploy
    from infra.compose import source_of_revision

    env, stack = args["env"], args["stack"]
    host = host_for(ctx, env)
    rev = await _rollback_target(ctx, args)
    src = await asyncio.to_thread(source_of_revision, ctx.config, stack, rev.compose, rev.git_commit,
                                  _pins(rev), env=env, revision=rev.id)
    return await run_deploy(ctx, host, src, env=env, action="rollback", rollback_of=rev.id)
