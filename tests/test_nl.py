"""The plain-language grammar route (llm/nl.py): what it understands and what it refuses."""

from __future__ import annotations

import pytest

from commands.registry import registry
from infra.config import Config
from llm.grammar import parse_explicit
from llm.nl import CONFIDENT
from llm.plan import Outcome, Plan
from llm.planner import Planner
from tests.conftest import D, L, P, T


def parse(planner: Planner, text: str) -> Plan:
    return planner.grammar(text)


def test_canonical_examples_parse_exactly_as_the_explicit_grammar(planner: Planner) -> None:
    """Every registry example keeps the canonical grammar's plan, at confidence 1.0."""
    seen = 0
    for spec in planner.registry:
        for example in spec.examples:
            plan = parse(planner, example)
            explicit = parse_explicit(example, planner.resolver, planner.registry)
            assert plan.command == explicit.command == spec.name, example
            assert plan.args == explicit.args, example
            assert plan.confidence == 1.0, example
            seen += 1
    assert seen >= 25


@pytest.mark.parametrize(("text", "command", "args"), [
    ("bounce n8n on dev please", "restart", {"service": "n8n", "env": D}),
    ("can you push chat out to staging", "deploy", {"stack": "chat", "env": T}),
    ("roll the new monitoring stack out to dev", "deploy", {"stack": "monitoring", "env": D}),
    ("checkpoint prod before the upgrade", "snapshot", {"vm": P}),
    ("freeze production for the release", "lock", {"env": P, "reason": "the release"}),
    ("deploy the n8n stack to test", "deploy", {"stack": "workflows", "env": T}),
    ("show me the last 100 lines of nginx logs on live", "logs", {"service": "nginx", "env": L, "tail": 100}),
    ("get me the postgres logs on dev since yesterday", "logs", {"service": "postgres", "env": D, "since": "2d"}),
    ("logs for redis on test this week", "logs", {"service": "redis", "env": T, "since": "1w"}),
    ("n8n logs on dev since 30m", "logs", {"service": "n8n", "env": D, "since": "30m"}),
    ("what did alice do today", "audit", {"user": "alice", "since": "1d"}),
    ("who deployed to prod this week", "audit", {"command": "deploy", "env": P, "since": "1w"}),
    ("lgtm r-0badf00d", "approve", {"request": "r-0badf00d"}),
    ("how busy are the GPUs", "gpu", {}),
    ("how do I roll back a deploy", "help", {"topic": "rollback"}),
    ("restore dev to pre-upgrade", "restore", {"vm": D, "snapshot": "pre-upgrade"}),
])
def test_ordinary_phrasings(planner: Planner, text: str, command: str, args: dict[str, object]) -> None:
    plan = parse(planner, text)
    assert (plan.command, plan.args, plan.clarify) == (command, args, None)


@pytest.mark.parametrize("text", [
    "don't restart n8n", "do not deploy chat to prod", "never restart the database on live",
    "no need to restart nginx on dev", "restart nginx on dev... actually never mind",
    "can you not restart nginx", "please do not approve r-1a2b3c4d",
])
def test_negations_do_nothing_and_say_so(planner: Planner, text: str) -> None:
    plan = parse(planner, text)
    assert plan.command is None
    assert plan.clarify and "not" in plan.clarify
    assert plan.outcome is Outcome.refuse  # a deliberate no: the LLM route must not override it


def test_a_negated_target_is_excluded_not_used(planner: Planner) -> None:
    plan = parse(planner, "restart nginx on dev, not prod")
    assert (plan.command, plan.args) == ("restart", {"service": "nginx", "env": D})
    assert parse(planner, "restart nginx but not on prod").command != "restart" or \
        parse(planner, "restart nginx but not on prod").clarify


@pytest.mark.parametrize("text", [
    "I restarted nginx earlier", "the deploy went fine", "we deployed chat to prod yesterday",
    "just restarted n8n on dev", "alice bounced the proxy an hour ago", "deploy to test succeeded",
    "restarting n8n on dev, heads up", "I'm going to restart nginx on dev", "deploy chat to prod tonight",
])
def test_reports_and_plans_of_people_are_not_requests(planner: Planner, text: str) -> None:
    plan = parse(planner, text)
    assert plan.command is None and plan.clarify


def test_past_tense_questions_go_to_the_audit_log(planner: Planner) -> None:
    plan = parse(planner, "did anyone restart n8n on dev")
    assert (plan.command, plan.args) == ("audit", {"command": "restart", "env": D})


def test_unambiguous_typos_are_corrected_with_lower_confidence(planner: Planner) -> None:
    plan = parse(planner, "restrat n8n on dev")
    assert (plan.command, plan.args) == ("restart", {"service": "n8n", "env": D})
    assert plan.confidence < CONFIDENT  # the LLM route may take a second look
    read = parse(planner, "logs ngnix on dev")
    assert (read.command, read.args) == ("logs", {"service": "nginx", "env": D})


@pytest.mark.parametrize("text", ["restrat ngnix on dev", "deploy chat to stagign", "roll back chatt on dev",
                                  "restart redsi on prod"])
def test_a_corrected_name_on_a_change_is_asked_about_not_acted_on(planner: Planner, text: str) -> None:
    plan = parse(planner, text)
    assert plan.command is None and plan.outcome is Outcome.ask
    assert plan.clarify and "Did you mean" in plan.clarify


