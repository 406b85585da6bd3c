"""Plain language, fifth pass of issue 13: the classes two fresh blind sets (set-r, set-s) found on first
meeting, each fixed by a generic mechanism (docs/language.md, "The fifth pass"). The sentences here are the
project's own, not the blind sets': other wording, commands and targets."""

from __future__ import annotations

from itertools import count
from pathlib import Path
from typing import Any

import pytest

from bot.engine import Engine
from bot.request import Actor, Request, Tone
from commands.registry import registry
from infra.config import Config
from infra.db.store import Database
from llm.eval import Case, judge
from llm.plan import Plan
from llm.planner import Planner
from llm.tokens import tokenize
from llm.values import id_ref
from tests.conftest import D, L, P, T, make_engine
from tests.support import observable_registry


def plan_of(planner: Planner, text: str) -> Plan:
    return planner.grammar(text)


def reads_as(planner: Planner, text: str, cmd: str, args: dict[str, Any], besides: tuple[str, ...] = ()) -> None:
    """The text reads as `cmd` with exactly `args` (the free-text arguments in `besides` aside)."""
    plan = plan_of(planner, text)
    assert (plan.command, {k: v for k, v in plan.args.items() if k not in besides}) == (cmd, args), plan


def asks_nothing(planner: Planner, text: str, why: str) -> None:
    """The text runs no command, and the reply says `why`."""
    plan = plan_of(planner, text)
    assert plan.command is None and why in (plan.clarify or ""), plan


# -- ids as people type them ------------------------------------------------------------------------

@pytest.mark.parametrize("word, lead, how, want", [
    ("r-9f3e21aa", "r", "loose", "r-9f3e21aa"),
    ("R-9F3E", "r", "strict", "r-9f3e"),
    ("req-9f3e", "r", "never", "r-9f3e"),
    ("request-9f3e", "r", "never", "r-9f3e"),
    ("#9f3e", "r", "strict", "r-9f3e"),
    ("9f3e", "r", "strict", "r-9f3e"),
    ("9f3e", "r", "never", None),
    ("2024", "r", "strict", None),   # a year, not an id, in free text
    ("2024", "r", "loose", "r-2024"),  # but an id in the argument's own slot ("approve 2024…")
    ("face", "r", "strict", None),   # a word made of hex letters
    ("s-77c1", "r", "loose", None),  # a schedule's lead is no request's
    ("sched-77c1", "s", "never", "s-77c1"),
    ("9f3", "r", "loose", None),     # too few digits to find one request without a lead
    ("req-219", "r", "never", "r-219"),  # with one, three will do
    ("s-12", "s", "loose", None),
])
def test_an_id_reference_is_read_by_its_digits(word: str, lead: str, how: str, want: str | None) -> None:
    assert id_ref(word, lead, bare=how) == want


@pytest.mark.parametrize("text, cmd, args", [
    ("approve 3f9a", "approve", {"request": "r-3f9a"}),
    ("deny req-77b1, wrong environment", "deny", {"request": "r-77b1"}),
    ("looked at it, approving 0c4d2", "approve", {"request": "r-0c4d2"}),
    ("reject request e51b please", "deny", {"request": "r-e51b"}),
    ("withdraw #a1b2", "withdraw", {"request": "r-a1b2"}),
    ("approve r-3f9a0c11", "approve", {"request": "r-3f9a0c11"}),
    # a schedule said as a schedule: the verbs that end it take its noun
    ("drop the scheduled job s-9c1d", "unschedule", {"id": "s-9c1d"}),
    ("cancel the schedule s-9c1d0000", "unschedule", {"id": "s-9c1d0000"}),
])
def test_short_and_respelled_ids_name_their_request(planner: Planner, text: str, cmd: str,
                                                      args: dict[str, Any]) -> None:
    reads_as(planner, text, cmd, args, besides=("reason",))


@pytest.mark.parametrize("text", [
    "restart 3f9a on dev",            # no command here takes an id: it is an unknown name
    "approve the one from 2024",      # a year is no id
    "approve 3f9a and 4e2b",          # two ids: which one is not ours to guess
])
def test_hex_words_are_no_id_where_no_request_is_asked_for(planner: Planner, text: str) -> None:
    plan = plan_of(planner, text)
    assert "request" not in plan.args or plan.clarify, plan


