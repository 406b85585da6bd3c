"""Per-request observation: the correlation id in every log line, one metric per request.

The engine opens a `scope` around each request; the scope lives in a context variable, so
everything the request does (handlers, backends, the audit store in worker threads started
with `asyncio.to_thread`, which copies the context) logs with the same correlation id the
user sees in an error message.  When the scope closes it counts the request by command and
outcome (the audit status the request ended in) and logs one summary line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from bot.metrics import REQUEST_SECONDS, REQUESTS

log = logging.getLogger("chatops.requests")


@dataclass
class Scope:
    correlation_id: str
    actor: str = ""
    platform: str = ""
    channel: str | None = None
    command: str | None = None
    request_id: str | None = None
    status: str | None = None
    outcome: str | None = None  # set explicitly for replies that touch no audit row
    started: float = field(default_factory=time.monotonic)

    def fields(self) -> dict[str, Any]:
        return {"correlation_id": self.correlation_id, "actor": self.actor or None,
                "command": self.command, "request_id": self.request_id}


_current: ContextVar[Scope | None] = ContextVar("chatops_scope", default=None)


def current() -> Scope | None:
    return _current.get()


def note(**fields: Any) -> None:
    """Add what the engine learnt (command, request id, status) to the current scope."""
    scope = _current.get()
    if scope is None:
        return
    for key, value in fields.items():
        if value is not None:
            setattr(scope, key, value)


def saw_row(result: Any) -> None:
    """The engine hands every audit-store result here; request rows update the scope."""
    from infra.db.models import RequestRow

    if isinstance(result, RequestRow):
        note(request_id=result.id, status=result.status, command=result.command)


@contextmanager
def scope(correlation_id: str, actor: str = "", platform: str = "", channel: str | None = None,
          command: str | None = None) -> Iterator[Scope]:
    """Open a request scope (nested scopes, e.g. `approve` running a request, keep the outer one)."""
    outer = _current.get()
    if outer is not None:
        yield outer
        return
    s = Scope(correlation_id, actor, platform, channel, command)
    token = _current.set(s)
    try:
        yield s
    except BaseException:
        s.outcome = s.outcome or "error"
        raise
    finally:
        _current.reset(token)
        _finish(s)


def _finish(s: Scope) -> None:
    elapsed = time.monotonic() - s.started
    command = s.command or "none"
    outcome = s.outcome or s.status or "not_understood"
    REQUESTS.labels(command, outcome).inc()
    REQUEST_SECONDS.labels(command).observe(elapsed)
    log.info("request finished", extra={"chatops": {**s.fields(), "outcome": outcome,
                                                     "duration_ms": round(elapsed * 1000, 1)}})
