"""Proxmox commands end to end: engine → handler → proxmoxer → HTTPS fake on loopback.

The fake (tests/fakes/proxmox_api.py) speaks the Proxmox API: token auth, a
certificate made for the test and trusted through `proxmox.ca_bundle`, tasks with
UPIDs that take a while, lock the guest and can fail.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from bot.engine import Engine
from bot.request import Actor, Reply, Request, Tone
from commands.vms import checkpoint_before_deploy, generated_name, made_by_bot
from infra.config import Config, Proxmox
from infra.db.models import RequestRow
from infra.db.store import AuditStore, new_request_id
from infra.errors import CommandError, NotConfigured
from infra.proxmox import Guest, ProxmoxClient, parse_token_id, proxmox_problem
from infra.wiring import make_backends
from tests.fakes.proxmox_api import ALL_PRIVILEGES, ProxmoxFake

TOKEN_ID = "chatops@pve!bot"
SECRET = "7f1c9e2a-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
BASE_TIME = int(datetime(2025, 1, 2, 3, 4, tzinfo=UTC).timestamp())


# -- fixtures ------------------------------------------------------------------
def start_fake(folder: Path, config: Config, **kw: Any) -> ProxmoxFake:
    fake = ProxmoxFake(folder, tokens={TOKEN_ID: SECRET}, **kw).start()
    for name, vm in config.inventory.vms.items():
        fake.add_guest(vm.node, vm.kind, vm.vmid, name)
    return fake


@pytest.fixture
def pve(tmp_path: Path, config: Config) -> Iterator[ProxmoxFake]:
    fake = start_fake(tmp_path / "pve", config, task_seconds=0.15)
    yield fake
    fake.stop()


def pve_config(config: Config, fake: ProxmoxFake, *, envs: dict[str, dict[str, Any]] | None = None,
               **proxmox: Any) -> Config:
    """The shipped inventory with its proxmox section pointing at the fake."""
    settings: dict[str, Any] = {"host": fake.host, "token_id": TOKEN_ID, "token_secret": SecretStr(SECRET),
                                "ca_bundle": str(fake.ca_path), "poll_s": 0.03, "task_timeout_s": 10.0,
                                "snapshot_retention": 5, **proxmox}
    update: dict[str, Any] = {"proxmox": Proxmox(**settings)}
    if envs:
        environments = dict(config.inventory.environments)
        for name, change in envs.items():
            environments[name] = environments[name].model_copy(update=change)
        update["environments"] = environments
    return Config(inventory=config.inventory.model_copy(update=update), path=config.path,
                  settings=config.settings)


class Bot:
    """An engine wired from config (make_backends builds the real proxmoxer client)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.progress: list[str] = []
        self.replies: list[Reply] = []

    async def say(self, user: str, text: str, confirmed: bool = True) -> Reply:
        async def sink(r: Reply) -> None:
            self.progress.append(r.text)

        reply = await self.engine.handle(Request(actor=Actor(f"console:{user}"), text=text,
                                                 confirmed=confirmed, on_progress=sink))
        self.replies.append(reply)
        return reply

    async def act(self, action: str, user: str, reply: Reply) -> Reply:
        assert reply.request_id
        out = await self.engine.act(action, reply.request_id, Actor(f"console:{user}"),
                                    reply.buttons[0].plan_hash if reply.buttons else "")
        self.replies.append(out)
        return out

    def row(self, reply: Reply) -> RequestRow:
        assert reply.request_id
        row = self.engine.store.get(reply.request_id)
        assert row is not None
        return row

    def events(self, reply: Reply) -> list[tuple[str, dict[str, Any]]]:
        assert reply.request_id
        return [(e.kind, e.detail) for e in self.engine.store.events(reply.request_id)]


async def make_bot(cfg: Config, store: AuditStore) -> Bot:
    engine = Engine(cfg, store, make_backends(cfg))
    await engine.start()
    return Bot(engine)


@pytest.fixture
async def bot(config: Config, pve: ProxmoxFake, store: AuditStore) -> AsyncIterator[Bot]:
    b = await make_bot(pve_config(config, pve), store)
    yield b
    await b.engine.close()


