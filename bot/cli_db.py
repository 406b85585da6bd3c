"""`chatops db …`: the audit database's schema, backups and restores (docs/operations.md).

Only `db upgrade` (and the bot's start) migrates. `db status` reads; `db downgrade` refuses to
drop audit data unless forced; `db backup` and `db restore` wrap pg_dump/pg_restore/psql so the
documented procedure is the one the tests run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bot.cli_support import CONFIG_OPTION, build_app, fail
from infra.wording import counted

if TYPE_CHECKING:
    from infra.db.store import Database


def _database() -> Database:
    """The Database of DATABASE_URL, without building the engine (no migration, no schema check).
    The database comes from the environment only, as for every command; --config is accepted
    everywhere for uniformity (backup reads audit.archive_dir from it)."""
    from infra.config import Settings
    from infra.db.common import BadDatabaseURL
    from infra.db.store import Database

    try:
        return Database(Settings().database_url)
    except BadDatabaseURL as exc:
        fail(str(exc))


@click.group("db")
def db_group() -> None:
    """Database commands: status, upgrade, downgrade, backup, restore."""


@db_group.command("upgrade")
@CONFIG_OPTION
def db_upgrade(config: str | None) -> None:
    """Apply migrations up to the newest."""
    from infra.db.migrate import code_head

    app = build_app(config, migrate=True)
    app.db.dispose()
    click.echo(f"database at the newest migration ({code_head()})")


@db_group.command("status")
@CONFIG_OPTION
def db_status(config: str | None) -> None:
    """The database's schema revision against this version's; exit 1 unless they match."""
    from infra.db.common import DatabaseUnavailable
    from infra.db.migrate import known_revisions, schema_status

    db = _database()
    try:
        status = schema_status(db.engine)
    except DatabaseUnavailable as exc:
        fail(f"The audit database is unreachable: {exc}")
    finally:
        db.dispose()
    click.echo(f"database: {status.database or 'none'}\ncode: {status.code} (knows {', '.join(known_revisions())})\n"
               f"state: {status.state.value}")
    if not status.current:
        click.echo(f"{status.describe()}. {status.advice()}", err=True)
        sys.exit(1)


@db_group.command("downgrade")
@CONFIG_OPTION
@click.argument("revision")
@click.option("--force", is_flag=True, help="drop the audit data the downgrade destroys (after a backup)")
def db_downgrade(config: str | None, revision: str, force: bool) -> None:
    """Migrate back to REVISION ('base' for nothing). Refuses while that would drop audit data."""
    from infra.db.common import DatabaseUnavailable, SchemaMismatch
    from infra.db.guards import DowngradeRefused
    from infra.db.migrate import downgrade, schema_status

    db = _database()
    try:
        lost = downgrade(db.engine, revision, force=force)
        now = schema_status(db.engine)
    except DowngradeRefused as exc:
        fail(str(exc), 1)
    except SchemaMismatch as exc:
        fail(f"{exc.headline()}. {exc.advice}")
    except DatabaseUnavailable as exc:
        fail(f"The audit database is unreachable: {exc}")
    except ValueError as exc:
        fail(str(exc))
    finally:
        db.dispose()
    for r in lost:
        click.echo(f"dropped (forced): {r.describe()}", err=True)
    click.echo(f"database at {now.database or 'base (no chatops schema)'}; this version's newest is {now.code}")


@db_group.command("backup")
@CONFIG_OPTION
@click.option("--dir", "dest", type=click.Path(file_okay=False, path_type=Path),
              envvar="CHATOPS_BACKUP_DIR", default=Path("/var/backups/chatops"), show_default=True)
@click.option("--keep-days", type=click.IntRange(min=0), envvar="CHATOPS_BACKUP_KEEP_DAYS", default=30,
              show_default=True, help="remove dumps, exports and manifests older than this (0 keeps all)")
@click.option("--archive-dir", "archive_dirs", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="where `audit prune` archives are (default: audit.archive_dir of the config); repeatable")
@click.option("--verify", is_flag=True, help="restore the new dump into a scratch database and verify it there")
@click.option("--scratch-url", envvar="CHATOPS_VERIFY_DATABASE_URL", default=None,
              help="--verify restores into this (emptied) database instead of creating one")
def db_backup(config: str | None, dest: Path, keep_days: int, archive_dirs: tuple[Path, ...], verify: bool,
              scratch_url: str | None) -> None:
    """Dump, CSV export and manifest from one snapshot, with the pruned archives; exit 1 on any problem."""
    from infra.db.backup import BackupError, backup

    dirs = list(archive_dirs) or _archive_dirs(config)
    db = _database()
    try:
        result = backup(db, dest, archive_dirs=dirs, keep_days=keep_days)
        click.echo(f"dump: {result.dump} (schema {result.schema} at {result.revision})")
        if result.export:
            click.echo(f"export: {result.export} ({result.requests} requests, the dump's snapshot)")
        for a in result.archives:
            click.echo(f"archive: {a.copy} (sha256 {a.sha256[:12]}…, events up to {a.through_seq})" if a.copy
                       else f"archive MISSING: {a.name}")
        click.echo(f"manifest: {result.manifest}")
        for note in result.notes:
            click.echo(f"note: {note}", err=True)
        for old in result.removed:
            click.echo(f"removed (older than {keep_days} days): {old.name}")
        problems = list(result.problems)
        if not problems and result.export:
            click.echo("audit chain OK (as dumped)")
        if verify:
            problems += _verify(db, result.dump, [a.copy for a in result.archives if a.copy], scratch_url)
    except BackupError as exc:
        fail(str(exc), 1)
    finally:
        db.dispose()
    for problem in problems:
        click.echo(f"PROBLEM: {problem}", err=True)
    if problems:
        sys.exit(1)


def _verify(db: Database, dump: Path, archives: list[Path], scratch_url: str | None) -> list[str]:
    from infra.db.backup import verify_dump

    checked = verify_dump(db, dump, archives=archives, scratch_url=scratch_url)
    for note in checked.notes:
        click.echo(f"note: {note}", err=True)
    if not checked.problems:
        click.echo(f"verify: {dump.name} restored into scratch database {checked.scratch} (schema "
                   f"{checked.revision}, {checked.requests} requests): audit chain OK"
                   + (f", {counted(len(archives), 'archive')} OK" if archives else ""))
    return [f"verify: {p}" for p in checked.problems]


def _archive_dirs(config: str | None) -> list[Path]:
    from infra.config import ConfigError, load_config

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        fail(f"Configuration error:\n{exc}")
    folder = cfg.inventory.audit.archive_dir
    if not folder:
        return []
    path = Path(folder)
    return [path if path.is_absolute() else cfg.base_dir / path]


@db_group.command("restore")
@CONFIG_OPTION
@click.argument("dump", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--copy-to", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="where the copy of the current contents goes (default: the dump's folder)")
@click.option("--no-privileges", is_flag=True, help="skip the dump's grants (a role it names does not exist here)")
@click.option("--yes", is_flag=True, help="do not ask")
def db_restore(config: str | None, dump: Path, copy_to: Path | None, no_privileges: bool, yes: bool) -> None:
    """Replace the database's contents with DUMP (a chatops backup), in one transaction.

    Everything in the bot's schema is dropped first, so tables of a newer migration do not stay
    behind; what was there is dumped to a copy before. The bot must be stopped."""
    from infra.db.backup import BackupError, read_dump, restore
    from infra.db.migrate import schema_status

    db = _database()
    folder = copy_to or dump.resolve().parent
    try:
        read_dump(dump)
        if not yes:
            click.confirm(f"Replace everything in the audit database ({db.engine.url.render_as_string()}) with "
                          f"{dump.name}? The current contents are dumped to {folder} first.", abort=True)
        done = restore(db, dump, copy_dir=folder, privileges=not no_privileges)
        status = schema_status(db.engine)
    except BackupError as exc:
        fail(str(exc), 1)
    finally:
        db.dispose()
    if done.safety_copy:
        click.echo(f"the previous contents: {done.safety_copy}")
    click.echo(f"restored {dump.name} into schema {done.schema}: {done.requests} requests, {done.events} events; "
               f"schema at {status.database}")
    if not status.current:
        click.echo(f"{status.describe()}. {status.advice()}")
