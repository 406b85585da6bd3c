"""Plain language, third pass of issue 13: the classes a third blind set (set-c) found, each fixed by a
generic mechanism (docs/language.md). The sentences here are the project's own, not the blind set's:
other wording, other commands, other targets for each class."""

from __future__ import annotations

from typing import Any

import pytest

from commands.args import ENV, REASON, REQUEST
from commands.registry import Arg, Kind, Phrasing, Registry, command, registry
from infra.config import load_config
from llm.lexicon import Lexicon
from llm.nl import NLParser, parse_plain
from llm.plan import Outcome, Plan
from llm.planner import Planner
from llm.resolve import Resolver
from tests.conftest import ROOT, D, L, P, T


def runs(planner: Planner, text: str, cmd: str, args: dict[str, Any]) -> None:
    plan = planner.grammar(text)
    assert (plan.command, plan.args, plan.outcome) == (cmd, args, Outcome.run), (text, plan)


def nothing(planner: Planner, text: str) -> Plan:
    plan = planner.grammar(text)
    assert plan.command is None and plan.outcome is not Outcome.run, (text, plan)
    return plan


def asks(planner: Planner, text: str, cmd: str, args: dict[str, Any]) -> None:
    plan = planner.grammar(text)
    assert (plan.command, plan.args) == (cmd, args) and plan.clarify and not plan.complete, (text, plan)


# -- a value comes from the request's own sentence, never from a purpose clause -------------------

@pytest.mark.parametrize(("text", "cmd", "args"), [
    ("redeploy chat on test to pick up the new env vars", "deploy", {"stack": "chat", "env": T}),
    ("deploy chat to dev, QA wants to play with it", "deploy", {"stack": "chat", "env": D}),
    ("roll back docs on staging to see whether the OCR bug goes away", "rollback", {"stack": "docs", "env": T}),
    ("restart nginx on test, bob needs to check the headers", "restart", {"service": "nginx", "env": T}),
    ("update the agent stack on production to main", "deploy", {"stack": "agent", "env": P, "ref": "main"}),
    ("deploy chat on test to main please", "deploy", {"stack": "chat", "env": T, "ref": "main"}),
])
def test_to_and_a_verb_says_why_and_gives_no_value(planner: Planner, text: str, cmd: str,
                                                   args: dict[str, Any]) -> None:
    runs(planner, text, cmd, args)


@pytest.mark.parametrize("text", ["deploy chat to test. The fix is in v1.5.0",
                                  "roll back web on live. v1.2 was the last good one",
                                  "redeploy chat on test to pick up v2.1"])
def test_a_value_in_another_sentence_or_a_reason_is_asked_about(planner: Planner, text: str) -> None:
    assert "outside the request itself" in (nothing(planner, text).clarify or "")


# -- a verb two commands share: the value's shape and the names decide, or a question ---------------

@pytest.mark.parametrize(("text", "env", "to"), [
    ("roll back to v2.4.0 on staging", T, "v2.4.0"), ("revert prod to v2.0.1", P, "v2.0.1"),
    ("go back to 1.4.2 on dev", D, "1.4.2"), ("roll staging back to 7a7b7c7", T, "7a7b7c7"),
])
def test_a_version_is_no_evidence_for_a_snapshot(planner: Planner, text: str, env: str, to: str) -> None:
    asks(planner, text, "rollback", {"env": env, "to": to})


def test_a_snapshot_name_still_restores(planner: Planner) -> None:
    runs(planner, "roll back prod to pre-migration", "restore", {"vm": P, "snapshot": "pre-migration"})
    runs(planner, "revert the prod vm to v1.3.0", "restore", {"vm": P, "snapshot": "v1.3.0"})


@pytest.mark.parametrize("text", ["bring chat back on prod", "bring rtmp back on staging"])
def test_two_complete_changes_for_one_verb_are_asked_about(planner: Planner, text: str) -> None:
    assert "rollback or start" in (nothing(planner, text).clarify or "")