def everything_said(reply: Reply) -> str:
    parts = [reply.text, reply.title, *(f"{k} {v}" for k, v in reply.fields)]
    for t in reply.tables:
        parts += [" ".join(row) for row in t.rows]
    return "\n".join(parts)


# -- client and wiring ---------------------------------------------------------
async def test_wiring_builds_the_client_and_health_pings_it(config: Config, pve: ProxmoxFake) -> None:
    backends = make_backends(pve_config(config, pve))
    assert isinstance(backends.proxmox(), ProxmoxClient)
    health = {h.name: h for h in await backends.health()}
    assert health["proxmox"].ok is True
    assert health["proxmox"].detail == "Proxmox VE 8.2.4"
    assert f"PVEAPIToken={TOKEN_ID}={SECRET}" in pve.auth_headers  # the real header format


def test_unconfigured_proxmox_is_an_answer_not_a_crash(config: Config) -> None:
    backends = make_backends(config)  # the shipped config: PROXMOX_* unset
    with pytest.raises(NotConfigured, match=r"proxmox\.host"):
        backends.proxmox()


def test_unset_variables_are_named_once_each_in_a_sentence(config: Config) -> None:
    """The shipped config takes all three settings from unset variables: one sentence naming them."""
    why = proxmox_problem(config)
    assert why == ("Proxmox is not configured: PROXMOX_HOST, PROXMOX_TOKEN_ID and PROXMOX_TOKEN_SECRET are not "
                   "set in the bot's environment (chatops.yaml takes proxmox.host, proxmox.token_id and "
                   "proxmox.token_secret from them).")


def test_a_partly_filled_section_names_what_is_empty_and_what_is_unset(config: Config) -> None:
    inventory = config.inventory.model_copy(update={"proxmox": Proxmox(host="pve.example", token_id="a@pve!b")})
    literal = Config(inventory=inventory, path=config.path, settings=config.settings)
    assert proxmox_problem(literal) == ("Proxmox is only partly configured: proxmox.token_secret is empty in "
                                        "chatops.yaml.")
    mixed = Config(inventory=config.inventory.model_copy(update={"proxmox": Proxmox(host="pve.example")}),
                   path=config.path, settings=config.settings,
                   unset_env={"proxmox.token_secret": "PVE_SECRET"})
    assert proxmox_problem(mixed) == (
        "Proxmox is only partly configured: proxmox.token_id is empty in chatops.yaml; PVE_SECRET is not set "
        "in the bot's environment (chatops.yaml takes proxmox.token_secret from it).")
    blank = Config(inventory=config.inventory.model_copy(update={"proxmox": Proxmox()}), path=config.path,
                   settings=config.settings)
    assert proxmox_problem(blank) is None  # no section at all: Proxmox is simply not used


def test_token_id_must_name_user_realm_and_token() -> None:
    assert parse_token_id("chatops@pve!bot") == ("chatops@pve", "bot")
    with pytest.raises(NotConfigured, match="user@realm!tokenid"):
        parse_token_id("chatops-bot")
    with pytest.raises(ValidationError, match="user@realm!tokenid"):
        Proxmox(host="h", token_id="chatops@pve", token_secret=SecretStr("x"))


async def test_tls_is_verified_by_default(config: Config, pve: ProxmoxFake, store: AuditStore) -> None:
    b = await make_bot(pve_config(config, pve, ca_bundle=None), store)
    reply = await b.say("alice", "vm-status rumpletest")
    assert reply.tone is Tone.error
    assert "TLS verification" in reply.text and "ca_bundle" in reply.text
    assert not any(p.endswith("/status/current") for _, p in pve.requests)  # no request got through
    await b.engine.close()


async def test_wrong_token_secret_gets_a_clear_401(config: Config, pve: ProxmoxFake, store: AuditStore) -> None:
    cfg = pve_config(config, pve, token_secret=SecretStr("not-the-secret-at-all"))
    b = await make_bot(cfg, store)
    reply = await b.say("alice", "vm-status rumpletest")
    assert reply.tone is Tone.error
    assert "rejected the API token" in reply.text and "401" in reply.text
    assert "not-the-secret-at-all" not in everything_said(reply)
    await b.engine.close()


