"""Helpers for the database operations tests: the real CLI, a database of its own, rows written
the way the bot writes them (on any schema revision), and reading back what a dump holds."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, Table, create_engine, insert, select, text, update

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


def _record_now(store: AuditStore, command: str, actor: str) -> str:
    row = RequestRow(id=new_request_id(), actor=actor, platform="console", text=command, source="grammar",
                     command=command, args={}, changes=False, status="started", correlation_id=uuid.uuid4().hex[:12])
    store.create(row, [("requested", {"command": command, "args": {}, "actor": actor, "source": "grammar",
                                      "text": command}), ("started", {})])
    store.transition(row.id, ("started",), "succeeded", actor, {"result": "ok"}, result="ok")  # type: ignore[arg-type]
    store.link()
    return row.id


def legacy_event_hash(prev: str, seq: int, request_id: str, at: datetime, kind: str, actor: str,
                      detail: dict[str, Any]) -> str:
    """An event link as the unkeyed chain of schema 0001–0014 computes it (frozen here on purpose)."""
    stamp = at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
    body = json.dumps({"seq": seq, "request": request_id, "at": stamp, "kind": kind, "actor": actor,
                       "detail": detail}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev + body).encode()).hexdigest()


def record(store: AuditStore, command: str = "whoami", actor: str = "console:alice") -> str:
    """A finished read request, written as a bot of the database's own schema version wrote it:
    only the columns that schema has, events linked as its chain links them. Today's models may
    have columns an older schema lacks, so this does not go through the ORM."""
    engine = store.db.engine
    meta = MetaData()
    requests = Table("requests", meta, autoload_with=engine)
    events = Table("audit_events", meta, autoload_with=engine)
    chain = Table("audit_chain", meta, autoload_with=engine)
    if set(RequestRow.__table__.c.keys()) <= set(requests.c.keys()) and "mac" in events.c:
        return _record_now(store, command, actor)  # this code's schema: written as today's bot writes
    rid, now = new_request_id(), datetime.now(UTC)
    row = {"id": rid, "created_at": now, "updated_at": now, "actor": actor, "platform": "console",
           "text": command, "source": "grammar", "command": command, "args": {}, "changes": False,
           "status": "succeeded", "result": "ok", "correlation_id": uuid.uuid4().hex[:12]}
    steps = [("requested", {"command": command, "args": {}, "actor": actor, "source": "grammar", "text": command}),
             ("started", {}), ("succeeded", {"result": "ok"})]
    with engine.begin() as c:
        c.execute(insert(requests).values({k: v for k, v in row.items() if k in requests.c}))
        head = c.execute(select(chain.c.seq, chain.c.hash).where(chain.c.id == 1).with_for_update()).one()
        seq, prev = int(head.seq), str(head.hash)
        for kind, detail in steps:
            seq += 1
            link = legacy_event_hash(prev, seq, rid, now, kind, actor, detail)
            c.execute(insert(events).values(seq=seq, request_id=rid, at=now, kind=kind, actor=actor, detail=detail,
                                            prev_hash=prev, hash=link))
            prev = link
        c.execute(update(chain).where(chain.c.id == 1).values(seq=seq, hash=prev))
    return rid


def ids_in(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return {r for (r,) in c.execute(text("SELECT id FROM requests"))}
    finally:
        engine.dispose()
