"""Plain language, sixth pass of issue 13: the classes the blind sets of rounds 13 and 14 (af, ag, ah, ai)
found on first meeting, each fixed by a generic mechanism (docs/language.md, "The sixth pass"). The
sentences here are the project's own, not the blind sets': other wording, commands and targets."""

from __future__ import annotations

import pytest

from commands.registry import Kind, registry
from llm.lexicon import Lexicon
from llm.modality import pasted
from llm.planner import Planner
from tests.test_language_pass5 import asks_nothing, plan_of, reads_as


def reads_with(planner: Planner, text: str, cmd: str, args: dict[str, str]) -> None:
    """The text reads as `cmd` with these `args` (a reason or a note beside them is the reader's choice)."""
    plan = plan_of(planner, text)
    assert plan.command == cmd and {k: plan.args.get(k) for k in args} == args, plan


# -- the two wrong actions of round 13 --------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "going back to sleep",
    "restarted grafana on test at 2:40, dashboards are back. going back to bed",
    "deployed chat to dev. heading back to the standup",
    "rolling back docs on dev now",
    "snapshotting the test vm before lunch",
])
def test_a_progressive_opening_the_asking_sentence_is_a_heads_up(planner: Planner, text: str) -> None:
    """An -ing form of a declared verb (one word or the first of a phrase: "going back") that opens the
    asking sentence says what the speaker is doing, wherever that sentence stands in the message."""
    plan = plan_of(planner, text)
    assert plan.command is None, plan


def test_a_word_that_only_looks_like_an_ing_form_is_no_heads_up(planner: Planner) -> None:
    # "bring" is no -ing form of "br": "bring back" is asked for, and is ambiguous between its commands
    plan = plan_of(planner, "bring back n8n on dev")
    assert plan.command is None and "which one" in (plan.clarify or ""), plan
    reads_as(planner, "starting the release. deploy docs to test", "deploy", {"stack": "docs", "env": "rumpletest"})


@pytest.mark.parametrize("text, name", [
    ("kim before u restart anything on prod snapshot the prod vm", "kim"),
    ("alice when you get a sec, restart redis on dev", "alice"),
    ("tomas before you leave restart redis on dev", "tomas"),
])
def test_a_first_name_then_a_clause_said_to_you_is_spoken_to_that_person(planner: Planner, text: str,
                                                                          name: str) -> None:
    asks_nothing(planner, text, f"addressed to {name}")


def test_the_same_clause_without_a_name_is_said_to_the_bot(planner: Planner) -> None:
    reads_as(planner, "before you restart anything, snapshot the prod vm", "snapshot", {"vm": "rumpleprod"})


# -- reports, plans and symptoms in their own sentence --------------------------------------------


@pytest.mark.parametrize("text, cmd, args", [
    ("Priya says redis on test is flaky since the upgrade.\nCan you show me its logs?",
     "logs", {"service": "redis", "env": "rumpletest"}),
    ("The runbook says a restart fixes this, and Omar agreed. Please restart n8n on dev.",
     "restart", {"service": "n8n", "env": "rumpledev"}),
    ("Marco asked me to look at the data stack on test, so: status of data on test please",
     "status", {"stack": "data", "env": "rumpletest"}),
    ("Omar mentioned paperless was slow on dev — could you pull its logs?",
     "logs", {"service": "paperless", "env": "rumpledev"}),
])
def test_a_report_in_a_context_sentence_leaves_a_direct_request_standing(planner: Planner, text: str, cmd: str,
                                                                        args: dict[str, str]) -> None:
    reads_with(planner, text, cmd, args)


@pytest.mark.parametrize("text", [
    "bob said restart redis on prod. can you?",   # the request is in the reported sentence
    "who wants lunch? the prod deploy can wait",  # no sentence asks in so many words
    "dana wants me to restart n8n on prod. restart it.",
])
def test_a_report_still_holds_where_the_asking_sentence_is_the_reported_one(planner: Planner, text: str) -> None:
    assert plan_of(planner, text).command is None


@pytest.mark.parametrize("text, cmd, args", [
    ("my container won't start, is the gpu busy?", "gpu", {}),
    ("grafana doesn't restart cleanly on test, show me its logs", "logs", {"service": "grafana", "env": "rumpletest"}),
    ("the agent can't reach vllm, how are the gpus", "gpu", {}),
])
def test_a_things_negated_verb_is_a_symptom_not_a_refusal(planner: Planner, text: str, cmd: str,
                                                          args: dict[str, str]) -> None:
    reads_as(planner, text, cmd, args)