def test_the_judge_compares_ids_by_their_digits() -> None:
    reg = registry()
    case = Case("approve 7c2e", {"command": "approve", "args": {"request": "7c2e"}}, 1)
    assert judge(case, Plan("approve", {"request": "r-7c2e"}), reg) == (True, False)
    # another request is a wrong action, whatever its spelling
    assert judge(case, Plan("approve", {"request": "r-7c2f"}), reg) == (False, True)


ALICE, BOB = Actor("console:alice"), Actor("console:bob")


async def two_pending(config: Config, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      digits: str) -> Engine:
    """An engine with alice's two changes to prod waiting for approval: r-DIGITS0001 and r-DIGITS0002, ids
    that share their first digits."""
    ids = (f"r-{digits}{n:04x}" for n in count(1))
    monkeypatch.setattr("bot.engine.new_request_id", lambda: next(ids))
    eng = make_engine(config, db, observable_registry(tmp_path))
    await eng.start()
    made = [await eng.handle(Request(actor=ALICE, text=f"touch prod p{n}", channel="console", confirmed=True))
            for n in (1, 2)]
    assert [r.request_id for r in made] == [f"r-{digits}0001", f"r-{digits}0002"]
    return eng


async def test_an_id_prefix_acts_on_the_one_request_it_names(config: Config, db: Database, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    eng = await two_pending(config, db, tmp_path, monkeypatch, "abcd")

    several = await eng.act("approve", "r-abcd", BOB)
    assert several.tone is Tone.error and "r-abcd0001, r-abcd0002" in several.text and "Nothing was done" in \
        several.text
    none = await eng.act("approve", "r-ffff", BOB)
    assert none.tone is Tone.error and "There is no request r-ffff" in none.text
    assert not (tmp_path / "p1").exists() and not (tmp_path / "p2").exists()

    ok = await eng.handle(Request(actor=BOB, text="approve abcd0001", channel="console"))
    assert ok.tone is Tone.success, ok.text
    assert (tmp_path / "p1").exists() and not (tmp_path / "p2").exists()
    row = eng.store.get("r-abcd0001")
    assert row is not None and row.status == "succeeded" and row.approver == "console:bob"
    assert eng.store.get("r-abcd0002").status == "pending_approval"  # type: ignore[union-attr]
    await eng.close()


# -- states, people, clauses -------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "is the test vm back up?",
    "rebooted it an hour ago. is it back up on rumpletest now?",
    "are the containers on dev back up",
])
def test_a_state_after_a_copula_is_no_request(planner: Planner, text: str) -> None:
    plan = plan_of(planner, text)
    assert plan.command != "snapshot", plan


def test_the_verb_itself_still_asks(planner: Planner) -> None:
    assert plan_of(planner, "back up rumpletest please").command == "snapshot"
    assert plan_of(planner, "we're approving r-1a2b3c4d").command == "approve"  # progressive: the act


@pytest.mark.parametrize("text", [
    "hey sam, did you restart redis on dev?",
    "sam, can you deploy docs to test",
    "hi jo, have you locked prod yet?",
])
def test_a_person_set_off_by_a_comma_is_asked_not_the_bot(planner: Planner, text: str) -> None:
    plan = plan_of(planner, text)
    assert plan.command is None, plan


def test_an_interjection_before_a_question_about_the_past(planner: Planner) -> None:
    plan = plan_of(planner, "wait did you restart n8n on test?")
    assert plan.command == "audit" and plan.args.get("command") == "restart", plan


def test_an_emoji_standing_alone_ends_a_clause() -> None:
    words = tokenize("marco deployed docs 🙃 roll it back")
    assert words[2].boundary and [w.low for w in words] == ["marco", "deployed", "docs", "roll", "it", "back"]