async def test_missing_privilege_gets_a_clear_403(tmp_path: Path, config: Config, store: AuditStore) -> None:
    fake = start_fake(tmp_path / "pve", config, task_seconds=0.05,
                      privileges={TOKEN_ID: ALL_PRIVILEGES - {"VM.Snapshot.Rollback"}})
    g = fake.guest(102)
    fake.add_snapshot(g, "base", "manual", snaptime=BASE_TIME)
    fake.add_snapshot(g, "later", "manual")
    b = await make_bot(pve_config(config, fake), store)
    try:
        reply = await b.say("alice", "restore rumpletest base")
        assert reply.tone is Tone.error
        assert "denied permission" in reply.text and "VM.Snapshot.Rollback" in reply.text
        assert g.current_parent == "later"  # nothing rolled back
        assert b.row(reply).status == "failed"
    finally:
        await b.engine.close()
        fake.stop()


# -- snapshot ----------------------------------------------------------------
async def test_snapshot_generated_name_marks_request_and_reports_progress(bot: Bot, pve: ProxmoxFake) -> None:
    reply = await bot.say("alice", "snapshot rumpletest")
    assert reply.tone is Tone.success, reply.text
    g = pve.guest(102)
    assert len(g.snapshots) == 1
    name, snap = next(iter(g.snapshots.items()))
    assert name.startswith("chatops-") and name.endswith("-alice")
    assert f"[chatops request={reply.request_id} by=console:alice]" in snap["description"]
    assert snap["vmstate"] == 0
    assert f"restore rumpletest {name}" in reply.text and "exit status OK" in reply.text
    assert bot.row(reply).status == "succeeded"
    steps = [d for k, d in bot.events(reply) if k == "progress"]
    progress = [d["text"] for d in steps]
    # The task's full UPID is in the audit event, the line people read names the task briefly.
    started = next(d for d in steps if d["text"].startswith("Proxmox is working to snapshot rumpletest"))
    assert started["text"].endswith("(task qmsnapshot 102).")
    assert started["upid"].startswith("UPID:phoenix:") and ":qmsnapshot:102:" in started["upid"]
    assert not any("UPID:" in t for t in progress + bot.progress)
    assert any("snapshotting 'drive-scsi0'" in t for t in progress)  # the task log, line by line
    assert any("Proxmox is working" in t for t in bot.progress)  # shown to the user as it ran


async def test_snapshot_with_name_description_and_ram(bot: Bot, pve: ProxmoxFake) -> None:
    reply = await bot.say("alice", 'snapshot rumpletest name=pre-upgrade ram=yes description="before the upgrade"')
    assert reply.tone is Tone.success, reply.text
    snap = pve.guest(102).snapshots["pre-upgrade"]
    assert snap["vmstate"] == 1
    assert snap["description"].startswith("before the upgrade [chatops request=")
    assert "with RAM state" in reply.text


async def test_snapshot_of_protected_vm_waits_for_approval_with_a_card(config: Config, pve: ProxmoxFake,
                                                                      store: AuditStore) -> None:
    g = pve.guest(103)
    # A snapshot a person asked the bot for by name: never pruned by another snapshot (issue #19).
    pve.add_snapshot(g, "before-kernel", "[chatops request=r-00000000 by=console:bob]", snaptime=BASE_TIME)
    b = await make_bot(pve_config(config, pve, snapshot_retention=1), store)
    try:
        pending = await b.say("alice", "snapshot prod vm name=pre-upgrade ram=yes")
        assert pending.tone is Tone.pending
        what = dict(pending.fields)["What will happen"]
        assert "Take snapshot pre-upgrade of rumpleprod (qemu 103 on phoenix) with its RAM state" in what
        assert "Nothing is deleted" in what and "before-kernel" not in what
        assert pve.posts() == []
        approved = await b.act("approve", "bob", pending)
        assert approved.tone is Tone.success, approved.text
        assert set(g.snapshots) == {"before-kernel", "pre-upgrade"}
        assert pve.posts("/snapshot/before-kernel") == []  # no deletion was even tried
    finally:
        await b.engine.close()


async def test_ram_state_refused_for_lxc_and_bad_names_refused(bot: Bot, pve: ProxmoxFake) -> None:
    lxc = await bot.say("alice", "snapshot portainer ram=yes")
    assert lxc.tone is Tone.error and "LXC container" in lxc.text
    bad = await bot.say("alice", "snapshot rumpletest name=v1.2")
    assert bad.tone is Tone.error and "not allowed by Proxmox" in bad.text
    reserved = await bot.say("alice", "snapshot rumpletest name=current")
    assert reserved.tone is Tone.error and "running state" in reserved.text
    assert pve.posts() == []  # nothing reached Proxmox


