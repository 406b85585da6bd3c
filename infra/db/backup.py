"""Backups and restores of the audit database (PostgreSQL), with pg_dump, pg_restore and psql.

Backup (`chatops db backup`, run nightly by deploy/backup.sh): one REPEATABLE READ snapshot
is exported and both the dump (`pg_dump --snapshot`) and the CSV export read it, so they hold
the same rows; the dump keeps grants (Grafana's read-only role); the archives that `audit
prune` wrote are copied next to the dumps and checked against the SHA-256 their checkpoints
record; a manifest lists every file with its checksum. `--verify` restores the dump into a
scratch database and runs the audit verification there.

Restore (`chatops db restore FILE`): refuses while a bot process is connected, dumps what is
there now to a safety copy, then in ONE transaction drops every object in the bot's schema and
loads the dump, so nothing the dump does not contain stays behind (a newer migration's
tables would otherwise break the next start's upgrade). On any error nothing changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Executable, Row, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import sessionmaker

from infra.db.common import utcnow
from infra.db.store import AuditStore, Database, _advisory_key
from infra.wording import plural

TOOLS = ("pg_dump", "pg_restore", "psql")
# Objects pg_restore would CREATE/COMMENT on a schema that already exists in the target: skipped.
SCHEMA_ENTRY = re.compile(r"^\d+; \d+ \d+ (SCHEMA|COMMENT) - (SCHEMA )?\S+ ")
TABLE_ENTRY = re.compile(r"^\d+; \d+ \d+ TABLE (?!DATA )(\S+) (\S+) ")
CREATED_SCHEMA = re.compile(r"^\d+; \d+ \d+ SCHEMA - (\S+) ")


class BackupError(Exception):
    """A backup or restore step failed; the message says what, and what was (not) changed."""


# -- connecting the PostgreSQL tools -----------------------------------------------------------
@dataclass(frozen=True)
class PgTarget:
    """A database as libpq sees it: a URI without the password (that goes in PGPASSWORD)."""

    url: URL

    @classmethod
    def of(cls, db: Database) -> PgTarget:
        if not db.is_postgres:
            raise BackupError("Backups and restores with chatops are for PostgreSQL; the embedded SQLite "
                              f"database is one file ({db.engine.url.database}): stop the bot and copy it.")
        return cls(make_url(db.url))

    @property
    def uri(self) -> str:
        return self.url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)

    @property
    def env(self) -> dict[str, str]:
        env = {**os.environ}
        if self.url.password:
            env["PGPASSWORD"] = str(self.url.password)
        return env

    def with_database(self, name: str) -> PgTarget:
        return PgTarget(self.url.set(database=name))


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} is not installed (PostgreSQL client tools; Debian: apt-get install "
                          "postgresql-client, the same major version as the server).")
    return found


def _run(args: Sequence[str], target: PgTarget | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_tool(args[0]), *args[1:]], capture_output=True, text=True,
                          env=target.env if target else None, check=False, **kw)


def _first_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    picked = next((ln for ln in lines if "ERROR" in ln or "error" in ln or "FATAL" in ln), lines[0] if lines else "")
    return picked.split("ERROR:", 1)[-1].strip() or "failed"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_rename(partial: Path, final: Path) -> None:
    with partial.open("rb") as f:
        os.fsync(f.fileno())
    partial.rename(final)


# -- what a dump holds -------------------------------------------------------------------------
@dataclass(frozen=True)
class DumpContents:
    toc: list[str]
    schemas: set[str]  # schemas the dump has tables in (or creates)

    @property
    def is_chatops(self) -> bool:
        return any(m and m.group(2) in ("requests", "audit_events") for m in map(TABLE_ENTRY.match, self.toc))


def read_dump(dump: Path) -> DumpContents:
    if not dump.is_file():
        raise BackupError(f"{dump}: no such file")
    listed = _run(["pg_restore", "--list", str(dump)])
    if listed.returncode != 0:
        raise BackupError(f"{dump} is not a dump pg_restore can read ({_first_error(listed.stderr)}); "
                          "chatops backups are pg_dump --format=custom files (chatops-*.dump).")
    toc = [ln for ln in listed.stdout.splitlines() if ln and not ln.startswith(";")]
    schemas = {m.group(1) for m in map(TABLE_ENTRY.match, toc) if m}
    schemas |= {m.group(1) for m in map(CREATED_SCHEMA.match, toc) if m and m.group(1) != "-"}
    contents = DumpContents(toc, schemas - {"pg_catalog", "information_schema"})
    if not contents.is_chatops:
        raise BackupError(f"{dump} holds no chatops audit tables (requests, audit_events); nothing was changed.")
    return contents


def _search_path(conn: Connection) -> list[str]:
    raw = str(conn.execute(text("SHOW search_path")).scalar_one())
    user = str(conn.execute(text("SELECT current_user")).scalar_one())
    out = []
    for part in (p.strip().strip('"') for p in raw.split(",")):
        out.append(user if part == "$user" else part)
    return out


def target_schema(conn: Connection, dumped: set[str]) -> str:
    """The schema the bot uses on this connection (the first on its search_path the dump holds)."""
    for name in _search_path(conn):
        if name in dumped:
            return name
    raise BackupError(f"The dump holds {plural(len(dumped), 'schema')} {', '.join(sorted(dumped))}, but this "
                      f"database URL's search_path is {', '.join(_search_path(conn))}; nothing was changed.")


# -- who is connected ----------------------------------------------------------------------------
def live_workers(db: Database) -> list[str]:
    """Bot processes holding their liveness lock on this database now (PostgreSQL advisory locks)."""
    with db.engine.connect() as conn:
        if not inspect(conn).has_table("workers"):
            return []
        rows = conn.execute(text("SELECT id, host, started_at FROM workers")).all()
        alive = []
        for wid, host, started in rows:
            free = conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _advisory_key(wid)}).scalar()
            if not free:
                alive.append(f"{wid} on {host}, since {started:%Y-%m-%d %H:%M} UTC")
        conn.rollback()
    return alive


# -- restore ---------------------------------------------------------------------------------------
CLEAN_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS {ident};
DO $clean$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = {literal} AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S', 'c')
  LOOP
    EXECUTE format('DROP %s IF EXISTS %I.%I CASCADE',
                   CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'c' THEN 'TYPE'
                                  WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
                   {literal}, r.relname);
  END LOOP;
  FOR r IN SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE n.nspname = {literal} AND t.typtype IN ('e', 'd', 'r')
  LOOP
    EXECUTE format('DROP TYPE IF EXISTS %I.%I CASCADE', {literal}, r.typname);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS sig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = {literal}
  LOOP
    EXECUTE format('DROP ROUTINE IF EXISTS %s CASCADE', r.sig);
  END LOOP;
END $clean$;
"""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


