"""A circuit breaker for the language model: stop waiting on a server that is down.

After `failures` failed requests in a row the breaker opens: requests fail at once
(the bot says the model is unavailable, the grammar keeps working) instead of each
one waiting for a timeout.  When `reset_s` has passed the breaker is *due*: the next
caller probes the server's health endpoints, and only a good probe closes it again.
The clock is injectable so tests can move time without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    closed = "closed"
    open = "open"
    due = "due"  # open, cooldown over: probe before the next request


@dataclass
class Breaker:
    failures: int = 3
    reset_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _count: int = 0
    _opened_at: float | None = None
    last_error: str = ""
    trips: int = field(default=0)

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return State.closed
        if self.clock() - self._opened_at >= self.reset_s:
            return State.due
        return State.open

    @property
    def retry_in(self) -> float:
        """Seconds until the breaker lets a probe through (0 when not open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.reset_s - (self.clock() - self._opened_at))

    def success(self) -> None:
        self._count = 0
        self._opened_at = None
        self.last_error = ""

    def failure(self, reason: str) -> None:
        self._count += 1
        self.last_error = reason
        if self._count >= self.failures or self._opened_at is not None:
            self.trip(reason)

    def trip(self, reason: str) -> None:
        """Open (or re-open after a failed probe) for a fresh cooldown."""
        self._opened_at = self.clock()
        self.last_error = reason
        self.trips += 1

    def describe(self) -> str:
        st = self.state
        if st is State.closed:
            return "closed"
        return f"{st.value} after {self._count} failures (last: {self.last_error}); retry in {self.retry_in:.0f}s"
