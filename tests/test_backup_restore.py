"""Backup and restore, done for real: deploy/backup.sh dumps a populated audit schema with pg_dump,
pg_restore loads it into a fresh database, and `chatops audit verify` passes there. The backup is
complete and consistent (issue 18, item 5): dump and CSV from one snapshot, grants kept, pruned
archives copied with their checksums, and `backup.sh --verify` checks the dump in a scratch database."""

from __future__ import annotations

import csv
import json
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
           "CHATOPS_BIN": str(CHATOPS), "CHATOPS_BACKUP_DIR": str(out)}  # the schema: from the URL's search_path
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


# -- complete and consistent (issue 18, item 5) ------------------------------------------------------
def _dumped_ids(dump: Path, schema: str) -> set[str]:
    """The request ids a dump holds, read back by restoring it into a database of its own."""
    from tests.db_support import ids_in, own_database

    with own_database() as url:
        done = subprocess.run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error", "--dbname",
                               libpq(url), str(dump)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return ids_in(f"{url}?options=-csearch_path%3D{schema}")


def test_dump_and_export_come_from_one_snapshot_while_the_bot_writes(db: Database, pg_url: str,
                                                                     tmp_path: Path) -> None:
    import threading

    from tests.db_support import backup_sh, ids_in, record

    store = AuditStore(db)
    stop = threading.Event()
    written: list[str] = []

    def writer() -> None:  # requests keep arriving all through the backup
        while not stop.is_set():
            written.append(record(store))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 20:
            stop.wait(0.01)
        made = backup_sh(url=pg_url, dest=tmp_path)
    finally:
        stop.set()
        thread.join()
    assert made.returncode == 0, made.stderr
    schema = unquote(pg_url.split("search_path", 1)[1]).lstrip("=")
    dumped = _dumped_ids(next(tmp_path.glob("chatops-*.dump")), schema)
    with next(tmp_path.glob("audit-*.csv")).open() as f:
        exported = {row["id"] for row in csv.DictReader(f)}
    assert len(dumped) >= 20 and exported == dumped
    assert ids_in(pg_url) > dumped  # writes went on after the snapshot: the CSV did not see them either
    manifest = json.loads(next(tmp_path.glob("chatops-*.json")).read_text())
    assert manifest["export"]["requests"] == len(dumped) and manifest["export"]["same_snapshot_as_dump"]


async def test_backup_keeps_grants_copies_archives_and_verifies_in_a_scratch_database(
        config: Config, db: Database, pg_url: str, tmp_path: Path) -> None:
    from datetime import timedelta

    from infra.db.backup import sha256
    from infra.db.common import utcnow
    from infra.db.retention import prune
    from tests.db_support import admin_sql, backup_sh, chatops, drop_role, own_database, record

    role = "dbops_grafana_" + uuid.uuid4().hex[:8]
    schema = unquote(pg_url.split("search_path", 1)[1]).lstrip("=")
    store = AuditStore(db)
    for _ in range(3):
        record(store)
    archives = tmp_path / "archive"
    archives.mkdir()
    pruned = prune(store, utcnow() + timedelta(seconds=1), archives / "chatops-audit-1.jsonl.gz")
    record(store)
    admin_sql(f"CREATE ROLE {role}")
    try:
        admin_sql(f"GRANT USAGE ON SCHEMA {schema} TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}",
                  pg_url)
        out = tmp_path / "backups"
        made = backup_sh("--verify", "--archive-dir", str(archives), url=pg_url, dest=out)
        assert made.returncode == 0, made.stdout + made.stderr
        copied = out / "archives" / "chatops-audit-1.jsonl.gz"
        assert copied.is_file() and sha256(copied) == pruned.archive_sha256
        manifest = json.loads(next(out.glob("chatops-*.json")).read_text())
        assert manifest["archives"] == [{"name": "chatops-audit-1.jsonl.gz", "through_seq": pruned.through_seq,
                                         "sha256": pruned.archive_sha256, "file": "archives/chatops-audit-1.jsonl.gz",
                                         "problem": None}]
        assert manifest["dump"]["sha256"] == sha256(next(out.glob("chatops-*.dump")))
        line = next(x for x in made.stdout.splitlines() if x.startswith("verify: "))
        assert "restored into scratch database" in line and line.endswith("audit chain OK, 1 archive OK")
        scratch = line.split("scratch database ", 1)[1].split()[0]
        gone = create_engine(PG_BASE)
        with gone.connect() as c:
            assert c.execute(text("SELECT count(*) FROM pg_database WHERE datname = :n"), {"n": scratch}).scalar() == 0
        gone.dispose()

        with own_database() as url:  # the grants come back with the dump
            restored_url = f"{url}?options=-csearch_path%3D{schema}"
            back = chatops("db", "restore", str(next(out.glob("chatops-*.dump"))), "--yes", url=restored_url)
            assert back.returncode == 0, back.stderr
            engine = create_engine(restored_url)
            with engine.connect() as c:
                assert c.execute(text(f"SELECT has_table_privilege('{role}', 'requests', 'SELECT')")).scalar()
                assert c.execute(text(f"SELECT has_schema_privilege('{role}', '{schema}', 'USAGE')")).scalar()
            engine.dispose()
            drop_role(role, url, pg_url)
    finally:
        drop_role(role, pg_url)


