"""The route from text to plan: the grammar first, other routes when it is unsure.

0. A message of several lines with several requests runs nothing, whatever the route.
1. The grammar's plan, when it is complete and at least `llm.grammar_confidence`
   sure, when it found the command and only asks for a missing argument, or when its
   outcome is `refuse` (a negation, the past, someone else's words, something the bot
   cannot do): no model overrides a refusal.
2. In a thread: an answer to the bot's last question, or a follow-up of the last
   plan ("restart it", "same on test"), from the audit log (`llm.thread`).
3. The language model, when configured (`llm.agent`), validated with the mention
   check.  When the model answers "no command", a complete plan the grammar was not
   sure of becomes a question, never an action.  When the model is down or slow the
   answer says so and the grammar's own reading stands.

`use_llm`: None = this route; False = never the model; True = the model answers
every text (what `chatops parse --llm` and the evaluation harness measure).
Kept free of LangChain and SQLAlchemy imports so `chatops parse` starts fast: the
LLM and thread modules load only when a request needs them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from commands.registry import Registry
from infra.config import Config
from infra.errors import BackendUnavailable, NotConfigured
from llm.nl import NLParser, canonical, parse_plain, several_requests
from llm.plan import Outcome, Plan
from llm.resolve import Resolver

if TYPE_CHECKING:
    from infra.backends import Backends
    from infra.db.store import AuditStore
    from llm.thread import Turn
    from llm.when import WhenPhrase

NOT_CONFIGURED = "The LLM route is not configured: set LLM_BASE_URL and LLM_MODEL."


def with_when(plan: Plan, when: WhenPhrase | None) -> Plan:
    """The plan, to run at `when`: a time phrase split off its text, or one given beside it (the API's
    `when` field). A time that names no usable time is the question; so is a second, different time,
    since running at either one would be a guess."""
    if when is None:
        return plan
    if plan.when is not None and plan.when != when:
        when = dataclasses.replace(when, problem=f"The time is given twice ('{plan.when.said}' and "
                                                 f"'{when.said}'); give it once. Nothing was done.")
    plan.when = when
    if when.problem and plan.clarify is None:
        plan.clarify = when.problem
        plan.attempted = plan.attempted or plan.command
    return plan


def degraded(reason: str, grammar: Plan) -> Plan:
    """The answer when the model cannot help: say so, keep the grammar's question."""
    head = grammar.clarify or "I couldn't read that as a command"
    plan = Plan.unknown(f"{head.rstrip('.')}. (The language model can't help right now: {reason}.) "
                        "Explicit commands and slash commands still work, e.g. 'restart n8n on dev'; "
                        "'help' lists them.", source="llm", attempted=grammar.attempted)
    return plan


def unsure(grammar: Plan, registry: Registry) -> Plan:
    """A complete grammar plan the grammar was not sure of, when the model reads no command: a question."""
    assert grammar.command is not None
    said = canonical(grammar.command, grammar.args, registry)
    plan = Plan.unknown(f"I'm not sure you're asking me to {grammar.command} anything. If you are, say it as "
                        f"'{said}'.", attempted=grammar.command, outcome=Outcome.ask)
    return plan


