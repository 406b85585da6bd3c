"""Request statuses: one enum for the engine, the audit store and the adapters.

A request's status is also the kind of the audit event that moved it there, so these
values are stored in the database; `StrEnum` keeps them equal to their text.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    requested = "requested"
    awaiting_confirmation = "awaiting_confirmation"
    # The requester said "run it" (its own event kind, so the chain never sees a second `requested`).
    confirmed = "confirmed"
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
    withdrawn = "withdrawn"  # the requester took a pending request back
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
                             Status.cancelled, Status.refused, Status.interrupted, Status.withdrawn,
                             Status.scheduled, Status.missed)
# Where a request can end up once an approver said yes: `audit status=approved` means any of these
# with an approver recorded (`approved` itself only lasts until the run starts).
AFTER_APPROVAL: tuple[Status, ...] = (Status.approved, Status.started, Status.succeeded, Status.failed,
                                      Status.interrupted, Status.refused)

# The words people use for a status (`audit status=waiting`) → the status recorded.
STATUS_WORDS: dict[str, Status] = {
    "pending": Status.pending_approval, "waiting": Status.pending_approval,
    "awaiting": Status.pending_approval, "awaiting_approval": Status.pending_approval,
    "needs_approval": Status.pending_approval, "waiting_for_approval": Status.pending_approval,
    "unconfirmed": Status.awaiting_confirmation, "awaiting_confirmation": Status.awaiting_confirmation,
    "ok": Status.succeeded, "done": Status.succeeded, "success": Status.succeeded,
    "successful": Status.succeeded, "passed": Status.succeeded,
    "failure": Status.failed, "failures": Status.failed, "failing": Status.failed,
    "error": Status.failed, "errors": Status.failed,
    "errored": Status.failed, "broken": Status.failed,
    "rejected": Status.denied, "declined": Status.denied,
    "running": Status.started, "in_progress": Status.started,
    "canceled": Status.cancelled, "aborted": Status.interrupted,
    "withdrew": Status.withdrawn, "retracted": Status.withdrawn, "timed_out": Status.expired,
}


def status_of(word: str) -> Status | None:
    """The status a word names (`pending`, `Pending approval`, `failures`), or None."""
    key = "_".join(word.strip().lower().replace("-", " ").split())
    if key in Status.__members__:
        return Status(key)
    return STATUS_WORDS.get(key)


class ScheduleState(StrEnum):
    """A schedule's own state (the `schedules` table)."""

    proposed = "proposed"    # asked for; waits for its confirmation or approval
    active = "active"        # runs at `next_run`
    done = "done"            # a one-off that ran (or was missed)
    cancelled = "cancelled"  # unscheduled, denied, or its request expired
