"""Proxmox guests: snapshots, restore, status, and the checkpoint a deploy can ask for.

Snapshots the bot takes carry a marker in their Proxmox description
(`[chatops request=r-… by=slack:U…]`): that is how `snapshots` tells them apart and how
the audit log and Proxmox point at each other.  The checkpoints the bot takes by itself
before a deploy say so in the marker (`[chatops checkpoint request=… by=…]`), and only
those are ever pruned by retention: a snapshot a person asked for (`snapshot … name=…`,
or with a generated name) stays until someone deletes it on purpose.  Every deletion a
change will make is on its card before anyone confirms or approves it, and the run
deletes nothing its card did not name.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.request import Reply, Table, Tone
from commands.args import SNAPSHOT, VM, VM_OPT
from commands.context import Context
from commands.llm_guard import with_llm_guard
from commands.registry import Arg, Kind, Phrasing, command
from infra.errors import CannotSucceed, CommandError
from infra.proxmox import (
    CURRENT,
    SNAPSHOT_NAME,
    Guest,
    GuestStatus,
    ProxmoxClient,
    Snapshot,
    SnapshotList,
    TaskResult,
    guest_of,
)
from infra.wording import counted, plural

MARKER = re.compile(r"\[chatops (?:(?P<kind>checkpoint|scheduled) )?(?:schedule=(?P<sid>[\w-]+) )?"
                    r"request=(?P<rid>[\w-]+) by=(?P<actor>[^\s\]]+)\]")
# Checkpoints taken before this bot marked them as such: their generated names say so.
OLD_CHECKPOINT = re.compile(r"^predeploy-\d{8}-\d{6}-")
CHECKPOINT = "checkpoint"
SCHEDULED = "scheduled"
TRUE_WORDS = frozenset({"yes", "y", "true", "on", "1", "ram", "with-ram"})
FALSE_WORDS = frozenset({"no", "n", "false", "off", "0"})
MAX_DESCRIPTION = 200


# -- helpers ----------------------------------------------------------------
def marker(request_id: str, actor: str, checkpoint: bool = False, series: str | None = None) -> str:
    """What the bot writes into a snapshot's description: who asked, and whether retention may prune it.

    `checkpoint`: taken before a deploy; `series`: a schedule's unnamed run (`scheduled schedule=ID`).
    """
    kind = f"{CHECKPOINT} " if checkpoint else f"{SCHEDULED} schedule={series} " if series else ""
    return f"[chatops {kind}request={request_id} by={actor}]"


def made_by_bot(snap: Snapshot) -> re.Match[str] | None:
    return MARKER.search(snap.description)


def is_checkpoint(snap: Snapshot) -> bool:
    """One of the bot's automatic checkpoints: the only snapshots retention may delete."""
    m = made_by_bot(snap)
    return bool(m and (m.group("kind") == CHECKPOINT or OLD_CHECKPOINT.match(snap.name)))


def is_automatic(snap: Snapshot) -> bool:
    """Taken without a person naming it: a deploy checkpoint or a schedule's run; retention's only prey."""
    m = made_by_bot(snap)
    return is_checkpoint(snap) or bool(m and m.group("kind") == SCHEDULED)


def in_series(snap: Snapshot, series: str) -> bool:
    """A snapshot one schedule took under a generated name: pruned among that schedule's own only."""
    m = made_by_bot(snap)
    return bool(m and m.group("kind") == SCHEDULED and m.group("sid") == series)


def user_description(snap: Snapshot) -> str:
    return " ".join(MARKER.sub("", snap.description).split())


def generated_name(actor_name: str, prefix: str = "chatops", now: datetime | None = None) -> str:
    """`chatops-20250114-093000-alice`: sortable, says who, fits Proxmox's 40 characters."""
    slug = re.sub(r"[^A-Za-z0-9]", "", actor_name)[:12] or "user"
    return f"{prefix}-{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}-{slug}"[:40]


