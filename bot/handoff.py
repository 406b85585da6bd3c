"""Results from the audit writer's thread into the event loop: one wake-up for a whole batch.

`asyncio.wrap_future` wakes the loop once per future (a `call_soon_threadsafe`, a write to the
loop's self-pipe, a loop turn), and the writer resolves a whole batch of them at once: 64 requests
at once cost 128 wake-ups a round, and the writer thread held the interpreter for each.  Here the
first result of a batch schedules one delivery, and the rest join it while it is pending.

Like `asyncio.shield(asyncio.wrap_future(...))`, a caller cancelled while it waits never cancels the
write: the writer's future is only ever read here, so the write is committed all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class Handoff:
    """Delivers finished `concurrent.futures` results to one event loop, in batches."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._lock = threading.Lock()
        self._due: list[tuple[asyncio.Future[Any], Future[Any]]] = []

    def wait(self, done: Future[T]) -> asyncio.Future[T]:
        """An asyncio future that takes `done`'s result or exception once it has one."""
        mine: asyncio.Future[T] = self.loop.create_future()
        done.add_done_callback(lambda f: self._arrived(mine, f))
        return mine

    def _arrived(self, mine: asyncio.Future[Any], done: Future[Any]) -> None:
        with self._lock:
            first = not self._due
            self._due.append((mine, done))
        if first:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to wait
                self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            due, self._due = self._due, []
        for mine, done in due:
            if mine.cancelled():
                continue  # its caller stopped waiting; the write itself stands
            if done.cancelled():
                mine.cancel()
                continue
            exc = done.exception()
            if exc is None:
                mine.set_result(done.result())
            else:
                mine.set_exception(exc)


_handoffs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Handoff] = weakref.WeakKeyDictionary()


def arrival(done: Future[T]) -> asyncio.Future[T]:
    """`done` as an awaitable in the running loop (see the module's docstring)."""
    loop = asyncio.get_running_loop()
    handoff = _handoffs.get(loop)
    if handoff is None:
        handoff = _handoffs[loop] = Handoff(loop)
    return handoff.wait(done)
