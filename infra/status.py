"""Request statuses: one enum for the engine, the audit store and the adapters.

A request's status is also the kind of the audit event that moved it there, so these
values are stored in the database; `StrEnum` keeps them equal to their text.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    requested = "requested"
    awaiting_confirmation = "awaiting_confirmation"
    pending_approval = "pending_approval"
    approved = "approved"
    denied = "denied"
    expired = "expired"
    cancelled = "cancelled"
    refused = "refused"
    started = "started"
    succeeded = "succeeded"
    failed = "failed"
    interrupted = "interrupted"
    # The request became a schedule (its runs are requests of their own).
    scheduled = "scheduled"
    # A scheduled run whose time passed while no bot was running: reported, never run late.
    missed = "missed"

    @property
    def final(self) -> bool:
        return self in FINAL


# Running: owned by a worker, holds its execution locks.
ACTIVE: tuple[Status, ...] = (Status.started,)
# Waiting for the requester's confirmation.
CONFIRMABLE: tuple[Status, ...] = (Status.awaiting_confirmation,)
# Waiting for another person's approval.
APPROVABLE: tuple[Status, ...] = (Status.pending_approval,)
# Waiting for a person at all (expire when their time is up).
PENDING: tuple[Status, ...] = CONFIRMABLE + APPROVABLE
# Nothing more happens to these.
FINAL: tuple[Status, ...] = (Status.succeeded, Status.failed, Status.denied, Status.expired,
                             Status.cancelled, Status.refused, Status.interrupted, Status.scheduled,
                             Status.missed)


class ScheduleState(StrEnum):
    """A schedule's own state (the `schedules` table)."""

    proposed = "proposed"    # asked for; waits for its confirmation or approval
    active = "active"        # runs at `next_run`
    done = "done"            # a one-off that ran (or was missed)
    cancelled = "cancelled"  # unscheduled, denied, or its request expired
