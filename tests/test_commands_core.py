"""The core's own handlers: help, stacks, health (derived from the registry and inventory)."""

from __future__ import annotations

import pytest

from bot.engine import Engine
from bot.request import Actor, Request, Tone
from commands.registry import registry
from infra.config import Config, load_config
from infra.db.migrate import code_head
from infra.db.store import AuditStore
from infra.wiring import make_backends

ALICE = Actor("console:alice")


async def test_help_lists_every_registered_command(engine: Engine) -> None:
    reply = await engine.handle(Request(actor=ALICE, text="help"))
    usages = [row[0] for row in reply.tables[0].rows]
    assert [u.split()[0] for u in usages] == registry().names()
    assert "deploy STACK ENV [ref=…]" in usages
    one = await engine.handle(Request(actor=ALICE, text="help restore"))
    assert one.text.startswith("restore VM SNAPSHOT") and "needs an approval on protected targets" in one.text
    assert [r[0] for r in one.tables[0].rows] == ["vm", "snapshot"]
    # A slash command can name any topic; an unknown one is answered plainly.
    bad = await engine.handle(Request(actor=ALICE, text="", command="help", args={"topic": "teleport"}))
    assert bad.tone is Tone.error and "no command 'teleport'" in bad.text


async def test_stacks_come_from_compose_folders(engine: Engine) -> None:
    reply = await engine.handle(Request(actor=ALICE, text="stacks"))
    names = [r[0] for r in reply.tables[0].rows]
    assert names == list(engine.config.inventory.stacks)
    web = next(r for r in reply.tables[0].rows if r[0] == "web")
    assert web[1] == "nginx, cloudflared"
    phoenix = await engine.handle(Request(actor=ALICE, text="stacks gpu box"))
    assert {r[0] for r in phoenix.tables[0].rows} == {"llm", "gpu-metrics", "chatops"}


async def test_health_reports_database_and_unconfigured_backends(engine: Engine) -> None:
    reply = await engine.handle(Request(actor=ALICE, text="health"))
    rows = {r[0]: r[1:] for r in reply.tables[0].rows}
    assert rows["database"] == ["ok", f"postgresql, schema {code_head()}"]  # the schema it runs on
    assert rows["docker:rumpleprod"][0] == "not configured"
    assert rows["proxmox"][0] == "not configured" and rows["llm"][0] == "not configured"


async def test_health_tells_a_backend_named_by_unset_variables_from_one_that_is_down(
        config: Config, store: AuditStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped config takes Proxmox from PROXMOX_* variables: unset, that is a setting to make
    ('MISCONFIGURED', what to set), not an outage ('DOWN', which is for a backend that did not answer)."""
    for var in ("PROXMOX_HOST", "PROXMOX_TOKEN_ID", "PROXMOX_TOKEN_SECRET"):
        monkeypatch.delenv(var, raising=False)
    shipped = load_config(config.path)
    engine = Engine(shipped, store, make_backends(shipped))
    reply = await engine.handle(Request(actor=ALICE, text="health"))
    rows = {r[0]: r[1:] for r in reply.tables[0].rows}
    assert rows["proxmox"][0] == "MISCONFIGURED" and "PROXMOX_HOST" in rows["proxmox"][1]
    assert reply.tone is Tone.warning and not reply.text.startswith("Down:")
    assert reply.text == "Misconfigured (the detail says what to set): proxmox."
    await engine.close()