def checked_name(name: str) -> str:
    """The name as Proxmox will take it, or CannotSucceed saying why Proxmox would refuse it."""
    if name.lower() == CURRENT:
        raise CannotSucceed("'current' is Proxmox's name for the running state; pick another snapshot name.")
    if not SNAPSHOT_NAME.match(name):
        raise CannotSucceed(f"Snapshot name '{name[:60]}' is not allowed by Proxmox: 2 to 40 letters, digits, "
                            "'-' or '_', starting with a letter.")
    return name


def parse_flag(value: Any, name: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    v = str(value).strip().lower()
    if v in TRUE_WORDS:
        return True
    if v in FALSE_WORDS:
        return False
    raise CommandError(f"{name} takes yes or no, not '{value}'.")


def stamp(when: datetime | None) -> str:
    return f"{when:%Y-%m-%d %H:%M} UTC" if when else "(time unknown)"


def span(seconds: float) -> str:
    s = max(0, int(seconds))
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m}m"
    return f"{m}m" if m else f"{s}s"


def ago(when: datetime | None) -> str:
    return f"{span((datetime.now(UTC) - when).total_seconds())} ago" if when else "at an unknown time"


def gib(n: int) -> str:
    return f"{n / 1024**3:.1f}"


def _client(ctx: Context) -> ProxmoxClient:
    client: ProxmoxClient = ctx.backends.proxmox()
    return client


def _missing(guest: Guest, name: str, snaps: SnapshotList) -> CannotSucceed:
    names = ", ".join(s.name for s in snaps.snapshots[-10:]) or "none"
    return CannotSucceed(f"{guest.name} has no snapshot '{name}'. Its snapshots: {names}.")


async def _audit(ctx: Context, kind: str, detail: dict[str, Any]) -> None:
    """A structured audit event of its own (retention, checkpoint) next to the progress lines."""
    if ctx.request_id:
        clean = ctx.engine.redactor.data(detail)
        await asyncio.to_thread(ctx.store.note, ctx.request_id, kind, ctx.actor.id, clean)


# -- snapshot creation and retention -----------------------------------------
@dataclass
class Taken:
    guest: Guest
    name: str
    vmstate: bool
    task: TaskResult
    pruned: list[str]
    prune_error: str | None


async def take_snapshot(ctx: Context, guest: Guest, name: str, note: str, vmstate: bool = False,
                        checkpoint: bool = False, series: str | None = None) -> Taken:
    """Create a marked snapshot and follow its task; after an automatic one (a checkpoint, or a
    schedule's unnamed run), apply retention among its own kind as a step of its own."""
    client = _client(ctx)
    mark = marker(ctx.request_id or "none", ctx.actor.id, checkpoint, series)
    description = " ".join(f"{note} {mark}".split())
    task = await client.create_snapshot(guest, name, description, vmstate=vmstate, progress=ctx.progress)
    pruned: list[str] = []
    error = None
    if checkpoint or series:
        pruned, error = await prune(ctx, client, guest, keep=ctx.config.inventory.proxmox.snapshot_retention,
                                    protect=name, series=series)
    return Taken(guest, name, vmstate, task, pruned, error)


def doomed(snaps: SnapshotList, keep: int, adding: int = 1, series: str | None = None) -> list[Snapshot]:
    """The automatic snapshots retention deletes once `adding` more are taken: the oldest beyond `keep`
    among the deploy checkpoints, or among one schedule's own (`series`)."""
    if keep <= 0:
        return []
    ours = [s for s in snaps.snapshots if (in_series(s, series) if series else is_checkpoint(s))]
    return ours[:max(0, len(ours) + adding - keep)]


def named(name: str, lines: list[str]) -> bool:
    """Whether a card's lines name this snapshot (as a word of its own)."""
    word = re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])")
    return any(word.search(line) for line in lines)