@dataclass
class RestoreResult:
    dump: Path
    schema: str
    safety_copy: Path | None
    requests: int
    events: int


def restore(db: Database, dump: Path, *, copy_dir: Path | None, privileges: bool = True,
            check_workers: bool = True) -> RestoreResult:
    """Replace the bot's schema with the dump's contents, atomically; keep a copy of what was there."""
    target = PgTarget.of(db)
    contents = read_dump(dump)
    with db.engine.connect() as conn:
        schema = target_schema(conn, contents.schemas)
        had_tables = bool(inspect(conn).get_table_names(schema=schema)) if _schema_exists(conn, schema) else False
    if check_workers:
        alive = live_workers(db)
        if alive:
            raise BackupError("The bot is running on this database (" + "; ".join(alive) + "): stop it first "
                              "(systemctl stop chatops, or docker compose ... stop bot); nothing was changed.")
    copy: Path | None = None
    if had_tables and copy_dir is not None:
        copy = copy_dir / f"chatops-before-restore-{utcnow():%Y%m%dT%H%M%S%fZ}.dump"
        dump_schema(target, schema, copy)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="chatops-restore-") as tmp:
        # The schemas stay (their owner and grants are the target's); everything in them is replaced.
        listing = Path(tmp) / "toc.list"
        listing.write_text("".join(f";{ln}\n" if SCHEMA_ENTRY.match(ln) else f"{ln}\n" for ln in contents.toc))
        clean = "".join(CLEAN_SCHEMA.format(ident=_ident(s), literal=_literal(s)) for s in sorted(contents.schemas))
        _load(target, dump, listing, clean, privileges)
    with db.engine.connect() as conn:
        conn.execute(text(f"SET search_path TO {_ident(schema)}"))
        requests = int(conn.execute(text("SELECT count(*) FROM requests")).scalar_one())
        events = int(conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one())
    return RestoreResult(dump, schema, copy, requests, events)