@pytest.mark.parametrize("text, cmd, args", [
    ("marco deployed docs to live an hour ago 🙃 roll it back", "rollback", {"stack": "docs", "env": L}),
    ("I stopped grafana on dev earlier but it still misbehaves, show me its logs", "logs",
     {"service": "grafana", "env": D}),
    ("evening folks, kicking off the maintenance. @chatops restart redis on test", "restart",
     {"service": "redis", "env": T}),
    ("sorry to interrupt — could you list the stacks on dev", "stacks", {"env": D}),
    ("which stacks are on test? new here, sorry", "stacks", {"env": T}),
    ("could the bot restart redis on test", "restart", {"service": "redis", "env": T}),
])
def test_the_request_is_found_among_its_context(planner: Planner, text: str, cmd: str,
                                                 args: dict[str, Any]) -> None:
    reads_as(planner, text, cmd, args)


def test_an_apology_after_a_change_still_takes_it_back(planner: Planner) -> None:
    plan = plan_of(planner, "restart redis on dev. that was a typo, sorry")
    assert plan.command is None, plan


def test_an_opening_apology_is_no_condition(planner: Planner) -> None:
    plan = plan_of(planner, "sorry if this is obvious, but how do I lock an environment?")
    assert plan.command == "help" and plan.args.get("topic") == "lock", plan


@pytest.mark.parametrize("text, says", [
    ("gpu usage for zeus", "GPU host called 'zeus'"),
    ("vm status for db07", "VM called 'db07'"),
])
def test_an_unknown_name_after_for_is_asked_about_not_dropped(planner: Planner, text: str, says: str) -> None:
    asks_nothing(planner, text, says)


# -- the second half of the pass: classes from set-t and set-u ---------------------------------------

@pytest.mark.parametrize("text, why", [
    ("deploy docs to test? or do we wait for the review", "asks whether"),   # another course offered
    ("the bot card says r-5e5e5e5e: restart redis on prod, waiting", "reports"),  # "card" is also a noun of ours
    ("reminder: lock live on friday", "plan"),                                # a note to the room
    ("note: restart grafana on dev after the demo", "plan"),
    ("kim pls roll back chat on test after lunch", "addressed to kim"),       # a person, then "pls"
    ("lee, you restart redis on dev or shall I?", "addressed to lee"),        # "NAME, you …"
])
def test_more_ways_to_ask_nothing_of_the_bot(planner: Planner, text: str, why: str) -> None:
    asks_nothing(planner, text, why)


def test_a_greeting_in_another_language_is_no_colleague(planner: Planner) -> None:
    plan = plan_of(planner, "hola, please restart grafana on dev")
    assert (plan.command, plan.args) == ("restart", {"service": "grafana", "env": D}), plan


@pytest.mark.parametrize("text, cmd, args", [
    # what a verb of showing governs is a noun: a list, never the change
    ("show snapshot list of rumpledev", "snapshots", {"vm": D}),
    ("list snapshot rumpletest", "snapshots", {"vm": T}),
    # a word right after a verb asked for is its object
    ("rumpledev is broken after the kernel update, pls restore snapshot clean-01", "restore",
     {"vm": D, "snapshot": "clean-01"}),
    # a command's noun that its own verb follows is what happened, not a second request
    ("restore finished, now show status of docs on dev", "status", {"stack": "docs", "env": D}),
    ("Would you restart paperless on test? The inbox has stopped syncing since friday.", "restart",
     {"service": "paperless", "env": T}),
    # "upgrade" as a thing that happened or a time, not something asked
    ("kernel upgrade went fine, delete snapshot pre-kernel on rumpletest", "delete-snapshot",
     {"vm": T, "snapshot": "pre-kernel"}),
    ("snapshot rumpledev before the postgres 16 upgrade", "snapshot", {"vm": D}),
    # a remark beside the request keeps its own time
    ("lock test, demo tomorrow", "lock", {"env": T}),
    ("stop rtmp on dev, nobody streams this week", "stop", {"service": "rtmp", "env": D}),
    # the bot called by name after what was said to the room
    ("decision made, we go back. bot: rollback docs on test", "rollback", {"stack": "docs", "env": T}),
    ("@kim i look at it later. @bot pls show redis logs on dev", "logs", {"service": "redis", "env": D}),
])
def test_the_request_among_more_context(planner: Planner, text: str, cmd: str, args: dict[str, Any]) -> None:
    reads_as(planner, text, cmd, args, besides=("reason", "description"))


