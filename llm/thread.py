"""Conversation in a thread: follow-ups and answers to the bot's questions.

The thread's memory is the audit log itself: the newest `requests` row of the thread
that names a command holds the last plan (command, canonical args, status).  No new
table, and nothing but the user's own earlier request is remembered: command output
is never part of it, nor is anyone else's request in the same thread.

- An answer: the last row was refused with a question for a missing argument
  ("Which environment: …?") and the same person now sends just the missing part
  ("dev").  The parts merge into one plan.
- A follow-up: "restart it", "same on test", "and on prod?", "logs for that too"
  reuse the last plan's command and/or targets, with what the new message names
  taking precedence.  A follow-up needs a word that points back (it, same, again…):
  a bare "restart" still gets its question.

Either way every target comes from the user's words, now or earlier in the thread,
and the engine validates and confirms the result like any other plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from commands.registry import Registry
from infra.db.models import RequestRow
from infra.db.store import AuditStore
from infra.status import Status
from llm.grammar import Token, _command_at, parse_arguments, tokenize
from llm.plan import Plan
from llm.resolve import Resolver
from llm.validate import validate

SOURCE = "thread"
POINTERS = frozenset({"it", "that", "this", "them", "those", "same", "again", "too", "also", "likewise",
                      "there", "repeat"})
LEADS = (("and",), ("now",), ("then",), ("what", "about"), ("how", "about"))
# Words a follow-up or an answer may carry that are not arguments.
NOISE = POINTERS | frozenset({"do", "the", "thing", "one", "as", "well", "please", "and", "now", "then",
                              "what", "how", "about", "just", "here", "ok", "okay", "yes", "also", "pls",
                              "thanks", "for", "on", "in", "to", "with", "of", "at", "from"})


@dataclass(frozen=True)
class Turn:
    """The thread's last plan, as the audit log recorded it."""

    request_id: str
    actor: str
    command: str
    args: dict[str, Any]
    status: str
    reason: str | None

    def asks(self, actor: str, registry: Registry, resolver: Resolver) -> bool:
        """Whether this turn is the bot's question for a missing argument, put to `actor`."""
        if self.status != Status.refused or self.actor != actor or not self.reason or self.command not in registry:
            return False
        again = validate(Plan(self.command, dict(self.args)), resolver, registry)
        return again.command is not None and again.clarify == self.reason


def last_turn(store: AuditStore, channel: str | None, thread: str, actor: str) -> Turn | None:
    """The newest request of `actor` in the thread that names a command.

    Only the person's own requests: a follow-up ("restart it", "same on prod") takes its
    targets from the thread, and those must be names this person gave, not a teammate's.
    """
    q = select(RequestRow).where(RequestRow.thread == thread, RequestRow.actor == actor,
                                 RequestRow.command.is_not(None))
    q = q.where(RequestRow.channel == channel) if channel else q.where(RequestRow.channel.is_(None))
    q = q.order_by(RequestRow.created_at.desc(), RequestRow.id.desc()).limit(1)
    with store.db.transaction() as s:
        row = s.scalars(q).first()
    if row is None or row.command is None:
        return None
    return Turn(row.id, row.actor, row.command, dict(row.args or {}), row.status, row.reason)


def points_back(text: str) -> bool:
    """Whether a message refers to the thread's earlier plan ("it", "same", "and on prod")."""
    return _points_back(tokenize(text))


def _points_back(tokens: list[Token]) -> bool:
    words = [t.low for t in tokens]
    if any(w in POINTERS for w in words):
        return True
    return any(tuple(words[:len(lead)]) == lead for lead in LEADS)


def _context(turn: Turn, resolver: Resolver) -> str:
    from llm.agent import thread_names

    return thread_names(turn, resolver) or ""


def _merge(spec_name: str, turn: Turn, given: dict[str, Any], same: bool, registry: Registry,
           resolver: Resolver) -> dict[str, Any]:
    spec = registry[spec_name]
    carried: dict[str, Any] = {}
    for key, value in turn.args.items():
        arg = spec.arg(key)
        if arg is not None and (same or arg.kind.is_entity):
            carried[key] = value
    if "service" in given:
        carried.pop("stack", None)  # the old stack may not have the new service
    stack = spec.arg("stack")
    if stack and stack.required and "stack" not in carried and "stack" not in given and turn.args.get("service"):
        derived = resolver.stack_for(str(turn.args["service"]))
        if derived:
            carried["stack"] = derived
    return {**carried, **given}


def resolve(text: str, turn: Turn, actor: str, registry: Registry, resolver: Resolver,
            default_env: str | None = None) -> Plan | None:
    """A plan from the thread, or None when the message is not a follow-up or an answer."""
    tokens = tokenize(text)
    lead = next((i for i, t in enumerate(tokens) if t.low not in NOISE), len(tokens))
    cmd, used = _command_at(tokens[lead:], registry)  # "now restart n8n there": the command after the lead
    used = lead + used if cmd is not None else 0
    rest = [t for t in tokens[used:] if t.low not in NOISE]
    if turn.asks(actor, registry, resolver) and cmd is None and rest and len(rest) <= 6:
        plan = _build(turn.command, turn, rest, True, registry, resolver, default_env)
        if plan is not None:
            return plan
    if not _points_back(tokens):
        return None
    same = cmd is None
    return _build(cmd or turn.command, turn, rest, same, registry, resolver, default_env)


def _build(command: str, turn: Turn, rest: list[Token], same: bool, registry: Registry, resolver: Resolver,
           default_env: str | None) -> Plan | None:
    spec = registry.get(command)
    if spec is None:
        return None
    parsed = parse_arguments(spec, rest, resolver, registry)
    if parsed.command is None:  # a word that is no argument: not ours to answer
        return None
    context = _context(turn, resolver)
    merged = _merge(command, turn, {k: v for k, v in parsed.args.items() if v is not None}, same,
                    registry, resolver)
    plan = validate(Plan(command, merged, SOURCE, confidence=0.9, context=context), resolver, registry,
                    text=" ".join([*(t.raw for t in rest), context]), default_env=default_env,
                    require_mentioned=True)
    plan.context = context
    return plan
