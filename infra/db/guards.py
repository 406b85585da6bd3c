"""Downgrades never destroy evidence silently.

A migration whose downgrade drops audit data declares it next to its code:

    from infra.db.guards import Loss, refuse_to_lose

    LOSSES = (Loss("audit_checkpoints", "where the audit chain starts after `audit prune`"),)

    def downgrade() -> None:
        refuse_to_lose(revision, LOSSES)     # first, before anything is dropped
        op.drop_table("audit_checkpoints")

`refuse_to_lose` counts the rows at stake and raises DowngradeRefused (naming each table,
its row count and what the rows are) unless the downgrade is forced: `chatops db downgrade
REV --force`, or `alembic -x force=yes downgrade REV`. `chatops db downgrade` also reads
every LOSSES on the way before it starts, so it lists everything at once and changes nothing.
A Loss may name a column (a downgrade that drops a column) or a `where` condition (only
some rows are at stake); a table that does not exist counts as empty.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from alembic.util import CommandError
from sqlalchemy import Connection, func, inspect, select, table, text

log = logging.getLogger("chatops.migrations")


@dataclass(frozen=True)
class Loss:
    table: str
    what: str                  # what the rows are, in an operator's words (and what breaks without them)
    column: str | None = None  # the downgrade drops this column only: rows where it is set are at stake
    where: str | None = None   # SQL condition: only these rows are at stake


@dataclass(frozen=True)
class AtRisk:
    revision: str
    loss: Loss
    rows: int

    def describe(self) -> str:
        place = f"{self.loss.table}.{self.loss.column}" if self.loss.column else self.loss.table
        return f"{place}: {self.rows} row{'s' if self.rows != 1 else ''} ({self.loss.what}; dropped by {self.revision})"


class DowngradeRefused(CommandError):
    """A downgrade would drop audit data and was not forced; nothing was changed.

    An Alembic CommandError, so the `alembic` command line prints it as "FAILED: …" (no traceback)."""

    def __init__(self, target: str, at_risk: Sequence[AtRisk]) -> None:
        self.target, self.at_risk = target, list(at_risk)
        lines = "\n".join(f"  - {r.describe()}" for r in self.at_risk)
        super().__init__(
            f"Downgrading to {target} would destroy audit data:\n{lines}\n"
            "Nothing was changed. To run an older chatops, keep this database and restore the pre-upgrade "
            "backup instead (chatops db restore, docs/operations.md \"Restore\"); it keeps a copy of this one. "
            f"To drop the data anyway, back up first (deploy/backup.sh), then: chatops db downgrade {target} "
            f"--force (alembic: -x force=yes).")


def count_at_risk(conn: Connection, revision: str, losses: Sequence[Loss]) -> list[AtRisk]:
    """The losses that hold rows now (tables or columns missing count as empty)."""
    insp = inspect(conn)
    out = []
    for loss in losses:
        if not insp.has_table(loss.table):
            continue
        if loss.column and loss.column not in {c["name"] for c in insp.get_columns(loss.table)}:
            continue
        q = select(func.count()).select_from(table(loss.table))
        if loss.column:
            q = q.where(text(f'"{loss.column}" IS NOT NULL'))
        if loss.where:
            q = q.where(text(loss.where))
        rows = int(conn.execute(q).scalar_one())
        if rows:
            out.append(AtRisk(revision, loss, rows))
    return out


def forced() -> bool:
    """`chatops db downgrade --force` sets the attribute; the Alembic command line passes -x force=yes."""
    from alembic import context

    if context.config.attributes.get("force_downgrade"):
        return True
    return context.get_x_argument(as_dictionary=True).get("force", "").lower() in ("1", "yes", "true")


def refuse_to_lose(revision: str, losses: Sequence[Loss]) -> None:
    """Call first in a downgrade(): raise DowngradeRefused while the data it drops exists, unless forced."""
    from alembic import op

    at_risk = count_at_risk(op.get_bind(), revision, losses)
    if not at_risk:
        return
    if forced():
        log.warning("forced downgrade of %s drops %s", revision, "; ".join(r.describe() for r in at_risk))
        return
    raise DowngradeRefused(_target(revision), at_risk)


def _target(revision: str) -> str:
    """The destination an operator asked for, when Alembic knows it; else the revision before this one."""
    from alembic import context

    asked = context.get_revision_argument()
    if isinstance(asked, str) and asked:
        return asked
    script = context.script.get_revision(revision) if context.script else None
    down = script.down_revision if script is not None else None
    return down if isinstance(down, str) else "base"