@pytest.mark.parametrize("text", [
    "bob said: bot, restart nginx on prod",        # what the room heard is reported, not asked
    "if the deploy fails: bot, roll back chat on prod",
    "restart nginx on dev, tomorrow",              # a time alone beside the request is the request's
    "rollback chat on prod, new version broken!!",  # a remark is no revision ("broken"): which one, it asks
])
def test_calls_and_remarks_that_must_not_act_now(planner: Planner, text: str) -> None:
    plan = plan_of(planner, text)
    assert not plan.complete, plan


# -- after round 8 (set-v, set-w) ----------------------------------------------------------------------

@pytest.mark.parametrize("text, why", [
    ("restarting? whatever, grafana on dev is back up now", ""),           # a command word asked about alone
    ("lock test? not until the release is out", "asks whether"),           # the asker's own answer: no
    ("can somebody with prod access restart redis on prod", "asks a person"),
])
def test_round_eight_requests_that_ask_nothing(planner: Planner, text: str, why: str) -> None:
    asks_nothing(planner, text, why)


@pytest.mark.parametrize("text, cmd, args", [
    ("ok approve req-4f1", "approve", {"request": "r-4f1"}),
    ("@lee can you check the dashboards? and bot, show nginx logs on dev", "logs", {"service": "nginx", "env": D}),
    ("stop grafana on dev, nobody's looking at it this week", "stop", {"service": "grafana", "env": D}),
    ("snapshot rumpletest before the nvidia driver update", "snapshot", {"vm": T}),
    ("driver update on dev tonight, snapshot rumpledev first", "snapshot", {"vm": D}),
])
def test_round_eight_requests_found(planner: Planner, text: str, cmd: str, args: dict[str, Any]) -> None:
    reads_as(planner, text, cmd, args, besides=("reason", "description"))


# -- after round 9 (set-x, set-y) ----------------------------------------------------------------------

@pytest.mark.parametrize("text, cmd, args", [
    # a guest named by its Proxmox id, as read off the Proxmox UI
    ("snapshot vm 102 please", "snapshot", {"vm": T}),
    ("list the snapshots of ct 201", "snapshots", {"vm": "llm"}),
    # an -ing form in a clause of its own says what is going on
    ("patch window starting now: snapshot rumpleprod", "snapshot", {"vm": P}),
    # the team's shorthand, declared on the commands
    ("rs grafana test", "restart", {"service": "grafana", "env": T}),
    ("rb docs dev", "rollback", {"stack": "docs", "env": D}),
    ("dep video test", "deploy", {"stack": "video", "env": T}),
    ("stat data prod", "status", {"stack": "data", "env": P}),
    # the speaker passing on that they may ask: asked of the bot
    ("I was told I can ask you for this: could you restart grafana on dev?", "restart",
     {"service": "grafana", "env": D}),
    ("quick check that you can reach proxmox and the docker hosts?", "health", {}),
])
def test_round_nine_requests_found(planner: Planner, text: str, cmd: str, args: dict[str, Any]) -> None:
    reads_as(planner, text, cmd, args)


def test_an_unknown_guest_id_is_no_guest(planner: Planner) -> None:
    plan = plan_of(planner, "snapshot vm 999")
    assert not plan.complete and "vm" not in plan.args, plan


# -- after round 10 (set-z, set-aa) ---------------------------------------------------------------------

@pytest.mark.parametrize("text, cmd, args", [
    # digits right after the command's own word are an id's first digits, whatever they are
    ("deny 733, not today", "deny", {"request": "r-733"}),
    ("ok, approving #902", "approve", {"request": "r-902"}),
    # a message over several lines: a remark or a heads-up to someone is no second request
    ("restart grafana on test\nthe dashboards are blank again", "restart", {"service": "grafana", "env": T}),
    ("@kim fyi rebooting my laptop\n@chatops restart redis on dev", "restart", {"service": "redis", "env": D}),
])
def test_round_ten_requests_found(planner: Planner, text: str, cmd: str, args: dict[str, Any]) -> None:
    reads_as(planner, text, cmd, args, besides=("reason",))


