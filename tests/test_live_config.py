"""Live configuration (issue 15, item 2): the config file is read again when it changes.

Users, roles, channels and environments take effect without a restart, for every decision
including a click on a card posted before the change; an invalid new file keeps the old
configuration, is logged, and `health` says so.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.engine import Engine
from bot.request import Actor, Reply, Request, Tone
from bot.upkeep import Upkeep
from commands.registry import Kind
from infra.config import load_config
from infra.db.store import Database
from tests.conftest import ROOT, make_engine
from tests.support import observable_registry

ALICE, BOB, CAROL, DAVE = (Actor(f"console:{n}") for n in ("alice", "bob", "carol", "dave"))
SHIPPED = (ROOT / "chatops.yaml").read_text()


def req(actor: Actor, text: str, channel: str = "console", **kw: object) -> Request:
    return Request(actor=actor, text=text, channel=channel, **kw)  # type: ignore[arg-type]


class ConfigFile:
    """The bot's config file, edited while it runs (stack paths point at the project's compose/)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.write(SHIPPED)

    def write(self, text: str) -> None:
        self.path.write_text(re.sub(r"path: compose/", f"path: {ROOT}/compose/", text))

    def edit(self, old: str, new: str) -> None:
        text = self.path.read_text()
        assert old in text, old
        self.path.write_text(text.replace(old, new))


@pytest.fixture
def conf(tmp_path: Path) -> ConfigFile:
    return ConfigFile(tmp_path / "chatops.yaml")


@pytest.fixture
async def live(conf: ConfigFile, db: Database, tmp_path: Path) -> AsyncIterator[Engine]:
    eng = make_engine(load_config(conf.path), db, observable_registry(tmp_path))
    await eng.start(Upkeep(eng, config_every_s=0.05))
    yield eng
    await eng.close()


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """The watcher reads the file every few seconds (here every 50 ms): wait for it to notice."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "the change was not picked up in time"
        await asyncio.sleep(0.02)


async def test_a_removed_approver_is_refused_without_a_restart(live: Engine, conf: ConfigFile,
                                                               tmp_path: Path) -> None:
    card = await live.handle(req(ALICE, "touch prod after-removal", confirmed=True))
    approve = next(b for b in card.buttons if b.action == "approve")
    conf.edit('"console:bob": [operator, approver]', '"console:bob": [operator]')
    await until(lambda: not live.config.roles_of("console:bob") >= {"approver"})
    # The card was posted before the change; the click is judged by the roles in force now.
    clicked = await live.decide("approve", card.request_id or "", BOB, approve.plan_hash)
    assert not clicked.applied and "need the approver role" in clicked.reply.text
    typed = await live.handle(req(BOB, f"approve {card.request_id}"))
    assert typed.tone is Tone.error and not (tmp_path / "after-removal").exists()
    row = live.store.get(card.request_id or "")
    assert row is not None and row.status == "pending_approval" and row.approver is None
    # Given back, the same old card works.
    conf.edit('"console:bob": [operator]', '"console:bob": [operator, approver]')
    await until(lambda: live.config.roles_of("console:bob") >= {"approver"})
    assert (await live.decide("approve", card.request_id or "", BOB, approve.plan_hash)).applied
    assert (tmp_path / "after-removal").exists()


async def test_a_requester_who_lost_the_role_while_waiting_is_not_run(live: Engine, conf: ConfigFile,
                                                                      tmp_path: Path) -> None:
    card = await live.handle(req(ALICE, "touch prod waited", confirmed=True))
    conf.edit('"console:alice": [operator]', '"console:alice": [viewer]')
    await until(lambda: "operator" not in live.config.roles_of("console:alice"))
    done = await live.act("approve", card.request_id or "", BOB)
    assert done.tone is Tone.error and "no longer may" in done.text
    assert not (tmp_path / "waited").exists()


async def test_users_channels_and_environments_take_effect(live: Engine, conf: ConfigFile, tmp_path: Path) -> None:
    refused = await live.handle(req(DAVE, "touch dev d1", confirmed=True))
    assert refused.tone is Tone.error and "operator" in refused.text
    text = (conf.path.read_text()
            .replace('"console:carol": [admin]', '"console:carol": [admin]\n  "console:dave": [operator]')
            .replace("channels: {}", 'channels:\n  "console": {default_env: rumpletest}')
            .replace("protected: false", "protected: true", 1))  # the first unprotected one: rumpletest
    conf.path.write_text(text)  # one write: the watcher sees all of it at once
    await until(lambda: "operator" in live.config.roles_of("console:dave"))
    who = await live.handle(req(DAVE, "whoami"))
    assert "operator" in who.text and ("Channel default environment", "rumpletest") in who.fields
    asked = await live.handle(req(DAVE, "touch test d2", confirmed=True))
    assert asked.tone is Tone.pending and "needs approval" in asked.text  # rumpletest is protected now
    # The resolver follows too: a new alias resolves at once.
    conf.edit("aliases: [dev, development]", "aliases: [dev, development, sandbox]")
    await until(lambda: live.resolver.resolve(Kind.env, "sandbox") == "rumpledev")
    sandbox = await live.handle(req(DAVE, "touch sandbox d3", confirmed=True))
    assert sandbox.ok and (tmp_path / "d3").exists()


async def test_an_invalid_file_keeps_the_old_one_and_health_says_so(live: Engine, conf: ConfigFile,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="chatops.upkeep")
    before = live.config
    conf.edit('"console:bob": [operator, approver]', '"console:bob": [operator, approver, overlord]')
    await until(lambda: "not valid" in caplog.text)
    assert live.config is before and live.config.roles_of("console:bob") >= {"approver"}
    assert "users.console:bob.2" in caplog.text and "keeping the configuration loaded at" in caplog.text
    health: Reply = await live.handle(req(CAROL, "health"))
    row = next(r for r in health.tables[0].rows if r[0] == "config")
    assert row[1] == "INVALID" and "users.console:bob" in row[2] and "still in force" in row[2]
    assert "config" in health.text
    # Still answering with the old roles meanwhile.
    assert (await live.handle(req(BOB, "whoami"))).ok
    conf.edit("overlord]", "]")
    await until(lambda: live.config is not before)
    row = next(r for r in (await live.handle(req(CAROL, "health"))).tables[0].rows if r[0] == "config")
    assert row[1] == "ok"


async def test_a_reload_keeps_clients_unless_their_sections_change(config: object, db: Database,
                                                                   conf: ConfigFile) -> None:
    built: list[object] = []

    def backends_for(cfg: object) -> object:
        from infra.backends import Backends

        built.append(cfg)
        return Backends(cfg)  # type: ignore[arg-type]

    eng = Engine(load_config(conf.path), make_engine(load_config(conf.path), db).store,
                 backends_for=backends_for)  # type: ignore[arg-type]
    assert len(built) == 1
    conf.edit('"console:alice": [operator]', '"console:alice": [operator, approver]')
    eng.reload(load_config(conf.path))
    assert len(built) == 1 and eng.backends.config is eng.config  # same clients, new config
    conf.edit("protected: false", "protected: true")
    eng.reload(load_config(conf.path))
    assert len(built) == 2  # environments feed the Docker clients: rebuilt
