"""What the stack and service commands share: finding containers, waiting, recording revisions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from bot.request import Reply, Table, Tone
from commands.context import Context
from infra.compose import Deployable, StackSource
from infra.db.deployments import DeploymentStore
from infra.db.models import Deployment
from infra.docker_hosts import ContainerState, DeployFailed, DockerHost, image_label, short_digest
from infra.errors import BackendUnavailable, CannotSucceed, CommandError
from infra.fingerprint import stored_model
from infra.redact import Redactor
from infra.stackdiff import Recorded, diff_lines
from infra.stackplan import StackPlan, inlines, prepare
from infra.wording import counted, plural

T = TypeVar("T")
POLL_S = 1.0
LOG_LINES = 10  # of a failed service, in the reply


def host_for(ctx: Context, env: str) -> DockerHost:
    host = ctx.backends.docker(env)
    if not isinstance(host, DockerHost):
        # (a stand-in client: what runs cannot be read through it, which says nothing about the request)
        raise BackendUnavailable(f"The Docker backend of {env} is not a Docker host client.")
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
        if c.state in ("exited", "restarting") and c.exit_code is not None:
            word = f"{c.state} ({c.exit_code})"
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


# ---------------------------------------------------------------------------
# Waiting for a deploy: ready, or failed as soon as it is clear it will not be


def one_shots(model: Mapping[str, Any]) -> set[str]:
    """Services meant to run and finish: others wait for them with service_completed_successfully."""
    out: set[str] = set()
    for svc in (model.get("services") or {}).values():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, dict):
            out |= {n for n, d in deps.items() if (d or {}).get("condition") == "service_completed_successfully"}
    return out


def failure_of(c: ContainerState, one_shot: bool) -> str | None:
    """Why this container means the deploy failed, or None while it may still get ready."""
    if c.state in ("exited", "dead"):
        if one_shot and c.exit_code == 0:
            return None
        if c.exit_code == 0:
            return "exited (0), but it should keep running"
        return f"exited ({c.exit_code})" if c.exit_code is not None else c.state
    if c.state == "restarting":
        return f"keeps crashing: exited ({c.exit_code}), restarted {c.restarts} times"
    if c.health == "unhealthy":
        return "unhealthy" + (f" (health check: {c.health_log})" if c.health_log else "")
    return None


def service_ready(cs: Sequence[ContainerState], one_shot: bool) -> bool:
    return bool(cs) and all(c.ready or (one_shot and c.state == "exited" and c.exit_code == 0) for c in cs)


@dataclass
class Readiness:
    groups: dict[str, list[ContainerState]]
    waiting: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # service -> why


async def wait_ready(ctx: Context, host: DockerHost, project: str, services: Sequence[str],
                     timeout: float, one_shot: set[str] | None = None, first: str | None = None) -> Readiness:
    """Poll until every service runs (healthy where it has a check), one fails for good, or time is up.

    A container that exits (non-zero, or zero for a service that should keep running), keeps
    restarting, or is unhealthy (its health check failed its retries) ends the wait at once.
    Progress is reported only while there is something to wait for (`first` before the first
    such line): a stack ready at the first look adds no lines.
    """
    one_shot = one_shot or set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = ""
    while True:
        groups = by_service(await host.containers(project))
        failed = {s: why for s in services for c in groups.get(s, [])
                  if (why := failure_of(c, s in one_shot)) is not None}
        ready = [s for s in services if service_ready(groups.get(s, []), s in one_shot)]
        waiting = [s for s in services if s not in ready]
        line = f"{len(ready)}/{counted(len(services), 'service')} ready" + (
            ": waiting for " + ", ".join(f"{s} ({describe_state(groups.get(s, []))})" for s in waiting)
            if waiting else "")
        if line != last and not failed and (waiting or last):
            if first and not last:
                await ctx.progress(first)
            await ctx.progress(line)
            last = line
        if failed or not waiting or loop.time() >= deadline:
            return Readiness(groups, waiting, failed)
        await asyncio.sleep(min(POLL_S, max(deadline - loop.time(), 0.05)))


async def failure_details(host: DockerHost, groups: Mapping[str, list[ContainerState]],
                          services: Sequence[str], redactor: Redactor) -> str:
    """Per failed or unready service: its state, its health check's own output, its last log lines."""
    parts: list[str] = []
    for name in services:
        cs = groups.get(name, [])
        for c in cs[:2]:
            head = f"{name} ({c.name}): {describe_state([c])}"
            if c.health_log:
                head += f"; health check: {c.health_log}"
            try:
                text = await host.logs(c.id, LOG_LINES)
            except CommandError as exc:
                text = f"(its logs could not be read: {exc})"
            lines = [ln for ln in text.strip().splitlines() if ln.strip()][-LOG_LINES:]
            body = "\n".join(lines) if lines else "(no log lines)"
            parts.append(f"{head}\nlast log lines:\n```\n{body}\n```")
    return redactor.text("\n".join(parts))