@pytest.mark.parametrize("text", ["please don't restart grafana on test", "i won't restart nginx on dev",
                                  "you can't deploy chat to prod today"])
def test_the_speakers_or_the_bots_negated_verb_still_negates(planner: Planner, text: str) -> None:
    assert plan_of(planner, text).command is None


def test_allowed_to_is_a_modal_so_the_question_before_it_asks(planner: Planner) -> None:
    reads_as(planner, "what roles do I have? wondering if I'm allowed to restart things", "whoami", {})


# -- comments, remarks and descriptions after a complete request ----------------------------------


@pytest.mark.parametrize("text, cmd, args", [
    ("approve r-4d2c its the redis fix", "approve", {"request": "r-4d2c"}),
    ("deny r-4d2c pls, its the chat deploy on prod", "deny", {"request": "r-4d2c"}),
    ("restart redis asap its timing out", "restart", {"service": "redis"}),
    ("approve request 4d2c for omars rollback", "approve", {"request": "r-4d2c"}),
    ("aprove r-4d2c, it is the docs deploy on test", "approve", {"request": "r-4d2c"}),
])
def test_a_remark_about_the_request_names_no_target(planner: Planner, text: str, cmd: str,
                                                    args: dict[str, str]) -> None:
    reads_with(planner, text, cmd, args)


def test_its_before_a_noun_is_still_a_possessive(planner: Planner) -> None:
    reads_as(planner, "restart nginx and its sidecar on dev", "restart", {"service": "nginx", "env": "rumpledev"})


def test_a_service_of_the_named_stack_is_said_of_it(planner: Planner) -> None:
    reads_as(planner, "roll back the data deploy on test, redis lost its keys", "rollback",
             {"stack": "data", "env": "rumpletest"})
    # a service alone on a command over stacks still asks (a change never widens a service to its stack)
    assert plan_of(planner, "roll back prometheus on test").command is None


@pytest.mark.parametrize("text, cmd, args", [
    ("status test, all stacks", "status", {"env": "rumpletest"}),
    ("gpu temps and power on phoenix", "gpu", {"host": "phoenix"}),
    ("restart cloudflared on live asap, the webinar starts in 5", "restart",
     {"service": "cloudflared", "env": "rumple"}),
    ("logs for cloudflared on live, open webui unreachable from outside",
     "logs", {"service": "cloudflared", "env": "rumple"}),
    ("restart n8n on dev, the llm workflow is stuck", "restart", {"service": "n8n", "env": "rumpledev"}),
    ("redeploy monitoring on test so prometheus picks up the dcgm targets", "deploy",
     {"stack": "monitoring", "env": "rumpletest"}),
])
def test_words_beside_the_request_are_its_scope_or_a_comment(planner: Planner, text: str, cmd: str,
                                                             args: dict[str, str]) -> None:
    reads_as(planner, text, cmd, args)


def test_a_verb_after_and_is_still_a_second_request(planner: Planner) -> None:
    asks_nothing(planner, "restart nginx on dev and power on the test vm", "more than one thing")


# -- times, the audit log and questions -------------------------------------------------------------


@pytest.mark.parametrize("text, args", [
    ("any failed requests over the weekend?", {"status": "failed"}),
    ("who touched the test vm this morning", {}),
    ("what got rolled back on live this weekend", {"command": "rollback", "env": "rumple"}),
    ("what rollbacks happened since 2026-11-01?", {"command": "rollback"}),
    ("what's been done on test in the last hour", {"env": "rumpletest"}),
])
def test_questions_about_the_past_read_the_audit_log(planner: Planner, text: str, args: dict[str, str]) -> None:
    plan = plan_of(planner, text)
    assert plan.command == "audit" and plan.args.get("since") and all(plan.args.get(k) == v
                                                                      for k, v in args.items()), plan
    assert "status" not in plan.args or "status" in args, plan  # "done" is the verb "do", not a status


@pytest.mark.parametrize("text", ["who broke staging 😅", "who named the dev vm rumpledev", "restart the weekend"])
def test_a_who_question_without_a_time_or_a_touch_is_no_audit(planner: Planner, text: str) -> None:
    assert plan_of(planner, text).command != "audit"