async def prune(ctx: Context, client: ProxmoxClient, guest: Guest, keep: int,
                protect: str, series: str | None = None) -> tuple[list[str], str | None]:
    """Delete the oldest checkpoints beyond `keep`; each deletion is audited.

    Only checkpoints the request's card named are deleted (`ctx.card`; a run nobody saw a
    card for, e.g. `--yes` on an open environment, has none and prunes as configured).
    Returns the names deleted and, if a deletion failed, why (the rest are left alone).
    """
    if keep <= 0:
        return [], None
    try:
        snaps = await client.snapshots(guest)
    except CommandError as exc:
        await ctx.progress(f"Retention on {guest.name} skipped: could not list snapshots ({exc}).")
        return [], f"retention skipped: {exc}"
    excess = [s for s in doomed(snaps, keep, adding=0, series=series) if s.name != protect]
    if ctx.card is not None:
        unseen = [s.name for s in excess if not named(s.name, ctx.card)]
        if unseen:
            await ctx.progress(f"Retention on {guest.name}: keeping {', '.join(unseen)} (not on the card "
                               "that was approved); delete by hand if no longer needed.")
        excess = [s for s in excess if named(s.name, ctx.card)]
    deleted: list[str] = []
    for snap in excess:
        try:
            task = await client.delete_snapshot(guest, snap.name)
        except CommandError as exc:
            await _audit(ctx, "retention", {"vm": guest.name, "snapshot": snap.name, "outcome": "failed",
                                            "error": str(exc)})
            await ctx.progress(f"Retention: could not delete checkpoint {snap.name} of {guest.name}: {exc}")
            return deleted, f"could not delete old checkpoint {snap.name}: {exc}"
        deleted.append(snap.name)
        await _audit(ctx, "retention", {"vm": guest.name, "snapshot": snap.name, "outcome": "deleted",
                                        "upid": task.upid, "exitstatus": task.exitstatus})
        await ctx.progress(f"Retention: deleted checkpoint {snap.name} of {guest.name} (taken "
                           f"{stamp(snap.taken)}; keeping the newest {keep}).")
    return deleted, None


def _taken_reply(t: Taken) -> Reply:
    lines = [f"Snapshot {t.name} of {t.guest.name} taken"
             + (" with RAM state" if t.vmstate else "") + f" (task exit status {t.task.exitstatus}, "
             f"{t.task.seconds:.0f}s). Restore with: restore {t.guest.name} {t.name}"]
    if t.pruned:
        lines.append(f"Retention deleted {', '.join(t.pruned)} (older automatic snapshots of this series).")
    if t.prune_error:
        lines.append(f"Retention: {t.prune_error}.")
    return Reply("\n".join(lines), tone=Tone.success, title=f"Snapshot {t.name}",
                 fields=[("VM", t.guest.label), ("Snapshot", t.name), ("Task", t.task.upid)])


# -- commands -----------------------------------------------------------------
async def snapshot_preview(ctx: Context, args: dict[str, Any]) -> list[str]:
    """The snapshot that will be taken; refused here when Proxmox would refuse it."""
    guest = guest_of(ctx.config, args["vm"])
    ram = parse_flag(args.get("ram"), "ram")
    if ram and guest.kind != "qemu":
        raise CannotSucceed(f"{guest.name} is an LXC container: it has no RAM state to save. Leave out ram=.")
    given = checked_name(args["name"]) if args.get("name") else None
    there = (await _client(ctx).snapshots(guest)).get(given) if given else None
    if there is not None:
        raise CannotSucceed(f"{guest.name} already has a snapshot named '{there.name}' (taken "
                            f"{stamp(there.taken)}); pick another name.")
    name = given or f"{generated_name(ctx.actor.name)} (the time of the run)"
    take = f"Take snapshot {name} of {guest.label}" + (" with its RAM state" if ram else "") + "."
    keep = ctx.config.inventory.proxmox.snapshot_retention
    if ctx.request.schedule and not given and keep > 0:
        return [take, f"Each run keeps the newest {keep} snapshots this schedule took and deletes its older "
                      "ones; snapshots people name, and the deploy checkpoints, are never touched by it."]
    return [take, "Nothing is deleted: snapshots people ask for are kept until someone deletes them."]