# ---------------------------------------------------------------------------
# Preview


def recorded(history: Sequence[Deployment]) -> list[Recorded]:
    return [Recorded(d.id, d.status, d.model or {}, d.images or {}) for d in history]


async def _image_ids(host: DockerHost, model: Mapping[str, Any]) -> dict[str, str | None]:
    refs = sorted({str(s["image"]) for s in (model.get("services") or {}).values() if s.get("image")})
    ids = await asyncio.gather(*(host.image_id(r) for r in refs), return_exceptions=True)
    return {r: (i if isinstance(i, str) else None) for r, i in zip(refs, ids, strict=True)}


def inline_setting(ctx: Context, env: str) -> str:
    return ctx.config.inventory.environments[env].inline_files


async def plan_for(ctx: Context, host: DockerHost, src: StackSource, env: str) -> StackPlan:
    """The validated, shaped deploy; CannotSucceed when it cannot work on `env` (with the fix)."""
    plan = await prepare(host, src, inline_setting(ctx, env))
    refusal = plan.refusal(env)
    if refusal:
        raise CannotSucceed(refusal)
    return plan


async def preview_deploy(ctx: Context, host: DockerHost, src: StackSource, env: str, area: Path,
                         header: str | None = None) -> list[str]:
    """The plan card's lines: what this deploy changes against what runs now."""
    project = host.project(src.stack)
    plan = await plan_for(ctx, host, src, env)
    commit = (src.git_commit or "no git")[:12]
    lines = [header or f"{src.stack} on {env} (project {project}, compose sha256 {src.digest[:12]}, "
                       f"git {commit})"]
    if plan.inline and plan.notes:
        lines.append(f"Self-contained for {env} (inline_files: {inline_setting(ctx, env)}): the stack's "
                     "files travel inside the Compose model:")
        lines += [f"  {n}" for n in plan.notes]
    try:
        outside = await host.driver.outside(project, host)
        if outside:
            raise CannotSucceed(outside)
        running, hashes, ids = await asyncio.gather(host.containers(project), plan.hashes(area),
                                                    _image_ids(host, plan.deployed))
    except BackendUnavailable as exc:
        return [*lines, f"(can't compare with what runs: {exc})"]
    history = await asyncio.to_thread(deployments(ctx).history, env, src.stack, 20)
    lines += diff_lines(plan.deployed, hashes, by_service(running), recorded(history), ids)
    last = next((d for d in history if d.status == "succeeded"), None)
    if last is not None:
        lines.append(f"last successful revision: {last.id} ({last.action}) by {last.actor} "
                     f"at {last.created_at:%Y-%m-%d %H:%M} UTC")
    if history and history[0].status != "succeeded":
        lines.append(f"the newest attempt, revision {history[0].id}, {history[0].status}")
    return lines


# ---------------------------------------------------------------------------
# Deploy


Inspected = dict[str, asyncio.Task[dict[str, str | None] | None]]


