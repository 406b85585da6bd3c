"""Proxmox VE client: snapshots, rollback and guest status over the HTTPS API (proxmoxer).

proxmoxer is synchronous, so every call runs in a worker thread.  Changing calls
return a task id (UPID) that is followed to its end: the caller gets the task's
real exit status, or a clear error when it failed, ran past the timeout, or the
connection dropped while it ran.  Nothing here knows about chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from infra.config import Config, Proxmox
from infra.errors import BackendUnavailable, CommandError, NotConfigured
from infra.wording import agrees, join_choices

if TYPE_CHECKING:  # proxmoxer and requests load with the first client, not with `chatops parse`
    from proxmoxer import ResourceException


class Progress(Protocol):
    """Where a task's steps go: `text` for people, `detail` (the task id) for the audit log only."""

    def __call__(self, text: str, **detail: Any) -> Awaitable[None]: ...


GuestKind = Literal["qemu", "lxc"]
TOKEN_ID = re.compile(r"^(?P<user>[^@!\s]+@[^@!\s]+)!(?P<name>[A-Za-z][A-Za-z0-9._-]*)$")
# Proxmox's own rule for snapshot names (pve-configid, at most 40 characters).
SNAPSHOT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{1,39}$")
CURRENT = "current"  # the pseudo-snapshot Proxmox lists for "you are here"
LOG_LINES_REPORTED = 20
# What pveproxy answers for a task log with no lines yet (one line, n=1); not a step of the task.
NO_CONTENT = "no content"
# Consecutive failed status polls tolerated before the task is reported as lost.
MAX_POLL_FAILURES = 3


class ProxmoxError(CommandError):
    """A Proxmox refusal or failure, with a message fit for chat."""


class TaskFailed(ProxmoxError):
    def __init__(self, message: str, upid: str, exitstatus: str) -> None:
        super().__init__(message)
        self.upid = upid
        self.exitstatus = exitstatus


@dataclass(frozen=True)
class Guest:
    """One Proxmox guest from the inventory."""

    name: str
    node: str
    kind: GuestKind
    vmid: int

    @property
    def label(self) -> str:
        return f"{self.name} ({self.kind} {self.vmid} on {self.node})"


@dataclass(frozen=True)
class Snapshot:
    name: str
    taken: datetime | None
    description: str
    parent: str | None
    vmstate: bool


@dataclass(frozen=True)
class SnapshotList:
    snapshots: list[Snapshot]  # the `current` pseudo-snapshot removed
    current_parent: str | None  # the snapshot the running state descends from

    def get(self, name: str) -> Snapshot | None:
        return next((s for s in self.snapshots if s.name == name), None)


@dataclass(frozen=True)
class GuestStatus:
    guest: Guest
    status: str  # running | stopped | paused ...
    uptime_s: int
    cpu: float  # fraction of the allotted CPUs, 0..1
    cpus: float
    mem: int
    maxmem: int
    lock: str | None


@dataclass(frozen=True)
class TaskResult:
    upid: str
    exitstatus: str
    seconds: float

    @property
    def warnings(self) -> bool:
        return self.exitstatus.startswith("WARNINGS")


def parse_token_id(token_id: str) -> tuple[str, str]:
    """`user@realm!tokenid` → (`user@realm`, `tokenid`), or NotConfigured naming the key."""
    m = TOKEN_ID.match(token_id.strip())
    if not m:
        raise NotConfigured(f"proxmox.token_id '{token_id}' is not of the form user@realm!tokenid "
                            "(e.g. chatops@pve!bot).")
    return m.group("user"), m.group("name")


def describe_error(exc: ResourceException, what: str, guest: Guest | None = None) -> CommandError:
    """Map a Proxmox HTTP error to a message that says what went wrong and what to do."""
    code = exc.status_code
    detail = " ".join(str(exc.content or "").split())
    if isinstance(exc.errors, dict):  # parameter errors: {"snapname": "invalid format", ...}
        extra = "; ".join(f"{k}: {v}" for k, v in exc.errors.items() if isinstance(v, str) and v.strip())
        detail = f"{detail} ({extra})" if extra else detail
    where = f" on {guest.label}" if guest else ""
    if code == 401:
        return BackendUnavailable(
            f"Proxmox rejected the API token while trying to {what} (401 {detail or 'unauthorized'}). "
            "Check proxmox.token_id and proxmox.token_secret, and that the token has not expired.")
    if code == 403:
        return ProxmoxError(
            f"Proxmox denied permission to {what}{where}: {detail or 'permission check failed'}. "
            "Give the API token that privilege on the guest (see docs/proxmox.md).")
    return classify(detail or f"HTTP {code}", what, guest)


