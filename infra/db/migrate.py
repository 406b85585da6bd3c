"""Alembic, driven from code: which schema the database has, and moving it.

Only `chatops db upgrade` and the bot's start (`serve`, `console`, `run`) migrate; every
other command reads `schema_status` and stops on a schema older or newer than the code,
so a check run with a newer CLI (or on a restored copy kept as evidence) never changes it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from infra.config import PROJECT_ROOT
from infra.db.common import DatabaseUnavailable, SchemaMismatch

if TYPE_CHECKING:
    from infra.db.guards import AtRisk

MIGRATIONS = PROJECT_ROOT / "migrations"
RESTORE_DOC = "docs/operations.md, \"Restore\""


def alembic_config(engine: Engine, *, force: bool = False) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # configparser treats % as interpolation: escape it (URLs carry %3D in options=...).
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    cfg.attributes["force_downgrade"] = force
    return cfg


@functools.cache
def _scripts() -> ScriptDirectory:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg)


def code_head() -> str:
    """The newest migration this code ships."""
    head = _scripts().get_current_head()
    assert head is not None, "migrations/versions has more than one head"
    return head


def known_revisions() -> list[str]:
    """Every migration this code ships, oldest first."""
    return [s.revision for s in reversed(list(_scripts().walk_revisions()))]


class SchemaState(Enum):
    CURRENT = "current"  # at this code's newest migration
    OLDER = "older"      # this code has migrations the database lacks
    NEWER = "newer"      # the database is at a revision this code does not know
    EMPTY = "empty"      # no chatops schema yet


@dataclass(frozen=True)
class SchemaStatus:
    state: SchemaState
    database: str | None  # the revision recorded in alembic_version (None: none recorded)
    code: str             # this code's newest migration

    @property
    def current(self) -> bool:
        return self.state is SchemaState.CURRENT

    def short(self) -> str:
        """For a table cell: "schema 0010", "schema 0005, older than this version's 0010"."""
        if self.state is SchemaState.CURRENT:
            return f"schema {self.database}"
        if self.state is SchemaState.EMPTY:
            return f"no chatops schema (this version's is {self.code})"
        return f"schema {self.database}, {self.state.value} than this version's {self.code}"

    def describe(self) -> str:
        """One sentence naming both versions."""
        if self.state is SchemaState.CURRENT:
            return f"The audit database's schema is at {self.database}, this version's newest migration"
        if self.state is SchemaState.EMPTY:
            return (f"The audit database has no chatops schema yet (this version's newest migration is "
                    f"{self.code})")
        return (f"The audit database's schema is at {self.database}, {self.state.value} than this version "
                f"of chatops (its newest migration is {self.code})")

    def advice(self) -> str:
        if self.state is SchemaState.NEWER:
            return ("A newer chatops upgraded it: run that version, or go back with the pre-upgrade backup "
                    f"(chatops db restore, {RESTORE_DOC}). Nothing was changed.")
        if self.state in (SchemaState.OLDER, SchemaState.EMPTY):
            return ("`chatops db upgrade` (or the bot's start) migrates it; checks and exports never do. "
                    "Nothing was changed.")
        return ""

    def mismatch(self) -> SchemaMismatch:
        return SchemaMismatch(self.describe(), self.advice(), database=self.database, code=self.code)


def schema_status(engine: Engine) -> SchemaStatus:
    """Read the database's revision (nothing is written); DatabaseUnavailable if it does not answer."""
    try:
        with engine.connect() as conn:
            heads = MigrationContext.configure(conn).get_current_heads()
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]) from exc
    head, known = code_head(), set(known_revisions())
    if not heads:
        return SchemaStatus(SchemaState.EMPTY, None, head)
    shown = ",".join(sorted(heads))
    if any(h not in known for h in heads):
        return SchemaStatus(SchemaState.NEWER, shown, head)
    return SchemaStatus(SchemaState.CURRENT if heads == (head,) else SchemaState.OLDER, shown, head)


def require_current(engine: Engine) -> SchemaStatus:
    """For everything that is not a migration: SchemaMismatch unless the schema is this code's."""
    status = schema_status(engine)
    if not status.current:
        raise status.mismatch()
    return status


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate forward. A schema newer than the code, or a migration that fails on objects the
    recorded revision should not have (a backup restored over a newer database without cleaning
    it), is a SchemaMismatch with both versions, never "unreachable"."""
    before = schema_status(engine)
    if before.state is SchemaState.NEWER:
        raise before.mismatch()
    try:
        command.upgrade(alembic_config(engine), revision)
    except SQLAlchemyError as exc:
        _raise_unreachable_or(engine, exc)
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise SchemaMismatch(
            f"Migrating the audit database from {before.database or 'nothing'} to {revision} failed: {detail}",
            "Nothing was changed (a migration is one transaction). The database holds objects its recorded "
            f"revision ({before.database}) does not have: typically a backup restored over a newer database "
            f"without removing what the backup does not contain. Restore with chatops db restore ({RESTORE_DOC}).",
            database=before.database, code=before.code) from exc


def _raise_unreachable_or(engine: Engine, exc: SQLAlchemyError) -> None:
    """A failure during migration is "unreachable" only when the database no longer answers."""
    try:
        schema_status(engine)
    except DatabaseUnavailable as down:
        raise down from exc


def planned_losses(engine: Engine, revision: str) -> list[AtRisk]:
    """What downgrading to `revision` would destroy (every migration on the way declares its LOSSES)."""
    from infra.db.guards import count_at_risk

    status = schema_status(engine)
    if status.state is SchemaState.NEWER:
        raise SchemaMismatch(
            status.describe(),
            "Only the version that knows a migration can undo it: downgrade with the newer chatops "
            f"(chatops db downgrade {status.code}), or restore the pre-upgrade backup ({RESTORE_DOC}). "
            "Nothing was changed.", database=status.database, code=status.code)
    known = known_revisions()
    if revision != "base" and revision not in known:
        raise ValueError(f"Unknown revision {revision!r}: name one of {', '.join(known)}, or base.")
    if status.database is None:
        return []
    if revision != "base" and known.index(revision) >= known.index(status.database):
        raise ValueError(f"The database is at {status.database}; {revision} is not older. "
                         "`chatops db upgrade` goes forward.")
    steps = list(_scripts().iterate_revisions(status.database, revision))
    with engine.connect() as conn:
        return [r for step in steps for r in count_at_risk(conn, step.revision, getattr(step.module, "LOSSES", ()))]


def downgrade(engine: Engine, revision: str = "base", *, force: bool = False) -> list[AtRisk]:
    """Migrate back to `revision`. Refuses (DowngradeRefused, nothing changed) when a migration on the
    way would drop audit data, unless `force`; returns what was dropped."""
    from infra.db.guards import DowngradeRefused

    losses = planned_losses(engine, revision)
    if losses and not force:
        raise DowngradeRefused(revision, losses)
    command.downgrade(alembic_config(engine, force=force), revision)
    return losses
