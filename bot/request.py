"""The platform-neutral request and reply model.

Adapters (console, Slack, Discord) build a `Request` and render a `Reply`; nothing
between them knows which platform a message came from.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from infra.status import Status

if TYPE_CHECKING:
    from llm.when import WhenPhrase

# The HTTP API's identities (`api:NAME`, bot/http_api.py): automation, not people.
API_PLATFORM = "api"
AUTOMATION_PLATFORMS = frozenset({API_PLATFORM})


@dataclass(frozen=True)
class Actor:
    """A platform-qualified identity such as `slack:U123` or `console:alice`."""

    id: str
    display: str = ""

    @property
    def platform(self) -> str:
        return self.id.split(":", 1)[0]

    @property
    def name(self) -> str:
        return self.display or self.id.split(":", 1)[-1]

    @property
    def automated(self) -> bool:
        """An automation identity (an API token, `api:NAME`), not a person: it never approves."""
        return self.platform in AUTOMATION_PLATFORMS

    @classmethod
    def parse(cls, user: str, default_platform: str = "console") -> Actor:
        return cls(user if ":" in user else f"{default_platform}:{user}")


ProgressSink = Callable[["Reply"], Awaitable[None]]


@dataclass
class Request:
    actor: Actor
    text: str
    platform: str = "console"
    channel: str | None = None
    thread: str | None = None
    # Structured arguments (slash subcommands) skip the text parser when given.
    command: str | None = None
    args: dict[str, Any] | None = None
    confirmed: bool = False
    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    # Adapters that can edit a message pass a sink; progress replies go there.
    on_progress: ProgressSink | None = None
    # The plan's source for structured requests (slash, api, schedule, alert).
    route: str = "slash"
    # False: the language model never reads this text (the HTTP API: automation gets the
    # deterministic grammar or structured commands, never a model's guess).
    allow_llm: bool = True
    # When a structured request is to run later (the HTTP API's `when`); text says it in words.
    when: WhenPhrase | None = None
    # Set for a run of a schedule: its id and the occurrence it is.
    schedule: str | None = None
    scheduled_for: datetime | None = None
    # Called with the request id as soon as its audit row is committed (the API answers 202 then).
    on_recorded: Callable[[str], None] | None = None


class Tone(StrEnum):
    info = "info"
    success = "success"
    warning = "warning"
    error = "error"
    pending = "pending"
    question = "question"


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]
    title: str = ""


class Action(StrEnum):
    """What a person does to a waiting request, by button or by command (`approve ID`)."""

    confirm = "confirm"
    cancel = "cancel"
    approve = "approve"
    deny = "deny"
    withdraw = "withdraw"
    run = "run"  # ask for a plan the bot suggested (an alert's button), as the person who clicked

    @property
    def past(self) -> str:
        """"approved", "withdrawn": for "Approved by bob" notes on a card."""
        return {"confirm": "confirmed", "cancel": "cancelled", "approve": "approved", "deny": "denied",
                "withdraw": "withdrawn", "run": "asked"}[self.value]


@dataclass(frozen=True)
class Button:
    label: str
    action: str  # an Action (confirm | cancel | approve | deny | withdraw | run: a suggested plan, by its id)
    request_id: str
    plan_hash: str = ""
    style: str = "default"  # primary | danger | default

    @property
    def value(self) -> str:
        """What a platform button carries: action, request id and plan hash."""
        return f"{self.action}:{self.request_id}:{self.plan_hash}"


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime: str = "text/plain"
    title: str = ""


@dataclass
class Reply:
    text: str
    tone: Tone = Tone.info
    title: str = ""
    fields: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    request_id: str | None = None
    # Only the requester should see it (ephemeral on Slack/Discord).
    private: bool = False
    # Who should hear of it: pinged where the platform can (approvers of a pending request, the
    # requester of a decided one); `mention_label` says why ("Approvers", "Requested by").
    mentions: list[str] = field(default_factory=list)
    mention_label: str = "Approvers"
    # Short messages for other conversations (the requester's thread, when a decision is made
    # somewhere else); adapters of that platform post them, the others leave them.
    relays: list[Relay] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.tone not in (Tone.error,)


@dataclass(frozen=True)
class Relay:
    """A reply for another place: `channel` and `thread` as in `Request` (`slack:C123`, a thread ts)."""

    channel: str
    thread: str | None
    reply: Reply

    @property
    def platform(self) -> str:
        return self.channel.split(":", 1)[0]

    @property
    def where(self) -> str:
        """The platform's own channel id."""
        return self.channel.split(":", 1)[-1]


@dataclass
class Decision:
    """What a confirm/cancel/approve/deny did: adapters render `reply` and use the rest to
    decide where (edit the card for everyone, or tell only the clicker)."""

    reply: Reply
    # This actor's action moved the request (False: refused, already decided, expired, unknown).
    applied: bool = False
    # The request's status afterwards; None when there is no such request.
    status: Status | None = None