@command("snapshot", summary="create a Proxmox snapshot (name generated when absent)",
         args=(VM, Arg("name", Kind.word, required=False, positional=False, help="snapshot name",
                       cues=("called", "named", "name", "as", "label", "labelled", "labeled", "tagged", "call")),
               Arg("description", Kind.text, required=False, positional=False, help="description",
                   cues=("description", "described as", "desc", "note", "comment")),
               Arg("ram", Kind.word, required=False, positional=False,
                   help="yes: include the RAM state (QEMU VMs only)")),
         changes=True, backend="proxmox",
         examples=("snapshot rumpleprod name=pre-upgrade", "snapshot dev vm", "snapshot rumpletest ram=yes"),
         preview=snapshot_preview,
         phrasing=Phrasing(
             verbs=("snapshot", "checkpoint", "snap", "back up", "backup"),
             nouns=("snapshot", "checkpoint", "snap", "backup"),
             object_verbs=("take", "make", "create", "grab", "cut", "capture", "add", "save", "do", "new"),
             past=("snapshotted", "checkpointed", "backed up")))
async def snapshot(ctx: Context, args: dict[str, Any]) -> Reply:
    """Snapshot a guest; the name defaults to time and requester, the description carries the request id."""
    guest = guest_of(ctx.config, args["vm"])
    # A scheduled run is named after its occurrence ("the 02:00 snapshot"), whenever it started.
    name = checked_name(args["name"]) if args.get("name") else \
        generated_name(ctx.actor.name, now=ctx.request.scheduled_for)
    vmstate = parse_flag(args.get("ram"), "ram")
    if vmstate and guest.kind != "qemu":
        raise CannotSucceed(f"{guest.name} is an LXC container: it has no RAM state to save. Leave out ram=.")
    note = str(args.get("description") or "")[:MAX_DESCRIPTION]
    # A schedule's unnamed runs are a series retention keeps short; a name someone gave is kept.
    series = ctx.request.schedule if not args.get("name") else None
    return _taken_reply(await take_snapshot(ctx, guest, name, note, vmstate, series=series))


@command("snapshots", summary="list a VM's snapshots", args=(VM,), backend="proxmox",
         examples=("snapshots rumpledev",),
         phrasing=Phrasing(
             nouns=("snapshots", "checkpoints", "snaps", "backups", "restore points", "recovery points"),
             object_verbs=("list", "show", "see", "view", "display", "which", "what", "any", "are there", "have",
                           "existing", "available", "all", "check", "find"),
             objects=("snapshot",)))
async def snapshots(ctx: Context, args: dict[str, Any]) -> Reply:
    """Name, time, description and parent of each snapshot; bot-made ones are marked."""
    guest = guest_of(ctx.config, args["vm"])
    snaps = await _client(ctx).snapshots(guest)
    if not snaps.snapshots:
        return Reply(f"{guest.label} has no snapshots yet.", title=f"Snapshots of {guest.name}")
    rows = []
    for s in reversed(snaps.snapshots):  # newest first
        m = made_by_bot(s)
        here = " (current state is based on this)" if s.name == snaps.current_parent else ""
        kind = "checkpoint" if is_checkpoint(s) else f"schedule {m.group('sid')}" if m and m.group("sid") else "bot"
        made = f"{kind} for {m.group('actor')}" if m else ""
        rows.append([s.name + here, stamp(s.taken), made,
                     s.parent or "", user_description(s)[:80] + (" [RAM]" if s.vmstate else "")])
    ours = sum(1 for s in snaps.snapshots if made_by_bot(s))
    auto = sum(1 for s in snaps.snapshots if is_automatic(s))
    keep = ctx.config.inventory.proxmox.snapshot_retention
    text = (f"{counted(len(snaps.snapshots), 'snapshot')} of {guest.label}, {ours} made by the bot, {auto} of them "
            f"automatic checkpoints (taken before a deploy or by a schedule; retention keeps "
            f"{f'the newest {keep}' if keep else 'all'} of each kind; the others stay until someone deletes them).")
    return Reply(text, title=f"Snapshots of {guest.name}",
                 tables=[Table(["Snapshot", "Taken", "Made by", "Parent", "Description"], rows)])


