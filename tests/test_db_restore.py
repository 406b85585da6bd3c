"""Going back with a backup (issue 18, item 3), as docs/operations.md "Restore" says, on a database of
its own (the public schema, as in production): a pre-upgrade backup restored over an upgraded and
pruned database with `chatops db restore`, then the bot starts, migrates and verifies."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path

from infra.db.common import utcnow
from infra.db.migrate import code_head
from infra.db.retention import prune
from infra.db.store import AuditStore, Database
from tests.db_support import (
    admin_sql,
    backup_sh,
    chatops,
    drop_role,
    has_table,
    ids_in,
    libpq,
    own_database,
    record,
    revision,
    scalar,
)

HEAD = code_head()


def test_pre_upgrade_backup_restored_over_an_upgraded_database_then_the_bot_starts(tmp_path: Path) -> None:
    with own_database() as url:
        db = Database(url)
        db.migrate("0005")  # the version before the upgrade
        before = {record(AuditStore(db), cmd) for cmd in ("whoami", "envs", "help")}
        db.dispose()
        backups = tmp_path / "backups"
        made = backup_sh(url=url, dest=backups)
        assert made.returncode == 0, made.stderr
        dump = next(backups.glob("chatops-2*.dump"))
        manifest = json.loads(next(backups.glob("chatops-2*.json")).read_text())
        assert manifest["schema"] == {"name": "public", "revision": "0005", "code": HEAD}
        assert revision(url) == "0005"  # the backup did not migrate it either

        # The upgrade, some use, and a prune: the newer schema's table now holds a checkpoint.
        assert chatops("db", "upgrade", url=url).returncode == 0
        assert chatops("run", "--as", "alice", "whoami", url=url).returncode == 0
        db = Database(url)
        pruned = prune(AuditStore(db), utcnow() + timedelta(seconds=1), tmp_path / "archive.jsonl.gz")
        db.dispose()
        assert pruned.requests == 4 and scalar(url, "SELECT count(*) FROM audit_checkpoints") == 1

        # What the docs used to say: pg_restore --clean over the live database leaves the newer table.
        # (It also stumbles on the schema itself, "errors ignored", but loads the rows.)
        subprocess.run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--dbname", libpq(url), str(dump)],
                       capture_output=True, text=True, timeout=120)
        assert revision(url) == "0005" and has_table(url, "audit_checkpoints")
        start = chatops("run", "--as", "alice", "whoami", url=url)
        assert start.returncode == 2
        assert 'Migrating the audit database from 0005 to head failed: relation "audit_checkpoints" already ' \
               'exists' in start.stderr
        assert "chatops db restore" in start.stderr and "unreachable" not in start.stderr

        restored = chatops("db", "restore", str(dump), "--yes", url=url)
        assert restored.returncode == 0, restored.stderr
        assert f"restored {dump.name} into schema public: 3 requests" in restored.stdout
        assert f"schema is at 0005, older than this version of chatops (its newest migration is {HEAD})" \
            in restored.stdout
        copy = Path(restored.stdout.split("the previous contents: ", 1)[1].split()[0])
        assert copy.parent == backups and copy.is_file()
        listed = subprocess.run(["pg_restore", "--list", str(copy)], capture_output=True, text=True, check=True)
        assert "TABLE DATA public audit_checkpoints" in listed.stdout  # what was replaced is kept
        assert not has_table(url, "audit_checkpoints") and revision(url) == "0005"
        assert ids_in(url) == before

        started = chatops("run", "--as", "alice", "whoami", url=url)  # the bot's start migrates
        assert started.returncode == 0, started.stderr
        assert revision(url) == HEAD
        verify = chatops("audit", "verify", url=url)
        assert verify.returncode == 0 and "audit chain OK" in verify.stdout, verify.stdout + verify.stderr
        assert before < ids_in(url) and len(ids_in(url)) == 4


def test_restore_refuses_while_the_bot_runs_and_a_failed_restore_changes_nothing(tmp_path: Path) -> None:
    role = "dbops_ro_" + uuid.uuid4().hex[:8]
    with own_database() as url:
        db = Database(url)
        db.migrate()
        store = AuditStore(db)
        first = record(store)
        admin_sql(f"CREATE ROLE {role}")
        try:
            admin_sql(f"GRANT SELECT ON requests TO {role}", url)
            backups = tmp_path / "backups"
            assert backup_sh(url=url, dest=backups).returncode == 0
            dump = next(backups.glob("chatops-2*.dump"))

            store.register_worker()  # a bot process holds its liveness lock
            running = chatops("db", "restore", str(dump), "--yes", url=url)
            assert running.returncode == 1 and "The bot is running on this database" in running.stderr
            assert store.owner in running.stderr and "nothing was changed" in running.stderr
            store.close()

            later = record(AuditStore(db))
            admin_sql("CREATE TABLE stray (x int)", url)
            admin_sql(f"REVOKE ALL ON requests FROM {role}", url)
            admin_sql(f"DROP ROLE {role}")  # the dump grants to a role this server no longer has
            failed = chatops("db", "restore", str(dump), "--yes", url=url)
            assert failed.returncode == 1
            assert f'role "{role}" does not exist' in failed.stderr and "Nothing was changed" in failed.stderr
            assert "--no-privileges" in failed.stderr
            assert has_table(url, "stray") and ids_in(url) == {first, later}  # one transaction: all still there

            done = chatops("db", "restore", str(dump), "--yes", "--no-privileges", url=url)
            assert done.returncode == 0, done.stderr
            assert not has_table(url, "stray") and ids_in(url) == {first}

            garbage = tmp_path / "not-a-dump.dump"
            garbage.write_bytes(b"PGDMP but not really")
            bad = chatops("db", "restore", str(garbage), "--yes", url=url)
            assert bad.returncode == 1 and "is not a dump pg_restore can read" in bad.stderr
            assert ids_in(url) == {first}
        finally:
            db.dispose()
            drop_role(role, url)


def test_the_container_stacks_database_port_opens_on_loopback_only(tmp_path: Path) -> None:
    """compose.dbadmin.yaml, for backups and restores run from the host (docs/operations.md)."""
    import os

    from infra.compose import compose_binary

    folder = Path(__file__).resolve().parent.parent / "compose" / "chatops"
    env_file = tmp_path / "test.env"
    env_file.write_text("POSTGRES_PASSWORD=placeholder\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["CHATOPS_ENV_FILE"] = str(env_file)
    files = ["-f", str(folder / "compose.yaml"), "-f", str(folder / "compose.dbadmin.yaml")]
    out = subprocess.run([compose_binary(), *files, "--env-file", str(env_file), "config", "--format", "json"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    ports = json.loads(out.stdout)["services"]["chatops-db"]["ports"]
    assert [(p["host_ip"], p["published"], p["target"]) for p in ports] == [("127.0.0.1", "5433", 5432)]
