"""Helpers for the database operations tests: the real CLI, a database of its own, rows written
the way the bot writes them (on any schema revision), and reading back what a dump holds."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from infra.db.models import RequestRow
from infra.db.store import AuditStore, new_request_id
from tests.conftest import PG_BASE, ROOT

BIN = Path(sys.executable).parent
CHATOPS = BIN / "chatops"
ALEMBIC = BIN / "alembic"


def cli_env(url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CHATOPS_CONFIG")}
    env.update({"CHATOPS_CONFIG": str(ROOT / "chatops.yaml"), "CHATOPS_BIN": str(CHATOPS)})
    if url:
        env["DATABASE_URL"] = url
    env.update(extra)
    return env


def chatops(*args: str, url: str | None, cwd: Path | None = None, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHATOPS), *args], capture_output=True, text=True, timeout=180,
                          env=cli_env(url, **extra), cwd=cwd or ROOT)


def backup_sh(*args: str, url: str, dest: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / "deploy" / "backup.sh"), *args], capture_output=True, text=True,
                          timeout=300, env=cli_env(url, CHATOPS_BACKUP_DIR=str(dest), **extra))


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg:", "postgresql:")


def admin_sql(sql: str, database_url: str = PG_BASE) -> None:
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(sql))
    finally:
        admin.dispose()


def drop_role(role: str, *database_urls: str) -> None:
    """Revoke what `role` was granted in each database, then drop it (roles are server-wide)."""
    exists = f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'"
    for url in database_urls:
        if scalar(url, exists):
            admin_sql(f"DROP OWNED BY {role}", url)
    admin_sql(f"DROP ROLE IF EXISTS {role}")


def scalar(url: str, sql: str) -> object:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return c.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def revision(url: str) -> object:
    return scalar(url, "SELECT version_num FROM alembic_version")


def has_table(url: str, name: str) -> bool:
    return scalar(url, f"SELECT to_regclass('{name}') IS NOT NULL") is True


@contextmanager
def own_database() -> Iterator[str]:
    """A database of its own (public schema), as production has; dropped afterwards."""
    name = "dbops_" + uuid.uuid4().hex[:10]
    admin_sql(f"CREATE DATABASE {name}")
    try:
        yield PG_BASE.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def record(store: AuditStore, command: str = "whoami", actor: str = "console:alice") -> str:
    """A finished read request, written as the engine writes one (works on every schema revision)."""
    row = RequestRow(id=new_request_id(), actor=actor, platform="console", text=command, source="grammar",
                     command=command, args={}, changes=False, status="started", correlation_id=uuid.uuid4().hex[:12])
    store.create(row, [("requested", {"command": command, "args": {}, "actor": actor, "source": "grammar",
                                      "text": command}), ("started", {})])
    store.transition(row.id, ("started",), "succeeded", actor, {"result": "ok"}, result="ok")
    return row.id


def ids_in(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return {r for (r,) in c.execute(text("SELECT id FROM requests"))}
    finally:
        engine.dispose()