def test_midnight_and_lunch_are_times_of_day(planner: Planner) -> None:
    for text in ("logs for n8n on dev since midnight", "logs for n8n on dev since lunch"):
        plan = plan_of(planner, text)
        assert plan.command == "logs" and "T" in str(plan.args.get("since")), plan


def test_a_span_over_the_weekend_is_how_long_a_lock_lasts(planner: Planner) -> None:
    reads_as(planner, "freeze live over the weekend", "lock", {"env": "rumple"}, besides=("reason",))


def test_how_long_something_took_is_no_time_window(planner: Planner) -> None:
    plan = plan_of(planner, "the deploy on test took like 90 seconds, is that normal?")
    assert "since" not in plan.args, plan


@pytest.mark.parametrize("text, cmd, args", [
    ("how does test look after the upgrade", "status", {"env": "rumpletest"}),
    ("how does chat look on live", "status", {"stack": "chat", "env": "rumple"}),
    ("b4 anyone touches it, snapshot the dev vm", "snapshot", {"vm": "rumpledev"}),
    ("which recovery points exist for rumpledev?", "snapshots", {"vm": "rumpledev"}),
    ("before I break anything — what does restore actually do?", "help", {"topic": "restore"}),
    ("QA here: uploads fail on test. can I see the last 50 lines of paperless logs there?",
     "logs", {"service": "paperless", "env": "rumpletest", "tail": 50}),
    ("show the audit log for discord:AbC123", "audit", {"user": "discord:AbC123"}),
])
def test_ordinary_requests_the_rounds_found(planner: Planner, text: str, cmd: str, args: dict[str, object]) -> None:
    reads_as(planner, text, cmd, args)


def test_a_remark_that_something_looks_good_is_no_status(planner: Planner) -> None:
    assert plan_of(planner, "the new chat theme looks great").command is None


# -- values: branches, refs and ids ---------------------------------------------------------------


@pytest.mark.parametrize("text, ref", [
    ("deploy docs to test off main", "main"),
    ("deploy chat to dev from master", "master"),
    ("ship feature/new-login of chat to dev", "feature/new-login"),
    ("please deploy hotfix/1.2.3 of web to staging", "hotfix/1.2.3"),
    ("promote docs to prod at v3.1.0", "v3.1.0"),
])
def test_a_branch_or_tag_is_the_deploys_ref(planner: Planner, text: str, ref: str) -> None:
    plan = plan_of(planner, text)
    assert plan.command == "deploy" and plan.args.get("ref") == ref, plan


def test_a_bare_word_is_no_ref_and_a_path_is_no_branch(planner: Planner) -> None:
    reads_as(planner, "deploy the main docs stack to dev", "deploy", {"stack": "docs", "env": "rumpledev"})
    # a trunk name with no cue is asked about, never dropped
    assert plan_of(planner, "deploy main of docs to dev").command is None
    reads_as(planner, "redeploy docs on dev, same ref as before", "deploy", {"stack": "docs", "env": "rumpledev"})


def test_the_ref_shape_is_declared_on_the_argument() -> None:
    spec = registry().get("deploy")
    assert spec is not None
    ref = spec.arg("ref")
    assert ref is not None and ref.kind is Kind.word
    shape = Lexicon.shape_of(ref)
    assert shape.match("feature/sso") and shape.match("v1.2.3") and shape.match("main")
    assert not shape.match("compose/monitoring") and not shape.match("approval-expiry")


@pytest.mark.parametrize("text", [
    "at the offsite we agreed to snapshot before every prod deploy",
    "we decided to restart redis on prod every sunday",
])
def test_a_decision_reported_is_no_request(planner: Planner, text: str) -> None:
    assert plan_of(planner, text).command is None


def test_a_name_near_an_inventory_name_on_an_id_command_is_not_guessed(planner: Planner) -> None:
    reads_as(planner, "go ahead and approve r-4d2c for dana", "approve", {"request": "r-4d2c"})


def test_the_clock_of_a_thing_named_is_no_schedule(planner: Planner) -> None:
    plan = plan_of(planner, "cancel the 23:00 deploy, it is r-4d2c")
    assert plan.command == "cancel" and plan.args.get("request") == "r-4d2c", plan


# -- pasted material ---------------------------------------------------------------------------------


