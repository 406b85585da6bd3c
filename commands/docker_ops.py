"""What the stack and service commands share: finding containers, waiting, recording revisions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.request import Reply, Table, Tone
from commands.context import Context
from infra.compose import StackSource, diff_lines, validate
from infra.db.deployments import DeploymentStore
from infra.db.models import Deployment
from infra.docker_hosts import ContainerState, DeployFailed, DockerHost
from infra.errors import BackendUnavailable, CommandError

POLL_S = 1.0


def host_for(ctx: Context, env: str) -> DockerHost:
    host = ctx.backends.docker(env)
    if not isinstance(host, DockerHost):
        raise CommandError(f"The Docker backend of {env} is not a Docker host client.")
    return host


def deployments(ctx: Context) -> DeploymentStore:
    return DeploymentStore(ctx.store.db)


def by_service(states: Sequence[ContainerState]) -> dict[str, list[ContainerState]]:
    out: dict[str, list[ContainerState]] = {}
    for s in sorted(states, key=lambda c: (c.service, c.name)):
        out.setdefault(s.service, []).append(s)
    return out


def describe_state(cs: Sequence[ContainerState]) -> str:
    if not cs:
        return "no container"
    parts = []
    for c in cs:
        word = c.state if c.health is None or c.state != "running" else c.health
        if c.state == "exited" and c.exit_code is not None:
            word = f"exited ({c.exit_code})"
        parts.append(word)
    return ", ".join(sorted(set(parts)))


def uptime(started: datetime | None, now: datetime | None = None) -> str:
    if started is None:
        return "-"
    secs = int(((now or datetime.now(UTC)) - started).total_seconds())
    if secs < 120:
        return f"{max(secs, 0)}s"
    if secs < 7200:
        return f"{secs // 60}m"
    if secs < 172800:
        return f"{secs // 3600}h{(secs % 3600) // 60:02d}m"
    return f"{secs // 86400}d{(secs % 86400) // 3600}h"


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{value:.1f}GiB"


async def wait_ready(ctx: Context, host: DockerHost, project: str, services: Sequence[str],
                     timeout: float) -> tuple[dict[str, list[ContainerState]], list[str]]:
    """Poll until every service's containers run (healthy where they have a check) or time is up.

    Returns the last states seen and the services that were not ready; reports each change.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = ""
    while True:
        groups = by_service(await host.containers(project))
        ready = [s for s in services if groups.get(s) and all(c.ready for c in groups[s])]
        waiting = [s for s in services if s not in ready]
        line = f"{len(ready)}/{len(services)} services ready" + (
            ": waiting for " + ", ".join(f"{s} ({describe_state(groups.get(s, []))})" for s in waiting)
            if waiting else "")
        if line != last:
            await ctx.progress(line)
            last = line
        if not waiting or loop.time() >= deadline:
            return groups, waiting
        await asyncio.sleep(min(POLL_S, max(deadline - loop.time(), 0.05)))


