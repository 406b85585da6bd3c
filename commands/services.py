"""Services of Compose stacks: status, restart, stop, start, logs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bot.request import Attachment, Reply, Table, Tone
from commands.args import ENV, SERVICE, STACK_KV, STACK_OPT
from commands.context import Context
from commands.llm_guard import with_llm_guard
from commands.registry import Arg, Kind, Phrasing, command
from infra.errors import CannotSucceed, CommandError
from infra.redact import Redactor
from infra.wording import counted
from llm.values import parse_since

if TYPE_CHECKING:
    from infra.docker_hosts import ContainerState, DockerHost

INLINE_LINES = 30
INLINE_CHARS = 3500
MAX_LOG_BYTES = 2_000_000


@command("status", summary="services of a stack (or all stacks) on an environment: state, health, uptime, image",
         args=(ENV, STACK_OPT), backend="docker", examples=("status rumpletest", "status dev chat"),
         on_alert=True,
         phrasing=Phrasing(
             nouns=("status", "state", "ps", "stat", "sts", "what is running", "what runs", "everything ok",
                    "is everything up", "status report", "status update", "report"),
             hints=("looking", "up", "down", "running", "healthy", "alive", "doing", "check", "containers", "ok",
                    "fine", "working", "happy", "unhealthy", "health", "how is", "how are", "restarting",
                    "stopping", "starting", "overall", "uptime"),
             formats=("how does {env} look", "how does {stack} look on {env}", "how does {stack} on {env} look",
                      "how do things look on {env}"),
             answers_state=True))
async def status(ctx: Context, args: dict[str, Any]) -> Reply:
    """Per service: containers, state, health, restarts, image, uptime, CPU % and memory."""
    from commands.docker_ops import describe_state, host_for, human_bytes, uptime

    env, stack = args["env"], args.get("stack")
    host = host_for(ctx, env)
    states = await host.containers(host.project(stack) if stack else None, stats=True)
    known = set(ctx.config.inventory.stacks)
    rows = []
    bad = 0
    groups: dict[tuple[str, str], list[ContainerState]] = {}
    for c in states:
        name = host.stack_of(c.project)
        if name in known:
            groups.setdefault((name, c.service), []).append(c)
    for (name, svc), cs in sorted(groups.items()):
        running = [c for c in cs if c.state == "running"]
        bad += 0 if all(c.ready for c in cs) else 1
        cpu = sum(c.cpu_pct or 0.0 for c in running)
        mem = sum(c.mem_bytes or 0 for c in running) if running else None
        # (a stopped container keeps its last health check's word: it says nothing about it now)
        health = ", ".join(sorted({c.health for c in running if c.health})) or "-"
        started = min((c.started_at for c in running if c.started_at), default=None)
        rows.append([name, svc, f"{len(running)}/{len(cs)}", describe_state(cs), health,
                     str(sum(c.restarts for c in cs)), ", ".join(sorted({c.image_name for c in cs})),
                     uptime(started), f"{cpu:.1f}%" if running else "-", human_bytes(mem)])
    scope = f"{stack} on {env}" if stack else env
    if not rows:
        hint = f"'deploy {stack} {env}' brings it up" if stack else f"'stacks {env}' lists what can run there"
        return Reply(f"No containers of {'stack ' + stack if stack else 'any known stack'} on {env}; {hint}.",
                     tone=Tone.warning)
    tone = Tone.warning if bad else Tone.success
    health = f"{bad} not running or not healthy" if bad else ("running and healthy" if len(rows) == 1
                                                              else "all running and healthy")
    return Reply(f"{scope}: {counted(len(rows), 'service')}, {health}.", tone=tone,
                 tables=[Table(["stack", "service", "up", "state", "health", "restarts", "image",
                                "uptime", "cpu", "memory"], rows)])


async def _service_containers(ctx: Context, host: DockerHost, service: str, env: str,
                              stack: str | None) -> tuple[str, list[ContainerState]]:
    """The service's containers on the env; the stack from the arguments or what runs there."""
    if stack is not None:
        if service not in ctx.config.stack_services.get(stack, ()):
            raise CannotSucceed(f"Stack {stack} has no service {service} "
                               f"(it has {', '.join(ctx.config.stack_services.get(stack, ())) or 'none'}).")
        found = await host.containers(host.project(stack), service)
        if not found:
            raise CannotSucceed(f"{service} of {stack} has no containers on {env}; "
                               f"is {stack} deployed there? ('status {env}' shows what runs)")
        return stack, found
    found = [c for c in await host.containers(None, service)
             if host.stack_of(c.project) in ctx.config.inventory.stacks]
    stacks = sorted({host.stack_of(c.project) or "" for c in found})
    if len(stacks) > 1:
        raise CommandError(f"{service} runs in several stacks on {env} ({', '.join(stacks)}); "
                           f"say which with stack=…")
    if not found:
        owners = [s for s, svcs in ctx.config.stack_services.items() if service in svcs]
        where = f" (it belongs to {', '.join(owners)})" if owners else ""
        raise CannotSucceed(f"{service} has no containers on {env}{where}; nothing was done. "
                           f"'status {env}' shows what runs there.")
    return stacks[0], found