def classify(message: str, what: str, guest: Guest | None = None) -> ProxmoxError:
    """Turn a Proxmox error text (HTTP reason or task exit status) into a clear message."""
    where = f" on {guest.label}" if guest else ""
    low = message.lower()
    if "already used" in low or "already exists" in low:
        return ProxmoxError(f"Could not {what}: a snapshot with that name already exists{where} "
                            f"(Proxmox: {message}). Pick another name.")
    if "is locked" in low:
        return ProxmoxError(f"Could not {what}: the guest is locked by another operation{where} "
                            f"(Proxmox: {message}). Wait for it to finish, then try again.")
    if "does not exist" in low or "not found" in low or "no such" in low:
        return ProxmoxError(f"Could not {what}: not found{where} (Proxmox: {message}).")
    return ProxmoxError(f"Could not {what}{where}: Proxmox said: {message}")


class ProxmoxClient:
    """Async facade over proxmoxer for the few endpoints the bot uses."""

    def __init__(self, host: str, token_id: str, token_secret: str, *, verify_ssl: bool = True,
                 ca_bundle: str | None = None, timeout_s: float = 30.0, task_timeout_s: float = 600.0,
                 poll_s: float = 1.0) -> None:
        user, token_name = parse_token_id(token_id)
        self.host = host
        self.token_id = token_id
        self.task_timeout_s = task_timeout_s
        self.poll_s = poll_s
        from proxmoxer import ProxmoxAPI

        verify: bool | str = (ca_bundle or True) if verify_ssl else False
        self._api = ProxmoxAPI(host, backend="https", user=user, token_name=token_name,
                               token_value=token_secret, verify_ssl=verify, timeout=timeout_s)

    @classmethod
    def from_config(cls, cfg: Proxmox) -> ProxmoxClient:
        if not cfg.host or not cfg.token_id or cfg.token_secret is None:
            raise NotConfigured("Proxmox needs proxmox.host, proxmox.token_id and proxmox.token_secret.")
        return cls(cfg.host, cfg.token_id, cfg.token_secret.get_secret_value(), verify_ssl=cfg.verify_ssl,
                   ca_bundle=cfg.ca_bundle, timeout_s=cfg.timeout_s, task_timeout_s=cfg.task_timeout_s,
                   poll_s=cfg.poll_s)

    def __repr__(self) -> str:  # never the secret
        return f"ProxmoxClient({self.host}, {self.token_id})"

    # -- plumbing ---------------------------------------------------------
    async def _call(self, what: str, fn: Callable[[], Any], guest: Guest | None = None) -> Any:
        import requests
        from proxmoxer import ResourceException

        try:
            return await asyncio.to_thread(fn)
        except ResourceException as exc:
            raise describe_error(exc, what, guest) from None
        except requests.exceptions.SSLError as exc:
            raise BackendUnavailable(
                f"TLS verification of Proxmox at {self.host} failed while trying to {what}: "
                f"{_short(exc)}. Set proxmox.ca_bundle to the CA that signed its certificate.") from None
        except requests.exceptions.Timeout:
            raise BackendUnavailable(f"Proxmox at {self.host} did not answer in time while trying to "
                                     f"{what}.") from None
        except requests.exceptions.RequestException as exc:
            raise BackendUnavailable(f"Proxmox at {self.host} is unreachable while trying to {what}: "
                                     f"{_short(exc)}.") from None

    def _guest(self, guest: Guest) -> Any:
        node = self._api.nodes(guest.node)
        return (node.qemu if guest.kind == "qemu" else node.lxc)(guest.vmid)

    # -- reads ------------------------------------------------------------
    async def ping(self) -> str:
        data = await self._call("read its version", lambda: self._api.version.get())
        return f"Proxmox VE {data.get('version', '?')}"

    async def snapshots(self, guest: Guest) -> SnapshotList:
        rows = await self._call("list snapshots", lambda: self._guest(guest).snapshot.get(), guest)
        snaps, parent = [], None
        for r in rows or []:
            if r.get("name") == CURRENT:
                parent = r.get("parent")
                continue
            t = r.get("snaptime")
            snaps.append(Snapshot(
                name=str(r.get("name")), taken=datetime.fromtimestamp(int(t), UTC) if t else None,
                description=str(r.get("description") or "").strip(), parent=r.get("parent"),
                vmstate=bool(int(r.get("vmstate") or 0))))
        snaps.sort(key=lambda s: (s.taken or datetime.min.replace(tzinfo=UTC), s.name))
        return SnapshotList(snaps, parent)

    async def status(self, guest: Guest) -> GuestStatus:
        d = await self._call("read the guest's status", lambda: self._guest(guest).status.current.get(), guest)
        return GuestStatus(guest=guest, status=str(d.get("qmpstatus") or d.get("status") or "unknown"),
                           uptime_s=int(d.get("uptime") or 0), cpu=float(d.get("cpu") or 0.0),
                           cpus=float(d.get("cpus") or 0), mem=int(d.get("mem") or 0),
                           maxmem=int(d.get("maxmem") or 0), lock=d.get("lock"))

    # -- changes (Proxmox tasks) -----------------------------------------
    async def create_snapshot(self, guest: Guest, name: str, description: str, *, vmstate: bool = False,
                              progress: Progress | None = None) -> TaskResult:
        if vmstate and guest.kind != "qemu":
            raise ProxmoxError(f"{guest.name} is an LXC container: it has no RAM state to save.")
        params: dict[str, Any] = {"snapname": name, "description": description}
        if vmstate:
            params["vmstate"] = 1
        what = f"snapshot {guest.name} as '{name}'"
        upid = await self._call(what, lambda: self._guest(guest).snapshot.post(**params), guest)
        return await self.wait(guest, str(upid), what, progress)

    async def rollback(self, guest: Guest, name: str, progress: Progress | None = None) -> TaskResult:
        what = f"roll {guest.name} back to '{name}'"
        upid = await self._call(what, lambda: self._guest(guest).snapshot(name).rollback.post(), guest)
        return await self.wait(guest, str(upid), what, progress)

    async def delete_snapshot(self, guest: Guest, name: str, progress: Progress | None = None) -> TaskResult:
        what = f"delete snapshot '{name}' of {guest.name}"
        upid = await self._call(what, lambda: self._guest(guest).snapshot(name).delete(), guest)
        return await self.wait(guest, str(upid), what, progress)

    async def wait(self, guest: Guest, upid: str, what: str, progress: Progress | None = None) -> TaskResult:
        """Follow a task to its end; report its log as progress; raise on failure or timeout.

        Cancelled (`cancel ID`, a shutdown), it stops following and says that the task itself
        goes on in Proxmox: stopping a rollback half-way would leave the guest broken.
        """
        if not upid.startswith("UPID:"):
            raise ProxmoxError(f"Proxmox answered the request to {what} without a task id ({upid[:80]!r}).")
        try:
            return await self._follow(guest, upid, what, progress)
        except asyncio.CancelledError:
            if progress:
                with contextlib.suppress(Exception):
                    await progress(f"Stopped following the Proxmox task to {what}; Proxmox was not asked to stop "
                                   f"it and it may still finish (task {_task_kind(upid)}).", upid=upid)
            raise

    async def _follow(self, guest: Guest, upid: str, what: str, progress: Progress | None) -> TaskResult:
        node = upid.split(":")[1] or guest.node
        task = self._api.nodes(node).tasks(upid)
        started = time.monotonic()
        if progress:
            await progress(f"Proxmox is working to {what} (task {_task_kind(upid)}).", upid=upid)
        seen, reported, failures = 0, 0, 0
        while True:
            try:
                st = await self._call(f"follow the task to {what}", lambda: task.status.get(), guest)
                failures = 0
            except BackendUnavailable as exc:
                failures += 1
                if failures >= MAX_POLL_FAILURES:
                    raise BackendUnavailable(
                        f"Lost contact with Proxmox while it was working to {what} ({exc}). The task "
                        f"{upid} was started; its outcome is unknown. Check 'snapshots {guest.name}' or "
                        "the task log in Proxmox before trying again.") from None
                st = None
            if st is not None and progress and reported < LOG_LINES_REPORTED:
                try:
                    lines = await self._call("read the task log", functools.partial(task.log.get, start=seen,
                                                                                     limit=50))
                except CommandError:
                    lines = []
                for line in lines or []:
                    n, text = int(line.get("n", seen + 1)), str(line.get("t", "")).strip()
                    if text == NO_CONTENT and n == 1:
                        continue  # Proxmox's stand-in line for a log that is still empty
                    seen = max(seen, n)
                    if text and not text.startswith("TASK ") and reported < LOG_LINES_REPORTED:
                        reported += 1
                        await progress(f"{guest.name}: {text}")
            if st is not None and st.get("status") == "stopped":
                exitstatus = str(st.get("exitstatus") or "unknown")
                elapsed = time.monotonic() - started
                if exitstatus == "OK" or exitstatus.startswith("WARNINGS"):
                    return TaskResult(upid, exitstatus, elapsed)
                err = classify(exitstatus, what, guest)
                raise TaskFailed(f"{err} (task {upid}, exit status: {exitstatus})", upid, exitstatus)
            if time.monotonic() - started >= self.task_timeout_s:
                raise BackendUnavailable(
                    f"The Proxmox task to {what} was still running after {self.task_timeout_s:g}s; the bot "
                    f"stopped waiting, the task was not cancelled and may still finish. Task {upid}: check "
                    f"'snapshots {guest.name}' or the Proxmox task log.")
            await asyncio.sleep(self.poll_s)