async def running_images(host: DockerHost, project: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for c in await host.containers(project):
        out.setdefault(c.service, set()).add(c.image)
    return out


async def preview_deploy(ctx: Context, host: DockerHost, src: StackSource, env: str,
                         recorded: Deployment | None) -> list[str]:
    """The plan card's lines: what this deploy changes against what runs and what was recorded."""
    project = host.project(src.stack)
    model = await validate(project, src)
    commit = (src.git_commit or "no git")[:12]
    lines = [f"{src.stack} on {env} (project {project}, compose sha256 {src.digest[:12]}, git {commit})"]
    try:
        running = await running_images(host, project)
    except BackendUnavailable as exc:
        return [*lines, f"(can't compare with what runs: {exc})"]
    lines += diff_lines(model, recorded.model if recorded else None, running)
    if recorded is not None:
        lines.append(f"currently recorded: revision {recorded.id} by {recorded.actor} "
                     f"at {recorded.created_at:%Y-%m-%d %H:%M} UTC")
    return lines


async def image_record(host: DockerHost, groups: Mapping[str, list[ContainerState]],
                       model: Mapping[str, Any]) -> dict[str, Any]:
    async def one(name: str, cs: list[ContainerState]) -> tuple[str, Any]:
        wanted = ((model.get("services") or {}).get(name) or {}).get("image") or cs[0].image
        try:
            return name, await host.image_ref(cs[0].image_id, wanted)
        except CommandError:
            return name, {"image": wanted, "id": cs[0].image_id, "digest": None}

    # One inspect per service, concurrently: this sits on every deploy's critical path.
    return dict(await asyncio.gather(*(one(n, cs) for n, cs in groups.items() if cs)))


def services_table(groups: Mapping[str, list[ContainerState]], images: Mapping[str, Any]) -> Table:
    rows = []
    for name, cs in sorted(groups.items()):
        info = images.get(name) or {}
        ran = info.get("digest") or (info.get("id") or "")[:19]
        rows.append([name, describe_state(cs), str(len(cs)), ran or (cs[0].image if cs else "")])
    return Table(["service", "state", "containers", "image running"], rows)


async def run_deploy(ctx: Context, host: DockerHost, src: StackSource, *, env: str, action: str,
                     rollback_of: int | None = None) -> Reply:
    """Validate, bring up, wait, record: the one path deploy and rollback share."""
    project = host.project(src.stack)
    # Validate the file and check the engine answers, both before anything starts (concurrently;
    # if the engine is down the validation is cancelled, not left running).
    checking = asyncio.create_task(validate(project, src))
    try:
        await host.ping()
    except BaseException:
        checking.cancel()
        await asyncio.gather(checking, return_exceptions=True)
        raise
    model = await checking
    services = sorted((model.get("services") or {}).keys())
    store = deployments(ctx)
    timeout = ctx.config.inventory.environments[env].deploy_timeout_s
    verb = "Rollback" if action == "rollback" else "Deploy"

    async def record(status: str, groups: Mapping[str, list[ContainerState]], error: str | None) -> Deployment:
        images = await image_record(host, groups, model) if groups else {}
        return await asyncio.to_thread(
            store.record, env=env, stack=src.stack, action=action, status=status,
            actor=ctx.actor.id, request_id=ctx.request_id or None, ref=src.ref,
            git_commit=src.git_commit, compose_hash=src.digest, compose=src.content, model=model,
            images=images, rollback_of=rollback_of, error=error)

    await ctx.progress(f"{src.stack}: compose file valid ({len(services)} services: "
                       f"{', '.join(services)}); bringing it up on {env} (via {host.driver.kind})…")
    try:
        await host.driver.up(project, src, src.pins)
    except DeployFailed as exc:
        groups = await _groups_or_empty(host, project)
        missing = await _missing_images(host, model)
        if missing:
            exc = DeployFailed(f"image(s) not on the engine and not pullable: {', '.join(missing)}\n{exc}")
        msg = ctx.engine.redactor.text(str(exc))
        rev = await record("failed", groups, msg)
        return Reply(f"{verb} of {src.stack} to {env} failed; revision {rev.id} is recorded as failed.\n"
                     f"{msg}\nWhat runs now: {_summary(groups) or 'nothing'}",
                     tone=Tone.error, tables=[services_table(groups, {})] if groups else [])
    except asyncio.CancelledError:
        await asyncio.shield(record("failed", await _groups_or_empty(host, project),
                                    "interrupted while bringing the stack up"))
        raise
    await ctx.progress(f"{src.stack}: containers created on {env}; waiting up to {timeout:.0f}s "
                       "for them to run and be healthy")
    try:
        groups, waiting = await wait_ready(ctx, host, project, services, timeout)
    except asyncio.CancelledError:  # a shutdown past its grace: say what was left, then stop
        await asyncio.shield(record("failed", await _groups_or_empty(host, project),
                                    "interrupted while waiting for the services to be ready"))
        raise
    if waiting:
        detail = "; ".join(f"{s}: {describe_state(groups.get(s, []))}" for s in waiting)
        error = f"not ready after {timeout:.0f}s: {detail}"
        rev = await record("failed", groups, error)
        return Reply(f"{verb} of {src.stack} to {env} failed: {len(waiting)} of {len(services)} services "
                     f"not running/healthy after {timeout:.0f}s ({detail}). Revision {rev.id} is recorded "
                     "as failed; the containers were left as they are for inspection.",
                     tone=Tone.error, tables=[services_table(groups, rev.images)])
    rev = await record("succeeded", groups, None)
    what = f"rolled back to the file and images of revision {rollback_of}" if rollback_of else "deployed"
    commit = f", git {src.git_commit[:12]}" if src.git_commit else ""
    return Reply(f"{src.stack} {what} on {env}: {len(services)} services running. "
                 f"Recorded as revision {rev.id} (compose sha256 {src.digest[:12]}{commit}).",
                 tone=Tone.success, tables=[services_table(groups, rev.images)])


def _inspector(ref: str) -> Callable[[Any], Any]:
    return lambda c: c.api.inspect_image(ref)


async def _missing_images(host: DockerHost, model: Mapping[str, Any]) -> list[str]:
    out = []
    for svc in (model.get("services") or {}).values():
        ref = svc.get("image")
        if not ref:
            continue
        try:
            await host.call(_inspector(str(ref)))
        except CommandError:
            out.append(ref)
    return sorted(set(out))


async def _groups_or_empty(host: DockerHost, project: str) -> dict[str, list[ContainerState]]:
    try:
        return by_service(await host.containers(project))
    except CommandError:
        return {}


def _summary(groups: Mapping[str, list[ContainerState]]) -> str:
    return ", ".join(f"{s} ({describe_state(cs)})" for s, cs in sorted(groups.items()))
