"""Safety review: attempts to break the project's safety rules through each entry route.

Each test is one way in that used to get through (or one that must stay shut):
secrets in reply parts other than the text and in audit reasons, a thread follow-up
that reuses another person's plan, a model that fills in a value the user never said,
an explicit command that names one argument twice.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from bot.engine import Engine
from bot.request import Actor, Attachment, Reply, Request, Table, Tone
from commands.context import Context
from commands.registry import Registry, command, registry
from infra.backends import Backends
from infra.config import Config
from infra.db.store import AuditStore
from llm.agent import LLMClient
from llm.grammar import parse_explicit
from llm.resolve import Resolver
from tests.fakes.openai_server import FakeOpenAI, plan
from tests.llm_support import (
    ALICE,
    Bot,
    with_llm,
)

BOB = Actor("console:bob")
PASSWORD = "hunter2-s3cret"
TOKEN = "xoxb-1234567890-abcdefghijkl"


@pytest.fixture
async def bot(config: Config, store: AuditStore, server: FakeOpenAI) -> AsyncIterator[Bot]:
    cfg = with_llm(config, server.base_url)
    b = Bot(cfg, store, LLMClient(cfg.inventory.llm))
    await b.engine.start()
    yield b
    await b.engine.close()


def everything(reply: Reply) -> str:
    """Every string of a reply a platform could show (text, title, fields, tables, files)."""
    parts = [reply.text, reply.title, *(f"{k} {v}" for k, v in reply.fields)]
    for t in reply.tables:
        parts += [t.title, *t.columns, *(c for row in t.rows for c in row)]
    for a in reply.attachments:
        parts += [a.filename, a.title, a.content.decode("utf-8", "replace")]
    return "\n".join(parts)


def audit_dump(store: AuditStore, rid: str) -> str:
    row = store.get(rid)
    assert row is not None
    cols = {c: getattr(row, c) for c in ("text", "args", "reason", "error", "result")}
    events = [e.detail for e in store.events(rid)]
    return json.dumps([cols, events], default=str)


# -- secrets ------------------------------------------------------------------

def leaky_registry() -> Registry:
    """The real commands plus one whose reply carries a credential in every part but the text."""
    reg = Registry()
    for spec in registry():
        reg.add(spec)

    @command("leak", summary="a reply with a backend's credentials in it", registry=reg)
    async def leak(ctx: Context, args: dict[str, Any]) -> Reply:
        url = f"https://admin:{PASSWORD}@127.0.0.1:9443/api"
        return Reply("backend answered", title=f"from {url}", fields=[("Endpoint", url)],
                     tables=[Table(["backend", "detail"], [["portainer", f"401 from {url}"]], title=TOKEN)],
                     attachments=[Attachment("out.txt", f"token={TOKEN}\n".encode(), "text/plain",
                                             title=f"token {TOKEN}"),
                                  Attachment("chart.png", b"\x89PNG\r\n", "image/png")])

    return reg


async def test_every_part_of_a_handler_reply_is_redacted(config: Config, store: AuditStore) -> None:
    eng = Engine(config, store, Backends(config), registry=leaky_registry())
    await eng.start()
    reply = await eng.handle(Request(actor=ALICE, text="leak", channel="console"))
    shown = everything(reply)
    assert "backend answered" in shown and "portainer" in shown
    assert PASSWORD not in shown and TOKEN not in shown
    assert "[redacted]" in reply.title and "[redacted]" in reply.tables[0].rows[0][1]
    assert reply.attachments[0].content == b"token=[redacted]\n"
    assert reply.attachments[1].content == b"\x89PNG\r\n"  # binary files are left as they are
    await eng.close()


async def test_degraded_model_message_hides_credentials_in_chat_and_audit(
        config: Config, store: AuditStore) -> None:
    # A base URL with credentials in it, pointed at a closed port: the error names the URL.
    cfg = with_llm(config, f"http://llm:{PASSWORD}@127.0.0.1:9/v1", max_retries=0)
    client = LLMClient(cfg.inventory.llm)
    b = Bot(cfg, store, client)
    await b.engine.start()
    reply = await b.say("the workflow engine on dev is wedged, sort it out please")
    assert "can't help right now" in reply.text and "cannot connect" in reply.text
    assert PASSWORD not in everything(reply)
    await b.engine.close()


async def test_audit_store_masks_credentials_in_every_text_it_writes(config: Config, store: AuditStore) -> None:
    eng = Engine(config, store, Backends(config))
    await eng.start()
    row = eng._row(Request(actor=ALICE, text="status", channel="console"),
                   replace(await eng.plan(Request(actor=ALICE, text="status dev"))), "refused",
                   reason=f"backend at https://u:{PASSWORD}@127.0.0.1/ said no")
    await eng._db(store.create, row, [("refused", {"reason": f"token {TOKEN}"})])
    await eng._db(store.note, row.id, "progress", ALICE.id, {"text": f"password={PASSWORD}"})
    dump = audit_dump(store, row.id)
    assert "said no" in dump and PASSWORD not in dump and TOKEN not in dump
    await eng.close()


# -- thread follow-ups --------------------------------------------------------

async def test_a_follow_up_from_someone_else_does_not_reuse_the_plan(bot: Bot, server: FakeOpenAI) -> None:
    first = await bot.say("logs n8n dev")
    assert first.ok
    # The model may not take the names from Alice's turn: Bob's request sees no thread plan.
    server.add(plan("restart", service="n8n", env="rumpletest"))
    via_model = await bot.say("sort that out on staging too", actor=BOB)
    assert "I understood" not in via_model.text and "I won't guess" in via_model.text
    sent = [m["content"] for m in server.requests[-1]["messages"] if m["role"] == "system"]
    assert not any("Earlier in this thread" in s for s in sent)
    # Bob never named n8n or an environment: "restart it" is not his follow-up to make.
    theirs = await bot.say("restart it", actor=BOB)
    assert "I understood" not in theirs.text
    assert theirs.text.startswith("Which service")
    # Alice's own follow-up still works.
    mine = await bot.say("restart it")
    assert mine.text.startswith("I understood: restart n8n rumpledev")
    assert await bot.engine._db(bot.engine.store.pending) != []
    assert [c[0] for c in bot.calls] == ["logs"]


# -- the model's values -------------------------------------------------------

@pytest.mark.parametrize(("text", "answer", "word"), [
    ("make the dev vm like it was", plan("restore", vm="rumpledev", snapshot="pre-upgrade"), "pre-upgrade"),
    ("the chat stack on dev needs the new build",
     plan("deploy", stack="chat", env="rumpledev", ref="v9.9.9"), "v9.9.9"),
    ("make web on dev like it was before", plan("rollback", stack="web", env="rumpledev", to="3"), "3"),
])
async def test_model_values_the_user_never_said_are_not_used(bot: Bot, server: FakeOpenAI, text: str,
                                                              answer: Any, word: str) -> None:
    server.add(answer)
    reply = await bot.say(text, thread=None)
    assert "I understood" not in reply.text and f"'{word}'" in reply.text
    assert await bot.engine._db(bot.engine.store.pending) == []
    assert bot.calls == []


async def test_model_values_the_user_said_are_used(bot: Bot, server: FakeOpenAI) -> None:
    server.add(plan("restore", vm="rumpledev", snapshot="pre-upgrade"))
    reply = await bot.say("make the dev vm like it was at pre-upgrade", thread=None)
    assert reply.text.startswith("I understood: restore rumpledev pre-upgrade")


# -- the explicit grammar -----------------------------------------------------

@pytest.mark.parametrize("text", ["restart n8n dev env=rumple", "restart n8n env=dev env=rumple",
                                  "deploy chat dev ref=v1 ref=v2"])
def test_an_argument_given_twice_with_different_values_is_refused(config: Config, text: str) -> None:
    p = parse_explicit(text, Resolver(config), registry())
    assert p.command is None and p.clarify is not None and "twice" in p.clarify


def test_an_argument_repeated_with_the_same_value_is_fine(config: Config) -> None:
    p = parse_explicit("restart n8n dev env=rumpledev", Resolver(config), registry())
    assert p.complete and p.args == {"service": "n8n", "env": "rumpledev"}


# -- slash commands -----------------------------------------------------------

@pytest.mark.parametrize(("args", "expect"), [
    ({"service": "n8n", "env": "rumpledev", "force": "yes"}, "no argument 'force'"),
    ({"service": ["n8n"], "env": "rumpledev"}, "I don't know a service"),
    ({"service": "n8n", "env": {"name": "rumple"}}, "I don't know an environment"),
    ({"service": "n8n", "env": "rumpledev", "stack": "chat"}, "has no service n8n"),
])
async def test_structured_arguments_are_validated_like_text(bot: Bot, args: dict[str, Any], expect: str) -> None:
    reply = await bot.engine.handle(Request(actor=ALICE, text="/ops restart", channel="C1", command="restart",
                                            args=args))
    assert reply.tone is Tone.question and expect in reply.text
    assert bot.calls == [] and await bot.engine._db(bot.engine.store.pending) == []


@pytest.mark.parametrize("text", ["restart n8n on prod? no, dev", "restart n8n on prod, nope, on dev"])
def test_a_corrected_target_replaces_the_one_taken_back(config: Config, text: str) -> None:
    # "no, dev" corrects the target; reading it as "not dev" would leave prod, the one taken back.
    # A correction that ends the message names the target (issue 13, third pass).
    from llm.nl import NLParser, parse_plain

    p = parse_plain(text, NLParser(Resolver(config), registry(), frozenset()))
    assert p.complete and p.args == {"service": "n8n", "env": "rumpledev"}


@pytest.mark.parametrize("text", ["restart n8n on prod, no dev", "restart n8n on prod? no, dev and test"])
def test_a_correction_that_is_not_clear_is_asked_about(config: Config, text: str) -> None:
    # "no dev" may exclude dev; "no, dev and test" names more than the one taken back: never a guess
    from llm.nl import NLParser, parse_plain

    p = parse_plain(text, NLParser(Resolver(config), registry(), frozenset()))
    assert p.command is None and p.clarify is not None
    assert "two environments" in p.clarify and "rumpleprod" in p.clarify


def test_not_still_excludes_a_target(config: Config) -> None:
    from llm.nl import NLParser, parse_plain

    p = parse_plain("restart n8n on dev but not on prod", NLParser(Resolver(config), registry(), frozenset()))
    assert p.complete and p.args == {"service": "n8n", "env": "rumpledev"}