def inspect_soon(host: DockerHost, model: Mapping[str, Any]) -> Inspected:
    """The model's images inspected by name, started now: right after `up`, beside the wait for the
    containers, instead of after it. `image_record` takes an answer only where its ID is the one the
    container runs (the name may have been moved to another image since)."""
    async def quiet(ref: str) -> dict[str, str | None] | None:
        try:
            return await host.image_ref(ref, ref)
        except CommandError:
            return None
    refs = {str(s["image"]) for s in (model.get("services") or {}).values() if s.get("image")}
    return {r: asyncio.ensure_future(quiet(r)) for r in sorted(refs)}


async def image_record(host: DockerHost, groups: Mapping[str, list[ContainerState]],
                       model: Mapping[str, Any], early: Inspected | None = None) -> dict[str, Any]:
    inspected: dict[tuple[str, str], asyncio.Task[dict[str, str | None]]] = {}

    async def one(name: str, cs: list[ContainerState]) -> tuple[str, Any]:
        wanted = ((model.get("services") or {}).get(name) or {}).get("image") or cs[0].image
        key = (cs[0].image_id, wanted)
        known = await early[wanted] if early and wanted in early else None
        if known is not None and known["id"] == cs[0].image_id:
            info: dict[str, Any] = dict(known)
        else:
            if key not in inspected:  # services sharing an image: one inspection
                inspected[key] = asyncio.ensure_future(host.image_ref(cs[0].image_id, wanted))
            try:
                info = dict(await inspected[key])
            except CommandError:
                info = {"image": wanted, "id": cs[0].image_id, "digest": None}
        info["config_hash"] = cs[0].config_hash
        if cs[0].pinned_ref:
            info["ref"] = cs[0].pinned_ref
        return name, info

    # One inspect per service, concurrently: this sits on every deploy's critical path.
    return dict(await asyncio.gather(*(one(n, cs) for n, cs in groups.items() if cs)))


def services_table(groups: Mapping[str, list[ContainerState]], images: Mapping[str, Any]) -> Table:
    rows = []
    for name, cs in sorted(groups.items()):
        info = images.get(name) or {}
        ref = info.get("ref") or info.get("image") or (cs[0].image if cs else "")
        ran = info.get("digest") or info.get("id") or ""
        shown = image_label(str(ref)) + (f" ({short_digest(str(ran))})" if ran and ran != ref else "")
        rows.append([name, describe_state(cs), str(len(cs)), shown])
    return Table(["service", "state", "containers", "image running"], rows)


def _mask(reply: Reply, redactor: Redactor) -> Reply:
    """The stack's own secrets (its .env and environment values) out of the reply and its tables."""
    reply.text = redactor.text(reply.text)
    reply.tables = [Table(t.columns, [[redactor.text(str(c)) for c in row] for row in t.rows], t.title)
                    for t in reply.tables]
    return reply


@dataclass
class Checked:
    """A deploy whose engine answered: its plan, or the plan still being made (`planning`).

    The plan decides what goes to the engine only when the stack travels self-contained or
    from a copy.  A local engine deploying the live folder gets the files as written, and
    Compose validates them itself before it changes anything, so `up` need not wait for the
    bot's own validation: the two run side by side (the preview, when there is one, has
    validated already).
    """

    src: StackSource
    plan: StackPlan | None = None
    planning: asyncio.Task[StackPlan] | None = None
    # the engine's answer to a ping, asked beside `up` on that same path: an engine that does not
    # answer cannot have started anything, and `up` is cancelled the moment the ping fails
    reaching: asyncio.Task[None] | None = None


