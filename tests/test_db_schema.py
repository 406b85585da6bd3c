"""Schema versions (issue 18, items 2 and 4), against real PostgreSQL (and SQLite where it differs).

Checks never migrate: `audit verify`, `audit export`, `config check` and the `health` command read
the schema's revision and, on one older or newer than the code, say so with both versions and stop.
Only `db upgrade` and the bot's start migrate. Downgrades that would drop audit data refuse unless
forced, name what would be lost, and the documented Alembic commands work with the shipped alembic.ini.
"""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text

from bot.engine import Engine
from bot.request import Actor, Request
from infra.backends import Backends
from infra.config import Config
from infra.db.common import SchemaMismatch, utcnow
from infra.db.guards import DowngradeRefused, Loss, count_at_risk
from infra.db.migrate import alembic_config, code_head, downgrade
from infra.db.retention import prune
from infra.db.store import AuditStore, Database
from tests.conftest import ROOT
from tests.db_support import ALEMBIC, chatops, cli_env, has_table, record, revision

HEAD = code_head()
READ_ONLY = (("audit", "verify"), ("audit", "export"), ("audit", "export", "--format", "json"))


def _stamp(url: str, rev: str) -> None:
    db = Database(url)
    with db.engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": rev})
    db.dispose()


def test_checks_never_migrate_an_older_schema(pg_url: str) -> None:
    db = Database(pg_url)
    db.migrate("0005")
    record(AuditStore(db))
    db.dispose()
    for args in READ_ONLY:
        res = chatops(*args, url=pg_url)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert f"schema is at 0005, older than this version of chatops (its newest migration is {HEAD})" \
            in res.stderr
        assert "chatops db upgrade" in res.stderr and "unreachable" not in res.stderr
        assert res.stdout == ""
    check = chatops("config", "check", url=pg_url)
    assert check.returncode == 0 and ": OK (" in check.stdout
    assert "warning: The audit database's schema is at 0005, older" in check.stderr
    status = chatops("db", "status", url=pg_url)
    assert status.returncode == 1 and "database: 0005" in status.stdout and "state: older" in status.stdout
    assert revision(pg_url) == "0005" and not has_table(pg_url, "audit_checkpoints")  # nothing migrated

    up = chatops("db", "upgrade", url=pg_url)
    assert up.returncode == 0 and f"newest migration ({HEAD})" in up.stdout
    assert revision(pg_url) == HEAD
    ok = chatops("audit", "verify", url=pg_url)
    assert ok.returncode == 0 and "audit chain OK" in ok.stdout
    check = chatops("config", "check", url=pg_url)
    assert check.returncode == 0 and f"database: schema {HEAD} (this version's newest)" in check.stdout