@pytest.mark.parametrize("text", ["deploy prometheus to staging", "roll back cloudflared on live",
                                  "put nginx back on test", "redeploy redis on prod"])
def test_a_change_never_widens_a_service_into_a_stack_of_several(planner: Planner, text: str) -> None:
    assert "is one service of the" in (nothing(planner, text).clarify or "")


def test_a_service_of_its_own_stack_or_one_called_a_stack_stands_for_it(planner: Planner) -> None:
    runs(planner, "deploy n8n to test", "deploy", {"stack": "workflows", "env": T})
    runs(planner, "roll back the postgres stack on staging", "rollback", {"stack": "data", "env": T})
    runs(planner, "bring prometheus back on test", "start", {"service": "prometheus", "env": T})


def test_an_alias_another_command_declares_is_not_canonical(planner: Planner) -> None:
    # ("revert" is restore's canonical alias and a verb of rollback: plain language decides)
    asks(planner, "revert test to v1.2 please", "rollback", {"env": T, "to": "v1.2"})


# -- a word that describes is no value ---------------------------------------------------------------

@pytest.mark.parametrize(("text", "vm"), [
    ("restore prod to a good snapshot", P), ("restore prod to the last good snapshot", P),
    ("restore dev to an older checkpoint", D), ("roll the test vm back to the newest one", T),
    ("restore dev to previous", D), ("restore rumpledev latest", D), ("restore test to the most recent snapshot", T),
    ("restore the test vm to a known-good snapshot", T), ("restore dev from yesterday", D),
])
def test_a_description_names_no_snapshot(planner: Planner, text: str, vm: str) -> None:
    asks(planner, text, "restore", {"vm": vm})


@pytest.mark.parametrize(("text", "cmd", "vm", "snap"), [
    ("bring the dev vm back to clean", "restore", D, "clean"),
    ("restore the dev vm to the clean snap", "restore", D, "clean"),
    ("delete the clean snapshot on dev", "delete-snapshot", D, "clean"),
    ("restore the test vm to stable", "restore", T, "stable"),
    ("restore rumpledev snapshot=latest", "restore", D, "latest"),
])
def test_a_name_in_a_names_place_is_one(planner: Planner, text: str, cmd: str, vm: str, snap: str) -> None:
    runs(planner, text, cmd, {"vm": vm, "snapshot": snap})


def test_a_naming_word_takes_what_follows(planner: Planner) -> None:
    runs(planner, "snapshot the dev vm named latest", "snapshot", {"vm": D, "name": "latest"})


@pytest.mark.parametrize("text", ["deploy chat to test from the feature branch",
                                  "roll back web on live to yesterday's version",
                                  "deploy chat to prod, the version QA signed off"])
def test_a_value_spoken_of_but_not_given_is_asked_about(planner: Planner, text: str) -> None:
    assert "Which " in (nothing(planner, text).clarify or "")


def test_the_default_value_described_is_no_question(planner: Planner) -> None:
    runs(planner, "roll back web on live to the previous revision", "rollback", {"stack": "web", "env": L})
    runs(planner, "we need the previous agent revision on prod, please roll back", "rollback",
         {"stack": "agent", "env": P})


# -- the past, reports, and what is not the speaker's own request -----------------------------------

@pytest.mark.parametrize("text", [
    "chat was rolled back on test", "nginx got restarted on prod last night", "grafana was stopped on prod",
    "the dev vm got snapshotted before lunch", "prod got locked by carol", "we got the dev vm restored to golden",
])
def test_a_passive_of_the_past_is_a_report(planner: Planner, text: str) -> None:
    assert nothing(planner, text).outcome is Outcome.refuse


@pytest.mark.parametrize(("text", "cmd", "args"), [
    ("let's get chat rolled back on test", "rollback", {"stack": "chat", "env": T}),
    ("can nginx on dev be restarted?", "restart", {"service": "nginx", "env": D}),
    ("n8n on dev needs to be restarted", "restart", {"service": "n8n", "env": D}),
    ("please have grafana restarted on test", "restart", {"service": "grafana", "env": T}),
    ("bob just deployed chat to live, please roll it back", "rollback", {"stack": "chat", "env": L}),
    ("someone stopped grafana on test, start it again please", "start", {"service": "grafana", "env": T}),
])
def test_a_participle_that_asks_and_a_report_before_a_request(planner: Planner, text: str, cmd: str,
                                                              args: dict[str, Any]) -> None:
    runs(planner, text, cmd, args)