async def restore_preview(ctx: Context, args: dict[str, Any]) -> list[str]:
    """What a rollback costs: the snapshot's time and that everything since is lost."""
    guest = guest_of(ctx.config, args["vm"])
    snaps = await _client(ctx).snapshots(guest)
    snap = snaps.get(args["snapshot"])
    if snap is None:
        raise _missing(guest, args["snapshot"], snaps)
    lines = [f"Roll {guest.label} back to snapshot {snap.name}, taken {stamp(snap.taken)} ({ago(snap.taken)}).",
             f"Everything on {guest.name} since {stamp(snap.taken)} is lost: files, databases and "
             "configuration changed after it."]
    if snap.vmstate:
        lines.append("The snapshot holds RAM state: the VM resumes as it was running then.")
    else:
        lines.append("The snapshot holds no RAM state: the guest is not running after the rollback; "
                     "start it again when ready.")
    desc = user_description(snap)
    if desc:
        lines.append(f"Snapshot description: {desc[:120]}")
    return lines


async def _named_snapshot(ctx: Context, args: dict[str, Any]) -> tuple[Guest, ProxmoxClient, Snapshot]:
    """The guest, the client and the snapshot the user named; a clear error if it doesn't exist."""
    guest = guest_of(ctx.config, args["vm"])
    client = _client(ctx)
    snaps = await client.snapshots(guest)
    snap = snaps.get(args["snapshot"])
    if snap is None:
        raise _missing(guest, args["snapshot"], snaps)
    return guest, client, snap


@command("restore", summary="roll a VM back to a snapshot", args=(VM, SNAPSHOT), changes=True,
         backend="proxmox", examples=("restore rumpledev pre-upgrade",), words=("revert",),
         preview=with_llm_guard("restore", restore_preview),
         phrasing=Phrasing(
             verbs=("restore", "restoring", "reset to", "revert", "roll back", "go back", "bring back", "put back",
                    "take back", "set back", "get back", "return to"),
             nouns=("restore", "restores", "snapshot restore"),
             object_verbs=("restore", "revert", "roll back", "rollback", "go back", "reset", "back to", "return",
                           "return to", "go back to"),
             objects=("snapshot",),
             past=("restored", "reverted")))
async def restore(ctx: Context, args: dict[str, Any]) -> Reply:
    """Roll a guest back to a snapshot; everything since that snapshot is lost."""
    guest, client, snap = await _named_snapshot(ctx, args)
    task = await client.rollback(guest, snap.name, progress=ctx.progress)
    text = (f"Rolled {guest.name} back to {snap.name} (taken {stamp(snap.taken)}); task exit status "
            f"{task.exitstatus}.")
    try:
        st = await client.status(guest)
        text += f" {guest.name} is now {st.status}."
    except CommandError as exc:
        text += f" Its state afterwards could not be read: {exc}"
    return Reply(text, tone=Tone.success, title=f"Restored {guest.name}",
                 fields=[("VM", guest.label), ("Snapshot", snap.name), ("Task", task.upid)])


