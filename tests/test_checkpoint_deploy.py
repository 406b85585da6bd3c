"""A protected deploy with a checkpoint, end to end: real dockerd, real PostgreSQL, the Proxmox stand-in.

Issue #19: retention counted a snapshot a person asked for (`before-kernel`) among the bot's and
deleted it during an unrelated prod deploy, and the approval card never said so.  Here the card
names each checkpoint retention will delete, a person's snapshot is never touched, and the run
deletes nothing its card did not name.  A rollback with nothing to roll back to is refused before
an approver is asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.engine import Engine
from bot.request import Actor, Reply, Request, Tone
from infra.config import VM, Config, Proxmox
from infra.db.store import AuditStore, Database
from infra.wiring import make_backends
from tests.docker_fixtures import DockerWorld, docker_client, world
from tests.fakes.proxmox_api import ProxmoxFake
from tests.test_proxmox import BASE_TIME, SECRET, TOKEN_ID

__all__ = ["docker_client", "world"]

ALICE, BOB = Actor("console:alice"), Actor("console:bob")
VMID = 150


def checkpoint(rid: str) -> str:
    return f"checkpoint before deploy to dprot [chatops checkpoint request={rid} by=console:alice]"


@pytest.fixture
def pve(tmp_path: Path) -> Any:
    fake = ProxmoxFake(tmp_path / "pve", tokens={TOKEN_ID: SECRET}, task_seconds=0.1).start()
    fake.add_guest("phoenix", "qemu", VMID, "dvm")
    yield fake
    fake.stop()


def with_checkpoints(world: DockerWorld, fake: ProxmoxFake) -> Config:
    """The Docker test inventory, its protected `dprot` backed by VM `dvm` with a checkpoint per deploy."""
    base = world.config()
    inv = base.inventory
    envs = dict(inv.environments)
    envs["dprot"] = envs["dprot"].model_copy(update={"vm": "dvm", "checkpoint_before_deploy": True})
    proxmox = Proxmox(host=fake.host, token_id=TOKEN_ID, token_secret=SecretStr(SECRET), ca_bundle=str(fake.ca_path),
                      poll_s=0.03, task_timeout_s=10.0, snapshot_retention=2)
    inventory = inv.model_copy(update={"environments": envs, "proxmox": proxmox,
                                       "vms": {"dvm": VM(node="phoenix", kind="qemu", vmid=VMID)}})
    return Config(inventory=inventory, path=base.path, settings=base.settings)


async def ask(engine: Engine, actor: Actor, text: str) -> Reply:
    return await engine.handle(Request(actor=actor, text=text, confirmed=True))


async def test_prod_deploy_deletes_only_checkpoints_its_card_named(world: DockerWorld, pve: ProxmoxFake,
                                                                   db: Database) -> None:
    g = pve.guest(VMID)
    pve.add_snapshot(g, "before-kernel", "[chatops request=r-0000000a by=console:bob]", snaptime=BASE_TIME)
    pve.add_snapshot(g, "cp-old1", checkpoint("r-00000001"), snaptime=BASE_TIME + 60)
    pve.add_snapshot(g, "cp-old2", checkpoint("r-00000002"), snaptime=BASE_TIME + 120)
    cfg = with_checkpoints(world, pve)
    engine = Engine(cfg, AuditStore(db), make_backends(cfg))
    await engine.start()
    try:
        # Nothing recorded yet: a rollback cannot succeed, so no approver is asked.
        nothing = await ask(engine, ALICE, "rollback app dprot")
        assert nothing.tone is Tone.error and "nothing to roll back to" in nothing.text
        assert nothing.buttons == [] and nothing.mentions == []
        row = engine.store.get(nothing.request_id or "")
        assert row is not None and row.status == "refused"

        card = await ask(engine, ALICE, "deploy app dprot")
        assert card.tone is Tone.pending, card.text
        what = dict(card.fields)["What will happen"]
        assert what.startswith("First a checkpoint snapshot of VM dvm is taken"), what
        assert "so it deletes: cp-old1 (taken 2025-01-02 03:05 UTC)" in what
        assert "before-kernel" not in what and "cp-old2" not in what
        # What the approver saw is in the audit log with the request.
        seen = [e.detail["preview"] for e in engine.store.events(card.request_id or "") if e.kind == "pending_approval"]
        assert seen and any("cp-old1" in line for line in seen[0])

        # Another checkpoint appears while the request waits (a deploy elsewhere on this VM).
        pve.add_snapshot(g, "cp-new", checkpoint("r-00000003"), snaptime=BASE_TIME + 180)
        done = await engine.act("approve", card.request_id or "", BOB)
        assert done.tone is Tone.success, done.text
        assert dict(done.fields)["Decision"].startswith("Approved by console:bob")
        (taken,) = [n for n in g.snapshots if n.startswith("predeploy-")]
        # Retention would now take cp-old1 and cp-old2; cp-old2 was not on the card, so it stays.
        assert set(g.snapshots) == {"before-kernel", "cp-old2", "cp-new", taken}
        assert "Retention deleted the older checkpoint cp-old1" in done.text
        assert pve.posts("/snapshot/before-kernel") == [] and pve.posts("/snapshot/cp-old2") == []
        said = [e.detail.get("text", "") for e in engine.store.events(card.request_id or "") if e.kind == "progress"]
        assert any("keeping cp-old2 (not on the card that was approved)" in t for t in said), said
        assert engine.store.verify() == []
    finally:
        await engine.close()