@pytest.mark.parametrize("text", ["@bob approve r-1a2b3c4d", "alice: restart nginx on dev",
                                  "carol, could you deny r-0badf00d", "can anyone sign off on r-1a2b3c4d?"])
def test_a_request_to_another_person_is_theirs(planner: Planner, text: str) -> None:
    assert nothing(planner, text).outcome is Outcome.refuse


@pytest.mark.parametrize("text", ["make carol an approver", "set bob as admin", "give dave admin rights",
                                  "give erin approver rights"])
def test_roles_are_not_given_from_chat(planner: Planner, text: str) -> None:
    assert nothing(planner, text).outcome is Outcome.refuse


# -- remarks, corrections, additions -------------------------------------------------------------------

@pytest.mark.parametrize(("text", "cmd", "args"), [
    ("restart nginx on dev, it isn't responding", "restart", {"service": "nginx", "env": D}),
    ("deploy chat to test, the old build doesn't start", "deploy", {"stack": "chat", "env": T}),
    ("give the proxy on live a restart, the cert isn't picked up", "restart", {"service": "nginx", "env": L}),
])
def test_a_negated_remark_with_its_own_subject_is_a_reason(planner: Planner, text: str, cmd: str,
                                                           args: dict[str, Any]) -> None:
    runs(planner, text, cmd, args)


@pytest.mark.parametrize("text", ["restart redis on test, don't restart postgres",
                                  "restart nginx on dev, I don't want that"])
def test_a_negation_of_the_speaker_still_refuses(planner: Planner, text: str) -> None:
    nothing(planner, text)


@pytest.mark.parametrize(("text", "cmd", "args"), [
    ("snapshot the llm lxc - no, the portainer lxc", "snapshot", {"vm": "portainer"}),
    ("restart n8n on prod? no, dev", "restart", {"service": "n8n", "env": D}),
    ("deploy chat to prod, err, staging", "deploy", {"stack": "chat", "env": T}),
    ("lock prod, sorry, live", "lock", {"env": L}),
])
def test_a_correction_that_ends_the_message_names_the_target(planner: Planner, text: str, cmd: str,
                                                             args: dict[str, Any]) -> None:
    runs(planner, text, cmd, args)


@pytest.mark.parametrize("text", ["restart nginx on dev. and redis too", "deploy chat to test. Plus docs.",
                                  "show logs for nginx on dev and then restart it",
                                  "check status of web on live, then bounce nginx",
                                  "deny r-1a2b3c4d — no, r-2b3c4d5e", "status of grafana and n8n on prod"])
def test_more_than_one_thing_is_never_half_done(planner: Planner, text: str) -> None:
    nothing(planner, text)


# -- questions and reads in other words --------------------------------------------------------------

@pytest.mark.parametrize(("text", "cmd", "args"), [
    ("hey, is grafana connected on prod?", "status", {"env": P, "stack": "monitoring"}),
    ("is the dev vm connected?", "vm-status", {"vm": D}),
    ("morning all - is everything green on the gpu box?", "status", {"env": "phoenix"}),
    ("state of the vms", "vm-status", {}),
    ("recent restarts on dev", "audit", {"command": "restart", "env": D}),
    ("who denied requests today?", "audit", {"status": "denied", "since": "1d"}),  # whoever denied, by button too
    ("what has bob tried to roll back", "audit", {"user": "bob", "command": "rollback"}),
    ("was nginx restarted today?", "audit", {"command": "restart", "since": "1d"}),
    ("did anyone touch the data stack on live today?", "audit", {"env": L, "since": "1d"}),
    ("list the snapshots of dev and how big the vm is", "snapshots", {"vm": D}),
])
def test_questions_without_a_command_verb(planner: Planner, text: str, cmd: str, args: dict[str, Any]) -> None:
    runs(planner, text, cmd, args)