def _schema_exists(conn: Connection, schema: str) -> bool:
    return bool(conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first())


def _load(target: PgTarget, dump: Path, listing: Path, clean: str, privileges: bool) -> None:
    """pg_restore's SQL, after the cleaning statements, through psql in one transaction."""
    import tempfile

    args = ["--no-owner", "--use-list", str(listing), "--file", "-", str(dump)]
    if not privileges:
        args.insert(0, "--no-privileges")
    with tempfile.TemporaryFile() as script_log, tempfile.TemporaryFile() as psql_log:
        script = subprocess.Popen([_tool("pg_restore"), *args], stdout=subprocess.PIPE, stderr=script_log)
        psql = subprocess.Popen([_tool("psql"), "--no-psqlrc", "--quiet", "--single-transaction",
                                 "-v", "ON_ERROR_STOP=1", "--dbname", target.uri],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_log, env=target.env)
        assert script.stdout is not None and psql.stdin is not None
        try:
            psql.stdin.write(b"SET client_min_messages = warning;\n" + clean.encode())
            shutil.copyfileobj(script.stdout, psql.stdin, 1 << 20)
            psql.stdin.close()
        except BrokenPipeError:
            pass  # psql stopped at the first error: its message says why
        script.stdout.close()
        script.wait()
        psql.wait()
        script_log.seek(0)
        psql_log.seek(0)
        script_err = script_log.read().decode(errors="replace")
        psql_err = psql_log.read().decode(errors="replace")
    if psql.returncode != 0 or script.returncode != 0:
        err = _first_error(psql_err or script_err)
        hint = ""
        role = re.search(r'role "([^"]+)" does not exist', psql_err)
        if role:
            hint = (f" The dump grants rights to role {role.group(1)}, which this server lacks: create it "
                    "first (docs/operations.md, \"Dashboards\"), or restore with --no-privileges.")
        raise BackupError(f"Restoring {dump.name} failed: {err}. Nothing was changed (one transaction).{hint}")


def dump_schema(target: PgTarget, schema: str, out: Path, snapshot: str | None = None) -> None:
    """pg_dump of one schema (custom format, grants kept, owners not), written atomically."""
    partial = out.with_name(out.name + ".partial")
    args = ["pg_dump", "--format=custom", "--no-owner", f"--schema={schema}", "--file", str(partial)]
    if snapshot:
        args.append(f"--snapshot={snapshot}")
    done = _run([*args, target.uri], target)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed: {_first_error(done.stderr)}")
    os.chmod(partial, 0o600)
    _fsync_rename(partial, out)


# -- backup --------------------------------------------------------------------------------------
@dataclass
class ArchiveCopy:
    name: str
    through_seq: int
    sha256: str
    copy: Path | None = None
    problem: str | None = None


@dataclass
class BackupResult:
    dump: Path
    manifest: Path
    export: Path | None
    requests: int
    schema: str
    revision: str | None
    archives: list[ArchiveCopy] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # chain or archive problems: the backup exits 1
    notes: list[str] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


class _Pinned(Database):
    """A Database whose sessions all run in one connection's open transaction (never committed)."""

    def __init__(self, db: Database, conn: Connection) -> None:  # no super(): no new engine
        self.url, self.engine, self.conn = db.url, db.engine, conn
        self.sessions = sessionmaker(bind=conn, expire_on_commit=False)

    def rows(self, stmt: Executable, params: dict[str, Any] | None = None) -> list[Row[Any]]:
        """In the snapshot too, not on the reader pool (which would see later writes)."""
        return list(self.conn.execute(stmt, params))


