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
# a git ref by name: the usual trunk names, or a branch with a slash ("feature/sso-login", "hotfix/2.4.1")
BRANCH = r"main|master|trunk|(feature|feat|hotfix|fix|bugfix|release|chore|topic|wip)/[\w./-]*[\w-]"
REVISION = r"\d{1,9}|v\d+(\.\d+)*[\w.-]*|\d+\.\d+(\.\d+)*[\w.-]*|[0-9a-f]{7,40}"

if TYPE_CHECKING:
    from pathlib import Path

    from infra.compose import StackSource
    from infra.db.models import Deployment
    from infra.docker_hosts import DockerHost


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
    listed: set[str] = set()
    for name, stack in ctx.config.inventory.stacks.items():
        if env and stack.runs_on and env not in stack.runs_on and name not in where:
            continue
        listed.add(name)
        services = ", ".join(ctx.config.stack_services.get(name, ()))
        deployed = sorted(where.get(name, []), key=lambda d: d.env)
        if not deployed:
            rows.append([name, services, "-", "not deployed by the bot", "", ""])
        for d in deployed:
            commit = (d.git_commit or "")[:12] or "no git"
            rows.append([name, services, d.env, f"rev {d.id} ({d.action}, {commit})",
                         f"{d.created_at:%Y-%m-%d %H:%M} UTC", d.actor])
    scope = f" for {env}" if env else ""
    shown = sum(len(v) for k, v in where.items() if k in listed)
    return Reply(f"{len(listed)} stack{'s' if len(listed) != 1 else ''} known{scope}; "
                 f"{shown} recorded deployment{'s' if shown != 1 else ''}.",
                 tables=[Table(["stack", "services", "env", "revision", "when", "by"], rows)])


async def _deploy_preview(ctx: Context, args: dict[str, Any]) -> list[str]:
    from commands.docker_ops import host_for, preview_deploy
    from infra.compose import source_for, work_area

    env, stack = args["env"], args["stack"]
    host = host_for(ctx, env)
    with work_area("preview") as area:
        src = await asyncio.to_thread(source_for, ctx.config, stack, args.get("ref"), area=area)
        lines = await preview_deploy(ctx, host, src, env, area)
    # The checkpoint (and any checkpoint retention deletes) comes first, as it runs first.
    return await checkpoint_preview(ctx, env) + lines


@command("deploy", summary="deploy or update a stack on an environment, recording the revision deployed",
         args=(STACK, ENV, Arg("ref", Kind.word, required=False, positional=False,
                               help="git ref of compose/ to deploy",
                               cues=("ref", "version", "tag", "commit", "branch", "revision", "rev", "at", "@",
                                     "to", "from", "off"),
                               shape=f"{VERSION}|{BRANCH}")),
         changes=True, backend="docker", preview=with_llm_guard("deploy", _deploy_preview),
         examples=("deploy chat rumpletest", "deploy chat to test ref=v1.4.2"),
         phrasing=Phrasing(
             verbs=("deploy", "deploys", "deploying", "redeploy", "redeploying", "re-deploy", "ship", "ship it", "dep",
                    "dpl",  # (shorthand)
                    "push out", "push", "roll out", "put out", "update", "refresh", "get out", "send out", "promote"),
             nouns=("deploy", "deploys", "deployment", "deployments", "redeploy", "release", "rollout", "roll-out",
                    "update"),
             past=("deployed", "redeployed", "shipped", "pushed", "rolled out", "released", "promoted"),
             formats=("put {stack} on {env}", "put {stack} onto {env}", "get {stack} onto {env}",
                      "get {stack} on {env}", "get {stack} out to {env}",
                      # raising a stack to a version ("bring llm on phoenix up to v0.6.3")
                      "bring {stack} on {env} up to tag {ref}", "bring {stack} on {env} up to version {ref}",
                      "bring {stack} on {env} up to {ref}", "bring {stack} up to tag {ref}",
                      "bring {stack} up to version {ref}", "bring {stack} up to {ref}")))
async def deploy(ctx: Context, args: dict[str, Any]) -> Reply:
    """Validate with `docker compose config`, bring the stack up, wait for it, record the revision."""
    from commands.docker_ops import checked_plan, host_for, run_deploy
    from infra.compose import git_commit_of, source_for, work_area

    env, stack, ref = args["env"], args["stack"], args.get("ref")
    host = host_for(ctx, env)
    with work_area("deploy") as area:
        src = await asyncio.to_thread(source_for, ctx.config, stack, ref, area=area, git=False)
        # git answers while the engine is asked (both before anything starts).
        commit = asyncio.create_task(asyncio.to_thread(git_commit_of, src.workdir)) if ref is None else None
        # What cannot work (an invalid file, an engine that does not answer, files that cannot
        # travel) is refused before the checkpoint and before anything starts.
        cfg = ctx.config.inventory.environments[env]
        snapshot = bool(cfg.checkpoint_before_deploy and cfg.vm)
        try:
            checked = await checked_plan(ctx, host, src, env, overlap=not snapshot)
            # Config may ask for a VM snapshot first; if it fails, nothing is deployed (CommandError).
            checkpoint = await checkpoint_before_deploy(ctx, env)
            # (git's answer is needed only to record the revision: `up` does not wait for it)
            reply = await run_deploy(ctx, host, checked, env=env, action="deploy", area=area, commit=commit)
        finally:
            if commit is not None and src.git_commit is None:
                src.git_commit = await commit
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