def test_a_newer_schema_is_named_with_both_versions_never_unreachable(pg_url: str) -> None:
    Database(pg_url).migrate()
    _stamp(pg_url, "0099")
    want = f"schema is at 0099, newer than this version of chatops (its newest migration is {HEAD})"
    said = {}
    for args in (*READ_ONLY, ("run", "--as", "alice", "whoami"), ("db", "upgrade"), ("db", "downgrade", "0005")):
        res = chatops(*args, url=pg_url)
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert want in res.stderr, (args, res.stderr)
        assert "unreachable" not in res.stderr and "Traceback" not in res.stderr
        said[args[:2]] = res.stderr
    assert "go back with the pre-upgrade backup (chatops db restore" in said[("audit", "verify")]
    assert "downgrade with the newer chatops" in said[("db", "downgrade")]
    check = chatops("config", "check", url=pg_url)
    assert check.returncode == 1 and want in check.stderr
    assert revision(pg_url) == "0099"


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
async def test_health_and_replies_name_the_schema_the_bot_runs_on(kind: str, pg_url: str, tmp_path: Path,
                                                                 config: Config) -> None:
    url = pg_url if kind == "postgres" else f"sqlite:///{tmp_path / 'audit.sqlite3'}"
    db = Database(url)
    db.migrate()
    eng = Engine(config, AuditStore(db), Backends(config))
    await eng.start()
    alice = Actor("console:alice")
    try:
        health = await eng.handle(Request(actor=alice, text="health"))
        assert ["database", "ok", f"{db.engine.dialect.name}, schema {HEAD}"] in health.tables[0].rows

        with db.engine.begin() as c:  # a newer chatops upgraded the database under this one
            c.execute(text("UPDATE alembic_version SET version_num = '0099'"))
        health = await eng.handle(Request(actor=alice, text="health"))
        assert health.text.startswith("Down: database.")
        assert ["database", "DOWN", f"{db.engine.dialect.name}, schema 0099, newer than this version's {HEAD}"] \
            in health.tables[0].rows
        assert f"schema is at 0099, newer than this version of chatops (its newest migration is {HEAD})" \
            in health.text
        assert "unreachable" not in health.text

        # A pre-upgrade backup restored under the running bot: the tables it reads are gone.
        with db.engine.begin() as c:
            c.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": HEAD})
        assert eng.upkeep is not None  # link as a running bot's upkeep does (0011 refuses to drop unlinked
        await eng.upkeep.link()        # events), after any link in flight: SQLite takes one writer at a time
        downgrade(db.engine, "0001")  # nothing recorded in the tables it drops: allowed
        stacks = await eng.handle(Request(actor=alice, text="stacks"))
        assert f"schema is at 0001, older than this version of chatops (its newest migration is {HEAD})" \
            in stacks.text, stacks.text
        assert "unreachable" not in stacks.text and "went wrong" not in stacks.text \
            and "on my side" not in stacks.text
    finally:
        await eng.close()
    late = Engine(config, AuditStore(db), Backends(config))
    with pytest.raises(SchemaMismatch, match="schema is at 0001, older"):
        await late.start()
    db.dispose()


# -- downgrades ---------------------------------------------------------------------------------
async def _pruned(config: Config, db: Database, tmp_path: Path) -> int:
    """Requests, then an `audit prune` of all of them: the chain now starts at a checkpoint."""
    store = AuditStore(db)
    for _ in range(3):
        record(store)
    result = prune(store, utcnow() + timedelta(seconds=1), tmp_path / "audit-archive.jsonl.gz")
    assert result.requests == 3 and store.verify() == []
    return result.through_seq


async def test_downgrade_refuses_to_drop_pruned_history(config: Config, db: Database, pg_url: str,
                                                       tmp_path: Path) -> None:
    through = await _pruned(config, db, tmp_path)
    refused = chatops("db", "downgrade", "0005", url=pg_url)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "Downgrading to 0005 would destroy audit data:" in refused.stderr
    assert "audit_checkpoints: 1 row (where the audit chain starts after `audit prune`" in refused.stderr
    assert "`audit verify` reports the pruned events as missing" in refused.stderr
    assert "Nothing was changed" in refused.stderr and "chatops db downgrade 0005 --force" in refused.stderr
    assert revision(pg_url) == HEAD and AuditStore(db).verify() == []

    # The documented Alembic commands, with the shipped alembic.ini, from another directory.
    alembic_env = cli_env(pg_url)
    current = _alembic("current", env=alembic_env, cwd=tmp_path)
    assert current.returncode == 0 and HEAD in current.stdout, current.stderr
    plain = _alembic("downgrade", "0005", env=alembic_env, cwd=tmp_path)
    assert plain.returncode != 0 and "FAILED: Downgrading to 0005 would destroy audit data" in plain.stdout
    assert "Traceback" not in plain.stderr
    assert revision(pg_url) == HEAD and has_table(pg_url, "audit_checkpoints")

    forced = chatops("db", "downgrade", "0005", "--force", url=pg_url)
    assert forced.returncode == 0, forced.stderr
    assert "dropped (forced): audit_checkpoints: 1 row" in forced.stderr and "database at 0005" in forced.stdout
    # ...which is why it is refused: after upgrading again the chain can never verify.
    assert chatops("db", "upgrade", url=pg_url).returncode == 0
    assert any(f"events 1..{through} are missing" in p for p in AuditStore(db).verify())


