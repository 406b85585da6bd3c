"""Plain language, second pass of issue 13: the classes a blind set found, each fixed by a generic
mechanism (docs/language.md). The sentences here are the project's own, not the blind set's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from commands.registry import Arg, Kind, Phrasing, Registry, command, registry
from infra.config import load_config
from infra.status import STATUS_WORDS, status_of
from llm.agent import Answer, interpret
from llm.lexicon import Lexicon, gerund
from llm.nl import looks_like_value
from llm.plan import Outcome, Plan
from llm.planner import Planner
from llm.tools import TOOL_NAME
from llm.validate import validate
from tests.conftest import D, L, P, T


def parse(planner: Planner, text: str) -> Plan:
    return planner.grammar(text)


def runs(planner: Planner, text: str, cmd: str, args: dict[str, Any]) -> None:
    plan = parse(planner, text)
    assert (plan.command, plan.args, plan.outcome) == (cmd, args, Outcome.run), (text, plan)


def nothing(planner: Planner, text: str) -> Plan:
    plan = parse(planner, text)
    assert plan.command is None and plan.outcome is not Outcome.run, (text, plan)
    return plan


# -- words after a request: a retraction, a reason, another request ----------------------------

@pytest.mark.parametrize("text", [
    "deploy monitoring to prod — sorry, wrong channel", "lock prod... nah forget it", "restart nginx on dev, my bad",
    "unlock staging -- oops, wrong thread", "deny r-0badf00d. just kidding", "snapshot the prod vm, disregard",
])
def test_a_retraction_after_the_request_takes_it_back(planner: Planner, text: str) -> None:
    assert nothing(planner, text).outcome is Outcome.refuse


def test_an_apology_before_a_name_corrects_instead(planner: Planner) -> None:
    runs(planner, "restart redis on test... sorry, dev", "restart", {"service": "redis", "env": D})
    runs(planner, "sorry to bother, can you restart grafana on dev", "restart", {"service": "grafana", "env": D})


@pytest.mark.parametrize(("text", "cmd", "args"), [
    ("decline r-5a5a5a5a, needs a snapshot first", "deny",
     {"request": "r-5a5a5a5a", "reason": "needs a snapshot first"}),
    ("deny r-1a2b3c4d not during the demo", "deny", {"request": "r-1a2b3c4d", "reason": "not during the demo"}),
    ("reject r-1a2b3c4d — needs a rollback plan first", "deny",
     {"request": "r-1a2b3c4d", "reason": "needs a rollback plan first"}),
    ("retract my request r-1a2b3c4d, asked too early", "withdraw",
     {"request": "r-1a2b3c4d", "reason": "asked too early"}),
    ("stop r-0badf00d, it's the wrong stack", "cancel", {"request": "r-0badf00d", "reason": "it's the wrong stack"}),
    ("lock prod release freeze", "lock", {"env": P, "reason": "release freeze"}),
    ("freeze live, pending the security review", "lock", {"env": L, "reason": "pending the security review"}),
])
def test_words_after_a_request_with_free_text_are_that_text_verbatim(planner: Planner, text: str, cmd: str,
                                                                      args: dict[str, Any]) -> None:
    runs(planner, text, cmd, args)


@pytest.mark.parametrize("text", [
    "lock prod and live", "lock prod live", "lock prod and deploy data there", "lock staging, then deploy chat to it",
    "deny r-0badf00d and approve r-1a2b3c4d", "deny r-0badf00d if bob doesn't answer", "lock prod tomorrow morning",
])
def test_words_that_add_a_target_a_request_a_condition_or_a_time_are_no_reason(planner: Planner, text: str) -> None:
    nothing(planner, text)


def test_a_canonical_change_is_also_read_as_plain_language(planner: Planner) -> None:
    """The canonical form alone read 'and live' as a reason and 'pls' as a snapshot name."""
    plan = parse(planner, "restore the dev vm pls")
    assert plan.command == "restore" and plan.outcome is Outcome.ask and "snapshot" not in plan.args
    canonical = parse(planner, "lock prod release freeze")
    assert canonical.confidence == 1.0  # still the canonical reading, untouched
    assert not looks_like_value("pls") and not looks_like_value("the") and looks_like_value("pre-upgrade")
    assert not looks_like_value("pls", written=True) and looks_like_value("after", written=True)


# -- conditions, someone else's action, schedules in a description ----------------------------------

@pytest.mark.parametrize("text", [
    "once QA signs off, deploy chat to prod", "when the build is green, deploy chat to prod",
    "after alice merges the fix, deploy chat to test", "restart nginx on dev once the backup finishes",
    "once you see the alert clear, unlock prod", "we need chat deployed to prod once QA is done",
    "the data deploy on staging broke the migrations. alice will reverse it",
])
def test_conditions_and_other_peoples_actions_run_nothing(planner: Planner, text: str) -> None:
    assert nothing(planner, text).outcome is Outcome.refuse


def test_a_question_of_when_and_polite_time_are_no_conditions(planner: Planner) -> None:
    assert parse(planner, "when was chat last deployed to prod").command == "audit"
    runs(planner, "once you have a sec, restart grafana on dev", "restart", {"service": "grafana", "env": D})
    runs(planner, "approve r-4b5c6d7e pls, it's the nightly deploy", "approve", {"request": "r-4b5c6d7e"})
    assert "schedule" in (nothing(planner, "deploy chat to prod this weekend").clarify or "")


# -- undo in other words, pronouns, context -----------------------------------------------------

@pytest.mark.parametrize(("text", "cmd", "args"), [
    ("can we get the previous chat release back on test", "rollback", {"stack": "chat", "env": T}),
    ("could we have the old chat back on dev", "rollback", {"stack": "chat", "env": D}),
    ("go back to the old monitoring on dev", "rollback", {"stack": "monitoring", "env": D}),
    ("the workflows deploy on prod broke webhooks, undo it", "rollback", {"stack": "workflows", "env": P}),
    ("go back to before-pg16 on the prod vm", "restore", {"vm": P, "snapshot": "before-pg16"}),
    ("It's 3am and the portainer-agent on test has lost its connection again. Restart it please.", "restart",
     {"service": "portainer-agent", "env": T}),
    ("Good afternoon. Is the agent stack fine on test? Portainer shows it greyed out.", "status",
     {"stack": "agent", "env": T}),
    ("no clue why grafana on test is slow, restart it", "restart", {"service": "grafana", "env": T}),
    ("mind restarting the dashboards on dev?", "restart", {"service": "grafana", "env": D}),
    ("I'd like the gpu-metrics stack deployed to the gpu box", "deploy", {"stack": "gpu-metrics", "env": "phoenix"}),
])
def test_undo_pronouns_context_and_indirect_requests(planner: Planner, text: str, cmd: str,
                                                     args: dict[str, Any]) -> None:
    runs(planner, text, cmd, args)


def test_roll_back_without_a_snapshot_is_a_rollback(planner: Planner) -> None:
    plan = parse(planner, "roll back on staging")
    assert (plan.command, plan.args, plan.outcome) == ("rollback", {"env": T}, Outcome.ask)


# -- read commands by their nouns, the audit log in other words ---------------------------------------

@pytest.mark.parametrize(("text", "cmd", "args"), [
    ("how many requests are waiting in the vllm queue", "gpu", {}),
    ("is anything running on the GPUs?", "gpu", {}),
    ("memory usage on the portainer lxc", "vm-status", {"vm": "portainer"}),
    ("do I have operator rights?", "whoami", {}),
    ("what docker hosts do you know about?", "envs", {}),
    ("show failed deploys this week", "audit", {"command": "deploy", "status": "failed", "since": "1w"}),
    ("show the approvals bob made", "audit", {"approver": "bob", "status": "approved"}),
    ("audit trail for dave on staging", "audit", {"user": "dave", "env": T}),
    ("what has been refused in the past 3 days?", "audit", {"status": "refused", "since": "3d"}),
    ("list the requests that are still pending approval", "audit", {"status": "pending_approval"}),
    ("no idea what the stream server printed on prod this week — show me its logs?", "logs",
     {"service": "rtmp", "env": P, "since": "1w"}),
    ("back up the dev vm with a snapshot before the kernel upgrade, cheers", "snapshot", {"vm": D}),
])
def test_read_commands_and_the_audit_log_in_other_words(planner: Planner, text: str, cmd: str,
                                                        args: dict[str, Any]) -> None:
    runs(planner, text, cmd, args)


@pytest.mark.parametrize(("text", "args"), [
    # the one who decided: the decision's subject, the person after "by", the one whose approvals they are
    ("what did bob approve", {"approver": "bob", "status": "approved"}),
    ("has carol denied anything on staging", {"approver": "carol", "status": "denied", "env": T}),
    ("which deploys did carol approve", {"approver": "carol", "command": "deploy", "status": "approved"}),
    ("any restarts denied by bob?", {"approver": "bob", "command": "restart", "status": "denied"}),
    ("show bob's denials", {"approver": "bob", "status": "denied"}),
    # who asked stays who asked, and nobody is read as both
    ("who approved carol's snapshot", {"user": "carol", "command": "snapshot", "status": "approved"}),
    ("who denied the rollback on prod", {"command": "rollback", "status": "denied", "env": P}),
])
def test_a_decision_asked_about_names_who_decided_apart_from_who_asked(planner: Planner, text: str,
                                                                       args: dict[str, Any]) -> None:
    """`audit approver=` is the argument declared `decided_by`: plain language fills it only from a question
    about a decision, so a click counts like a typed 'approve' and the requester is never taken for the
    approver (docs/language.md)."""
    runs(planner, text, "audit", args)


@pytest.mark.parametrize(("text", "args"), [
    ("did I restart nginx on dev", {"user": "me", "command": "restart", "env": D}),  # ran a restart before
    ("did I snapshot rumpledev before the upgrade?", {"user": "me", "command": "snapshot", "env": D}),
    ("when did I last deploy web", {"user": "me", "command": "deploy"}),
    ("what have I denied", {"approver": "me", "status": "denied"}),
    ("have I restored anything this month?", {"user": "me", "command": "restore", "since": "30d"}),
    ("show my failed deploys", {"user": "me", "command": "deploy", "status": "failed"}),  # an admin's too
])
def test_a_question_about_what_i_did_reads_my_audit_and_runs_nothing(planner: Planner, text: str,
                                                                      args: dict[str, Any]) -> None:
    """"I" asks about the asker's own requests (`me`, which the audit command reads as whoever asks), as
    "did bob …" asks about bob's: a question in the first person is never the change it names."""
    runs(planner, text, "audit", args)