def _task_kind(upid: str) -> str:
    """`UPID:node:pid:pstart:start:qmsnapshot:102:user:` → `qmsnapshot 102`: enough to find it in the task list."""
    parts = upid.split(":")
    return " ".join(parts[5:7]) if len(parts) > 7 else upid


def _short(exc: BaseException) -> str:
    """The useful part of a requests/urllib3 error chain, not the whole wrapped repr."""
    text = " ".join(str(exc).split())
    m = re.search(r"\[SSL: [A-Z_]+\][^(')\]]*", text) or re.search(r"Caused by \w+\((?:'[^']*', )?['\"]?([^'\"]+)",
                                                                   text)
    if m:
        return (m.group(1) if m.groups() else m.group(0)).strip()[:200]
    return text[:200] or type(exc).__name__


def build_proxmox(config: Config) -> ProxmoxClient | None:
    """The real client when the config names a host and a token; None otherwise."""
    cfg = config.inventory.proxmox
    if not (cfg.host and cfg.token_id and cfg.token_secret and cfg.token_secret.get_secret_value()):
        return None
    return ProxmoxClient.from_config(cfg)


def proxmox_problem(config: Config) -> str | None:
    """Why a Proxmox section that is partly filled in gives no client (None if empty or complete): the
    settings left empty, and for those that name an unset environment variable, the variables to set."""
    cfg = config.inventory.proxmox
    keys = {"host": cfg.host, "token_id": cfg.token_id,
            "token_secret": cfg.token_secret.get_secret_value() if cfg.token_secret else None}
    missing = [f"proxmox.{k}" for k, v in keys.items() if not v]
    from_env = [k for k in missing if k in config.unset_env]
    if not missing or (len(missing) == len(keys) and not from_env):
        return None
    empty = [k for k in missing if k not in from_env]
    parts = []
    if empty:
        parts.append(f"{join_choices(empty, 'and')} {agrees(len(empty), 'is', 'are')} empty in {config.path.name}")
    if from_env:
        variables = [config.unset_env[k] for k in from_env]
        parts.append(f"{join_choices(variables, 'and')} {agrees(len(variables), 'is', 'are')} not set in the "
                     f"bot's environment ({config.path.name} takes {join_choices(from_env, 'and')} from "
                     f"{agrees(len(variables), 'it', 'them')})")
    state = "not configured" if len(missing) == len(keys) else "only partly configured"
    return f"Proxmox is {state}: {'; '.join(parts)}."


def guest_of(config: Config, vm: str) -> Guest:
    """The inventory's guest; a name the inventory lacks is a clear error, never a guess."""
    cfg = config.inventory.vms.get(vm)
    if cfg is None:
        raise CommandError(f"{vm} is not a Proxmox guest in the inventory.")
    return Guest(name=vm, node=cfg.node, kind=cfg.kind, vmid=cfg.vmid)
