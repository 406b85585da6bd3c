"""The plan: what a request asks for, before anything runs (spec section 1)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm.when import WhenPhrase


class Outcome(StrEnum):
    """What happens next with a plan; every route says it explicitly.

    run: a complete plan (still validated, authorised, confirmed).  ask: a question back
    (a missing or ambiguous argument, an unknown name, a reading not safe to act on).
    refuse: a deliberate no (a negation, the past, someone else's words, something the bot
    cannot do): no other route may override it.  unknown: not understood; another route
    (the language model) may try.
    """

    run = "run"
    ask = "ask"
    refuse = "refuse"
    unknown = "unknown"


@dataclass
class Plan:
    command: str | None
    args: dict[str, Any] = field(default_factory=dict)
    source: str = "grammar"
    clarify: str | None = None
    # How sure the route is (1.0 for the canonical form). It only decides whether the model is consulted.
    confidence: float = 1.0
    # The command the text seemed to ask for even when it could not be resolved (for the audit).
    attempted: str | None = None
    # Route statistics for the evaluation harness (latency_ms, prompt_tokens, completion_tokens).
    usage: dict[str, float] | None = None
    # Names the user gave earlier in the thread (space-separated); the mention check accepts them.
    context: str | None = None
    # Set only where the route decided more than the plan's shape says (a refusal); else derived.
    decided: Outcome | None = None
    # "at 22:00 today", "every night at 02:00": the request is to be scheduled, not run now.
    when: WhenPhrase | None = None

    def __init__(self, command: str | None, args: dict[str, Any] | None = None, source: str = "grammar",
                 clarify: str | None = None, confidence: float = 1.0, attempted: str | None = None,
                 usage: dict[str, float] | None = None, context: str | None = None,
                 decided: Outcome | None = None, when: WhenPhrase | None = None, *,
                 outcome: Outcome | None = None) -> None:
        self.command = command
        self.args = dict(args or {})
        self.source = source
        self.clarify = clarify
        self.confidence = confidence
        self.attempted = attempted
        self.usage = usage
        self.context = context
        self.decided = outcome or decided
        self.when = when

    @property
    def outcome(self) -> Outcome:
        if self.decided is not None and self.command is None:
            return self.decided
        if self.command is not None:
            return Outcome.ask if self.clarify else Outcome.run
        return Outcome.ask if self.clarify else Outcome.unknown

    @property
    def complete(self) -> bool:
        return self.command is not None and self.clarify is None

    def to_dict(self) -> dict[str, Any]:
        out = {"command": self.command, "args": dict(self.args), "source": self.source,
               "clarify": self.clarify, "confidence": round(self.confidence, 3), "outcome": self.outcome.value}
        if self.when is not None:
            out["when"] = self.when.said
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def unknown(cls, clarify: str | None = None, *, source: str = "grammar",
                attempted: str | None = None, outcome: Outcome | None = None) -> Plan:
        return cls(None, {}, source, clarify, 0.0, attempted, outcome=outcome)


def plan_hash(command: str, args: dict[str, Any]) -> str:
    """The hash an approval is bound to: the exact command and canonical arguments."""
    body = json.dumps({"command": command, "args": {k: v for k, v in args.items() if v is not None}},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()