def test_what_i_have_now_is_no_question_about_the_past(planner: Planner) -> None:
    runs(planner, "what roles have i got", "whoami", {})


@pytest.mark.parametrize("word", ["failing", "rejected", "waiting", "timed out", "in progress", "withdrawn"])
def test_status_words_are_infra_statuss_own(planner: Planner, word: str) -> None:
    """One table of the words for a status (infra/status.py); the audit argument keeps none of its own."""
    assert registry()["audit"].arg("status").values == ()  # type: ignore[union-attr]
    plan = parse(planner, f"show {word} requests")
    assert plan.command == "audit" and plan.args.get("status") == status_of(word), plan
    assert "failing" in STATUS_WORDS


# -- names where a target belongs, verbs of change on what a read command shows ----------------------

def test_a_command_word_where_a_name_belongs_is_an_unknown_name(planner: Planner) -> None:
    plan = nothing(planner, "restart nginx on the backup server")
    assert "environment called 'backup'" in (plan.clarify or "")
    assert "environment called 'monitoring'" in (nothing(planner, "stop grafana on the monitoring server").clarify
                                                  or "")


def test_a_verb_of_change_over_a_read_commands_noun_is_refused(planner: Planner) -> None:
    plan = nothing(planner, "add 2 more GPUs to phoenix")
    assert plan.outcome is Outcome.refuse and "add gpus" in (plan.clarify or "")
    runs(planner, "check the gpus on phoenix", "gpu", {"host": "phoenix"})


