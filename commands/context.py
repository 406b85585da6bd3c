"""What a handler gets besides its arguments: who asks, the stores and the backends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.request import Actor, Request
from infra.config import Config, Role

if TYPE_CHECKING:
    from bot.engine import Engine
    from infra.backends import Backends
    from infra.db.store import AuditStore
    from llm.resolve import Resolver


@dataclass
class Context:
    config: Config
    store: AuditStore
    backends: Backends
    resolver: Resolver
    actor: Actor
    roles: frozenset[Role]
    request: Request
    request_id: str
    engine: Engine
    report: Callable[..., Awaitable[None]] | None = None
    # The lines of the card a person confirmed or approved this run on (None: nobody saw one).
    # A run does nothing destructive its card did not name (e.g. retention's deletions).
    card: list[str] | None = None

    async def progress(self, text: str, **detail: Any) -> None:
        """Record a progress step in the audit log and show it where the platform can.

        `detail` goes to the audit event only (a task id, say): the line people read stays short.
        """
        if self.report is not None:
            await self.report(text, **detail)

    def has(self, role: Role) -> bool:
        return role in self.roles