async def test_existing_snapshot_name_is_a_clear_task_failure(bot: Bot, pve: ProxmoxFake) -> None:
    pve.add_snapshot(pve.guest(102), "base", "manual")
    reply = await bot.say("alice", "snapshot rumpletest name=base")
    assert reply.tone is Tone.error
    assert "already exists" in reply.text and "exit status: snapshot name 'base' already used" in reply.text
    assert bot.row(reply).status == "failed"


async def test_locked_vm_is_a_clear_failure(bot: Bot, pve: ProxmoxFake) -> None:
    pve.guest(102).lock = "backup"
    reply = await bot.say("alice", "snapshot rumpletest name=x1")
    assert reply.tone is Tone.error
    assert "locked by another operation" in reply.text and "VM 102 is locked (backup)" in reply.text
    assert pve.guest(102).snapshots == {}


async def test_task_failure_reports_the_real_exit_status(bot: Bot, pve: ProxmoxFake) -> None:
    pve.fail_next["snapshot"] = "VM 102 qmp command 'savevm-start' failed - unable to save state"
    reply = await bot.say("alice", "snapshot rumpletest name=x1 ram=yes")
    assert reply.tone is Tone.error
    assert "unable to save state" in reply.text and "exit status:" in reply.text
    assert pve.guest(102).snapshots == {}
    row = bot.row(reply)
    assert row.status == "failed" and row.error and "unable to save state" in row.error


async def test_task_timeout_stops_waiting_and_says_so(config: Config, pve: ProxmoxFake, store: AuditStore) -> None:
    pve.task_seconds = 30.0
    b = await make_bot(pve_config(config, pve, task_timeout_s=0.3), store)
    reply = await b.say("alice", "snapshot rumpletest name=slow")
    assert reply.tone is Tone.error
    assert "still running after 0.3s" in reply.text and "UPID:phoenix:" in reply.text
    assert "may still finish" in reply.text
    assert b.row(reply).status == "failed"
    await b.engine.close()


async def test_connection_dropping_mid_task(bot: Bot, pve: ProxmoxFake) -> None:
    pve.drop_task_status = 1000  # the status endpoint never answers again
    reply = await bot.say("alice", "snapshot rumpletest name=lost")
    assert reply.tone is Tone.error
    assert "Lost contact with Proxmox" in reply.text and "outcome is unknown" in reply.text
    assert "UPID:phoenix:" in reply.text
    assert bot.row(reply).status == "failed"


async def test_a_brief_drop_mid_task_is_survived(bot: Bot, pve: ProxmoxFake) -> None:
    pve.drop_task_status = 1
    reply = await bot.say("alice", "snapshot rumpletest name=bumpy")
    assert reply.tone is Tone.success, reply.text
    assert "bumpy" in pve.guest(102).snapshots