# -- pending, withdraw, cancel ------------------------------------------------------------------

@pytest.mark.parametrize(("text", "cmd", "args"), [
    ("what is waiting for my approval?", "pending", {}), ("any pending approvals?", "pending", {}),
    ("what needs my sign-off", "pending", {}), ("what do I need to sign off", "pending", {}),
    ("take back my request r-0badf00d", "withdraw", {"request": "r-0badf00d"}),
    ("withdraw r-1a2b3c4d please", "withdraw", {"request": "r-1a2b3c4d"}),
    ("cancel the running deploy r-1a2b3c4d", "cancel", {"request": "r-1a2b3c4d"}),
    ("abort the deploy r-0badf00d", "cancel", {"request": "r-0badf00d"}),
])
def test_pending_withdraw_and_cancel_in_plain_language(planner: Planner, text: str, cmd: str,
                                                       args: dict[str, Any]) -> None:
    runs(planner, text, cmd, args)


def test_a_cancelling_verb_without_a_request_names_none_to_guess(planner: Planner) -> None:
    """`object_needs`: cancel's verbs govern a command noun only with the request named."""
    plan = nothing(planner, "call off the restore of dev")
    assert plan.outcome is Outcome.refuse and "cancel REQUEST" in (plan.clarify or "")
    nothing(planner, "stop the chat deploy on test")
    runs(planner, "stop nginx on dev", "stop", {"service": "nginx", "env": D})