@contextmanager
def snapshot(db: Database) -> Iterator[tuple[Connection, str, Database]]:
    """A read-only REPEATABLE READ transaction, its exported snapshot id, and the same database seen
    through it (an AuditStore on that reads what pg_dump --snapshot dumps)."""
    with db.engine.connect() as raw:
        conn = raw.execution_options(isolation_level="REPEATABLE READ")
        conn.execute(text("SET TRANSACTION READ ONLY"))
        snap = str(conn.execute(text("SELECT pg_export_snapshot()")).scalar_one())
        try:
            yield conn, snap, _Pinned(db, conn)
        finally:
            conn.rollback()


def backup(db: Database, dest: Path, *, archive_dirs: Sequence[Path] = (), keep_days: int = 0,
           now: datetime | None = None) -> BackupResult:
    """Dump, CSV export and manifest from one snapshot; copy and check the pruned archives."""
    from alembic.runtime.migration import MigrationContext

    from infra.db.migrate import code_head

    target = PgTarget.of(db)
    now = now or utcnow()
    stamp = f"{now:%Y%m%dT%H%M%SZ}"
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    dump = dest / f"chatops-{stamp}.dump"
    if dump.exists():
        raise BackupError(f"{dump} exists already; wait a second and run it again.")
    with snapshot(db) as (conn, snap, pinned):
        schema = str(conn.execute(text("SELECT current_schema()")).scalar_one())
        heads = MigrationContext.configure(conn).get_current_heads()
        revision = ",".join(heads) or None
        dump_schema(target, schema, dump, snapshot=snap)
        result = BackupResult(dump, dest / f"chatops-{stamp}.json", None, 0, schema, revision)
        store = AuditStore(pinned)
        if heads == (code_head(),):
            export = dest / f"audit-{stamp}.csv"
            partial = export.with_name(export.name + ".partial")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(store.export("csv"))
            _fsync_rename(partial, export)
            result.export = export
            result.problems.extend(f"the dumped chain: {p}" for p in store.verify())
        else:
            result.notes.append(f"no CSV export and no chain check: the schema is at {revision}, this version's "
                                f"is {code_head()} (the dump is complete; restore it and upgrade to read it)")
        result.requests = int(conn.execute(text("SELECT count(*) FROM requests")).scalar_one())
        checkpoints: list[Any] = []
        if inspect(conn).has_table("audit_checkpoints"):
            checkpoints = [*conn.execute(text("SELECT archive, archive_sha256, seq FROM audit_checkpoints "
                                            "ORDER BY seq"))]
    for name, digest, seq in checkpoints:
        result.archives.append(_copy_archive(str(name), str(digest), int(seq), archive_dirs, dest / "archives"))
    result.problems.extend(a.problem for a in result.archives if a.problem)
    _write_manifest(result, now, revision)
    if keep_days > 0:
        result.removed = _remove_old(dest, now - timedelta(days=keep_days), keep={dump, result.manifest})
    return result


def _copy_archive(name: str, digest: str, seq: int, dirs: Sequence[Path], into: Path) -> ArchiveCopy:
    """Copy an archive `audit prune` wrote (found by name in `dirs`, or already copied) if its SHA-256
    is the one its checkpoint recorded."""
    item = ArchiveCopy(name, seq, digest)
    into.mkdir(parents=True, exist_ok=True, mode=0o700)
    have = into / name
    if have.is_file() and sha256(have) == digest:
        item.copy = have
        return item
    for folder in dirs:
        source = folder / name
        if not source.is_file():
            continue
        if sha256(source) != digest:
            item.problem = (f"archive {source} does not match the SHA-256 its checkpoint recorded ({digest}): "
                            "edited or replaced; the backup keeps the checkpoint, not this file")
            return item
        copy = have if not have.exists() else into / f"{name}.{digest[:12]}"
        partial = copy.with_name(copy.name + ".partial")
        shutil.copyfile(source, partial)
        os.chmod(partial, 0o600)
        _fsync_rename(partial, copy)
        item.copy = copy
        return item
    looked = ", ".join(str(d) for d in dirs) or "no folder (set audit.archive_dir or pass --archive-dir)"
    item.problem = (f"archive {name} (events up to {seq}, sha256 {digest}) is not in {looked}: the history before "
                    f"event {seq + 1} lives only in that file; copy it into {into}")
    return item