class Planner:
    def __init__(self, config: Config, registry: Registry, resolver: Resolver | None = None, *,
                 backends: Backends | None = None, store: AuditStore | None = None) -> None:
        self.config = config
        self.registry = registry
        self.resolver = resolver or Resolver(config)
        users = frozenset(u.split(":", 1)[-1].lower() for u in config.inventory.users)
        self.nl = NLParser(self.resolver, registry, users)
        self.backends = backends
        self.store = store
        self._client: Any = None

    def grammar(self, text: str) -> Plan:
        """Canonical form, then plain language (llm/nl.py); `confidence` says how sure it is."""
        return parse_plain(text, self.nl)

    # -- the model --------------------------------------------------------
    def llm(self) -> Any:
        """The LLM client (Backends.llm() when the planner has backends); NotConfigured if none."""
        if self.backends is not None:
            return self.backends.llm()
        if self._client is None:
            from llm.agent import LLMClient

            self._client = LLMClient.from_config(self.config)  # raises NotConfigured
        return self._client

    @cached_property
    def tool(self) -> dict[str, Any]:
        from llm.tools import plan_tool

        return plan_tool(self.registry, self.resolver)

    @cached_property
    def system(self) -> str:
        from llm.tools import system_prompt

        return system_prompt(self.registry, self.resolver)

    async def model(self, text: str, turn: Turn | None = None, default_env: str | None = None) -> Plan:
        """The model's validated plan; raises NotConfigured or BackendUnavailable."""
        from llm.agent import propose

        client = self.llm()
        started = time.perf_counter()
        try:
            return await propose(client, text, registry=self.registry, resolver=self.resolver, tool=self.tool,
                                 system=self.system, turn=turn, default_env=default_env)
        except BackendUnavailable as exc:
            exc.latency_ms = round((time.perf_counter() - started) * 1000, 1)  # type: ignore[attr-defined]
            raise

    # -- the thread -------------------------------------------------------
    async def turn(self, channel: str | None, thread: str | None, actor: str | None) -> Turn | None:
        """The actor's own last plan in the thread (never a teammate's)."""
        if self.store is None or not thread or not actor:
            return None
        from llm.thread import last_turn

        return await asyncio.to_thread(last_turn, self.store, channel, thread, actor)

    # -- the route --------------------------------------------------------
    async def plan(self, text: str, *, channel: str | None = None, thread: str | None = None,
                   actor: str | None = None, use_llm: bool | None = None) -> Plan:
        """The plan for a text; a time phrase ("at 22:00 today") is split off first (llm/when.py)."""
        from llm.when import split_when

        rest, when = split_when(text)
        plan = await self._route(rest if when else text, channel=channel, thread=thread, actor=actor,
                                 use_llm=use_llm)
        return with_when(plan, when)

    async def _route(self, text: str, *, channel: str | None, thread: str | None, actor: str | None,
                     use_llm: bool | None) -> Plan:
        default_env = self.config.default_env(channel)
        several = several_requests(text, self.nl)
        if several is not None:
            return several
        if use_llm:
            return await self._forced(text, await self.turn(channel, thread, actor), default_env)
        grammar = self.grammar(text)
        sure = self.config.inventory.llm.grammar_confidence
        if grammar.outcome is Outcome.refuse:
            return grammar  # a deliberate "no" ("don't restart n8n"): the model must not override it
        if grammar.complete and grammar.confidence >= sure:
            return grammar
        turn = await self.turn(channel, thread, actor)
        refers_back = False
        if turn is not None:
            from llm.thread import points_back, resolve

            refers_back = points_back(text)
            followed = resolve(text, turn, actor or "", self.registry, self.resolver, default_env)
            if followed is not None:
                return followed
        if use_llm is False or (grammar.command is not None and not grammar.complete and not refers_back):
            # A question for a missing argument: the model could only guess it, unless the text
            # points back into the thread ("give it a kick on staging"), whose plan the model sees.
            return grammar
        try:
            model = await self.model(text, turn, default_env)
        except NotConfigured:
            return grammar
        except BackendUnavailable as exc:
            return grammar if grammar.complete else degraded(str(exc), grammar)
        if model.complete:
            return model
        if grammar.complete:
            return unsure(grammar, self.registry)  # the model saw no such request: ask, never act
        if model.clarify or not grammar.clarify:
            return model
        return grammar

    async def _forced(self, text: str, turn: Turn | None, default_env: str | None) -> Plan:
        try:
            return await self.model(text, turn, default_env)
        except NotConfigured:
            return Plan.unknown(NOT_CONFIGURED, source="llm")
        except BackendUnavailable as exc:
            plan = Plan.unknown(f"The language model can't help right now: {exc}.", source="llm")
            plan.usage = {"latency_ms": getattr(exc, "latency_ms", 0.0), "prompt_tokens": 0.0,
                          "completion_tokens": 0.0}
            return plan
