"""The jobs this process is running, so that a shutdown can finish or interrupt them.

Every command handler runs as a job: a task registered under its request id.  On
SIGTERM the process stops accepting work (`accepting = False`), waits up to a grace
period for the running jobs, then cancels what is left.  The engine, which awaits each
job, sees the cancellation and records the request as `interrupted` in the audit log
(see `Engine._invoke`); anything it cannot record (the database gone too) is marked
interrupted by the next start of any replica (`AuditStore.recover`), because this
process's advisory lock dies with it.  A person can cut one job on purpose (`cancel ID`,
Ctrl-C in the console): `cancel` says who and why, and the job records that.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from bot.metrics import JOBS_INTERRUPTED, JOBS_RUNNING, UP
from infra.wording import counted

log = logging.getLogger("chatops.jobs")
T = TypeVar("T")


class Cause(StrEnum):
    """Why a job stopped before its end."""

    shutdown = "shutdown"  # the bot is stopping and the grace period ran out
    caller = "caller"  # whoever awaited the job went away (its own task was cancelled)
    person = "person"  # someone cancelled it on purpose


@dataclass(frozen=True)
class Interruption:
    cause: Cause
    by: str | None = None  # who cancelled it (Cause.person)
    reason: str | None = None


@dataclass(frozen=True)
class Job:
    request_id: str
    command: str
    task: asyncio.Task[Any]
    started: float
    # The request's correlation id: lets an adapter cancel what it asked for before it knows the id.
    correlation_id: str = ""

    @property
    def age_s(self) -> float:
        return time.monotonic() - self.started


class JobRegistry:
    """In-process registry of running handler tasks; `drain` is the graceful half of shutdown."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._cut: set[str] = set()
        self._cancelled: dict[str, Interruption] = {}
        self.accepting = True
        # Past the grace period: a handler that would only start now is recorded as cut at once.
        self.closed = False
        UP.set(1)

    def __len__(self) -> int:
        return len(self._jobs)

    def running(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: j.started)

    async def run(self, request_id: str, command: str, coro: Awaitable[T],
                  on_cancel: Callable[[Interruption], Awaitable[T]] | None = None,
                  correlation_id: str = "") -> T:
        """Run `coro` as the job of `request_id` and return its result.

        If the job is cancelled (by `drain`, by `cancel`, or because whoever awaited it was
        cancelled), `on_cancel(why)` runs inside the job's own task and its value is the
        job's result: the job only counts as finished once that has been recorded.
        """
        if self.closed and on_cancel is not None:
            self._cut.add(request_id)
            JOBS_INTERRUPTED.inc()
            if asyncio.iscoroutine(coro):
                coro.close()
            return await on_cancel(Interruption(Cause.shutdown))
        task: asyncio.Task[T] = asyncio.ensure_future(self._guard(request_id, coro, on_cancel))
        self._jobs[request_id] = Job(request_id, command, task, time.monotonic(), correlation_id)
        JOBS_RUNNING.inc()
        task.add_done_callback(lambda _t: self._done(request_id, task))
        return await task

    async def _guard(self, request_id: str, coro: Awaitable[T],
                     on_cancel: Callable[[Interruption], Awaitable[T]] | None) -> T:
        me = asyncio.current_task()
        try:
            result = await coro
        except asyncio.CancelledError:
            if on_cancel is None:
                raise
            why = self._why(request_id)
            if why.cause is Cause.person and me is not None:
                me.uncancel()  # cancelled on purpose: this task goes on to record it and answer
            return await on_cancel(why)
        if on_cancel is not None and me is not None and me.cancelling() and (
                request_id in self._cut or request_id in self._cancelled):
            # Cut while it awaited a nested job (an `approve` running the approved request): the
            # nested job absorbed the cancellation, so this one finished "normally". It was cut all
            # the same; record it so.
            me.uncancel()
            return await on_cancel(self._why(request_id))
        return result

    def _why(self, request_id: str) -> Interruption:
        person = self._cancelled.pop(request_id, None)
        if person is not None:
            return person
        return Interruption(Cause.shutdown if request_id in self._cut else Cause.caller)

    def _done(self, request_id: str, task: asyncio.Task[Any]) -> None:
        job = self._jobs.get(request_id)
        if job is not None and job.task is task:
            del self._jobs[request_id]
            self._cancelled.pop(request_id, None)
        JOBS_RUNNING.dec()

    def get(self, request_id: str) -> Job | None:
        return self._jobs.get(request_id)

    def running_for(self, ref: str) -> list[str]:
        """Request ids of the running jobs whose request id or correlation id is `ref`."""
        return [j.request_id for j in self._jobs.values()
                if ref in (j.request_id, j.correlation_id) and not j.task.done()]

    def cancel(self, request_id: str, by: str, reason: str | None = None) -> Job | None:
        """Cut one running job on purpose; None when this process runs no such job (any more).

        The job records the interruption itself (`on_cancel`); await `job.task` to know it has.
        """
        job = self._jobs.get(request_id)
        if job is None or job.task.done():
            return None
        if request_id not in self._cancelled:
            log.warning("cancelling %s (%s) for %s after %.0fs", request_id, job.command, by, job.age_s)
            self._cancelled[request_id] = Interruption(Cause.person, by, reason)
            job.task.cancel()
        return job

    def was_cut(self, request_id: str) -> bool:
        """True when the shutdown cancelled this job (rather than it failing by itself)."""
        return request_id in self._cut

    def stop_accepting(self) -> None:
        if self.accepting:
            log.info("shutting down: no new requests accepted; %s running", counted(len(self._jobs), "job"))
        self.accepting = False
        UP.set(0)

    async def drain(self, grace_s: float, record_s: float = 10.0) -> list[str]:
        """Stop accepting, wait up to `grace_s` for running jobs, cancel the rest.

        Returns the request ids that were cut off.  `record_s` bounds the wait for the
        cancelled jobs to write their `interrupted` rows.
        """
        self.stop_accepting()
        tasks = [j.task for j in self._jobs.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=max(grace_s, 0))
        self.closed = True
        cut = [j for j in self._jobs.values() if not j.task.done()]
        for job in cut:
            log.warning("shutting down: cutting off %s (%s) after %.0fs", job.request_id, job.command,
                        job.age_s)
            self._cut.add(job.request_id)
            JOBS_INTERRUPTED.inc()
            job.task.cancel()
        waiting = [j.task for j in cut]
        if waiting:
            await asyncio.wait(waiting, timeout=record_s)
        return [j.request_id for j in cut]