def test_object_needs_must_name_an_argument() -> None:
    reg = Registry()

    @command("poke", summary="poke", args=(Arg("request", Kind.request),), changes=True, registry=reg,
             phrasing=Phrasing(object_verbs=("poke",), objects=("*",), object_needs=("nope",)))
    async def poke(ctx: Any, args: dict[str, Any]) -> Any:  # pragma: no cover - never run
        return None

    with pytest.raises(ValueError, match="object_needs names no argument 'nope'"):
        Lexicon.compile(reg)


def test_every_declared_verb_has_its_ing_form() -> None:
    assert [gerund(v) for v in ("bounce", "stop", "ship", "deploy", "freeze", "revert")] == [
        "bouncing", "stopping", "shipping", "deploying", "freezing", "reverting"]
    lex = Lexicon.compile(registry())
    assert {s.command for s in lex.senses("bouncing")} == {"restart"}
    assert "taking" in lex.object_verbs  # "mind taking a snapshot of the dev vm?"


# -- messages quote the team's own names ---------------------------------------------------------------

TEAM = """
environments:
  lab: {protected: false, docker: {host: "unix:///run/none.sock"}, vm: wombat}
stacks:
  api: {path: "%s"}
vms:
  wombat: {node: pve1, kind: qemu, vmid: 310}
users:
  "console:alice": [operator]
default_roles: [viewer]
"""


def test_messages_give_examples_in_the_configured_inventory(tmp_path: Path) -> None:
    stack = tmp_path / "api"
    stack.mkdir()
    (stack / "compose.yaml").write_text("services:\n  gateway:\n    image: chatops-busybox:1\n")
    path = tmp_path / "team.yaml"
    path.write_text(TEAM % stack)
    team = Planner(load_config(path), registry())
    asked = interpret(Answer(TOOL_NAME, {"command": "restart", "args": {"service": "gateway", "env": "lab"}}, None),
                      "is the gateway on lab wedged?", team.registry, team.resolver)
    assert asked.command is None and "restart gateway on lab" in (asked.clarify or "")
    unsaid = validate(Plan("restore", {"vm": "wombat", "snapshot": "base"}), team.resolver, team.registry,
                      text="restore wombat", require_mentioned=True)
    assert unsaid.command is None and "restore wombat pre-upgrade" in (unsaid.clarify or "")
    assert "rumpledev" not in (unsaid.clarify or "") and "n8n" not in (asked.clarify or "")


@pytest.mark.parametrize("text, given, wanted", [
    ("approve s-8106e4bc", "s-8106e4bc is a schedule id", "'approve' takes a request id"),
    ("pls deny s-12ab34cd, it's the wrong one", "s-12ab34cd is a schedule id", "'deny' takes a request id"),
    ("withdraw s-0f0f0f0f", "s-0f0f0f0f is a schedule id", "'withdraw' takes a request id"),
    ("unschedule r-1a2b3c4d", "r-1a2b3c4d is a request id", "'unschedule' takes a schedule id"),
])
def test_an_id_of_another_kind_is_named_in_the_question(planner: Planner, text: str, given: str,
                                                        wanted: str) -> None:
    # ("cancel schedule s-…" is unschedule: there the words name the kind; here the command does)
    plan = nothing(planner, text)
    assert given in (plan.clarify or "") and wanted in (plan.clarify or ""), plan


@pytest.mark.parametrize("text, cmd, args", [
    ("restart nginx on dev because I think it might help", "restart", {"service": "nginx", "env": D}),
    ("bounce redis on test since I reckon it could be leaking memory", "restart", {"service": "redis", "env": T}),
    ("restart n8n on dev because I feel like it might fix the webhooks", "restart", {"service": "n8n", "env": D}),
    ("pls restart grafana on test, cuz we might need fresh dashboards for the demo", "restart",
     {"service": "grafana", "env": T}),
])
def test_a_hedge_in_the_reason_after_a_request_is_no_hypothetical(planner: Planner, text: str, cmd: str,
                                                                   args: dict[str, Any]) -> None:
    runs(planner, text, cmd, args)


@pytest.mark.parametrize("text", ["we could restart nginx on dev because it might help",
                                  "I would restart nginx on dev", "if it breaks we would restart nginx on dev"])
def test_a_hypothetical_request_stays_one_whatever_reason_follows(planner: Planner, text: str) -> None:
    nothing(planner, text)
