"""The route from text to plan: the grammar first, other routes when it is unsure.

Kept free of LangChain imports so `chatops parse` starts fast; the LLM route is
loaded only when configured and asked for.
"""

from __future__ import annotations

from commands.registry import Registry
from infra.config import Config
from llm.nl import NLParser, parse_plain
from llm.plan import Plan
from llm.resolve import Resolver


class Planner:
    def __init__(self, config: Config, registry: Registry, resolver: Resolver | None = None) -> None:
        self.config = config
        self.registry = registry
        self.resolver = resolver or Resolver(config)
        users = frozenset(u.split(":", 1)[-1].lower() for u in config.inventory.users)
        self.nl = NLParser(self.resolver, registry, users)

    def grammar(self, text: str) -> Plan:
        """Canonical form, then plain language (llm/nl.py); `confidence` says how sure it is."""
        return parse_plain(text, self.nl)

    async def plan(self, text: str, *, channel: str | None = None, thread: str | None = None,
                   actor: str | None = None, use_llm: bool | None = None) -> Plan:
        plan = self.grammar(text)
        if use_llm:
            return Plan.unknown("The LLM route is not configured: set LLM_BASE_URL and LLM_MODEL.",
                                source="llm")
        return plan