async def checked_plan(ctx: Context, host: DockerHost, src: StackSource, env: str, *,
                       overlap: bool = False) -> Checked:
    """The deploy's plan once the file is valid and the engine answers, checked concurrently
    (if the engine is down the validation is cancelled, not left running)."""
    checking = asyncio.create_task(_after_a_turn(plan_for(ctx, host, src, env)))
    reaching = asyncio.create_task(host.reachable())
    try:
        if overlap and host.driver.kind == "compose" and not src.temporary \
                and not await inlines(inline_setting(ctx, env), host, src) and not checking.done():
            return Checked(src, planning=checking, reaching=reaching)
        await reaching
        return Checked(src, await checking)
    except BaseException:
        await _cancel(checking, reaching)
        raise


async def _after_a_turn(work: Coroutine[Any, Any, T]) -> T:
    """`work`, once the tasks ready now have run: reading and hashing the files takes a few ms of the
    loop, and on the overlap path `up` (created just after) should not wait behind it."""
    try:
        await asyncio.sleep(0)
    except BaseException:
        work.close()  # cancelled before it began
        raise
    return await work


async def _cancel(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel the tasks and wait until they have stopped (a Compose child they run dies with them)."""
    running = [t for t in tasks if t is not None]
    for task in running:
        task.cancel()
    await asyncio.gather(*running, return_exceptions=True)


async def _plan_beside_up(checked: Checked, up: asyncio.Task[str]) -> StackPlan:
    """The plan made while `up` runs; if the files are not valid, `up` refused them too."""
    assert checked.planning is not None
    try:
        return await checked.planning
    except BaseException as exc:
        if isinstance(exc, CommandError) and not isinstance(exc, BackendUnavailable):
            done = await asyncio.gather(up, return_exceptions=True)
            if not isinstance(done[0], BaseException):  # the files changed between the two reads
                raise CommandError(f"{exc}\n(`up` had already applied the files as they were a moment "
                                   "earlier: check 'status'.)") from exc
            raise
        await _cancel(up)
        raise


async def run_deploy(ctx: Context, host: DockerHost, checked: Checked, *, env: str, action: str,
                     area: Path, rollback_of: int | None = None,
                     commit: asyncio.Task[str | None] | None = None) -> Reply:
    """Bring up, wait (failing fast), record: the one path deploy and rollback share."""
    up: asyncio.Task[str] | None = None
    if checked.plan is None:
        src = checked.src
        up = asyncio.create_task(host.driver.up(Deployable(
            host.project(src.stack), src.workdir, list(src.files), src.content, {})))
        if checked.reaching is not None:
            try:
                await checked.reaching
            except BaseException:
                # (an engine that does not answer: nothing started; say so, and leave nothing running)
                await _cancel(up, checked.planning)
                raise
        plan = await _plan_beside_up(checked, up)
    else:
        plan = checked.plan
    redactor = Redactor([*ctx.engine.redactor.secrets, *plan.secrets()])
    return _mask(await _deploy(ctx, host, plan, env=env, action=action, area=area,
                               rollback_of=rollback_of, redactor=redactor, up=up, commit=commit), redactor)


async def _deploy(ctx: Context, host: DockerHost, plan: StackPlan, *, env: str, action: str, area: Path,
                  rollback_of: int | None, redactor: Redactor, up: asyncio.Task[str] | None,
                  commit: asyncio.Task[str | None] | None = None) -> Reply:
    src, project, services = plan.src, plan.project, plan.services
    store = deployments(ctx)
    timeout = ctx.config.inventory.environments[env].deploy_timeout_s
    verb = "Rollback" if action == "rollback" else "Deploy"
    deployable = await asyncio.to_thread(plan.write, area) if up is None else None
    early: Inspected = {}

    async def record(status: str, groups: Mapping[str, list[ContainerState]], error: str | None) -> Deployment:
        if commit is not None and src.git_commit is None:
            src.git_commit = await commit  # (asked of git while `up` ran)
        images = await image_record(host, groups, plan.deployed, early) if groups else {}
        return await asyncio.to_thread(
            store.record, env=env, stack=src.stack, action=action, status=status,
            actor=ctx.actor.id, request_id=ctx.request_id or None, ref=src.ref,
            git_commit=src.git_commit, compose_hash=src.digest, compose=src.content,
            model=stored_model(plan.deployed, plan.secrets()), images=images, rollback_of=rollback_of,
            error=redactor.text(error) if error else None)

    async def stopped(step: str) -> None:
        """Cancelled (`cancel`, or a shutdown past its grace): record how far it got, then stop."""
        cut = ctx.engine.jobs.was_cut(ctx.request_id) if ctx.request_id else False
        status, why = ("failed", f"interrupted while {step}") if cut else ("cancelled", f"cancelled while {step}")
        await asyncio.shield(record(status, await _groups_or_empty(host, project), why))

    inlined = plan.inline and deployable is not None
    how = "self-contained, " if inlined else ""
    if up is None:
        assert deployable is not None
        up = asyncio.create_task(host.driver.up(deployable))  # first, then say so: it is on the clock
    try:
        await ctx.progress(f"{src.stack}: compose file valid ({counted(len(services), 'service')}: "
                           f"{', '.join(services)}); bringing it up on {env} ({how}via {host.driver.kind})…")
    except BaseException:
        await _cancel(up)
        raise
    try:
        await up
    except DeployFailed as exc:
        groups = await _groups_or_empty(host, project)
        missing = await _missing_images(host, plan.deployed)
        msg = str(exc)
        if missing:
            msg = f"{plural(len(missing), 'image')} not on the engine and not pullable: {', '.join(missing)}\n{msg}"
        bad = [s for s in services if any(failure_of(c, False) for c in groups.get(s, []))]
        details = await failure_details(host, groups, bad, redactor) if bad else ""
        rev = await record("failed", groups, msg)
        return Reply(f"{verb} of {src.stack} to {env} failed; revision {rev.id} is recorded as failed.\n"
                     f"{msg}\nWhat runs now: {_summary(groups) or 'nothing'}" + (f"\n{details}" if details else ""),
                     tone=Tone.error, tables=[services_table(groups, {})] if groups else [])
    except asyncio.CancelledError:
        await stopped("bringing the stack up")
        raise
    began = asyncio.get_running_loop().time()
    early.update(inspect_soon(host, plan.deployed))
    try:
        ready = await wait_ready(ctx, host, project, services, timeout, one_shots(plan.deployed),
                                 first=f"{src.stack}: containers created on {env}; waiting up to "
                                       f"{timeout:.0f}s for them to run and be healthy")
    except asyncio.CancelledError:
        await stopped("waiting for the services to be ready")
        raise
    took = asyncio.get_running_loop().time() - began
    if ready.failed or ready.waiting:
        bad = sorted(ready.failed) or ready.waiting
        if ready.failed:
            why = "; ".join(f"{s}: {w}" for s, w in sorted(ready.failed.items()))
            error = f"failed after {took:.0f}s: {why}"
        else:
            why = "; ".join(f"{s}: {describe_state(ready.groups.get(s, []))}" for s in ready.waiting)
            error = f"not ready after {timeout:.0f}s: {why}"
        details = await failure_details(host, ready.groups, bad, redactor)
        rev = await record("failed", ready.groups, error)
        return Reply(f"{verb} of {src.stack} to {env} {error}. Revision {rev.id} is recorded as failed; "
                     f"the containers were left as they are for inspection.\n{details}",
                     tone=Tone.error, tables=[services_table(ready.groups, rev.images)])
    rev = await record("succeeded", ready.groups, None)
    what = f"rolled back to the file and images of revision {rollback_of}" if rollback_of else "deployed"
    git = f", git {src.git_commit[:12]}" if src.git_commit else ""
    inline = ", self-contained" if inlined else ""
    return Reply(f"{src.stack} {what} on {env}: {counted(len(services), 'service')} running. "
                 f"Recorded as revision {rev.id} (compose sha256 {src.digest[:12]}{git}{inline}).",
                 tone=Tone.success, tables=[services_table(ready.groups, rev.images)])


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