def test_what_is_the_x_asks_for_x(planner: Planner) -> None:
    asks(planner, "what's the status", "status", {})
    runs(planner, "what is the deploy command", "help", {"topic": "deploy"})


# -- free text in quotes, performatives ------------------------------------------------------------------

def test_quoted_free_text_is_read_by_no_gate(planner: Planner) -> None:
    runs(planner, "snapshot dev with description \"before the deploy of chat\"", "snapshot",
         {"vm": D, "description": "before the deploy of chat"})
    runs(planner, "snapshot the test vm, description: 'don't delete, upgrade point'", "snapshot",
         {"vm": T, "description": "don't delete, upgrade point"})


@pytest.mark.parametrize(("text", "cmd", "args"), [
    ("we're approving r-1a2b3c4d", "approve", {"request": "r-1a2b3c4d"}),
    ("withdrawing r-1a2b3c4d, wrong stack", "withdraw", {"request": "r-1a2b3c4d", "reason": "wrong stack"}),
    ("i approve r-a1b2c3d4, looks fine", "approve", {"request": "r-a1b2c3d4"}),
    ("withdraw r-1a2b3c4d, sorry", "withdraw", {"request": "r-1a2b3c4d"}),
])
def test_a_decision_said_in_the_first_person_is_the_act(planner: Planner, text: str, cmd: str,
                                                        args: dict[str, Any]) -> None:
    runs(planner, text, cmd, args)


@pytest.mark.parametrize("text", ["I'm going to approve r-1a2b3c4d", "I'm approving it", "restarting grafana on prod",
                                  "I am restarting nginx because it's stuck", "restart nginx on dev, sorry"])
def test_plans_heads_ups_and_other_commands_are_not_performative(planner: Planner, text: str) -> None:
    nothing(planner, text)


def _team_registry() -> Registry:
    reg = Registry()
    for spec in registry():
        reg.add(spec)

    @command("veto", summary="veto a request", args=(REQUEST, REASON), changes=True, registry=reg,
             phrasing=Phrasing(verbs=("veto", "vetoing"), performative=True))
    async def veto(ctx: Any, args: dict[str, Any]) -> Any:  # pragma: no cover - never run
        return None

    @command("probe", summary="is an environment answering", args=(ENV,), registry=reg,
             phrasing=Phrasing(nouns=("probe",), answers_state=True))
    async def probe(ctx: Any, args: dict[str, Any]) -> Any:  # pragma: no cover - never run
        return None

    return reg


def test_performative_and_answers_state_are_declared_not_named() -> None:
    """A team's own command gets the same readings from its declaration alone."""
    config = load_config(ROOT / "chatops.yaml")
    reg = _team_registry()
    lex = Lexicon.compile(reg)
    assert "veto" in lex.performative and "probe" in lex.answers_state
    parser = NLParser(Resolver(config), reg, frozenset({"alice", "bob"}))
    plan = parse_plain("I'm vetoing r-1a2b3c4d because prod is frozen", parser)
    assert (plan.command, plan.args) == ("veto", {"request": "r-1a2b3c4d", "reason": "prod is frozen"})
    assert parse_plain("I'm going to veto r-1a2b3c4d", parser).command is None
    assert parse_plain("veto r-1a2b3c4d, sorry", parser).args == {"request": "r-1a2b3c4d"}
    assert parse_plain("can someone veto r-1a2b3c4d?", parser).command is None


def test_a_plain_registry_without_the_new_fields_keeps_them_empty() -> None:
    reg = Registry()

    @command("ping2", summary="p", args=(Arg("env", Kind.env),), registry=reg, phrasing=Phrasing(nouns=("ping2",)))
    async def ping2(ctx: Any, args: dict[str, Any]) -> Any:  # pragma: no cover - never run
        return None

    lex = Lexicon.compile(reg)
    assert lex.performative == frozenset() and lex.answers_state == ()
