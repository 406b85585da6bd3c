"""The HTTP API end to end: n8n-style automation asks over real HTTP, an approver decides in Slack
(Bolt over signed HTTP) or Discord (discord.py), the outcome is read back with GET.

The stand-ins (tests/fakes) are the only fakes; the recorder registry counts what ran.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.adapters.discord import DiscordPoster
from bot.openapi import spec as openapi_spec
from infra.config import Config, Role
from infra.db.store import Database
from tests.conftest import ROOT
from tests.discord_kit import BOB, buttons, click, deliver, settle, start_bot
from tests.events_support import (
    DISCORD_OPS,
    OPS,
    TOKENS,
    Recorder,
    Stack,
    engine_for,
    events_config,
    recording_registry,
    slack_buttons,
    slack_text,
)
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.slack_api import FakeSlack


@pytest.fixture
async def bot(config: Config, db: Database, slack: FakeSlack, rec: Recorder) -> AsyncIterator[Stack]:
    cfg = events_config(config, slack_url=f"{slack.base}/api/")
    stack = await Stack(engine_for(cfg, db, recording_registry(rec))).start()
    yield stack
    rec.gate.set()  # a test that failed while holding a run must not hang the teardown
    await stack.stop()


def refusals(bot: Stack, actor: str) -> list[Any]:
    from infra.db.common import AuditFilter

    return [r for r in bot.engine.store.query(AuditFilter(user=actor, limit=50)) if r.status == "refused"]


# -- the whole path -----------------------------------------------------------------------------

async def test_automation_asks_over_http_and_an_approver_approves_in_slack(bot: Stack, slack: FakeSlack,
                                                                            rec: Recorder) -> None:
    status, body = await bot.call("POST", "/api/v1/requests", body={"text": "restart n8n on rumpleprod"})
    assert status == 202, body
    rid = body["id"]
    assert body["status"] == "pending_approval" and body["actor"] == "api:n8n"
    assert body["command"] == "restart" and body["args"] == {"service": "n8n", "env": "rumpleprod"}
    await bot.settle()
    assert rec.runs == []  # nothing ran on the say-so of a token
    # The card went to rumpleprod's ops channel, with the approvers named and the buttons on it.
    cards = [m for m in slack.of("chat.postMessage") if m["channel"] == OPS]
    assert len(cards) == 1
    card = cards[0]
    assert rid in slack_text(card) and "<@UBOB>" in slack_text(card)
    ts = next(k[1] for k, v in slack.messages.items() if k[0] == OPS)
    approve = slack_buttons(card)["Approve"]
    # A token holder never approves its own request; bob does, by clicking in the channel.
    assert await bot.slack_click("UBOB", approve, channel=OPS, message=card, message_ts=ts) == 200
    await bot.settle()
    assert [(r.command, r.actor, r.request_id) for r in rec.runs] == [("restart", "api:n8n", rid)]
    status, got = await bot.call("GET", f"/api/v1/requests/{rid}")
    assert status == 200
    assert got["status"] == "succeeded" and got["approver"] == "slack:UBOB"
    assert "restart n8n on rumpleprod done" in got["result"]
    kinds = [e["kind"] for e in got["events"]]
    assert kinds == ["requested", "pending_approval", "approved", "started", "progress", "succeeded"]
    # The card was edited in place with the outcome; no second message in the ops channel.
    final = slack.messages[(OPS, ts)]
    assert "Approved by <@UBOB>" in slack_text(final) and slack_buttons(final) == {}
    assert len([m for m in slack.of("chat.postMessage") if m["channel"] == OPS]) == 1


async def test_automation_change_approved_in_discord(config: Config, db: Database, api: FakeDiscord,
                                                     rec: Recorder) -> None:
    cfg = events_config(config, notify={"discord": DISCORD_OPS})
    stack = await Stack(engine_for(cfg, db, recording_registry(rec))).start(slack=False)
    bot = await start_bot(stack.engine, api)
    stack.engine.notify.register(DiscordPoster(bot))
    try:
        status, body = await stack.call("POST", "/api/v1/requests",
                                        body={"command": "deploy", "args": {"stack": "chat", "env": "prod"}})
        assert status == 202 and body["status"] == "pending_approval", body
        assert body["args"] == {"stack": "chat", "env": "rumpleprod"}  # canonical, aliases resolved
        await stack.settle()
        sent = [c for c in api.of("send") if c.path.endswith(f"/channels/{DISCORD_OPS}/messages")]
        assert len(sent) == 1
        card = api.messages[sent[0].message_id or ""]
        assert body["id"] in json.dumps(card["embeds"])
        data = click(api, card["id"], buttons(card)["Approve"], BOB)
        deliver(bot, api, data)
        await settle()
        await stack.settle()
        assert [(r.command, r.actor) for r in rec.runs] == [("deploy", "api:n8n")]
        status, got = await stack.call("GET", f"/api/v1/requests/{body['id']}")
        assert got["status"] == "succeeded" and got["approver"] == f"discord:{BOB['id']}"
        assert api.problems == []
    finally:
        await bot.close()
        await stack.stop()


async def test_reads_answer_at_once_and_unprotected_changes_can_be_waited_for(bot: Stack, rec: Recorder) -> None:
    status, body = await bot.call("POST", "/api/v1/requests", body={"text": "logs n8n dev tail=20"})
    assert status == 200 and body["status"] == "succeeded"
    assert body["reply"]["text"] == "logs n8n on rumpledev done"
    assert rec.of("logs")[0].args["tail"] == 20
    # A change on an unprotected environment needs no approval; the API call is its confirmation.
    rec.gate.clear()
    status, body = await bot.call("POST", "/api/v1/requests",
                                  body={"command": "restart", "args": {"service": "n8n", "env": "dev"}})
    assert status == 202 and body["status"] in ("requested", "started")  # as it stood when recorded
    rec.gate.set()
    await bot.settle()
    assert (await bot.call("GET", f"/api/v1/requests/{body['id']}"))[1]["status"] == "succeeded"
    status, body = await bot.call("POST", "/api/v1/requests",
                                  body={"text": "restart nginx on rumpletest", "wait": 30})
    assert status == 200 and body["status"] == "succeeded"  # waited for the outcome


# -- bad input -----------------------------------------------------------------------------------

async def test_bad_tokens_are_401_and_audited_when_they_ask_for_something(bot: Stack, rec: Recorder) -> None:
    status, body = await bot.call("POST", "/api/v1/requests", token=None, body={"text": "restart n8n on dev"})
    assert status == 401 and "bearer token" in body["error"].lower()
    status, body = await bot.call("POST", "/api/v1/requests", token="chatops_not-a-real-one",
                                  body={"text": "restart n8n on dev"})
    assert status == 401 and "Unknown API token" in body["error"]
    rows = refusals(bot, "api:unauthenticated")
    assert len(rows) == 2 and {r.command for r in rows} == {"restart"} and body["request_id"] in {r.id for r in rows}
    # Garbage from nobody asks for nothing: a 401, and no row to fill the audit log with.
    status, _ = await bot.call("POST", "/api/v1/requests", token="x", raw=b"\x00\x01garbage")
    assert status == 401
    huge = b'{"text": "' + b"x" * (bot.engine.config.inventory.api.max_body_bytes + 10) + b'"}'
    status, _ = await bot.call("POST", "/api/v1/requests", token=None, raw=huge)
    assert status == 401  # not 413: who may ask is settled before what was asked
    assert len(refusals(bot, "api:unauthenticated")) == 2
    assert rec.runs == []


async def test_bad_json_bad_shape_and_oversized_bodies_are_clear_4xx_with_audit_rows(bot: Stack) -> None:
    status, body = await bot.call("POST", "/api/v1/requests", raw=b'{"text": "restart n8n on dev"')
    assert status == 400 and "not valid JSON" in body["error"] and body["request_id"]
    status, body = await bot.call("POST", "/api/v1/requests", body=["restart"])
    assert status == 400 and "not an object" in body["error"]
    status, body = await bot.call("POST", "/api/v1/requests", body={"text": "status dev", "channel": "x"})
    assert status == 400 and "Unknown field channel;" in body["error"]
    status, body = await bot.call("POST", "/api/v1/requests", body={"text": "status dev", "command": "status"})
    assert status == 400 and "exactly one" in body["error"]
    status, body = await bot.call("POST", "/api/v1/requests", body={"command": "restart", "args": {"env": ["x"]}})
    assert status == 400 and "plain values" in body["error"]
    limit = bot.engine.config.inventory.api.max_body_bytes
    status, body = await bot.call("POST", "/api/v1/requests", raw=b'{"text": "' + b"x" * limit + b'"}')
    assert status == 413 and str(limit) in body["error"]
    rows = refusals(bot, "api:n8n")
    assert len(rows) == 6
    assert {r.id for r in rows} >= {body["request_id"]}
    assert any(r.command == "restart" for r in rows)  # the shape error still names what was asked


async def test_unknown_names_roles_and_time_phrases_are_refused_with_reasons(bot: Stack, rec: Recorder) -> None:
    status, body = await bot.call("POST", "/api/v1/requests", body={"text": "restart n8n on moon"})
    assert status == 422 and body["status"] == "refused" and "moon" in body["reason"]
    status, body = await bot.call("POST", "/api/v1/requests", body={"command": "frobnicate", "args": {}})
    assert status == 422 and "frobnicate" in body["error"] and body["request_id"]
    status, body = await bot.call("POST", "/api/v1/requests", token=TOKENS["viewer"],
                                  body={"text": "restart n8n on dev"})
    assert status == 403 and "needs the operator role" in body["reason"]
    # Scoped to rumpledev: fine there, refused on rumpletest, with the environment named.
    status, body = await bot.call("POST", "/api/v1/requests", token=TOKENS["devonly"],
                                  body={"text": "restart n8n on rumpletest"})
    assert status == 403 and "operator role on rumpletest" in body["reason"]
    status, body = await bot.call("POST", "/api/v1/requests", token=TOKENS["devonly"],
                                  body={"text": "restart n8n on rumpledev", "wait": 30})
    assert status == 200 and body["status"] == "succeeded"
    # API text never goes to the language model: a sentence the grammar can't read is a 422, not a guess.
    status, body = await bot.call("POST", "/api/v1/requests", body={"text": "please make the thing better"})
    assert status == 422 and body["request_id"]
    status, body = await bot.call("POST", "/api/v1/requests", body={"text": "status dev", "when": "whenever"})
    assert status == 422 and "time phrase" in body["error"]
    assert [r.actor for r in rec.runs] == ["api:devonly"]


async def test_get_shows_only_the_tokens_own_requests_unless_admin(bot: Stack) -> None:
    _, mine = await bot.call("POST", "/api/v1/requests", body={"text": "status dev"})
    status, _ = await bot.call("GET", f"/api/v1/requests/{mine['id']}", token=TOKENS["viewer"])
    assert status == 404
    status, got = await bot.call("GET", f"/api/v1/requests/{mine['id']}", token=TOKENS["admin"])
    assert status == 200 and got["id"] == mine["id"]
    assert (await bot.call("GET", "/api/v1/requests/r-00000000"))[0] == 404
    assert (await bot.call("GET", "/api/v1/requests/not-an-id"))[0] == 404
    assert (await bot.call("GET", f"/api/v1/requests/{mine['id']}", token=None))[0] == 401


async def test_scheduling_over_the_api(bot: Stack) -> None:
    status, body = await bot.call("POST", "/api/v1/requests", body={
        "command": "restart", "args": {"service": "n8n", "env": "dev"}, "when": "every night at 02:00"})
    assert status == 201 and body["status"] == "scheduled" and body["schedule_id"].startswith("s-")
    sched = bot.engine.schedules.rows.schedule(body["schedule_id"])
    assert sched is not None and sched.owner == "api:n8n" and sched.recurrence == "daily 02:00"


# -- edges an attacker or a careless automation finds -----------------------------------------------

async def test_when_beside_text_schedules_and_a_bad_or_second_time_runs_nothing(bot: Stack, rec: Recorder) -> None:
    status, body = await bot.call("POST", "/api/v1/requests", body={"text": "restart n8n on dev",
                                                                     "when": "every night at 02:00"})
    assert status == 201 and body["status"] == "scheduled" and body["schedule_id"].startswith("s-")
    status, body = await bot.call("POST", "/api/v1/requests", body={"text": "restart n8n on dev",
                                                                     "when": "at 25:99"})
    assert status == 422 and body["status"] == "refused" and "25:99" in body["reason"], body
    status, body = await bot.call("POST", "/api/v1/requests", body={"text": "restart n8n on dev at 22:00",
                                                                     "when": "at 23:00"})
    assert status == 422 and "given twice" in body["reason"], body
    await bot.settle()
    assert rec.runs == []  # none of the three ran now


async def test_deep_json_and_nul_characters_are_4xx_with_audit_rows(bot: Stack, rec: Recorder) -> None:
    deep = b'{"text": "status dev", "args": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}"
    status, body = await bot.call("POST", "/api/v1/requests", raw=deep)
    assert status == 400 and "nested too deeply" in body["error"] and body["request_id"]
    status, body = await bot.call("POST", "/api/v1/alertmanager", token=TOKENS["alertmanager"], raw=deep)
    assert status == 400 and "nested too deeply" in body["error"]
    # PostgreSQL's text and jsonb hold no NUL: the request is still audited (as U+FFFD) and answered.
    for ask in ({"command": "status", "args": {"env": "dev\u0000"}}, {"command": "stat\u0000us"},
                {"command": "logs", "args": {"service": "n8n", "env": "dev", "since\u0000": "1h"}}):
        status, body = await bot.call("POST", "/api/v1/requests", raw=json.dumps(ask).encode())
        assert status == 422, (ask, body)
        row = bot.engine.store.get(body.get("id") or body["request_id"])
        assert row is not None and row.status == "refused" and "\ufffd" in (row.text or "")
    status, body = await bot.call("POST", "/api/v1/requests", raw=b'{"text": "status dev", "wait": NaN}')
    assert status == 400 and "'wait'" in body["error"]
    assert rec.runs == []


async def test_tokens_never_approve_and_unconfirmed_guesses_do_not_run(bot: Stack, rec: Recorder) -> None:
    status, body = await bot.call("POST", "/api/v1/requests", body={"text": "restart n8n on rumpleprod"})
    assert status == 202 and body["status"] == "pending_approval"
    status, decided = await bot.call("POST", "/api/v1/requests", token=TOKENS["admin"],
                                     body={"text": f"approve {body['id']}", "wait": 30})
    assert "automation token" in decided.get("reply", {}).get("text", ""), (status, decided)
    assert (await bot.call("GET", f"/api/v1/requests/{body['id']}"))[1]["status"] == "pending_approval"
    # Nobody sees an "I understood" card for an API call, so words the reading could not place stop it,
    # and so does an argument given twice.
    for text in ("restart n8n dev blorp", "restart n8n env=rumpledev env=rumpletest"):
        status, body = await bot.call("POST", "/api/v1/requests", body={"text": text})
        assert status == 422 and body["status"] == "refused", (text, body)
    status, body = await bot.call("POST", "/api/v1/requests", body={"text": "restart n8n env=dev env=rumpledev",
                                                                     "wait": 30})
    assert status == 200 and body["status"] == "succeeded"  # the same environment, said twice
    await bot.settle()
    assert [(r.command, r.args["env"]) for r in rec.runs] == [("restart", "rumpledev")]


async def test_a_body_that_stalls_is_answered_408_and_runs_nothing(config: Config, db: Database, slack: FakeSlack,
                                                                   rec: Recorder) -> None:
    import asyncio
    import dataclasses
    from urllib.parse import urlsplit

    from infra.config import Api

    cfg = events_config(config, slack_url=f"{slack.base}/api/")
    cfg = dataclasses.replace(cfg, inventory=cfg.inventory.model_copy(update={"api": Api(body_timeout_s=0.3)}))
    bot = await Stack(engine_for(cfg, db, recording_registry(rec))).start()
    url = urlsplit(bot.api_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(b"POST /api/v1/requests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + TOKENS["n8n"].encode() + b"\r\nContent-Length: 40\r\n\r\n{\"text\": ")
    await writer.drain()  # ... and nothing more: a client that stalls
    try:
        head = await asyncio.wait_for(reader.read(200), 10)
    finally:
        writer.close()
        await bot.stop()
    assert head.startswith(b"HTTP/1.1 408"), head
    assert rec.runs == []


async def test_a_token_in_a_body_is_masked_in_the_answer_and_the_audit_log(bot: Stack) -> None:
    secret = TOKENS["admin"]
    status, body = await bot.call("POST", "/api/v1/requests", body={"text": "status dev", secret: 1})
    assert status == 400 and secret not in body["error"]
    status, body = await bot.call("POST", "/api/v1/requests", token=None, body={"text": f"status dev {secret}"})
    assert status == 401 and secret not in json.dumps(body)
    rows = refusals(bot, "api:n8n") + refusals(bot, "api:unauthenticated")
    assert len(rows) == 2
    assert all(secret not in f"{r.text} {r.reason}" for r in rows)
    # The refusal's own advice is not mangled by that masking.
    assert any("header Authorization" in (r.reason or "") and "[redacted]" not in (r.reason or "") for r in rows)


# -- the description -------------------------------------------------------------------------------

async def test_openapi_is_served_and_docs_keep_the_same_document(bot: Stack) -> None:
    status, served = await bot.call("GET", "/api/v1/openapi.json", token=None)
    assert status == 200
    assert served == openapi_spec(bot.engine.registry)
    kept = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    differ = [k for k in set(kept["components"]["schemas"]) | set(served["components"]["schemas"])
              if kept["components"]["schemas"].get(k) != served["components"]["schemas"].get(k)]
    assert kept == served, f"regenerate: chatops api openapi > docs/openapi.yaml (schemas differing: {differ})"
    # Every route the server has is described, and nothing else.
    routes = {(r.method.lower(), r.resource.canonical) for r in bot.api.web_app().router.routes()  # type: ignore[union-attr]
              if r.method != "HEAD"}
    described = {(m, p) for p, ops in served["paths"].items() for m in ops}
    assert routes == described


def test_token_create_prints_the_token_once_and_only_its_hash_for_the_config(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bot.cli import main
    from infra.api_tokens import identify, token_hash
    from infra.config import load_config

    out = CliRunner().invoke(main, ["api", "token", "create", "n8n", "--role", "operator", "--env", "rumpledev"])
    assert out.exit_code == 0, out.output
    token = next(w for w in out.output.split() if w.startswith("chatops_"))
    snippet = out.output[out.output.index("api_tokens:"):]
    assert token not in snippet and token_hash(token) in snippet
    cfg_file = tmp_path / "c.yaml"
    shipped = (ROOT / "chatops.yaml").read_text().replace("path: compose/", f"path: {ROOT}/compose/")
    cfg_file.write_text(shipped.replace("channels: {}", "channels: {}\n" + snippet))
    cfg = load_config(cfg_file)
    assert identify(cfg, token) == "api:n8n" and identify(cfg, token + "x") is None
    assert cfg.roles_of("api:n8n", frozenset({"rumpledev"})) >= {Role.operator}
    assert Role.operator not in cfg.roles_of("api:n8n", frozenset({"rumpleprod"}))
    bad = CliRunner().invoke(main, ["api", "token", "create", "Bad Name"])
    assert bad.exit_code == 2
    reserved = CliRunner().invoke(main, ["api", "token", "create", "unauthenticated"])
    assert reserved.exit_code == 2 and "reserved" in reserved.output
    # An --env that is no name would be printed into the snippet as YAML of its own (roles: [admin]).
    forged = CliRunner().invoke(main, ["api", "token", "create", "ci", "--env", "rumpledev]\n    roles: [admin"])
    assert forged.exit_code == 2 and "api_tokens:" not in forged.output
