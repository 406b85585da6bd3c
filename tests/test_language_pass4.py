"""Plain language, fourth pass of issue 13: the classes two fresh blind sets (set-h, set-k) and the wrong
actions left from the third pass's gate found, each fixed by a generic mechanism (docs/language.md).
The sentences here are the project's own, not the blind sets': other wording, commands and targets."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bot.adapters.discord import mention_text
from bot.adapters.slack import plain_text
from llm.plan import Outcome, Plan
from llm.planner import Planner
from tests.conftest import D, L, P, T


def plan_of(planner: Planner, text: str) -> Plan:
    return planner.grammar(text)


@pytest.mark.parametrize("text, cmd, args", [
    # a comment joined by a comma or a dash is context, like a sentence after a full stop
    ("redeploy chat on test, the login fix is merged", "deploy", {"stack": "chat", "env": T}),
    ("restart grafana on dev – the dashboards are blank", "restart", {"service": "grafana", "env": D}),
    ("stop rtmp on test, we do not need it this week", "stop", {"service": "rtmp", "env": T}),
    ("a rollback of docs on dev please, the upgrade went badly", "rollback", {"stack": "docs", "env": D}),
    ("restart the proxy on live please, the tunnel vendor says it's fine on their side",
     "restart", {"service": "nginx", "env": L}),
    ("show the gpus on phoenix, curious if I can start a training run", "gpu", {"host": "phoenix"}),
    ("stop grafana on test, a dashboard is hammering the database", "stop", {"service": "grafana", "env": T}),
    # a take-back followed only by a name corrects that name
    ("stop rtmp on prod, no wait, test", "stop", {"service": "rtmp", "env": T}),
    ("deploy docs to live, wait no, to dev", "deploy", {"stack": "docs", "env": D}),
    # "no," that answers something before, then a request
    ("no, approve r-1234abcd", "approve", {"request": "r-1234abcd"}),
    # particle verbs declared on the commands
    ("take grafana down and back up on test", "restart", {"service": "grafana", "env": T}),
    ("take paperless offline on dev", "stop", {"service": "paperless", "env": D}),
    ("bring n8n back online on test", "start", {"service": "n8n", "env": T}),
    ("get the docs stack onto test", "deploy", {"stack": "docs", "env": T}),
    ("put the video stack on dev please", "deploy", {"stack": "video", "env": D}),
    ("put chat on test back to the last revision", "rollback", {"stack": "chat", "env": T}),
    # the speaker's own plan joined with "and I'll" is context
    ("restart n8n on dev and i'll look at the workflows tomorrow", "restart", {"service": "n8n", "env": D}),
    # a need with its subject left out
    ("need grafana restarted on test", "restart", {"service": "grafana", "env": T}),
    # the speaker asking in so many words
    ("I'm asking you to restart grafana on dev", "restart", {"service": "grafana", "env": D}),
    ("@chatops restart nginx on dev", "restart", {"service": "nginx", "env": D}),
    ("@opsbot stop rtmp on test", "stop", {"service": "rtmp", "env": T}),
])
def test_requests_with_context_and_phrasing(planner: Planner, text: str, cmd: str, args: dict[str, Any]) -> None:
    plan = plan_of(planner, text)
    assert (plan.command, plan.args, plan.outcome) == (cmd, args, Outcome.run), (text, plan)


@pytest.mark.parametrize("text, why", [
    # someone else's words: the progressive, or another person's message/note/suggestion
    ("frank keeps saying we should restart redis on live", "someone else"),
    ("ann is asking us to roll back web on prod", "someone else"),
    ("carol's note: deploy chat to prod", "someone else"),
    ("his suggestion was restart postgres on live", "someone else"),
    # a fronted "after …" waits for an event still to come
    ("after the demo, lock live", "condition"),
    # notes and reminders
    ("remind me to deploy chat to prod", "plan"),
    ("TODO: restart n8n on test", "plan"),
    ("note to self: lock prod", "plan"),
    # an @-mention of a person first: addressed to them
    ("@dana could you bounce nginx on dev", "addressed to dana"),
])
def test_messages_that_ask_nothing_of_the_bot(planner: Planner, text: str, why: str) -> None:
    plan = plan_of(planner, text)
    assert plan.command is None and plan.outcome is Outcome.refuse, (text, plan)
    assert why in (plan.clarify or ""), plan.clarify


def test_an_unknown_name_before_a_kind_noun_is_that_kind_never_another_value(planner: Planner) -> None:
    rolled = plan_of(planner, "roll back the billing stack on dev")
    assert rolled.command is None and rolled.outcome is Outcome.ask
    assert "stack called 'billing'" in (rolled.clarify or "")  # (never "restore snapshot billing on the dev vm")
    server = plan_of(planner, "restart nginx on the mail server")
    assert server.command is None and "environment called 'mail'" in (server.clarify or "")
    vm = plan_of(planner, "take a snapshot of the build vm")
    assert vm.command is None and "VM called 'build'. VMs:" in (vm.clarify or "")


def test_a_value_before_of_a_target_is_asked_about_not_dropped(planner: Planner) -> None:
    plan = plan_of(planner, "roll out release-7 of the chat stack to dev")
    assert plan.command is None and plan.outcome is Outcome.ask and "'release-7'" in (plan.clarify or "")


def test_a_time_of_day_after_since_is_the_latest_such_moment(planner: Planner) -> None:
    plan = plan_of(planner, "nginx logs on dev since 8:15")
    assert (plan.command, plan.args["service"], plan.outcome) == ("logs", "nginx", Outcome.run)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T08:15", plan.args["since"]), plan.args


def test_a_time_word_without_a_schedule_form_names_the_forms_that_work(planner: Planner) -> None:
    plan = plan_of(planner, "deploy chat to prod tonight")
    assert plan.command is None and plan.outcome is Outcome.refuse
    assert "'at 22:00'" in (plan.clarify or "") and "every night at 02:00" in (plan.clarify or "")


def test_an_exclusion_after_a_comma_still_belongs_to_the_request(planner: Planner) -> None:
    plan = plan_of(planner, "restart redis on test, don't restart postgres")
    assert plan.command is None


def test_other_peoples_mentions_survive_the_adapters(planner: Planner) -> None:
    slack = plain_text("<@UBOT> <@U0DANA> can you restart nginx on dev", "UBOT")
    assert slack == "@U0DANA can you restart nginx on dev"
    discord = mention_text("<@111> <@!222> can you restart nginx on dev", 111)
    assert discord == "@222 can you restart nginx on dev"
    for text in (slack, discord):
        plan = plan_of(planner, text)
        assert plan.command is None and "addressed to" in (plan.clarify or ""), plan


def test_discord_markup_reads_as_what_the_user_saw(planner: Planner) -> None:
    text = mention_text("<@111> :rocket: restart nginx on dev <:party:123456789012345678> <a:wave:42>", 111)
    assert text == ":rocket: restart nginx on dev"
    plan = plan_of(planner, text)
    assert (plan.command, plan.args) == ("restart", {"service": "nginx", "env": "rumpledev"}), plan
    assert mention_text("<@111> status dev, cc <@&987> in <#555>", 111, {555: "ops-dev"}) == \
        "status dev, cc @role in #ops-dev"
    assert mention_text("<@111> status <#556>", 111) == "status #channel"


@pytest.mark.parametrize("text, cmd, args", [
    # a context sentence holds no condition on the request
    ("The staging vm is broken after the kernel update. Please restore it to the snapshot golden.",
     "restore", {"vm": T, "snapshot": "golden"}),
    ("restart grafana on phoenix, it hangs after the config reload", "restart",
     {"service": "grafana", "env": "phoenix"}),
    # "every" schedules only with a time after it; a command noun in a phrase of time is a reference
    ("show the status of every service on dev", "status", {"env": D}),
    ("please lock live until the audit is over", "lock", {"env": L, "reason": "until the audit is over"}),
    # stating clauses: an outcome, a past form, a need
    ("unlock prod, release finished", "unlock", {"env": P}),
    ("deploy web to dev, fix just landed", "deploy", {"stack": "web", "env": D}),
    ("stop vllm on phoenix, I need the GPUs for training", "stop", {"service": "vllm", "env": "phoenix"}),
    # a progressive in a question is a state, not a request
    ("is the proxy on dev restarting? show me its logs", "logs", {"service": "nginx", "env": D}),
    # asked of me on someone's behalf
    ("I was told to ask you: how is the data stack on test?", "status", {"env": T, "stack": "data"}),
    # how-to and help phrasings, also in a later sentence or after ", but"
    ("New here. Could you explain how the unlock command works?", "help", {"topic": "unlock"}),
    ("sorry if this is obvious, but how do I delete a snapshot?", "help", {"topic": "delete-snapshot"}),
    ("what are the args for restore again", "help", {"topic": "restore"}),
    ("what does the paperless log say on test? last 20 lines", "logs", {"service": "paperless", "env": T, "tail": 20}),
    # role questions
    ("could you tell me which roles I have?", "whoami", {}),
    ("do I have the operator role?", "whoami", {}),
])
def test_more_requests_with_context(planner: Planner, text: str, cmd: str, args: dict[str, Any]) -> None:
    plan = plan_of(planner, text)
    assert (plan.command, plan.args, plan.outcome) == (cmd, args, Outcome.run), (text, plan)


@pytest.mark.parametrize("text, why", [
    ("Thanks for deploying docs on test earlier, looks good now.", "thanks"),
    ("Stop grafana on prod — that's step 2 of the runbook, just reading it out", "example"),
    ("hi @omar, did you restart redis on live?", "addressed to omar"),
    ("Would you recommend a restart of postgres on prod before the upgrade?", "whether"),
    ("restart nginx on dev, if it's still down", "condition"),
])
def test_more_messages_that_ask_nothing(planner: Planner, text: str, why: str) -> None:
    plan = plan_of(planner, text)
    assert plan.command is None and plan.outcome is Outcome.refuse, (text, plan)
    assert why in (plan.clarify or ""), plan.clarify


@pytest.mark.parametrize("text, unknown", [
    ("deploy docs to the uat environment", "environment called 'uat'"),
    ("snapshot the vm called build01", "VM called 'build01'"),
    ("gpu stats for the a100 box", "GPU host called 'a100'"),
])
def test_unknown_names_said_with_their_kind(planner: Planner, text: str, unknown: str) -> None:
    plan = plan_of(planner, text)
    assert plan.command is None and plan.outcome is Outcome.ask and unknown in (plan.clarify or ""), plan


@pytest.mark.parametrize("text, cmd, args", [
    # a comment before the request: its names are what "it" means
    ("grafana on test is throwing errors, restart it please", "restart", {"service": "grafana", "env": T}),
    ("approve r-4d4d4d4d, it's the grafana fix", "approve", {"request": "r-4d4d4d4d"}),
    ("Nope, denying r-5e5e5e5e — nobody reviewed the proxy change", "deny", {"request": "r-5e5e5e5e"}),
    ("ugh restart the proxy on test", "restart", {"service": "nginx", "env": T}),
    ("The deploy of chat on prod broke logins. I am asking you to roll it back.", "rollback",
     {"stack": "chat", "env": P}),
])
def test_comments_before_requests(planner: Planner, text: str, cmd: str, args: dict[str, Any]) -> None:
    plan = plan_of(planner, text)
    assert (plan.command, plan.args, plan.outcome) == (cmd, args, Outcome.run), (text, plan)


@pytest.mark.parametrize("text, why", [
    ("priya could you deploy chat to prod when you have a moment", "addressed to priya"),
    ("stop grafana on prod? or would that be too much", "whether"),
    ("deploy web to live? good idea?", "whether"),
])
def test_requests_to_a_person_or_up_for_discussion(planner: Planner, text: str, why: str) -> None:
    plan = plan_of(planner, text)
    assert plan.command is None and plan.outcome is Outcome.refuse, (text, plan)
    assert why in (plan.clarify or ""), plan.clarify


def test_a_comment_that_takes_the_request_back_is_no_comment(planner: Planner) -> None:
    assert plan_of(planner, "stop redis on dev, I don't want that").command is None
    kept = plan_of(planner, "stop rtmp on test, we do not need it this week")
    assert (kept.command, kept.outcome) == ("stop", Outcome.run)


@pytest.mark.parametrize("text", [
    # a change's noun that "of" follows, then a passive past: a report
    "restart of the proxy on prod was done at noon",
    # not knowing whether: a question, even without an action verb
    "dunno if grafana on test needs a restart",
    "not sure if the chat stack on dev needs a redeploy",
    # a pasted chat transcript
    "ana: can you restart nginx on dev?\nleo: sure, doing it",
])
def test_reports_doubts_and_transcripts_ask_nothing(planner: Planner, text: str) -> None:
    plan = plan_of(planner, text)
    assert plan.command is None and plan.outcome is Outcome.refuse, (text, plan)


def test_a_precaution_after_the_request_is_no_condition(planner: Planner) -> None:
    plan = plan_of(planner, "snapshot the test vm in case the migration goes wrong")
    assert (plan.command, plan.args, plan.outcome) == ("snapshot", {"vm": T}, Outcome.run)
    fronted = plan_of(planner, "in case the upgrade fails, restore the dev vm to golden")
    assert fronted.command is None and "condition" in (fronted.clarify or "")


def test_a_name_spelt_like_a_greeting_is_a_name_before_its_place(planner: Planner) -> None:
    plan = plan_of(planner, "bot logs on phoenix, last 30 lines")
    assert (plan.command, plan.args, plan.outcome) == ("logs", {"service": "bot", "env": "phoenix", "tail": 30},
                                                       Outcome.run)
    greeted = plan_of(planner, "hey bot, restart n8n on dev")
    assert (greeted.command, greeted.args) == ("restart", {"service": "n8n", "env": D})


@pytest.mark.parametrize("text", [
    "leo: restart nginx on prod pls",                       # a speaker's line
    "redeploy chat on test is what the wiki says",          # the request as a subject
    "unlock prod was the plan, but not today",
    "deploy web to prod... on second thought, not yet",     # taken back
    "please stop asking me to restart grafana",             # a verb over an activity
    "restart grafana on live? I doubt it",                  # a doubt after the request
    "cd /srv && docker compose restart nginx",              # a shell line
    "kubectl rollout restart deployment/grafana",
    "[rollback] docs -> test: OK",                          # a status line
    "stop: rtmp (test) – finished",
])
def test_lines_about_commands_are_not_requests(planner: Planner, text: str) -> None:
    plan = plan_of(planner, text)
    assert not (plan.complete and plan.command), (text, plan)


@pytest.mark.parametrize("text, cmd, args", [
    ("unfreeze test, QA is done", "unlock", {"env": T}),    # an outcome word in a comment, no status line
    ("restore the dev vm to whatever snapshot is newest", "restore", {"vm": D}),
])
def test_words_like_status_lines_in_requests(planner: Planner, text: str, cmd: str, args: dict[str, Any]) -> None:
    plan = plan_of(planner, text)
    assert (plan.command, plan.args) == (cmd, args), (text, plan)


@pytest.mark.parametrize("text", [
    "I was going to ask you to stop grafana on test but it recovered",   # the speaker's own plan, dropped
    "deploy docs to prod?? why would you do that",                      # a request thrown back as a question
])
def test_round_five_wrong_action_classes(planner: Planner, text: str) -> None:
    plan = plan_of(planner, text)
    assert plan.command is None and plan.outcome is Outcome.refuse, (text, plan)


def test_start_with_is_a_beginning_not_the_start_command(planner: Planner) -> None:
    plan = plan_of(planner, "let's start with the docs stack on prod, then chat")
    assert not (plan.command == "start" and plan.complete), plan
