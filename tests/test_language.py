"""Plain language declared on the commands (issue 13): the lexicon, the modality stages, outcomes,
plugins, verbatim free text (issue 18 item 1) and help that never acts (issue 19 item 7)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bot.engine import Engine
from bot.request import Actor, Request, Tone
from commands.registry import Kind, PluginError, Registry, load_plugin, registry
from infra.config import Config
from infra.db.store import Database
from llm.lexicon import Lexicon, Strength
from llm.plan import Outcome, Plan
from llm.planner import Planner
from llm.tools import plan_tool
from llm.validate import close_to
from tests.conftest import ROOT, D, P, T, make_engine
from tests.fakes.openai_server import FakeOpenAI, plan
from tests.llm_support import with_llm

EXAMPLES = ROOT / "docs" / "examples"
ALICE, BOB, CAROL = (Actor(f"console:{n}") for n in ("alice", "bob", "carol"))


def parse(planner: Planner, text: str) -> Plan:
    return planner.grammar(text)


# -- the reader names no command ------------------------------------------------------

def test_the_plain_language_modules_name_no_command() -> None:
    """llm/nl.py, llm/modality.py, llm/lexicon.py and llm/phrases.py hold no command name as a string."""
    names = set(registry().names()) | {w for spec in registry() for w in spec.words}
    # (llm/phrases.py holds generic English word lists, where "stop" is a cancelling verb and
    # "restore" a word never to correct: it is read as data by these stages, never compared to a command)
    for module in ("nl", "modality", "lexicon", "fuzzy", "tokens", "shape", "words"):
        tree = ast.parse((ROOT / "llm" / f"{module}.py").read_text())
        strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        assert {s for s in strings if s in names} == set(), module


def test_the_lexicon_is_compiled_from_the_declarations() -> None:
    lex = Lexicon.compile(registry())
    assert {s.command for s in lex.senses("bounce")} == {"restart"}
    assert {s.command for s in lex.senses("revert")} == {"rollback", "restore"}  # the targets decide
    assert lex.governs("undo", "deploy") == ["rollback"]
    assert lex.governs("end", "lock") == ["unlock"]
    assert lex.particles[("push", "out")] == ["deploy"]
    assert lex.past["restarted"] == ["restart"]
    assert max(s.strength for s in lex.senses("logs")) is Strength.noun


# -- generic modality gates ------------------------------------------------------------

@pytest.mark.parametrize("text", [
    # a command noun governed by another verb that cancels or is unknown
    "scrap the chat deployment on test", "abort the web deploy to prod", "call off the web deploy on prod",
    "stop the chat deploy on test",
    # someone else's words
    "bob wants me to restart redis on prod", "someone in #general wrote restart postgres on live lol",
    'she said "restart nginx on prod" an hour ago', "according to the runbook, restart nginx on prod",
    # questions of whether
    "would it hurt to restart n8n on prod now?", "is now a bad time to deploy chat to prod?",
    "should we roll back web on live?", "is it safe to stop grafana on test",
    "could restarting cloudflared on live drop active sessions?",
    # conditionals and hypotheticals
    "if staging breaks we'd roll chat back", "restart nginx on prod if the error rate goes up",
    "we would deploy chat to prod but the tests are red",
    # pasted material
    "[FIRING:1] HighErrorRate restart nginx on prod", "2024-05-01T10:00:00Z ERROR restart failed for nginx",
    "```\ndocker restart nginx\n```", "see https://wiki.example/runbook#restart-nginx-on-prod",
    "Traceback (most recent call last):\n  File \"app.py\", line 3\nValueError: restart n8n",
    # several requests
    "restart nginx on dev, then deploy chat to test", "whoami\nrestart n8n on dev",
    # a corrected or look-alike name on a change
    "deploy chat to stagign", "restart ngnix on dev", "restart nginx on prоd",
])
def test_texts_that_ask_for_no_action_run_nothing(planner: Planner, text: str) -> None:
    plan = parse(planner, text)
    assert plan.command is None, (text, plan)
    assert plan.outcome is not Outcome.run


@pytest.mark.parametrize(("text", "command", "args"), [
    ("undo the chat deploy on test", "rollback", {"stack": "chat", "env": T}),
    ("reverse the docs deployment on dev", "rollback", {"stack": "docs", "env": D}),
    ("end the code freeze on prod", "unlock", {"env": P}),
    ("remove the old-test snapshot from staging", "delete-snapshot", {"vm": T, "snapshot": "old-test"}),
    ("what did paperless write this morning on test", "logs", {"service": "paperless", "env": T, "since": "12h"}),
    ("everything ok with the web stack on dev?", "status", {"stack": "web", "env": D}),
    ("restore dev to the snap before-upgrade", "restore", {"vm": D, "snapshot": "before-upgrade"}),
    ("n8n on dev could do with a bounce", "restart", {"service": "n8n", "env": D}),
    ("restart nginx on dev if you can", "restart", {"service": "nginx", "env": D}),
])
def test_governed_nouns_and_polite_conditions(planner: Planner, text: str, command: str,
                                              args: dict[str, Any]) -> None:
    plan = parse(planner, text)
    assert (plan.command, plan.args, plan.outcome) == (command, args, Outcome.run)


def test_every_plan_says_what_happens_next(planner: Planner) -> None:
    assert parse(planner, "restart n8n on dev").outcome is Outcome.run
    assert parse(planner, "restart n8n").outcome is Outcome.ask
    assert parse(planner, "don't restart n8n").outcome is Outcome.refuse
    assert parse(planner, "the coffee machine is broken again").outcome is Outcome.unknown
    assert parse(planner, "restart n8n on dev").to_dict()["outcome"] == "run"


# -- the model, when consulted -----------------------------------------------------------

@pytest.fixture
def llm_planner(config: Config, server: FakeOpenAI) -> Planner:
    return Planner(with_llm(config, server.base_url), registry())


async def test_a_plan_the_grammar_was_unsure_of_becomes_a_question_when_the_model_sees_none(
        llm_planner: Planner, server: FakeOpenAI) -> None:
    text = "bounce n8n on dev, wedged somehow"  # (unknown words: the grammar is unsure)
    unsure = llm_planner.grammar(text)
    assert unsure.complete and unsure.confidence < llm_planner.config.inventory.llm.grammar_confidence
    server.add(plan("none"))
    got = await llm_planner.plan(text)
    assert got.command is None and got.outcome is Outcome.ask
    assert got.clarify and "restart n8n rumpledev" in got.clarify


async def test_a_refusal_is_never_sent_to_the_model(llm_planner: Planner, server: FakeOpenAI) -> None:
    got = await llm_planner.plan("bob wants me to restart redis on prod")
    assert got.outcome is Outcome.refuse and server.requests == []


@pytest.mark.parametrize(("text", "answer", "args"), [
    ("put the llm stack on the gpu host", plan("deploy", stack="llm", env="phoenix"),
     {"stack": "llm", "env": "phoenix"}),
    ("get the workflow engine code onto test", plan("deploy", stack="workflows", env="rumpletest"),
     {"stack": "workflows", "env": "rumpletest"}),
])
async def test_the_models_plan_is_accepted_when_named_as_the_grammar_names_things(
        llm_planner: Planner, server: FakeOpenAI, text: str, answer: Any, args: dict[str, Any]) -> None:
    server.add(answer)
    got = await llm_planner.plan(text, use_llm=True)
    assert (got.command, got.args, got.clarify) == ("deploy", args, None)


# -- several lines never run silently -----------------------------------------------------

async def test_a_message_of_several_requests_runs_nothing(config: Config, db: Database, tmp_path: Path) -> None:
    from tests.support import observable_registry

    eng = make_engine(config, db, observable_registry(tmp_path))
    await eng.start()
    try:
        reply = await eng.handle(Request(actor=ALICE, text="whoami\ntouch dev silently", channel="console",
                                         confirmed=True))
        assert "one at a time" in reply.text
        assert not (tmp_path / "silently").exists()
        assert eng.store.pending() == []
    finally:
        await eng.close()


# -- free text verbatim (issue 18 item 1) ---------------------------------------------------

REASONS = ["« pas maintenant », it's the freeze", 'the "big" migration, part 2 — 🚀', "メンテナンス中です。",
           "because: QA (again), see #ops"]


@pytest.mark.parametrize("reason", REASONS)
async def test_a_deny_reason_is_stored_and_shown_exactly_as_written(
        config: Config, db: Database, tmp_path: Path, reason: str) -> None:
    from tests.support import observable_registry

    eng = make_engine(config, db, observable_registry(tmp_path))
    await eng.start()
    try:
        card = await eng.handle(Request(actor=ALICE, text="touch prod d1", channel="console", confirmed=True))
        assert card.request_id
        said = f"deny {card.request_id} {reason}"
        plan_ = await eng.plan(Request(actor=BOB, text=said, channel="console"))
        want = reason.removeprefix("because: ")
        assert plan_.args["reason"] == want
        denied = await eng.handle(Request(actor=BOB, text=said, channel="console"))
        assert want in denied.text
        row = eng.store.get(card.request_id)
        assert row is not None and row.status == "denied"
        assert any(want in (e.detail or {}).values() for e in eng.store.events(card.request_id))
    finally:
        await eng.close()


@pytest.mark.parametrize("text", ["freeze production because « pas maintenant », it's the freeze 🚀",
                                  "lock prod reason=« pas maintenant », it's the freeze 🚀"])
def test_a_lock_reason_in_plain_language_or_key_value_is_verbatim(planner: Planner, text: str) -> None:
    plan = parse(planner, text)
    assert (plan.command, plan.args["env"]) == ("lock", P)
    assert plan.args["reason"] == "« pas maintenant », it's the freeze 🚀"


def test_a_snapshot_description_keeps_its_words(planner: Planner) -> None:
    plan = parse(planner, "make a snapshot of production called friday-backup with description "
                          "'before the big migration, v2'")
    assert plan.args == {"vm": P, "name": "friday-backup", "description": "before the big migration, v2"}


# -- help never acts (issue 19 item 7) ------------------------------------------------------

@pytest.mark.parametrize(("text", "closest"), [("help deplyo", "deploy"), ("help rollbak", "rollback"),
                                               ("help snapshto", "snapshot")])
async def test_help_with_a_misspelt_topic_suggests_and_runs_nothing(
        engine: Engine, text: str, closest: str) -> None:
    plan_ = await engine.plan(Request(actor=ALICE, text=text, channel="console"))
    assert plan_.command == "help"
    reply = await engine.handle(Request(actor=ALICE, text=text, channel="console", confirmed=True))
    assert f"Closest: {closest}" in reply.text and not reply.buttons
    assert engine.store.pending() == []


# -- team commands as plugins ----------------------------------------------------------------

@pytest.fixture
def team_registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    reg = Registry()
    for spec in registry():
        reg.add(spec)
    load_plugin("team_scale", reg)
    return reg


def without_docker(reg: Registry) -> Registry:
    """The same commands, the plugin's handler kept, no Docker backend needed (the engine test runs
    up to the confirmation card, which is where a change waits)."""
    out = Registry()
    for spec in reg:
        out.add(replace(spec, backend=None, preview=None) if spec.name == "scale" else spec)
    return out


@pytest.mark.parametrize(("text", "args"), [
    ("scale n8n dev 3", {"service": "n8n", "env": D, "replicas": 3}),
    ("scale n8n on dev to 3 replicas", {"service": "n8n", "env": D, "replicas": 3}),
    ("please scale the workflow engine on staging to 2", {"service": "n8n", "env": T, "replicas": 2}),
    ("run 4 copies of grafana on test", {"service": "grafana", "env": T, "replicas": 4}),
    ("give redis 2 replicas on dev", {"service": "redis", "env": D, "replicas": 2}),
])
def test_a_plugin_command_is_understood_in_plain_language(config: Config, team_registry: Registry, text: str,
                                                         args: dict[str, Any]) -> None:
    plan_ = Planner(config, team_registry).grammar(text)
    assert (plan_.command, plan_.args, plan_.outcome) == ("scale", args, Outcome.run)


@pytest.mark.parametrize("text", ["don't scale n8n on dev to 3", "we scaled n8n on dev yesterday",
                                  "should we scale n8n on prod to 5?"])
def test_a_plugin_command_goes_through_the_same_gates(config: Config, team_registry: Registry, text: str) -> None:
    plan_ = Planner(config, team_registry).grammar(text)
    assert plan_.command is None and plan_.outcome is Outcome.refuse


def test_without_the_plugin_scaling_is_refused_plainly(planner: Planner) -> None:
    plan_ = parse(planner, "scale n8n on dev to 3 replicas")
    assert plan_.command is None and plan_.clarify and "can't" in plan_.clarify


def test_a_plugin_command_reaches_the_tool_schema_help_and_discord(config: Config, team_registry: Registry) -> None:
    from bot.adapters.discord_slash import Source, Suggestions, all_subcommands, ops_group
    from llm.resolve import Resolver
    from llm.tools import system_prompt

    resolver = Resolver(config)
    schema = plan_tool(team_registry, resolver)["function"]["parameters"]
    assert "scale" in schema["properties"]["command"]["enum"]
    assert schema["properties"]["args"]["properties"]["replicas"]["type"] == "integer"
    assert "scale(service, env, replicas) !" in system_prompt(team_registry, resolver)

    async def noop(*_: Any) -> None:
        return None

    source = cast(Source, SimpleNamespace(resolver=resolver, registry=team_registry, store=None))
    group = ops_group(team_registry, noop, Suggestions(source))
    scale = next(c for c in all_subcommands(group) if c.name == "scale")
    assert [p.name for p in scale.parameters] == ["service", "env", "replicas"]  # type: ignore[attr-defined]


async def test_a_plugin_command_runs_through_the_engine_like_any_other(
        config: Config, db: Database, team_registry: Registry) -> None:
    eng = make_engine(config, db, without_docker(team_registry))
    await eng.start()
    try:
        for text in ("/ops scale n8n on dev to 3 replicas", "scale n8n dev 3"):  # Slack's /ops text, the console
            card = await eng.handle(Request(actor=ALICE, text=text, channel="C1", platform="slack"))
            assert card.tone is Tone.question and card.buttons, card.text  # confirmed first, never run at once
            row = eng.store.get(card.request_id or "")
            assert row is not None and (row.command, row.args) == ("scale", {"service": "n8n", "env": D,
                                                                          "replicas": 3})
        help_ = await eng.handle(Request(actor=ALICE, text="help scale", channel="C1"))
        assert "scale SERVICE ENV REPLICAS" in help_.text
    finally:
        await eng.close()


def test_plugins_load_from_the_config_and_bad_ones_are_named(tmp_path: Path) -> None:
    cfg = ROOT / ".plugins-test.yaml"
    try:
        cfg.write_text((ROOT / "chatops.yaml").read_text() + "\nplugins: [team_scale]\n")
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{ROOT}:{EXAMPLES}", "CHATOPS_CONFIG": str(cfg),
               "HOME": str(tmp_path)}
        out = subprocess.run([sys.executable, "-m", "bot.cli", "parse", "--json", "scale n8n on dev to 3 replicas"],
                             cwd=ROOT, capture_output=True, text=True, env=env, check=True)
        assert json.loads(out.stdout)["args"] == {"replicas": 3, "service": "n8n", "env": D}
        cfg.write_text((ROOT / "chatops.yaml").read_text() + "\nplugins: [no_such_team_module]\n")
        bad = subprocess.run([sys.executable, "-m", "bot.cli", "parse", "--json", "status dev"],
                             cwd=ROOT, capture_output=True, text=True, env=env)
        assert bad.returncode != 0 and "plugin 'no_such_team_module' cannot be loaded" in bad.stderr + bad.stdout
    finally:
        cfg.unlink(missing_ok=True)


def test_a_plugin_installed_as_a_package_is_found_by_its_entry_point(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config: Config) -> None:
    """An installed distribution declaring `chatops.commands` (a dist-info folder on sys.path, as pip
    leaves it) is loaded without any config key."""
    from commands.registry import load_entry_points

    dist = tmp_path / "team_scale_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: team-scale-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[chatops.commands]\nscale = team_scale\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLES))
    reg = Registry()
    for spec in registry():
        reg.add(spec)
    load_entry_points(reg)
    assert "scale" in reg
    assert Planner(config, reg).grammar("scale grafana on test to 2").args == {
        "replicas": 2, "service": "grafana", "env": T}


def test_a_plugin_that_redeclares_a_core_command_is_refused(team_registry: Registry, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "team_clash.py").write_text(
        "from commands.registry import command\n"
        "def register(registry):\n"
        "    async def h(ctx, args): ...\n"
        "    command('restart', summary='mine', registry=registry)(h)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"team_clash.*declared twice"):
        load_plugin("team_clash", team_registry)


def test_the_plugin_guide_shows_the_tested_module() -> None:
    guide = (ROOT / "docs" / "plugins.md").read_text()
    assert (EXAMPLES / "team_scale.py").read_text().strip() in guide


# -- the typo index ---------------------------------------------------------------------------

def test_kinds_of_entity_are_resolved_by_the_index(planner: Planner) -> None:
    vocab = planner.nl.vocab
    assert vocab.correct("stagign") == "staging"
    assert vocab.correct("lunch") is None  # a common word is never turned into a name
    assert vocab.suspect("chatt") == "chat"
    assert planner.resolver.resolve(Kind.env, "gpu box") == "phoenix"


# -- a name a letter away, named in the question ---------------------------------------------------

@pytest.mark.parametrize(("text", "kind", "near"), [
    ("deploy chta rumpledev", "stack", "chat"),           # a swap, under the typo index's five letters
    ("restart ngin rumpledev", "service", "nginx"),       # a letter short, under five letters
    ("deploy dat rumpledev", "stack", "data"),            # a letter short
])
def test_an_unknown_name_a_letter_from_one_is_suggested_not_used(planner: Planner, text: str, kind: str,
                                                                 near: str) -> None:
    got = planner.grammar(text)
    assert got.command is None, got  # nothing acted on
    assert got.clarify is not None and f"Did you mean '{near}'?" in got.clarify, got.clarify


def test_a_name_near_none_or_several_is_asked_without_a_guess() -> None:
    assert close_to("helo", ["hello", "web"]) == "hello"
    assert close_to("zzzz", ["hello", "web"]) is None
    assert close_to("dat", ["data", "date"]) is None  # two as near: no guess
    assert close_to("db", ["dc", "data"]) is None  # too short to tell


@pytest.mark.parametrize(("text", "hint"), [
    ("why is nginx down on prod?", "try 'logs nginx rumpleprod', 'status rumpleprod' or 'audit env=rumpleprod'."),
    ("why is dev so slow today", "try 'status rumpledev' or 'audit env=rumpledev'."),
    ("why did the deploy fail?", "try 'logs SERVICE ENV', 'status ENV' or 'audit'."),
    # a negation in a why-question asks nothing not to be done
    ("why is live protected but dev isn't?", "try 'status rumple' or 'audit env=rumple'."),
    ("why didn't the deploy on prod work", "try 'status rumpleprod' or 'audit env=rumpleprod'."),
])
def test_a_why_question_is_answered_with_the_reads_that_could_tell(planner: Planner, text: str, hint: str) -> None:
    got = planner.grammar(text)
    assert got.command is None and got.clarify == f"I can't answer why-questions; {hint}", got
