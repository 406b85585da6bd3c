"""Roles scoped to environments, and channels that limit what they take, on every route.

dora is an operator on rumpledev and rumpletest only; erin approves on rumpletest only, fay on
rumpleprod only.  The same request is tried by typed command, plain language, the language
model (a scripted OpenAI-compatible server), a slash command, a decision button and an alert
button; the HTTP API and schedules have their own tests (test_api.py, test_schedules.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.engine import Engine
from bot.request import Actor, Reply, Request, Tone
from infra.config import Channel, Config, ConfigError, Grant, Role
from infra.db.store import Database
from llm.agent import LLMClient
from tests.conftest import ROOT
from tests.events_support import Recorder, engine_for, events_config, recording_registry
from tests.fakes.openai_server import FakeOpenAI, plan
from tests.llm_support import with_llm

USERS = {"console:dora": Grant(roles=[Role.operator], envs=["rumpledev", "rumpletest"]),
         "console:erin": Grant(roles=[Role.approver], envs=["rumpletest"]),
         "console:fay": Grant(roles=[Role.approver], envs=["rumpleprod"])}
CHANNELS = {"slack:CDEV": Channel(default_env="rumpledev", commands=["status", "logs", "restart", "help"],
                                  envs=["rumpledev"]),
            "slack:CPROD": Channel(envs=["rumpleprod"])}


@pytest.fixture
async def engine(config: Config, db: Database, server: FakeOpenAI, rec: Recorder) -> AsyncIterator[Engine]:
    cfg = with_llm(events_config(config, users=USERS, channels=CHANNELS), server.base_url)
    e = engine_for(cfg, db, recording_registry(rec))
    e.backends.override("llm", LLMClient(cfg.inventory.llm))
    await e.start()
    yield e
    await e.close()


async def say(e: Engine, user: str, text: str, channel: str | None = None, **kw: object) -> Reply:
    return await e.handle(Request(actor=Actor(user), text=text, platform=user.split(":")[0], channel=channel,
                                  confirmed=True, **kw))  # type: ignore[arg-type]


def refused_row(e: Engine, reply: Reply) -> str:
    row = e.store.get(reply.request_id or "")
    assert row is not None and row.status == "refused", reply.text
    return row.source


async def test_a_scoped_operator_on_every_route(engine: Engine, server: FakeOpenAI, rec: Recorder) -> None:
    outside = "'restart' needs the operator role on rumpleprod; you have viewer there"
    # Typed, canonical grammar.
    typed = await say(engine, "console:dora", "restart n8n on rumpleprod")
    assert outside in typed.text and refused_row(engine, typed) == "grammar"
    # Plain language.
    plain = await say(engine, "console:dora", "bounce n8n on prod")
    assert outside in plain.text and refused_row(engine, plain) == "grammar"
    # The language model's plan.
    server.add(plan("restart", service="n8n", env="rumpleprod"))
    model = await say(engine, "console:dora", "the workflow engine on production wants to be fresh again")
    assert outside in model.text and refused_row(engine, model) == "llm"
    # A slash command (structured arguments).
    slash = await say(engine, "console:dora", "/ops restart", command="restart",
                      args={"service": "n8n", "env": "rumpleprod"})
    assert outside in slash.text and refused_row(engine, slash) == "slash"
    assert rec.runs == []
    # In scope it is an operator; reads elsewhere are still a viewer's.
    assert (await say(engine, "console:dora", "restart n8n on dev")).ok
    assert (await say(engine, "console:dora", "logs n8n on prod")).ok
    assert [(r.command, r.args["env"]) for r in rec.runs] == [("restart", "rumpledev"), ("logs", "rumpleprod")]
    who = await say(engine, "console:dora", "whoami")
    assert "operator" in who.text


async def test_scoped_approvers_decide_only_where_they_may(engine: Engine, rec: Recorder) -> None:
    pending = await say(engine, "console:alice", "restart n8n on prod")
    assert pending.tone is Tone.pending
    assert "console:fay" in pending.mentions and "console:bob" in pending.mentions
    assert "console:erin" not in pending.mentions  # not an approver on rumpleprod
    rid = pending.request_id or ""
    erin = await engine.decide("approve", rid, Actor("console:erin"), pending.buttons[0].plan_hash)
    assert not erin.applied and "approver role" in erin.reply.text
    typed = await say(engine, "console:erin", f"approve {rid}")
    assert not typed.ok and rec.runs == []
    fay = await engine.decide("approve", rid, Actor("console:fay"), pending.buttons[0].plan_hash)
    assert fay.applied and [r.actor for r in rec.runs] == ["console:alice"]


async def test_an_alert_button_runs_with_the_clickers_scoped_roles(engine: Engine, rec: Recorder) -> None:
    from infra.db.events import EventStore
    from llm.plan import plan_hash

    args = {"service": "n8n", "env": "rumpleprod", "stack": "workflows"}
    sug = EventStore(engine.store).add_suggestion("restart", args, plan_hash("restart", args), "alert:test")
    req = Request(actor=Actor("console:dora"), text=f"run {sug.id}", platform="console")
    clicked = await engine.decide("run", sug.id, Actor("console:dora"), sug.plan_hash, req=req)
    assert "operator role on rumpleprod" in clicked.reply.text
    row = engine.store.get(clicked.reply.request_id or "")
    assert row is not None and row.status == "refused" and row.source == "alert" and rec.runs == []
    # A forged button (the plan changed) does nothing.
    forged = await engine.decide("run", sug.id, Actor("console:alice"), "0" * 64, req=req)
    assert "does not match" in forged.reply.text


async def test_channels_take_only_their_commands_and_environments(engine: Engine, server: FakeOpenAI,
                                                                  rec: Recorder) -> None:
    elsewhere = await say(engine, "console:alice", "restart n8n on prod", channel="slack:CDEV")
    assert "does not act on rumpleprod" in elsewhere.text and refused_row(engine, elsewhere)
    other = await say(engine, "console:alice", "deploy chat dev", channel="slack:CDEV")
    assert "does not take 'deploy' requests" in other.text
    server.add(plan("deploy", stack="chat", env="rumpledev"))
    model = await say(engine, "console:alice", "could you put the newest chat bits onto development",
                      channel="slack:CDEV")
    assert "does not take 'deploy' requests" in model.text and refused_row(engine, model) == "llm"
    # The channel's default environment and its own commands work.
    assert (await say(engine, "console:alice", "restart n8n", channel="slack:CDEV")).ok
    assert [(r.command, r.args["env"]) for r in rec.runs] == [("restart", "rumpledev")]
    # A decision counts in a channel that takes the request's environment only.
    pending = await say(engine, "console:alice", "restart n8n on prod", channel="slack:CPROD")
    rid, digest = pending.request_id or "", pending.buttons[0].plan_hash
    in_dev = await engine.decide("approve", rid, Actor("console:bob"), digest,
                                 req=Request(actor=Actor("console:bob"), text="", channel="slack:CDEV"))
    assert not in_dev.applied and "does not act on rumpleprod" in in_dev.reply.text
    in_prod = await engine.decide("approve", rid, Actor("console:bob"), digest,
                                  req=Request(actor=Actor("console:bob"), text="", channel="slack:CPROD"))
    assert in_prod.applied and len(rec.runs) == 2


def test_scoped_config_is_checked(config: Config, tmp_path: Path) -> None:
    from bot.cli import main
    from infra.config import load_config

    shipped = (ROOT / "chatops.yaml").read_text().replace("path: compose/", f"path: {ROOT}/compose/")
    good = shipped.replace('"console:alice": [operator]',
                           '"console:alice": {roles: [operator], envs: [rumpledev, rumpletest]}')
    cfg_file = tmp_path / "good.yaml"
    cfg_file.write_text(good)
    cfg = load_config(cfg_file)
    assert cfg.roles_of("console:alice", frozenset({"rumpletest"})) >= {Role.operator}
    assert cfg.roles_of("console:alice", frozenset({"rumpleprod"})) == frozenset({Role.viewer})
    assert cfg.roles_of("console:alice", frozenset({"rumpledev", "rumpleprod"})) == frozenset({Role.viewer})
    bad = shipped.replace('"console:alice": [operator]', '"console:alice": {roles: [operator], envs: [moon]}')
    bad = bad.replace("channels: {}", "channels:\n  'slack:C1': {envs: [dev], default_env: rumpletest}")
    (tmp_path / "bad.yaml").write_text(bad)
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "bad.yaml")
    msg = str(err.value)
    assert "users.console:alice.envs.0: unknown environment 'moon'" in msg
    assert "channels.slack:C1.envs.0: unknown environment 'dev'" in msg  # names, not aliases
    assert "'rumpletest' is not one of the channel's envs" in msg
    typo = shipped.replace('"console:alice": [operator]', '"console:alice": {roles: [operater]}')
    (tmp_path / "typo.yaml").write_text(typo)
    with pytest.raises(ConfigError, match=r"users\.console:alice\.roles\.0"):
        load_config(tmp_path / "typo.yaml")
    unknown_cmd = shipped.replace("channels: {}", "channels:\n  'slack:C1': {commands: [status, depoly]}")
    (tmp_path / "cmd.yaml").write_text(unknown_cmd)
    out = CliRunner().invoke(main, ["config", "check", "--config", str(tmp_path / "cmd.yaml")])
    assert out.exit_code == 2 and "unknown command 'depoly'" in out.output


async def test_an_engine_refuses_to_start_with_a_channel_naming_no_command(config: Config, db: Database) -> None:
    inv = config.inventory.model_copy(update={"channels": {"slack:C1": Channel(commands=["depoly"])}})
    with pytest.raises(ConfigError, match="unknown command 'depoly'"):
        engine_for(dataclasses.replace(config, inventory=inv), db, recording_registry(Recorder()))
