"""The LLM route end to end: the real langchain-openai client against a scripted
OpenAI-compatible server on loopback, through the planner and the engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.engine import Engine
from bot.request import Request, Tone
from commands.registry import Kind
from commands.registry import registry as load_registry
from infra.backends import Backends
from infra.config import Config
from infra.db.store import AuditStore
from llm.agent import LLMClient
from llm.breaker import Breaker, State
from llm.planner import Planner
from llm.resolve import Resolver
from llm.tools import NONE, plan_tool
from tests.fakes.openai_server import Answer, FakeOpenAI, plan
from tests.llm_support import (
    ALICE,
    CAROL,
    KEY,
    MODEL,
    Bot,
    with_llm,
)


@pytest.fixture
def llm_config(config: Config, server: FakeOpenAI) -> Config:
    return with_llm(config, server.base_url)


@pytest.fixture
def planner(llm_config: Config) -> Planner:
    return Planner(llm_config, load_registry())


@pytest.fixture
async def bot(llm_config: Config, store: AuditStore) -> AsyncIterator[Bot]:
    b = Bot(llm_config, store, LLMClient(llm_config.inventory.llm))
    await b.engine.start()
    yield b
    await b.engine.close()


# -- the schema and the request ---------------------------------------------------

def test_tool_schema_comes_from_registry_and_inventory(config: Config) -> None:
    reg, res = load_registry(), Resolver(config)
    params = plan_tool(reg, res)["function"]["parameters"]
    commands = params["properties"]["command"]["enum"]
    assert set(commands) == (set(reg.names()) - {"approve", "deny"}) | {NONE}
    args = params["properties"]["args"]
    assert args["additionalProperties"] is False
    assert args["properties"]["env"]["enum"] == res.choices(Kind.env)
    assert args["properties"]["vm"]["enum"] == res.choices(Kind.vm)
    assert set(args["properties"]["service"]["enum"]) >= {"n8n", "open-webui", "postgres"}
    assert args["properties"]["tail"] == {"type": "integer", "minimum": 1, "maximum": 5000,
                                          "description": "for logs"}
    # No way for the model to confirm anything itself: no parameter anywhere is a confirmation flag
    # (the word may appear as a value: `confirmed` is an audit status the `audit` command filters by).
    def names(schema: object) -> set[str]:
        if isinstance(schema, dict):
            props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
            return set(props) | {n for v in schema.values() for n in names(v)}
        return {n for v in schema for n in names(v)} if isinstance(schema, list) else set()

    assert not {n for n in names(params) if "confirm" in n or n in ("yes", "force")}


async def test_model_plan_is_validated_and_carries_usage(planner: Planner, server: FakeOpenAI) -> None:
    server.add(Answer(arguments={"command": "restart", "args": {"service": "n8n", "env": "rumpledev"}},
                      prompt_tokens=812, completion_tokens=19))
    p = await planner.plan("the workflow engine on dev is wedged, sort it out please", use_llm=True)
    assert (p.command, p.args, p.source, p.clarify) == ("restart", {"service": "n8n", "env": "rumpledev"},
                                                        "llm", None)
    assert p.usage is not None and p.usage["prompt_tokens"] == 812 and p.usage["completion_tokens"] == 19
    assert p.usage["latency_ms"] > 0
    body = server.requests[-1]
    # A named tool choice (what vLLM enforces), the model, and only the user's words as the user turn.
    assert body["tool_choice"] == {"type": "function", "function": {"name": "plan"}}
    assert body["model"] == MODEL and body["temperature"] == 0
    assert [t["function"]["name"] for t in body["tools"]] == ["plan"]
    assert body["messages"][-1] == {"role": "user",
                                    "content": "the workflow engine on dev is wedged, sort it out please"}


async def test_model_aliases_are_canonicalised(planner: Planner, server: FakeOpenAI) -> None:
    server.add(plan("logs", service="webui", env="staging", tail=100))
    p = await planner.plan("show me the last 100 lines from webui on staging", use_llm=True)
    assert (p.command, p.args) == ("logs", {"service": "open-webui", "env": "rumpletest", "tail": 100})


# -- bad answers: each refused clearly, none runs -----------------------------------

@pytest.mark.parametrize(("answer", "expect"), [
    (plan("restart", service="n8n", env="rumpleprod"), "You didn't name an environment"),
    (plan("reboot-everything", env="rumpledev"), "does not exist"),
    (plan("approve", request="r-1a2b3c4d"), "does not exist"),
    (plan("restart", service="n8n", env="rumpledev", confirmed=True), "has no argument 'confirmed'"),
    (Answer(arguments={"command": "restart", "args": {"service": "n8n", "env": "rumpledev"}, "confirmed": True}),
     "fields the plan does not have: confirmed"),
    (plan("restart", service="mongodb", env="rumpledev"), "I don't know a service called 'mongodb'"),
    (plan("logs", service="n8n", env="rumpledev", tail=999999), "tail must be between"),
    (Answer(tool="shell", arguments={"cmd": "docker restart n8n"}), "unknown tool 'shell'"),
    (Answer(arguments='{"command": "restart", "args": {"service": "n8n"'), "not valid JSON"),
    (Answer(tool=None, content="Sure! I restarted n8n for you."), "it gave no plan"),
    (Answer(tool=None, content="", refusal="I can't help with that."), "it refused"),
    (Answer(arguments={"command": 7, "args": []}), "malformed"),
])
async def test_bad_model_answers_are_refused_and_nothing_runs(bot: Bot, server: FakeOpenAI, answer: Answer,
                                                              expect: str) -> None:
    server.add(answer)
    reply = await bot.say("the workflow engine on dev is wedged, sort it out please")
    assert expect in reply.text
    assert reply.tone is Tone.question
    assert bot.calls == []
    assert not reply.buttons  # nothing to confirm
    assert await bot.engine._db(bot.engine.store.pending) == []


async def test_changing_command_for_a_question_is_not_proposed(bot: Bot, server: FakeOpenAI) -> None:
    server.add(plan("restart", service="n8n", env="rumpledev"))
    # (a question the grammar cannot read, so the model is asked; "is the workflow engine on dev wedged
    # again?" is now read by the grammar as a status question)
    reply = await bot.say("the workflow engine on dev seems wedged again?")
    assert "reads as a question" in reply.text and not reply.buttons
    assert bot.calls == []
    assert await bot.engine._db(bot.engine.store.pending) == []


async def test_model_plan_is_shown_back_before_it_runs(bot: Bot, server: FakeOpenAI) -> None:
    server.add(plan("restart", service="n8n", env="rumpledev"))
    reply = await bot.say("the workflow engine on dev is wedged, sort it out please")
    assert reply.text.startswith("I understood: restart n8n rumpledev. Run it?")
    assert bot.calls == []
    row = await bot.engine._db(bot.engine.store.get, reply.request_id)
    assert row is not None and (row.status, row.source) == ("awaiting_confirmation", "llm")
    done = await bot.engine.act("confirm", row.id, ALICE)
    assert done.ok and bot.calls == [("restart", {"service": "n8n", "env": "rumpledev"})]


async def test_commands_without_confirmation_are_confirmed_when_the_model_chose_them(
        bot: Bot, server: FakeOpenAI) -> None:
    # `lock` runs at once from the explicit grammar (admins freeze fast); from the model it is shown back.
    server.add(plan("lock", env="rumpletest", reason="release"))
    reply = await bot.say("could you make staging read-only for the release", actor=CAROL)
    assert "I understood: lock rumpletest" in reply.text and reply.buttons
    assert bot.calls == []
    direct = await bot.say("lock dev", actor=CAROL)
    assert direct.ok and bot.calls == [("lock", {"env": "rumpledev"})]


async def test_model_none_means_no_request(bot: Bot, server: FakeOpenAI) -> None:
    server.add(plan(NONE))
    reply = await bot.say("thanks, that fixed it")
    assert "didn't catch an ops request" in reply.text and bot.calls == []


async def test_grammar_answers_first_without_asking_the_model(bot: Bot, server: FakeOpenAI) -> None:
    reply = await bot.say("restart n8n on dev")
    assert "I understood: restart n8n rumpledev" in reply.text
    assert server.requests == []


# -- degraded mode ---------------------------------------------------------------------

async def test_slow_model_degrades_and_grammar_and_slash_commands_keep_working(
        config: Config, store: AuditStore, server: FakeOpenAI) -> None:
    cfg = with_llm(config, server.base_url, timeout_s=0.3)
    b = Bot(cfg, store, LLMClient(cfg.inventory.llm))
    await b.engine.start()
    server.add(Answer(delay=3, arguments={"command": "none", "args": {}}))
    reply = await b.say("the workflow engine on dev is wedged, sort it out please")
    assert "language model can't help right now" in reply.text and "no answer within 0.3s" in reply.text
    assert len(server.requests) == 1  # a timeout is not retried
    assert "restart n8n on dev" in reply.text  # it says what still works
    grammar = await b.say("restart n8n on dev")
    assert "I understood: restart n8n rumpledev" in grammar.text
    slash = await b.say("", command="logs", args={"service": "n8n", "env": "dev"})
    assert slash.ok and b.calls == [("logs", {"service": "n8n", "env": "rumpledev", "tail": 50})]
    await b.engine.close()


@pytest.mark.parametrize("failure", [Answer(status=500), Answer(drop=True), Answer(garbage=True),
                                     Answer(status=503)])
async def test_transient_failure_is_retried_once(planner: Planner, server: FakeOpenAI, failure: Answer) -> None:
    server.add(failure, plan("status", env="rumpletest"))
    p = await planner.plan("what's running on staging", use_llm=True)
    assert (p.command, p.args) == ("status", {"env": "rumpletest"})
    assert len(server.requests) == 2  # the failed try and the retry


async def test_persistent_failure_degrades_with_a_clear_message(planner: Planner, server: FakeOpenAI) -> None:
    server.add(Answer(status=500), Answer(status=500))
    p = await planner.plan("what's running on staging", use_llm=True)
    assert p.command is None and p.clarify is not None
    assert "HTTP 500 from the LLM server" in p.clarify
    assert p.usage is not None and p.usage["latency_ms"] >= 0


async def test_wrong_key_is_named(config: Config, server: FakeOpenAI) -> None:
    cfg = with_llm(config, server.base_url, api_key="wrong")
    p = await Planner(cfg, load_registry()).plan("what's running on staging", use_llm=True)
    assert p.clarify is not None and "LLM_API_KEY" in p.clarify


async def test_not_configured_leaves_the_grammar(config: Config) -> None:
    p = Planner(config, load_registry())
    assert (await p.plan("restart n8n on dev")).command == "restart"
    unsure = await p.plan("the workflow engine is wedged, sort it out please")
    assert unsure.command is None and unsure.source == "grammar"
    forced = await p.plan("restart n8n on dev", use_llm=True)
    assert forced.clarify is not None and "LLM_BASE_URL" in forced.clarify


async def test_unreachable_server_degrades(config: Config) -> None:
    cfg = with_llm(config, "http://127.0.0.1:9/v1", max_retries=0)
    p = await Planner(cfg, load_registry()).plan("the workflow engine on dev is wedged, sort it out please")
    assert p.command is None and p.clarify is not None
    assert "cannot connect to http://127.0.0.1:9" in p.clarify


async def test_circuit_breaker_opens_and_recovers_through_the_health_probe(
        config: Config, server: FakeOpenAI) -> None:
    now = [1000.0]
    cfg = with_llm(config, server.base_url, max_retries=0, breaker_failures=2, breaker_reset_s=30)
    client = LLMClient(cfg.inventory.llm, breaker=Breaker(2, 30.0, clock=lambda: now[0]))
    backends = Backends(cfg)
    backends.override("llm", client)
    p = Planner(cfg, load_registry(), backends=backends)
    server.add(Answer(status=500), Answer(status=500))
    for _ in range(2):
        assert "HTTP 500" in ((await p.plan("what's up on staging", use_llm=True)).clarify or "")
    assert client.breaker.state is State.open
    sent = len(server.requests)
    blocked = await p.plan("what's up on staging", use_llm=True)
    assert "failed 2 times in a row" in (blocked.clarify or "") and "try it again in 30s" in (blocked.clarify or "")
    assert len(server.requests) == sent  # open: the server is not asked
    # Cooldown over but the server still sick: the probe fails and the breaker re-opens.
    now[0] += 31
    server.healthy = False
    still = await p.plan("what's up on staging", use_llm=True)
    assert "still unavailable" in (still.clarify or "") and len(server.requests) == sent
    assert client.breaker.state is State.open and server.probes == ["/health"]
    # Recovered: the next request after the cooldown probes /health and /v1/models, then asks.
    now[0] += 31
    server.healthy = True
    server.add(plan("status", env="rumpletest"))
    ok = await p.plan("what's up on staging", use_llm=True)
    assert ok.command == "status" and client.breaker.state is State.closed
    assert server.probes == ["/health", "/health", "/v1/models"]
    # The grammar never waited on any of it.
    assert (await p.plan("status staging")).command == "status"


async def test_health_command_reports_the_model(llm_config: Config, store: AuditStore, server: FakeOpenAI) -> None:
    backends = Backends(llm_config)
    backends.override("llm", LLMClient(llm_config.inventory.llm))
    engine = Engine(llm_config, store, backends)  # the real `health` command
    await engine.start()
    reply = await engine.handle(Request(actor=ALICE, text="health"))
    rows = {r[0]: r for r in reply.tables[0].rows}
    assert rows["llm"][1] == "ok" and MODEL in rows["llm"][2]
    server.down = True
    reply = await engine.handle(Request(actor=ALICE, text="health"))
    rows = {r[0]: r for r in reply.tables[0].rows}
    assert rows["llm"][1] == "DOWN" and "503" in rows["llm"][2]
    assert "Down: llm" in reply.text
    await engine.close()


async def test_health_probe_names_a_model_that_is_not_served(config: Config, server: FakeOpenAI) -> None:
    cfg = with_llm(config, server.base_url, model="meta-llama/Llama-3.1-8B-Instruct")
    with pytest.raises(Exception, match=r"not meta-llama/Llama-3\.1-8B-Instruct"):
        await LLMClient(cfg.inventory.llm).ping()


def test_a_new_event_loop_on_the_same_url_gets_a_working_client(config: Config) -> None:
    """Each loop gets its own HTTP client (langchain-openai's shared default broke a later loop)."""
    from infra.config import LLM
    from llm.tools import TOOL_NAME

    tool = {"type": "function", "function": {"name": TOOL_NAME, "parameters": {"type": "object"}}}
    port = 0

    async def once() -> str:
        nonlocal port
        srv = FakeOpenAI(model=MODEL, api_key=KEY)
        await srv.start(port)
        port = srv.port  # the second loop serves on the same address, as a restarted vLLM would
        srv.add(plan("whoami"))
        try:
            client = LLMClient(LLM(base_url=srv.base_url, model=MODEL, api_key=KEY, timeout_s=5.0,
                                   max_retries=0))
            answer = await client.complete([("user", "who am i")], tool)
            return str((answer.arguments or {}).get("command"))
        finally:
            await srv.stop()

    assert asyncio.run(once()) == "whoami"
    assert asyncio.run(once()) == "whoami"