async def _containers_preview(ctx: Context, args: dict[str, Any]) -> list[str]:
    """Which containers the change will touch; none there is refused before anyone confirms or approves
    ("hello has no containers on local-prod"), not found out after the approval."""
    from commands.docker_ops import host_for

    env, service = args["env"], args["service"]
    stack, found = await _service_containers(ctx, host_for(ctx, env), service, env, args.get("stack"))
    names = ", ".join(c.name for c in found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
    return [f"{service} ({stack}) on {env}: {counted(len(found), 'container')}, {names}"]


async def _act(ctx: Context, args: dict[str, Any], verb: str, past: str,
               op: Callable[[DockerHost, ContainerState], Awaitable[None]],
               already: tuple[str, Callable[[ContainerState], bool]] | None = None) -> Reply:
    """`already`: the state the change leads to, and which containers are in it now ("running" for start):
    those are left alone, and when every one is, the reply says nothing needed doing instead of "started"."""
    from commands.docker_ops import by_service, describe_state, host_for, uptime

    env, service = args["env"], args["service"]
    host = host_for(ctx, env)
    stack, found = await _service_containers(ctx, host, service, env, args.get("stack"))
    settled = [c for c in found if already and already[1](c)]
    if already and settled:
        if len(settled) == len(found):
            return Reply(f"{service} ({stack}) on {env} is already {already[0]} "
                         f"({counted(len(found), 'container')}); nothing was {past}.", tone=Tone.info)
        found = [c for c in found if c not in settled]
        await ctx.progress(f"{counted(len(settled), 'container')} of {service} already {already[0]}; left alone")
    await ctx.progress(f"{verb} {service} ({stack}) on {env}: {counted(len(found), 'container')}")

    async def one(c: ContainerState) -> tuple[ContainerState, str | None]:
        try:
            await op(host, c)
        except CommandError as exc:
            return c, str(exc)
        return c, None

    results = await asyncio.gather(*(one(c) for c in found))
    failed = [(c, err) for c, err in results if err]
    done = len(results) - len(failed)
    try:
        after = by_service(await host.containers(host.project(stack), service)).get(service, [])
    except CommandError as exc:
        # The engine went away after acting: report what was done, not "nothing was changed".
        names = ", ".join(c.name for c, err in results if not err) or "none"
        detail = "".join(f"; {c.name}: {err}" for c, err in failed)
        return Reply(f"{verb} {service} on {env}: {done} of {len(results)} containers {past} ({names})"
                     f"{detail}. Their state afterwards could not be read: {exc}", tone=Tone.error)
    rows = [[c.name, describe_state([c]), str(c.restarts), uptime(c.started_at)] for c in after]
    table = Table(["container", "state", "restarts", "uptime"], rows)
    if failed:
        detail = "; ".join(f"{c.name}: {err}" for c, err in failed)
        return Reply(f"{verb} {service} on {env}: {done} of {len(results)} containers {past}, "
                     f"{len(failed)} failed ({detail}).", tone=Tone.error, tables=[table])
    return Reply(f"{service} ({stack}) {past} on {env}: {counted(len(results), 'container')}, now "
                 f"{describe_state(after)}.", tone=Tone.success, tables=[table])


@command("restart", summary="restart a service's containers", args=(SERVICE, ENV, STACK_KV),
         changes=True, backend="docker", preview=with_llm_guard("restart", _containers_preview),
         examples=("restart n8n on dev", "restart nginx prod"),
         on_alert=True,
         phrasing=Phrasing(
             # ("rs", "rst": the team's shorthand, as typed in a hurry)
             verbs=("restart", "restarts", "restarting", "re-start", "bounce", "kick", "cycle", "recycle", "rs", "rst",
                    "power cycle", "reboot", "relaunch", "give it a kick", "kick over", "knock over"),
             nouns=("restart", "restarts", "bounce", "kick", "reboot"),
             past=("restarted", "rebooted", "bounced", "kicked", "cycled", "recycled", "relaunched"),
             machine_verbs=("reboot", "power cycle"),
             formats=("give {service} a kick on {env}", "give {service} a kick", "give {service} a bounce",
                      "bring {service} down and back up", "bring {service} down and up",
                      "take {service} down and back up", "take {service} down and up",
                      "turn {service} off and on again", "turn {service} off and on", "stop and start {service}")))
async def restart(ctx: Context, args: dict[str, Any]) -> Reply:
    return await _act(ctx, args, "Restarting", "restarted", lambda h, c: h.restart(c.id))


@command("stop", summary="stop a service", args=(SERVICE, ENV, STACK_KV), changes=True,
         backend="docker", preview=with_llm_guard("stop", _containers_preview), examples=("stop rtmp on test",),
         phrasing=Phrasing(
             verbs=("stop", "shut down", "shutdown", "take down", "bring down", "spin down", "kill", "halt",
                    "turn off", "switch off", "stopping", "power off", "shut off", "take offline", "bring offline",
                    "knock offline"),
             past=("stopped", "killed", "halted", "shut down"),
             machine_verbs=("shut down", "shutdown", "power off")))
async def stop(ctx: Context, args: dict[str, Any]) -> Reply:
    return await _act(ctx, args, "Stopping", "stopped", lambda h, c: h.stop(c.id),
                      already=("stopped", lambda c: c.state in ("exited", "created", "dead")))


@command("start", summary="start a stopped service", args=(SERVICE, ENV, STACK_KV), changes=True,
         backend="docker", preview=_containers_preview, examples=("start rtmp on test",),
         phrasing=Phrasing(
             verbs=("start", "start up", "bring up", "spin up", "fire up", "turn on", "switch on", "boot",
                    "launch", "bring back up", "start back up", "starting", "power on", "bring back",
                    "bring online", "bring back online", "put back online"),
             past=("started", "booted", "launched"),
             machine_verbs=("boot", "power on")))
async def start(ctx: Context, args: dict[str, Any]) -> Reply:
    return await _act(ctx, args, "Starting", "started", lambda h, c: h.start(c.id),
                      already=("running", lambda c: c.state == "running"))


async def _log_redactor(ctx: Context, host: DockerHost, stack: str, found: list[ContainerState]) -> Redactor:
    """The bot's own secrets, plus the values the stack sets in its containers and its .env file."""
    from infra.compose import dotenv_mask_values

    values: list[str] = list(ctx.engine.redactor.secrets)
    for c in found:
        values += await host.stack_env_values(c.id)
    values += dotenv_mask_values(ctx.config.stack_dir(stack) / ".env")
    return Redactor(values)


@command("logs", summary="recent log lines, secrets redacted",
         args=(SERVICE, ENV, STACK_KV,
               Arg("tail", Kind.integer, required=False, positional=False, default=50, minimum=1,
                   maximum=5000, help="number of lines"),
               Arg("since", Kind.duration, required=False, positional=False,
                   help="15m, 2h, 1d or an ISO date")),
         backend="docker", examples=("logs nginx live tail=200 since=30m", "logs n8n dev"),
         on_alert=True,
         phrasing=Phrasing(
             nouns=("logs", "log", "logfile", "log output", "tail", "log lines", "journal", "logging", "lines"),
             hints=("errors", "output", "saying", "complaining", "write", "wrote", "writing", "printed",
                    "print", "logged", "say", "said", "spitting out", "warnings", "spit out", "spat out", "spewed",
                    "spewing", "emitted", "emit", "dumped", "outputted"),
             formats=("what is {service} saying", "what did {service} write", "what did {service} say",
                      "what has {service} logged", "what did {service} log")))
async def logs(ctx: Context, args: dict[str, Any]) -> Reply:
    """Bounded log lines with secrets masked; long output comes as an attachment."""
    from commands.docker_ops import host_for

    env, service = args["env"], args["service"]
    tail = min(int(args.get("tail") or 50), ctx.config.inventory.limits.max_log_lines)
    since = parse_since(str(args["since"])) if args.get("since") else None
    if args.get("since") and since is None:
        raise CommandError(f"'{args['since']}' is not a duration (15m, 2h, 1d) or an ISO date.")
    host = host_for(ctx, env)
    stack, found = await _service_containers(ctx, host, service, env, args.get("stack"))
    redactor = await _log_redactor(ctx, host, stack, found)
    chunks = []
    for c in found:
        text = (await host.logs(c.id, tail, since))[-MAX_LOG_BYTES:]
        lines = text.splitlines()
        if len(found) > 1:
            lines = [f"{c.name} | {ln}" for ln in lines]
        chunks.extend(lines)
    clean = redactor.text("\n".join(chunks))
    lines = clean.splitlines()
    scope = f"{service} ({stack}) on {env}, last {tail} lines" + (f" since {args['since']}" if since else "")
    if not lines:
        return Reply(f"No log lines for {scope}.")
    if len(lines) <= INLINE_LINES and len(clean) <= INLINE_CHARS:
        return Reply(f"{scope}:\n```\n{clean}\n```")
    shown = "\n".join(lines[-20:])[-INLINE_CHARS:]
    name = f"{service}-{env}-logs.txt"
    return Reply(f"{scope}: {len(lines)} lines, attached as {name}; the last 20:\n```\n{shown}\n```",
                 attachments=[Attachment(name, clean.encode(), "text/plain", title=scope)])