def test_alembic_command_line_downgrade_can_be_forced(db: Database, pg_url: str, tmp_path: Path) -> None:
    record(AuditStore(db))
    env = cli_env(pg_url)
    history = _alembic("history", env=env, cwd=tmp_path)
    assert history.returncode == 0 and f"-> {HEAD} (head)" in history.stdout, history.stderr
    refused = _alembic("downgrade", "base", env=env, cwd=tmp_path)
    assert refused.returncode != 0 and "requests: 1 row" in refused.stdout
    assert revision(pg_url) == HEAD
    forced = _alembic("-x", "force=yes", "downgrade", "base", env=env, cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert not has_table(pg_url, "requests")
    assert _alembic("upgrade", "head", env=env, cwd=tmp_path).returncode == 0
    assert revision(pg_url) == HEAD


@pytest.mark.parametrize("kind", ["postgres", "sqlite"])
def test_a_refused_step_undoes_the_steps_before_it(kind: str, pg_url: str, tmp_path: Path) -> None:
    """Alembic runs the downgrades newest first; 0002's guard refuses after 0010 and 0005 ran:
    one transaction, so the database is as it was (SQLite included)."""
    db = Database(pg_url if kind == "postgres" else f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    db.migrate()
    with db.engine.begin() as c:
        c.execute(text("INSERT INTO deployments (env, stack, action, status, created_at, actor, compose_hash, "
                       "compose, model, images) VALUES ('rumpledev', 'web', 'deploy', 'succeeded', "
                       "CURRENT_TIMESTAMP, 'console:alice', 'h', 'services: {}', '{}', '{}')"))
    with pytest.raises(DowngradeRefused, match=r"deployments: 1 row \(the recorded stack revisions"):
        command.downgrade(alembic_config(db.engine), "0001")  # no preflight: each migration's own guard
    tables = set(inspect(db.engine).get_table_names())
    assert {"audit_checkpoints", "deployments"} <= tables
    with db.engine.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
        assert c.execute(text("SELECT count(*) FROM deployments")).scalar() == 1
    db.dispose()


def test_guards_count_tables_columns_and_conditions(db: Database) -> None:
    """What later migrations use: a whole table, one column's values, or some rows; absent ones count 0."""
    store = AuditStore(db)
    record(store)
    record(store, "envs")
    with db.engine.connect() as c:
        found = count_at_risk(c, "0099", [
            Loss("requests", "all requests"),
            Loss("requests", "approvals", column="approver"),
            Loss("requests", "envs requests", where="command = 'envs'"),
            Loss("audit_events", "events", column="no_such_column"),
            Loss("no_such_table", "nothing"),
        ])
    assert [(r.loss.what, r.rows) for r in found] == [("all requests", 2), ("envs requests", 1)]
    assert found[0].describe() == "requests: 2 rows (all requests; dropped by 0099)"


def _alembic(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ALEMBIC), "-c", str(ROOT / "alembic.ini"), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def test_downgrade_names_a_target_it_cannot_go_to(db: Database, pg_url: str) -> None:
    unknown = chatops("db", "downgrade", "zzz", url=pg_url)
    assert unknown.returncode == 2 and "Unknown revision 'zzz': name one of 0001" in unknown.stderr
    ahead = chatops("db", "downgrade", HEAD, url=pg_url)
    assert ahead.returncode == 2 and f"The database is at {HEAD}; {HEAD} is not older" in ahead.stderr
    assert "Traceback" not in unknown.stderr + ahead.stderr and revision(pg_url) == HEAD