async def test_two_snapshots_of_one_vm_at_once_never_both_run(bot: Bot, pve: ProxmoxFake) -> None:
    pve.hold = True  # tasks keep running until released: the two requests surely overlap
    first = asyncio.create_task(bot.say("alice", "snapshot rumpletest name=first"))
    second = asyncio.create_task(bot.say("bob", "snapshot test vm name=second"))
    done, running = await asyncio.wait({first, second}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1 and len(running) == 1, "both requests ran (or neither answered)"
    refused = done.pop().result()
    assert refused.tone is Tone.error and "Another change" in refused.text
    assert bot.row(refused).status == "refused"  # it never ran
    assert len(pve.posts("/qemu/102/snapshot")) <= 1  # the winner may not have posted yet
    pve.hold = False
    ok = await asyncio.wait_for(running.pop(), timeout=30)
    assert ok.tone is Tone.success, ok.text
    assert len(pve.posts("/qemu/102/snapshot")) == 1  # the refused one never reached Proxmox
    assert pve.max_running.get(102) == 1
    assert len(pve.guest(102).snapshots) == 1
    again = await bot.say("bob", "snapshot rumpletest name=after")  # the lock was released
    assert again.tone is Tone.success, again.text


async def test_rumple_is_not_a_proxmox_guest(bot: Bot, pve: ProxmoxFake) -> None:
    for text in ("snapshot rumple", "restore live base", "snapshots rumple"):
        reply = await bot.say("alice", text)
        assert "no Proxmox guest behind it" in reply.text
        assert reply.ok is not True or reply.tone is Tone.question
    assert pve.posts() == []
    assert not any("/qemu/" in p or "/lxc/" in p for _, p in pve.requests)


# -- snapshots -----------------------------------------------------------------
async def test_snapshots_lists_marks_bot_ones_and_hides_current(bot: Bot, pve: ProxmoxFake) -> None:
    g = pve.guest(102)
    pve.add_snapshot(g, "manual-one", "made in the web UI", snaptime=BASE_TIME)
    made = await bot.say("alice", "snapshot rumpletest name=botmade description=nightly")
    assert made.tone is Tone.success
    reply = await bot.say("carol", "snapshots rumpletest")
    assert reply.tone is Tone.info
    rows = reply.tables[0].rows
    assert [r[0].split(" ")[0] for r in rows] == ["botmade", "manual-one"]  # newest first
    assert not any(r[0].startswith("current") for r in rows)
    by_name = {r[0].split(" ")[0]: r for r in rows}
    assert by_name["botmade"][2] == "bot for console:alice"
    assert by_name["manual-one"][2] == ""
    assert by_name["botmade"][3] == "manual-one"  # parent
    assert by_name["manual-one"][1] == "2025-01-02 03:04 UTC"
    assert by_name["botmade"][4] == "nightly"  # the marker is not shown as description
    assert "current state is based on this" in by_name["botmade"][0]
    assert "1 made by the bot" in reply.text


# -- restore -----------------------------------------------------------------
async def test_restore_states_the_time_and_the_loss_then_rolls_back(bot: Bot, pve: ProxmoxFake) -> None:
    g = pve.guest(102)
    pve.add_snapshot(g, "base", "clean install", snaptime=BASE_TIME)
    pve.add_snapshot(g, "later", "")
    card = await bot.say("alice", "restore rumpletest base", confirmed=False)
    assert card.tone is Tone.question
    what = dict(card.fields)["What will happen"]
    assert "2025-01-02 03:04 UTC" in what and "is lost" in what and "no RAM state" in what
    assert pve.posts() == []
    done = await bot.act("confirm", "alice", card)
    assert done.tone is Tone.success, done.text
    assert "Rolled rumpletest back to base" in done.text and "exit status OK" in done.text
    assert "is now stopped" in done.text
    assert g.current_parent == "base" and g.status == "stopped"
    assert len(pve.posts("/snapshot/base/rollback")) == 1


async def test_restore_of_a_protected_vm_needs_another_approver(bot: Bot, pve: ProxmoxFake) -> None:
    g = pve.guest(103)
    pve.add_snapshot(g, "pre-upgrade", "", snaptime=BASE_TIME)
    pve.add_snapshot(g, "after", "")
    pending = await bot.say("alice", "restore rumpleprod pre-upgrade")
    assert pending.tone is Tone.pending
    assert "2025-01-02 03:04 UTC" in dict(pending.fields)["What will happen"]
    assert bot.row(pending).status == "pending_approval"
    assert pve.posts() == []  # nothing ran without approval
    own = await bot.act("approve", "alice", pending)
    assert own.tone is Tone.error and pve.posts() == []
    approved = await bot.act("approve", "bob", pending)
    assert approved.tone is Tone.success, approved.text
    assert g.current_parent == "pre-upgrade"
    assert bot.row(pending).status == "succeeded" and bot.row(pending).approver == "console:bob"


async def test_restore_of_a_missing_snapshot_names_the_ones_there(bot: Bot, pve: ProxmoxFake) -> None:
    pve.add_snapshot(pve.guest(101), "base", "")
    reply = await bot.say("alice", "restore rumpledev nope")
    assert reply.tone is Tone.error
    assert "has no snapshot 'nope'" in reply.text and "base" in reply.text
    assert pve.posts() == []


# -- delete-snapshot -------------------------------------------------------------
async def test_delete_snapshot(bot: Bot, pve: ProxmoxFake) -> None:
    g = pve.guest(200)
    pve.add_snapshot(g, "old", "")
    pve.add_snapshot(g, "new", "")
    reply = await bot.say("alice", "delete-snapshot portainer old")
    assert reply.tone is Tone.success, reply.text
    assert set(g.snapshots) == {"new"} and "parent" not in g.snapshots["new"]
    assert ":vzdelsnapshot:200:" in reply.text + " ".join(v for _, v in reply.fields)
    missing = await bot.say("alice", "delete-snapshot portainer old")
    assert missing.tone is Tone.error and "has no snapshot 'old'" in missing.text
    # Found before anything changed (--yes skips the card, the handler's own check): refused, not failed.
    assert bot.row(missing).status == "refused"


# -- retention -------------------------------------------------------------------
def checkpoint_marker(rid: str, actor: str = "console:alice") -> str:
    return f"checkpoint before deploy to rumpledev [chatops checkpoint request={rid} by={actor}]"


async def test_retention_prunes_only_old_checkpoints_as_audited_steps(config: Config, pve: ProxmoxFake,
                                                                       store: AuditStore) -> None:
    g = pve.guest(101)
    pve.add_snapshot(g, "by-hand", "kept forever", snaptime=BASE_TIME)
    # Taken through the bot at a person's request, by name: not a checkpoint, never pruned.
    pve.add_snapshot(g, "before-kernel", "[chatops request=r-0000000a by=console:bob]", snaptime=BASE_TIME + 30)
    # A checkpoint of an older bot version (no kind in the marker; its generated name says what it is).
    pve.add_snapshot(g, "predeploy-20250102-030500-alice", "[chatops request=r-0000000b by=console:alice]",
                     snaptime=BASE_TIME + 60)
    for i in range(2):
        pve.add_snapshot(g, f"cp{i}", checkpoint_marker(f"r-0000000{i}"), snaptime=BASE_TIME + 120 * (i + 1))
    cfg = pve_config(config, pve, snapshot_retention=2, envs={"rumpledev": {"checkpoint_before_deploy": True}})
    b = await make_bot(cfg, store)
    try:
        ctx, rid = await _deploy_context(b, "rumpledev")
        line = await checkpoint_before_deploy(ctx, "rumpledev")
        (new,) = [n for n in g.snapshots if n.startswith("predeploy-2") and n != "predeploy-20250102-030500-alice"]
        assert set(g.snapshots) == {"by-hand", "before-kernel", "cp1", new}
        assert line is not None and "deleted the older checkpoints predeploy-20250102-030500-alice, cp0" in line
        assert f"[chatops checkpoint request={rid} by=console:alice]" in g.snapshots[new]["description"]
        events = [(e.kind, e.detail) for e in store.events(rid)]
        retention = [d for k, d in events if k == "retention"]
        assert [(d["snapshot"], d["outcome"]) for d in retention] == [
            ("predeploy-20250102-030500-alice", "deleted"), ("cp0", "deleted")]
        assert all(d["exitstatus"] == "OK" for d in retention)
        texts = [d.get("text", "") for k, d in events if k == "progress"]
        assert any(t.startswith("Retention: deleted checkpoint cp0 of rumpledev") for t in texts)
        # The checkpoint itself was recorded before any pruning started.
        order = [k for k, _ in events]
        assert order.index("retention") > order.index("progress")
    finally:
        await b.engine.close()


async def test_person_snapshots_never_trigger_or_suffer_retention(config: Config, pve: ProxmoxFake,
                                                                  store: AuditStore) -> None:
    g = pve.guest(101)
    for i in range(3):
        pve.add_snapshot(g, f"cp{i}", checkpoint_marker(f"r-0000000{i}"), snaptime=BASE_TIME + 60 * i)
    b = await make_bot(pve_config(config, pve, snapshot_retention=1), store)
    try:
        card = await b.say("alice", "snapshot rumpledev name=mine", confirmed=False)
        assert "Nothing is deleted" in dict(card.fields)["What will happen"]
        done = await b.act("confirm", "alice", card)
        assert done.tone is Tone.success, done.text
        assert set(g.snapshots) == {"cp0", "cp1", "cp2", "mine"}  # a person's snapshot prunes nothing
        assert pve.posts("/snapshot/cp0") == []
        listing = await b.say("carol", "snapshots rumpledev")
        rows = {r[0].split(" ")[0]: r for r in listing.tables[0].rows}
        assert rows["cp0"][2] == "checkpoint for console:alice" and rows["mine"][2] == "bot for console:alice"
        assert "3 of them automatic checkpoints" in listing.text
    finally:
        await b.engine.close()


async def test_retention_failure_is_reported_not_hidden(config: Config, pve: ProxmoxFake,
                                                        store: AuditStore) -> None:
    g = pve.guest(101)
    pve.add_snapshot(g, "cp0", checkpoint_marker("r-00000000"), snaptime=BASE_TIME)
    cfg = pve_config(config, pve, snapshot_retention=1, envs={"rumpledev": {"checkpoint_before_deploy": True}})
    b = await make_bot(cfg, store)
    try:
        ctx, rid = await _deploy_context(b, "rumpledev")
        pve.fail_next["delsnapshot"] = "zfs error: could not destroy snapshot"
        line = await checkpoint_before_deploy(ctx, "rumpledev")
        assert line is not None and "retention did not finish" in line and "could not destroy" in line
        assert len(g.snapshots) == 2 and "cp0" in g.snapshots  # the new checkpoint stands, cp0 too
        assert [d["outcome"] for e in store.events(rid) if e.kind == "retention"
                for d in [e.detail]] == ["failed"]
    finally:
        await b.engine.close()


# -- vm-status -------------------------------------------------------------------
async def test_vm_status_all_and_one(bot: Bot, pve: ProxmoxFake) -> None:
    pve.guest(101).status = "stopped"
    reply = await bot.say("carol", "vm-status")
    assert reply.tone is Tone.info, reply.text
    rows = {r[0]: r for r in reply.tables[0].rows}
    assert set(rows) == {"rumpledev", "rumpletest", "rumpleprod", "portainer", "llm"}
    assert rows["rumpletest"][1] == "qemu 102" and rows["rumpletest"][2] == "running"
    assert rows["rumpletest"][4] == "7.3% of 4 CPU"
    assert rows["rumpletest"][5] == "3.0 / 8.0 GiB (38%)"
    assert rows["rumpletest"][3].startswith("1h")
    assert rows["rumpledev"][2] == "stopped" and rows["rumpledev"][3] == "-"
    assert rows["llm"][1] == "lxc 201"
    assert "4 of 5 guests running" in reply.text
    one = await bot.say("carol", "vm-status prod vm")
    assert [r[0] for r in one.tables[0].rows] == ["rumpleprod"]


async def test_vm_status_reports_a_missing_guest_and_a_lock(bot: Bot, pve: ProxmoxFake) -> None:
    del pve.guests[("phoenix", "lxc", 201)]
    pve.guest(102).lock = "backup"
    reply = await bot.say("carol", "vm-status")
    assert reply.tone is Tone.warning
    assert "Could not read 1 of 5" in reply.text and "llm" in reply.text and "does not exist" in reply.text
    rows = {r[0]: r for r in reply.tables[0].rows}
    assert rows["llm"][2].startswith("unknown:")
    assert rows["rumpletest"][2] == "running (locked: backup)"
    single = await bot.say("carol", "vm-status llm")
    assert single.tone is Tone.error and "not found" in single.text


# -- checkpoint before deploy ------------------------------------------------------
async def _deploy_context(b: Bot, env: str) -> Any:
    row = RequestRow(id=new_request_id(), actor="console:alice", platform="console", text=f"deploy chat {env}",
                     command="deploy", args={"stack": "chat", "env": env}, env=env, target="chat",
                     changes=True, status="started")
    await asyncio.to_thread(b.engine.store.create, row, [("started", {})])
    req = Request(actor=Actor("console:alice"), text=row.text)
    return b.engine._context(req, row.id, b.engine.config.roles_of("console:alice")), row.id


async def test_checkpoint_before_deploy(config: Config, pve: ProxmoxFake, store: AuditStore) -> None:
    cfg = pve_config(config, pve, envs={"rumpletest": {"checkpoint_before_deploy": True}})
    b = await make_bot(cfg, store)
    try:
        ctx, rid = await _deploy_context(b, "rumpletest")
        line = await checkpoint_before_deploy(ctx, "rumpletest")
        assert line is not None
        (name,) = pve.guest(102).snapshots
        assert name.startswith("predeploy-")
        assert line == f"Checkpoint snapshot {name} of rumpletest taken; restore with: restore rumpletest {name}"
        assert made_by_bot(_snap(pve, 102, name))
        events = [(e.kind, e.detail) for e in store.events(rid)]
        assert ("checkpoint", {"env": "rumpletest", "vm": "rumpletest", "snapshot": name, "outcome": "taken",
                               "upid": events[-1][1].get("upid")}) in events
        assert str(events[-1][1]["upid"]).startswith("UPID:phoenix:")
        # Not asked for: nothing happens.
        ctx2, _ = await _deploy_context(b, "rumpledev")
        assert await checkpoint_before_deploy(ctx2, "rumpledev") is None
        assert pve.guest(101).snapshots == {}
    finally:
        await b.engine.close()


async def test_failed_checkpoint_stops_the_deploy(config: Config, pve: ProxmoxFake, store: AuditStore) -> None:
    cfg = pve_config(config, pve, envs={"rumpletest": {"checkpoint_before_deploy": True}})
    b = await make_bot(cfg, store)
    try:
        ctx, rid = await _deploy_context(b, "rumpletest")
        pve.fail_next["snapshot"] = "storage 'local-lvm' is full"
        with pytest.raises(CommandError, match="nothing was deployed"):
            await checkpoint_before_deploy(ctx, "rumpletest")
        assert [d["outcome"] for k, d in ((e.kind, e.detail) for e in store.events(rid))
                if k == "checkpoint"] == ["failed"]
    finally:
        await b.engine.close()


def _snap(fake: ProxmoxFake, vmid: int, name: str) -> Any:
    from infra.proxmox import Snapshot
    s = fake.guest(vmid).snapshots[name]
    return Snapshot(name, None, s["description"], s.get("parent"), bool(s.get("vmstate")))


def test_generated_names_fit_proxmox_rules() -> None:
    from infra.proxmox import SNAPSHOT_NAME
    now = datetime(2025, 1, 14, 9, 30, tzinfo=UTC)
    assert generated_name("alice", now=now) == "chatops-20250114-093000-alice"
    long = generated_name("U012ABCDEF-very.long.name", prefix="predeploy", now=now)
    assert SNAPSHOT_NAME.match(long) and len(long) <= 40
    assert SNAPSHOT_NAME.match(generated_name("...", now=now))


# -- secrets -------------------------------------------------------------------------
async def test_token_secret_never_reaches_chat_or_the_audit_log(bot: Bot, pve: ProxmoxFake,
                                                                store: AuditStore) -> None:
    pve.add_snapshot(pve.guest(102), "base", "")
    await bot.say("alice", "snapshot rumpletest name=s1")
    await bot.say("alice", "snapshots rumpletest")
    await bot.say("alice", "restore rumpletest base")
    await bot.say("alice", "vm-status")
    pve.fail_next["snapshot"] = f"weird failure PVEAPIToken={TOKEN_ID}={SECRET}"
    await bot.say("alice", "snapshot rumpletest name=s2")
    pve.drop_task_status = 1000
    await bot.say("alice", "snapshot rumpletest name=s3")
    assert any(SECRET in h for h in pve.auth_headers)  # it was really used on the wire
    said = "\n".join(everything_said(r) for r in bot.replies) + "\n".join(bot.progress)
    audit = store.export("json")
    for row in json.loads(audit)["requests"]:  # the export holds every event too; read them all
        audit += json.dumps([e.detail for e in store.events(row["id"])])
    assert len(bot.replies) == 6 and "weird failure" in said
    assert SECRET not in said and SECRET not in audit
    assert "PVEAPIToken=" not in said and "PVEAPIToken=" not in audit


async def test_client_repr_hides_the_secret(pve: ProxmoxFake) -> None:
    client = ProxmoxClient(pve.host, TOKEN_ID, SECRET, ca_bundle=str(pve.ca_path))
    assert SECRET not in repr(client)
    snaps = await client.snapshots(Guest("rumpletest", "phoenix", "qemu", 102))
    assert snaps.snapshots == [] and snaps.current_parent is None