async def delete_preview(ctx: Context, args: dict[str, Any]) -> list[str]:
    """Which snapshot goes, when it was taken and by whom; refused here when there is no such snapshot."""
    guest = guest_of(ctx.config, args["vm"])
    snaps = await _client(ctx).snapshots(guest)
    snap = snaps.get(args["snapshot"])
    if snap is None:
        raise _missing(guest, args["snapshot"], snaps)
    m = made_by_bot(snap)
    if m is None:
        origin = "made outside the bot"
    elif is_checkpoint(snap):
        origin = f"an automatic checkpoint the bot took (deploy by {m.group('actor')})"
    else:
        origin = f"taken through the bot for {m.group('actor')}"
    lines = [f"Delete snapshot {snap.name} of {guest.label}, taken {stamp(snap.taken)} ({ago(snap.taken)}), "
             f"{origin}. The guest itself is not touched; 'restore {guest.name} {snap.name}' is no longer "
             "possible afterwards."]
    desc = user_description(snap)
    if desc:
        lines.append(f"Snapshot description: {desc[:120]}")
    if snaps.current_parent == snap.name:
        lines.append(f"The current state descends from this snapshot; afterwards it descends from "
                     f"{snap.parent or 'no snapshot'}.")
    return lines


@command("delete-snapshot", summary="delete a snapshot", args=(VM, SNAPSHOT), changes=True,
         backend="proxmox", examples=("delete-snapshot rumpledev pre-upgrade",),
         words=("delete snapshot", "remove snapshot"), preview=delete_preview,
         phrasing=Phrasing(
             verbs=("delete snapshot", "remove snapshot", "delete-snapshot"),
             object_verbs=("delete", "remove", "drop", "purge", "erase", "destroy", "rm", "prune", "clean",
                           "clean up", "get rid of", "nuke", "trash", "discard", "clear", "delete the"),
             objects=("snapshot", "snapshots"),
             past=("deleted", "removed")))
async def delete_snapshot(ctx: Context, args: dict[str, Any]) -> Reply:
    """Delete one snapshot of a guest (the guest itself is untouched)."""
    guest, client, snap = await _named_snapshot(ctx, args)
    task = await client.delete_snapshot(guest, snap.name, progress=ctx.progress)
    return Reply(f"Deleted snapshot {snap.name} of {guest.name} (taken {stamp(snap.taken)}); task exit "
                 f"status {task.exitstatus}.", tone=Tone.success, title=f"Deleted {snap.name}",
                 fields=[("VM", guest.label), ("Task", task.upid)])


def _status_row(st: GuestStatus) -> list[str]:
    state = st.status + (f" (locked: {st.lock})" if st.lock else "")
    running = st.status == "running"
    pct = f"{st.mem / st.maxmem:.0%}" if st.maxmem else "?"
    return [st.guest.name, f"{st.guest.kind} {st.guest.vmid}", state,
            span(st.uptime_s) if running else "-",
            f"{st.cpu:.1%} of {st.cpus:g} CPU" if running else "-",
            f"{gib(st.mem)} / {gib(st.maxmem)} GiB ({pct})" if running else f"- / {gib(st.maxmem)} GiB"]


@command("vm-status", summary="state, uptime, CPU and memory of VMs", args=(VM_OPT,),
         backend="proxmox", examples=("vm-status", "vm-status rumpleprod"),
         words=("vm status", "vms"),
         phrasing=Phrasing(nouns=("vm status", "vm-status", "vms", "virtual machines", "vm", "guests", "proxmox status",
                                  "lxc", "lxcs", "virtual machine", "memory usage", "cpu usage", "ram usage",
                                  "load average", "disk usage"),
                           hints=("proxmox", "status", "state", "up", "down", "running", "doing", "alive", "ok", "fine",
                                  "healthy", "uptime", "memory", "cpu", "how is", "how are", "looking", "loaded",
                                  "load", "busy", "ram"),
                           answers_state=True))