async def _pins(host: DockerHost, rev: Deployment) -> tuple[dict[str, str], dict[str, str]]:
    """The images a revision ran, and the references they were deployed as.

    Where the reference still names the very image that ran, the pin is the reference itself
    (nothing to explain later); where it moved, the pin is repo@digest when a registry knows
    the image, else its ID, and the reference travels along as a label.
    """
    pins: dict[str, str] = {}
    refs: dict[str, str] = {}
    for svc, info in sorted((rev.images or {}).items()):
        ran = info.get("digest") or info.get("id")
        if not ran:
            continue
        ref = str(info.get("ref") or info.get("image") or "")
        refs[svc] = ref
        now = await host.image_id(ref) if ref and not ref.startswith("sha256:") else None
        pins[svc] = ref if now and now == info.get("id") else str(ran)
    return pins, refs


async def _rollback_source(ctx: Context, host: DockerHost, rev: Deployment, area: Path) -> StackSource:
    from infra.compose import source_of_revision

    pins, refs = await _pins(host, rev)
    return await asyncio.to_thread(source_of_revision, ctx.config, rev.stack, rev.compose, rev.git_commit,
                                   pins, area=area, pin_refs=refs)


async def _rollback_preview(ctx: Context, args: dict[str, Any]) -> list[str]:
    from commands.docker_ops import host_for, preview_deploy
    from infra.compose import work_area
    from infra.docker_hosts import image_label

    rev = await _rollback_target(ctx, args)
    host = host_for(ctx, rev.env)
    header = (f"redeploy revision {rev.id} of {rev.stack} on {rev.env} ({rev.action} by {rev.actor} at "
              f"{rev.created_at:%Y-%m-%d %H:%M} UTC, compose sha256 {rev.compose_hash[:12]})")
    with work_area("preview") as area:
        src = await _rollback_source(ctx, host, rev, area)
        lines = await preview_deploy(ctx, host, src, rev.env, area, header=header)
    pinned = [f"{svc}: {image_label(src.pins[svc], ref)}" for svc, ref in sorted(
        ((s, r) for s, r in _refs_of(rev).items() if s in src.pins and src.pins[s] != r))]
    if pinned:
        lines.append("images pinned to what that revision ran (their tags have moved since): " + "; ".join(pinned))
    return lines


def _refs_of(rev: Deployment) -> dict[str, str]:
    return {svc: str(info.get("ref") or info.get("image") or "") for svc, info in (rev.images or {}).items()}


@command("rollback", summary="redeploy the previous (or a given) recorded revision",
         args=(STACK, ENV, Arg("to", Kind.word, required=False, positional=False,
                               help="revision id to roll back to", cues=("revision", "rev", "version", "to"),
                               shape=REVISION)),
         changes=True, backend="docker", preview=with_llm_guard("rollback", _rollback_preview),
         examples=("rollback chat test", "rollback web prod to=7"),
         phrasing=Phrasing(
             verbs=("rollback", "roll back", "roll-back", "rolling back", "revert", "back out", "downgrade", "rb",
                    "go back to the previous", "put back", "take back", "move back", "set back", "bring back",
                    "go back", "get back", "have back", "return to"),
             nouns=("rollback", "rollbacks", "roll-back"),
             object_verbs=("undo", "revert", "reverse", "roll back", "back out", "rollback", "back"),
             objects=("deploy",),
             past=("rolled back", "reverted", "backed out"),
             formats=("put {stack} back on {env}",)))
async def rollback(ctx: Context, args: dict[str, Any]) -> Reply:
    """Redeploy a recorded revision exactly: the same compose file, the same image digests."""
    from commands.docker_ops import checked_plan, host_for, run_deploy
    from infra.compose import work_area

    env = args["env"]
    host = host_for(ctx, env)
    rev = await _rollback_target(ctx, args)
    with work_area("rollback") as area:
        src = await _rollback_source(ctx, host, rev, area)
        checked = await checked_plan(ctx, host, src, env)
        return await run_deploy(ctx, host, checked, env=env, action="rollback", rollback_of=rev.id, area=area)