def test_a_missing_or_edited_archive_fails_the_backup_and_says_which(db: Database, pg_url: str,
                                                                      tmp_path: Path) -> None:
    from datetime import timedelta

    from infra.db.common import utcnow
    from infra.db.retention import prune
    from tests.db_support import backup_sh, record

    store = AuditStore(db)
    record(store)
    archives = tmp_path / "archive"
    archives.mkdir()
    pruned = prune(store, utcnow() + timedelta(seconds=1), archives / "old.jsonl.gz")
    missing = backup_sh("--archive-dir", str(tmp_path / "elsewhere"), url=pg_url, dest=tmp_path / "b1")
    assert missing.returncode == 1 and next((tmp_path / "b1").glob("chatops-*.dump")).is_file()
    assert (f"PROBLEM: archive old.jsonl.gz (events up to {pruned.through_seq}, sha256 {pruned.archive_sha256}) "
            "is not in") in missing.stderr
    (archives / "old.jsonl.gz").write_bytes(b"replaced")
    edited = backup_sh("--archive-dir", str(archives), url=pg_url, dest=tmp_path / "b2")
    assert edited.returncode == 1 and "does not match the SHA-256 its checkpoint recorded" in edited.stderr
    manifest = json.loads(next((tmp_path / "b2").glob("chatops-*.json")).read_text())
    assert manifest["archives"][0]["file"] is None and "does not match" in manifest["archives"][0]["problem"]


def test_verify_fails_on_a_dump_whose_chain_was_edited(db: Database, pg_url: str, tmp_path: Path) -> None:
    from tests.db_support import backup_sh, record

    rid = record(AuditStore(db))
    with db.engine.begin() as c:
        c.execute(text("UPDATE requests SET actor = 'console:mallory' WHERE id = :r"), {"r": rid})
    made = backup_sh("--verify", url=pg_url, dest=tmp_path)
    assert made.returncode == 1
    assert f"PROBLEM: the dumped chain: request {rid} was edited" in made.stderr
    assert f"PROBLEM: verify: request {rid} was edited" in made.stderr  # found again in the restored copy


def test_rotation_removes_old_backups_but_keeps_archives_and_restore_copies(db: Database, pg_url: str,
                                                                          tmp_path: Path) -> None:
    from tests.db_support import backup_sh, record

    record(AuditStore(db))
    (tmp_path / "archives").mkdir()
    old = ["chatops-20200101T000000Z.dump", "audit-20200101T000000Z.csv", "chatops-20200101T000000Z.json"]
    kept = ["chatops-before-restore-20200101T000000000000Z.dump", "archives/chatops-audit-2019.jsonl.gz"]
    for name in old + kept:
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (0, 1577836800))  # 2020-01-01
    made = backup_sh(url=pg_url, dest=tmp_path, CHATOPS_BACKUP_KEEP_DAYS="30")
    assert made.returncode == 0, made.stderr
    assert all(not (tmp_path / name).exists() for name in old)
    assert all((tmp_path / name).exists() for name in kept)
    assert "removed (older than 30 days): chatops-20200101T000000Z.dump" in made.stdout