async def vm_status(ctx: Context, args: dict[str, Any]) -> Reply:
    """One guest or every guest in the inventory; a guest that cannot be read is shown as such."""
    names = [args["vm"]] if args.get("vm") else list(ctx.config.inventory.vms)
    guests = [guest_of(ctx.config, n) for n in names]
    client = _client(ctx)
    results = await asyncio.gather(*(client.status(g) for g in guests), return_exceptions=True)
    rows, failed = [], []
    for g, r in zip(guests, results, strict=True):
        if isinstance(r, CommandError):
            failed.append((g, r))
            rows.append([g.name, f"{g.kind} {g.vmid}", f"unknown: {r}", "-", "-", "-"])
        elif isinstance(r, BaseException):
            raise r
        else:
            rows.append(_status_row(r))
    if failed and len(failed) == len(guests):
        raise failed[0][1]
    table = Table(["VM", "Guest", "State", "Uptime", "CPU", "Memory"], rows)
    if failed:
        return Reply(f"Could not read {len(failed)} of {len(guests)} guests: "
                     + "; ".join(f"{g.name}: {e}" for g, e in failed), tone=Tone.warning,
                     title="VM status", tables=[table])
    running = sum(1 for r in results if isinstance(r, GuestStatus) and r.status == "running")
    return Reply(f"{running} of {counted(len(guests), 'guest')} running.", title="VM status", tables=[table])


# -- checkpoint before deploy --------------------------------------------------
async def checkpoint_before_deploy(ctx: Context, env: str) -> str | None:
    """Snapshot the environment's VM when its config asks for a checkpoint before each deploy.

    Returns the line for the deploy's reply, or None when no checkpoint is configured.
    Raises CommandError when one is configured but could not be taken: the deploy
    must not go ahead without the safety net it was promised.  The audit row of the
    calling request gets a `checkpoint` event naming the VM and snapshot.
    """
    cfg = ctx.config.inventory.environments.get(env)
    if cfg is None or not cfg.checkpoint_before_deploy or not cfg.vm:
        return None
    guest = guest_of(ctx.config, cfg.vm)
    name = generated_name(ctx.actor.name, prefix="predeploy")
    await ctx.progress(f"Checkpoint: taking snapshot {name} of {guest.name} before deploying to {env}.")
    try:
        taken = await take_snapshot(ctx, guest, name, f"checkpoint before deploy to {env}", checkpoint=True)
    except CommandError as exc:
        await _audit(ctx, "checkpoint", {"env": env, "vm": guest.name, "snapshot": name, "outcome": "failed",
                                         "error": str(exc)})
        raise CommandError(f"The checkpoint snapshot of {guest.name} that {env} asks for before each deploy "
                           f"failed, so nothing was deployed: {exc}") from None
    await _audit(ctx, "checkpoint", {"env": env, "vm": guest.name, "snapshot": name, "outcome": "taken",
                                     "upid": taken.task.upid})
    line = f"Checkpoint snapshot {name} of {guest.name} taken; restore with: restore {guest.name} {name}"
    if taken.pruned:
        line += f". Retention deleted the older {plural(len(taken.pruned), 'checkpoint')} {', '.join(taken.pruned)}"
    if taken.prune_error:
        line += f" (retention did not finish: {taken.prune_error})"
    return line


async def checkpoint_preview(ctx: Context, env: str) -> list[str]:
    """The deploy card's lines for its checkpoint: the snapshot taken and every checkpoint retention deletes."""
    cfg = ctx.config.inventory.environments.get(env)
    if cfg is None or not cfg.checkpoint_before_deploy or not cfg.vm:
        return []
    guest = guest_of(ctx.config, cfg.vm)
    lines = [f"First a checkpoint snapshot of VM {guest.name} is taken (predeploy-<date>-<time>-"
             f"{generated_name(ctx.actor.name).rsplit('-', 1)[-1]}); the reply says how to restore it."]
    keep = ctx.config.inventory.proxmox.snapshot_retention
    if keep <= 0:
        return lines
    try:
        snaps = await _client(ctx).snapshots(guest)
    except CommandError as exc:
        return [*lines, f"Retention (newest {keep} checkpoints of {guest.name}) could not be worked out: {exc}. "
                        "No checkpoint is deleted unless this card names it."]
    gone = doomed(snaps, keep)
    if gone:
        lines.append(f"Retention keeps the newest {keep} automatic checkpoints of {guest.name}, so it deletes: "
                     + ", ".join(f"{s.name} (taken {stamp(s.taken)})" for s in gone)
                     + ". Snapshots people took are kept.")
    return lines