def test_a_compose_log_line_is_pasted() -> None:
    assert pasted("n8n-1  | ERROR [workflow] request to vllm timed out") == "a log line"
    assert pasted("web  | INFO started in 3s") == "a log line"
    assert pasted("restart nginx | redis on dev") is None


# -- round 15: the wrong actions and the classes around them -----------------------------------------


def test_a_values_own_noun_is_no_value(planner: Planner) -> None:
    plan = plan_of(planner, "roll the test vm back to a snapshot")
    assert plan.command is None or "snapshot" not in plan.args, plan
    plan = plan_of(planner, "restore rumpledev from a checkpoint")
    assert plan.args.get("snapshot") is None and not plan.complete, plan


@pytest.mark.parametrize("text", [
    "anyone mind if I restart grafana on test?",
    "ok if we deploy docs to prod now?",
    "worth restarting redis on dev before the demo?",
    "we should lock prod at some point",
    "need to snapshot the prod vm eventually",
    "can you roll back chat on dev at some point this week",
])
def test_leave_asked_of_the_room_worth_and_vague_times_do_not_act(planner: Planner, text: str) -> None:
    assert plan_of(planner, text).command is None


@pytest.mark.parametrize("text", ["deny r-11aa and r-22bb", "approve r-11aa, r-22bb please", "approve r-11aa & r-22bb"])
def test_ids_in_a_list_ask_for_one_at_a_time(planner: Planner, text: str) -> None:
    asks_nothing(planner, text, "one at a time")


def test_an_id_named_as_context_is_no_second_target(planner: Planner) -> None:
    reads_as(planner, "deny r-11aa because r-22bb already does this", "deny", {"request": "r-11aa"},
             besides=("reason",))


@pytest.mark.parametrize("text, name", [("mira, restart grafana on test", "mira"),
                                        ("jonas, roll back web on dev pls", "jonas")])
def test_a_name_set_off_by_a_comma_is_spoken_to(planner: Planner, text: str, name: str) -> None:
    asks_nothing(planner, text, f"addressed to {name}")


@pytest.mark.parametrize("text", ["yes, restart grafana on test", "ugh, restart grafana on test",
                                  "honestly, restart grafana on test"])
def test_an_interjection_set_off_by_a_comma_is_no_name(planner: Planner, text: str) -> None:
    reads_as(planner, text, "restart", {"service": "grafana", "env": "rumpletest"})


@pytest.mark.parametrize("text", ["take the lock off staging", "lift the freeze on staging"])
def test_taking_the_lock_off_unlocks(planner: Planner, text: str) -> None:
    reads_as(planner, text, "unlock", {"env": "rumpletest"})


@pytest.mark.parametrize("text, key, n", [
    ("logs for redis on dev, last forty lines", "tail", 40),
    ("nginx logs on test, two hundred lines", "tail", 200),
    ("audit, twelve most recent", "limit", 12),
    ("audit: last dozen entries for prod", "limit", 12),
])
def test_counts_in_words(planner: Planner, text: str, key: str, n: int) -> None:
    assert plan_of(planner, text).args.get(key) == n


def test_http_errors_in_a_remark_are_no_value(planner: Planner) -> None:
    reads_as(planner, "restart open-webui on prod, 504s on every page", "restart",
             {"service": "open-webui", "env": "rumpleprod"})


def test_it_in_the_asking_sentence_is_the_thing_of_the_context(planner: Planner) -> None:
    reads_as(planner, "paperless is stuck again, restart it on test", "restart",
             {"service": "paperless", "env": "rumpletest"})


def test_a_symbol_before_the_words_says_nothing(planner: Planner) -> None:
    reads_as(planner, "⚠️ restart grafana on test 🙏", "restart", {"service": "grafana", "env": "rumpletest"})


def test_an_outcome_before_a_plural_noun_says_which_ones(planner: Planner) -> None:
    plan = plan_of(planner, "denied rollbacks this week?")
    assert plan.command == "audit" and plan.args.get("status") == "denied", plan
    assert plan_of(planner, "the snapshot failed on test").command is None


# -- round 16 ------------------------------------------------------------------------------------------