@pytest.mark.parametrize("text", ["restart nginx on prd", "lgos nginx on dev", "deploy chat to prodd",
                                  "deploy chat to staging2"])
def test_short_or_ambiguous_typos_are_not_guessed(planner: Planner, text: str) -> None:
    assert parse(planner, text).command is None


def test_typo_index_counts_a_transposition_once(planner: Planner) -> None:
    vocab = planner.nl.vocab
    assert vocab.correct("ngnix") == "nginx"
    assert vocab.correct("restrat") == "restart"
    assert vocab.correct("destroy") is None  # two edits from "deploy": out of reach for a 7-letter word


@pytest.mark.parametrize(("text", "hint"), [
    ("restart nginx and n8n on dev", "nginx"), ("restart nginx on dev and prod", "rumpledev"),
    ("deploy chat and docs to test", "chat"), ("restart nginx and deploy chat on test", "one at a time"),
])
def test_ambiguity_asks_and_names_the_choices(planner: Planner, text: str, hint: str) -> None:
    plan = parse(planner, text)
    assert plan.command is None
    assert plan.clarify and hint in plan.clarify


def test_a_stack_of_several_services_keeps_the_command_and_asks_which_service(planner: Planner) -> None:
    """Only the service is missing: the plan keeps the command and what was named, and asks (issue 13's
    held-out convention; it used to be command null)."""
    plan = parse(planner, "restart the web stack on dev")
    assert (plan.command, plan.args, plan.outcome) == ("restart", {"stack": "web", "env": D}, Outcome.ask)
    assert plan.clarify and "nginx" in plan.clarify and "cloudflared" in plan.clarify
    assert "n8n" not in plan.clarify  # the stack's own services, not every service


@pytest.mark.parametrize(("text", "word"), [
    ("restart foo on dev", "foo"), ("deploy mail to test", "mail"), ("restart nginx on mars", "mars"),
    ("snapshot the windows vm", "windows"),
])
def test_unknown_names_are_named_back_with_the_choices(planner: Planner, text: str, word: str) -> None:
    plan = parse(planner, text)
    assert plan.command is None
    assert plan.clarify and f"'{word}'" in plan.clarify and ":" in plan.clarify


def test_missing_target_asks_instead_of_guessing(planner: Planner) -> None:
    plan = parse(planner, "restart n8n")
    assert plan.command == "restart" and "env" not in plan.args
    assert plan.clarify and "rumpletest" in plan.clarify
    assert plan.confidence <= 0.5


@pytest.mark.parametrize("text", ["drop the database", "scale n8n to 3 replicas on prod", "reboot the dev vm",
                                  "rm -rf /var/lib/docker on dev", "upgrade postgres to 16 on prod"])
def test_unsupported_requests_are_answered_plainly(planner: Planner, text: str) -> None:
    plan = parse(planner, text)
    assert plan.command is None
    assert plan.clarify and "can't" in plan.clarify


def test_live_is_not_a_vm_and_no_other_vm_is_snapshotted(planner: Planner) -> None:
    plan = parse(planner, "snapshot live")
    assert plan.command is None and plan.clarify and "rumple" in plan.clarify


def test_list_reading_wins_over_take_reading(planner: Planner) -> None:
    assert parse(planner, "what checkpoints do we have for prod").command == "snapshots"


def test_a_stack_named_as_a_snapshot_word_is_not_restored(planner: Planner) -> None:
    """The canonical grammar would read 'revert chat on test' as restoring snapshot 'chat'."""
    plan = parse(planner, "revert chat on test")
    assert (plan.command, plan.args) == ("rollback", {"stack": "chat", "env": T})


def test_confidence_levels(planner: Planner) -> None:
    assert parse(planner, "restart n8n on dev").confidence == 1.0
    nl = parse(planner, "bounce n8n on dev please")
    assert CONFIDENT <= nl.confidence < 1.0
    assert parse(planner, "the coffee machine is broken again").outcome is Outcome.unknown


def test_oversized_text_is_refused(planner: Planner) -> None:
    plan = parse(planner, "restart nginx on dev " * 200)
    assert plan.command is None and plan.clarify and "too long" in plan.clarify


def test_users_for_audit_come_from_the_config(config: Config) -> None:
    planner = Planner(config, registry())
    plan = planner.grammar("show bob's last 10 actions")
    assert (plan.command, plan.args) == ("audit", {"user": "bob", "limit": 10})


def test_commands_without_plain_phrasings_keep_the_canonical_question(config: Config) -> None:
    """A newly registered command has no synonyms yet; its canonical form still gets precise questions."""
    from bot.request import Reply
    from commands.args import ENV
    from commands.registry import Registry, command, registry
    from llm.planner import Planner

    reg = Registry()
    for spec in registry():
        reg.add(spec)

    async def frob(ctx: object, args: dict[str, object]) -> Reply:
        return Reply("frobbed")

    command("frob", summary="a new command", args=(ENV,), registry=reg)(frob)
    planner = Planner(config, reg)
    bare = planner.grammar("frob")
    assert bare.command == "frob" and "Which environment" in (bare.clarify or "")
    wrong = planner.grammar("frob nowhere")
    assert wrong.command is None and "don't know an environment called 'nowhere'" in (wrong.clarify or "")
    assert planner.grammar("frob dev").args == {"env": "rumpledev"}
