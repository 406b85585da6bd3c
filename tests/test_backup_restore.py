"""Backup and restore, done once for real: deploy/backup.sh dumps a populated audit schema with
pg_dump, pg_restore loads it into a fresh database, and `chatops audit verify` passes there."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy import create_engine, text

from bot.engine import Engine
from bot.request import Actor, Request
from infra.config import Config
from infra.db.store import AuditStore, Database
from tests.conftest import PG_BASE, ROOT
from tests.ops_support import HeldJob, docker_backends, registry_with, restart

CHATOPS = Path(sys.executable).parent / "chatops"


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg:", "postgresql:")


async def test_backup_script_dump_restores_into_a_fresh_database_and_verifies(
        config: Config, db: Database, pg_url: str, tmp_path: Path) -> None:
    eng = Engine(config, AuditStore(db), docker_backends(config), registry=registry_with(HeldJob(hold=False)))
    await eng.start()
    try:
        for service in ("n8n", "nginx"):
            assert (await eng.handle(restart("console:alice", service, "rumpledev"))).ok
        pending = await eng.handle(restart("console:alice", "n8n", "rumpleprod"))
        assert (await eng.handle(Request(actor=Actor("console:bob"), text="whoami"))).ok
    finally:
        await eng.close()
    assert eng.store.verify() == []
    before = eng.store.count_by_status()
    schema = unquote(pg_url.split("search_path", 1)[1]).lstrip("=")

    out = tmp_path / "backups"
    env = {**os.environ, "DATABASE_URL": pg_url, "CHATOPS_CONFIG": str(ROOT / "chatops.yaml"),
           "CHATOPS_BIN": str(CHATOPS), "CHATOPS_BACKUP_DIR": str(out), "CHATOPS_PGDUMP_ARGS": f"--schema={schema}"}
    run = subprocess.run(["bash", str(ROOT / "deploy" / "backup.sh")], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "audit chain OK" in run.stdout
    dumps = sorted(out.glob("chatops-*.dump"))
    exports = sorted(out.glob("audit-*.csv"))
    assert len(dumps) == 1 and len(exports) == 1 and not list(out.glob("*.partial"))
    with exports[0].open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(before.values()) and pending.request_id in {r["id"] for r in rows}
    assert oct(dumps[0].stat().st_mode & 0o777) == "0o600"

    fresh = "restore_" + uuid.uuid4().hex[:10]
    admin = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {fresh}"))
    try:
        target = PG_BASE.rsplit("/", 1)[0] + f"/{fresh}"
        restore = subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", "--dbname", libpq(target),
                                  str(dumps[0])], capture_output=True, text=True, timeout=120)
        assert restore.returncode == 0, restore.stderr
        restored_url = f"{target}?options=-csearch_path%3D{schema}"
        restored = Database(restored_url)
        try:
            store = AuditStore(restored)
            assert store.count_by_status() == before
            assert store.verify() == []
            row = store.get(pending.request_id or "")
            assert row is not None and row.status == "pending_approval"
        finally:
            restored.dispose()
        cli = subprocess.run([str(CHATOPS), "audit", "verify"], capture_output=True, text=True, timeout=120,
                             env={**env, "DATABASE_URL": restored_url})
        assert cli.returncode == 0 and "audit chain OK" in cli.stdout, cli.stderr
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {fresh} WITH (FORCE)"))
        admin.dispose()