def test_a_stacks_name_without_its_s_is_asked_about_on_a_change(planner: Planner) -> None:
    # the verb's own particle cues no snapshot name: "monitor" is no stack, and no snapshot was named
    plan = plan_of(planner, "roll back monitor on dev")
    assert not plan.complete and plan.args.get("snapshot") is None, plan
    plan = plan_of(planner, "rollback workflow on test")
    assert plan.command is None and "workflows" in (plan.clarify or ""), plan
    reads_as(planner, "status of workflow on test", "status", {"stack": "workflows", "env": "rumpletest"})


@pytest.mark.parametrize("text", ["lock dana out of staging", "i already restart nginx on dev",
                                  "already restart nginx on dev", "who gave restart for redis on prod?",
                                  "who will restart redis on prod?"])
def test_people_as_objects_done_things_and_who_questions_do_not_act(planner: Planner, text: str) -> None:
    assert plan_of(planner, text).command is None


def test_the_refusals_say_why(planner: Planner) -> None:
    asks_nothing(planner, "lock dana out of staging", "doing something to 'dana'")
    asks_nothing(planner, "already restart nginx on dev", "already happened")
    asks_nothing(planner, "who will restart redis on prod?", "asks who")


@pytest.mark.parametrize("text, cmd, args", [
    ("Sumimasen, could you show the status of docs at rumple-live?", "status", {"stack": "docs", "env": "rumple"}),
    ("bhai please restart redis on staging", "restart", {"service": "redis", "env": "rumpletest"}),
    ("Proszę restart grafana on test, dzięki", "restart", {"service": "grafana", "env": "rumpletest"}),
    ("yes please approve r-5e5e, gracias", "approve", {"request": "r-5e5e"}),
    ("chat stack on test — up or not?", "status", {"stack": "chat", "env": "rumpletest"}),
    ("restart cloudflared on live before the 9pm webinar", "restart", {"service": "cloudflared", "env": "rumple"}),
    ("could you restore rumpletest to clean-base? sorry, my fault", "restore",
     {"vm": "rumpletest", "snapshot": "clean-base"}),
    ("what's scheduled?", "schedules", {}),
])
def test_round_16s_ordinary_requests(planner: Planner, text: str, cmd: str, args: dict[str, str]) -> None:
    reads_as(planner, text, cmd, args)


def test_or_not_still_asks_whether_for_a_change(planner: Planner) -> None:
    assert plan_of(planner, "restart redis on prod or not?").command is None


# -- the final held-out sets' one wrong action ------------------------------------------------------


@pytest.mark.parametrize("text", [
    "does grafana on test need a restart after the plugin update?",
    "do the test vm and the dev vm need a snapshot first",
    "will chat on prod need another deploy for the fix, or is it live already?",
])
def test_whether_a_thing_needs_a_change_asks_whether(planner: Planner, text: str) -> None:
    asks_nothing(planner, text, "asks whether")


def test_saying_it_needs_one_after_the_request_still_asks_for_it(planner: Planner) -> None:
    reads_as(planner, "restart grafana on test, it needs a restart after the plugin update", "restart",
             {"service": "grafana", "env": "rumpletest"})


def test_a_heads_up_names_a_command_back_only_when_its_words_were_the_commands(planner: Planner) -> None:
    assert "Say 'restart …'" in (plan_of(planner, "restarting grafana on test, brb").clarify or "")
    assert "Say 'rollback …'" in (plan_of(planner, "rolling back docs on dev now").clarify or "")
    said = plan_of(planner, "sorry for the noise, going back to bed").clarify or ""
    assert "heads-up" in said and "restore" not in said  # "going back" matched restore's phrase, no more


# -- round 18 (confirmation sets ap, aq): its two wrong actions --------------------------------------


@pytest.mark.parametrize("text", ["team asked us to restart redis on prod", "ops wants us to deploy docs to live",
                                  "bot said restart grafana on test"])
def test_a_leader_word_as_the_subject_of_a_report_is_kept(planner: Planner, text: str) -> None:
    asks_nothing(planner, text, "reports what someone else")


@pytest.mark.parametrize("text", ["hold off on approving the test deploy, rollback still running",
                                  "the snapshot of the prod vm is still running", "restart in progress on dev"])
def test_a_changes_noun_with_a_state_is_what_that_thing_is_doing(planner: Planner, text: str) -> None:
    assert plan_of(planner, text).command is None


def test_a_reads_noun_with_a_state_still_asks_about_it(planner: Planner) -> None:
    reads_as(planner, "which vms are running", "vm-status", {})
