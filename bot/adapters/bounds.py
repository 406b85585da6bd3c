"""A bound on the requests one chat adapter works on at once.

Acknowledging fast is not the same as keeping up: an adapter that starts every request it
acks queues unbounded work, answers a minute late under load, and has more in flight at a
shutdown than the grace period can finish.  Each adapter takes at most
`limits.max_in_flight` requests (read at each one, so a config reload changes it); beyond
that it answers "busy" at once, starts nothing and so audits nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot.metrics import BUSY, IN_FLIGHT
from infra.wording import counted

log = logging.getLogger("chatops.adapters")

BUSY_TEXT = ("I'm busy with other requests right now, so I did not start this one: nothing was run. "
             "Try again in a moment.")


class InFlight:
    """Counts an adapter's requests from the moment it takes one until it has answered."""

    def __init__(self, adapter: str, limit: Callable[[], int]) -> None:
        self.adapter = adapter
        self.limit = limit
        self.count = 0

    def take(self) -> bool:
        """Take one more request, or say no (and count the refusal) when the bound is reached."""
        if self.count >= self.limit():
            BUSY.labels(self.adapter).inc()
            log.warning("%s: %s in flight (limits.max_in_flight); answered one 'busy'",
                        self.adapter, counted(self.count, "request"))
            return False
        self.count += 1
        IN_FLIGHT.labels(self.adapter).set(self.count)
        return True

    def done(self) -> None:
        self.count = max(0, self.count - 1)
        IN_FLIGHT.labels(self.adapter).set(self.count)
