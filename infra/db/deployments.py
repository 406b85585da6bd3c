"""Recorded stack revisions: what was deployed where, when, by whom, with which images."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from infra.db.common import utcnow
from infra.db.models import Deployment
from infra.db.store import Database


class DeploymentStore:
    """Reads and writes of `deployments` (one row per deploy or rollback attempt)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def _tx(self) -> AbstractContextManager[Session]:
        return self.db.transaction()

    def record(self, **fields: Any) -> Deployment:
        row = Deployment(created_at=utcnow(), **fields)
        with self._tx() as s:
            s.add(row)
            s.flush()
            s.expunge(row)
        return row

    def get(self, rev: int) -> Deployment | None:
        with self._tx() as s:
            row = s.get(Deployment, rev)
            if row is not None:
                s.expunge(row)
            return row

    def history(self, env: str, stack: str, limit: int = 50) -> list[Deployment]:
        """Newest first."""
        with self._tx() as s:
            rows = list(s.scalars(select(Deployment).where(Deployment.env == env, Deployment.stack == stack)
                                  .order_by(Deployment.id.desc()).limit(limit)))
            for r in rows:
                s.expunge(r)
            return rows

    def latest(self, env: str | None = None) -> list[Deployment]:
        """The newest succeeded revision of every (env, stack), optionally of one env."""
        with self._tx() as s:
            q = select(Deployment).where(Deployment.status == "succeeded")
            if env:
                q = q.where(Deployment.env == env)
            rows = list(s.scalars(q.order_by(Deployment.id.desc())))
            seen: set[tuple[str, str]] = set()
            out = []
            for r in rows:
                if (r.env, r.stack) not in seen:
                    seen.add((r.env, r.stack))
                    s.expunge(r)
                    out.append(r)
            return out

    def rollback_target(self, env: str, stack: str) -> Deployment | None:
        """The revision that ran before the current one: the newest succeeded one that isn't newest."""
        rows = self.history(env, stack)
        if not rows:
            return None
        return next((r for r in rows[1:] if r.status == "succeeded"), None)


def store_for(audit_store: Any) -> DeploymentStore:
    """The deployment store on the audit store's database."""
    return DeploymentStore(audit_store.db)