def _write_manifest(result: BackupResult, now: datetime, revision: str | None) -> None:
    from infra.db.migrate import code_head

    def rel(p: Path | None) -> str | None:
        return str(p.relative_to(result.dump.parent)) if p else None

    data = {
        "kind": "chatops-backup", "version": 1, "created_at": now.isoformat(),
        "schema": {"name": result.schema, "revision": revision, "code": code_head()},
        "dump": {"file": rel(result.dump), "sha256": sha256(result.dump)},
        "export": ({"file": rel(result.export), "sha256": sha256(result.export), "requests": result.requests,
                    "same_snapshot_as_dump": True} if result.export else None),
        "archives": [{"name": a.name, "through_seq": a.through_seq, "sha256": a.sha256, "file": rel(a.copy),
                      "problem": a.problem} for a in result.archives],
        "problems": result.problems, "notes": result.notes,
    }
    partial = result.manifest.with_name(result.manifest.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    _fsync_rename(partial, result.manifest)


def _remove_old(dest: Path, before: datetime, keep: set[Path]) -> list[Path]:
    """Dumps, exports and manifests older than the keep period. Archive copies and the copies
    `chatops db restore` made of what it replaced stay: they are history, not rotation."""
    removed = []
    cutoff = before.timestamp()
    for pattern in ("chatops-*.dump", "audit-*.csv", "chatops-*.json"):
        for p in dest.glob(pattern):
            if p.name.startswith("chatops-before-restore-"):
                continue
            if p not in keep and p.stat().st_mtime < cutoff:
                p.unlink()
                removed.append(p)
    return removed


# -- verify a dump in a scratch database --------------------------------------------------------
@dataclass
class VerifyResult:
    dump: Path
    scratch: str
    revision: str | None
    requests: int
    problems: list[str]
    notes: list[str]


def verify_dump(db: Database, dump: Path, *, archives: Sequence[Path] = (), scratch_url: str | None = None) -> \
        VerifyResult:
    """Restore `dump` into a scratch database (a new one, dropped afterwards, unless `scratch_url` names
    one), bring it to this code's schema there, and run the audit verification on it."""
    from infra.db.migrate import SchemaState, schema_status
    from infra.db.retention import verify_archive

    target = PgTarget.of(db)
    name = None
    if scratch_url is None:
        base = str(target.url.database or "chatops")[:30]
        name = f"{base}_verify_{int(time.time() * 1000) % 10**10}_{os.getpid()}"
        _admin(db, f"CREATE DATABASE {_ident(name)}",
               "--verify creates a scratch database: the database role needs CREATEDB, or pass "
               "--scratch-url (CHATOPS_VERIFY_DATABASE_URL) naming an empty database it may replace")
        scratch = Database(target.with_database(name).url.render_as_string(hide_password=False))
    else:
        scratch = Database(scratch_url)
    notes: list[str] = []
    try:
        done = restore(scratch, dump, copy_dir=None, check_workers=False)
        status = schema_status(scratch.engine)
        problems: list[str] = []
        if status.state is SchemaState.NEWER:
            problems.append(f"cannot verify here: {status.describe()}")
        else:
            if not status.current:
                scratch.migrate()
                notes.append(f"the dump's schema {status.database} was upgraded to {status.code} in the scratch copy")
            problems.extend(AuditStore(scratch).verify())
        for path in archives:
            problems.extend(f"{path.name}: {p}" for p in verify_archive(path))
        return VerifyResult(dump, name or str(make_url(scratch_url or "").database), status.database,
                            done.requests, problems, notes)
    finally:
        scratch.dispose()
        if name is not None:
            _admin(db, f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)", "could not drop the scratch database")


def _admin(db: Database, sql: str, why: str) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(sql))
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise BackupError(f"{why}: {detail}") from exc