@pytest.mark.parametrize("text, why", [
    ("restart nginx on dev\nrestart redis on dev", "several requests"),  # two lines that both ask
    ("nvidia-smi:\n| 1  NVIDIA L4 | 20000MiB / 24000MiB | 90% Default |", "pasted"),  # a table a tool printed
])
def test_round_ten_messages_that_run_nothing(planner: Planner, text: str, why: str) -> None:
    asks_nothing(planner, text, why)


def test_digits_away_from_an_id_taking_word_are_no_id(planner: Planner) -> None:
    plan = plan_of(planner, "restart 733 on dev")
    assert "request" not in plan.args and not plan.complete, plan


async def test_the_card_names_the_whole_id_and_a_prefix_that_is_not_one_asks_first(
        config: Config, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    eng = await two_pending(config, db, tmp_path, monkeypatch, "beef")
    # read from plain language, a decision is confirmed first: the card shows the whole id it will decide
    card = await eng.handle(Request(actor=BOB, text="lgtm, approving beef0002", channel="console"))
    assert "r-beef0002" in card.text and not (tmp_path / "p2").exists(), card.text
    several = await eng.handle(Request(actor=BOB, text="approve r-beef", channel="console"))
    assert "More than one request starts with r-beef" in several.text and "Nothing was done" in several.text
    rows = [eng.store.get(rid) for rid in ("r-beef0001", "r-beef0002")]
    assert [r.status if r else None for r in rows] == ["pending_approval"] * 2
    await eng.close()


# -- after round 11 (set-ab, set-ac) -------------------------------------------------------------------

@pytest.mark.parametrize("text, why", [
    ("do we need a checkpoint of rumpletest before the restore or is that too much", "asks whether"),
    ("restart redis on test or would that be overkill", "asks whether"),  # no question mark, still a question
    ("pretty sure grafana on dev needs a bounce, but let me ask kim first", "takes the request back"),
])
def test_round_eleven_requests_that_wait(planner: Planner, text: str, why: str) -> None:
    asks_nothing(planner, text, why)


def test_a_format_is_not_undone_by_a_preposition_after_it(planner: Planner) -> None:
    # "… off and on again on dev": the "on" before the name is a preposition, not "turn … on" (start)
    plan = plan_of(planner, "could you turn grafana off and on again on test")
    assert (plan.command, plan.args) == ("restart", {"service": "grafana", "env": T}), plan


def test_a_read_asked_with_or_stays_a_read(planner: Planner) -> None:
    plan = plan_of(planner, "is grafana up on dev or is it down again")
    assert plan.command == "status", plan


# -- after round 12 (set-ad, set-ae) -------------------------------------------------------------------

@pytest.mark.parametrize("text, why", [
    ("worst case we roll chat back on test", "condition"),            # a fallback is a what-if
    ("kim — deny 4e2a1b when you get a sec, I can't", "addressed to kim"),  # a name set off by a dash
])
def test_round_twelve_messages_that_run_nothing(planner: Planner, text: str, why: str) -> None:
    asks_nothing(planner, text, why)


@pytest.mark.parametrize("text, cmd, args", [
    # a value's cue after "to" is no purpose clause: the value is read, never dropped
    ("bring docs on dev up to tag docs-2.1.0", "deploy", {"stack": "docs", "env": D, "ref": "docs-2.1.0"}),
    # a dash standing alone breaks the clause: the verb after it is a verb
    ("ok — restart grafana on test", "restart", {"service": "grafana", "env": T}),
])
def test_round_twelve_requests_found(planner: Planner, text: str, cmd: str, args: dict[str, Any]) -> None:
    reads_as(planner, text, cmd, args)


def test_up_to_date_names_no_ref(planner: Planner) -> None:
    plan = plan_of(planner, "bring the docs stack up to date on dev")
    assert plan.args.get("ref") is None and not (plan.complete and plan.command == "deploy"), plan
