"""The `chatops` command line (spec section 6)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from bot.cli_support import CONFIG_OPTION
from bot.cli_support import build_app as _build
from bot.cli_support import fail as _fail
from infra.config import ConfigError
from infra.wording import counted


class _Main(click.Group):
    """The command group: a configuration problem found anywhere under any subcommand (the file, an
    environment variable such as CHATOPS_AUDIT_UNKEYED) is its message and exit 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            _fail(f"Configuration error:\n{exc}")
        except OSError as exc:
            if exc.filename is None:
                raise
            # a path given on the command line that cannot be written or read (-o /no/such/dir/x.csv)
            _fail(f"{exc.filename}: {exc.strerror or exc}. Nothing was written there.")


@click.group(cls=_Main)
@click.option("--env-file", "env_file", envvar="CHATOPS_ENV_FILE", default=None,
              type=click.Path(dir_okay=False),
              help="read variables (secrets) from this file first, as 'chatops init' writes it")
def main(env_file: str | None) -> None:
    """chatops: run the team's infrastructure from chat."""
    if env_file:
        from bot.setup import AnswersError, load_env_file

        try:
            load_env_file(env_file)
        except AnswersError as exc:
            _fail(str(exc))


@main.command()
@click.option("--answers", type=click.Path(dir_okay=False), default=None,
              help="answers file (YAML, see docs/setup.md) instead of questions at the terminal")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=".", show_default=True,
              help="folder for chatops.yaml and chatops.env")
@click.option("--force", is_flag=True, help="replace existing files")
@click.option("--no-check", is_flag=True, help="write without checking the answers live")
def init(answers: str | None, out_dir: str, force: bool, no_check: bool) -> None:
    """Ask what the team has, check each answer live, write a commented config and an env file."""
    from bot.setup import AnswersError, build, interview, read_answers, write
    from infra.config import load_config

    try:
        if answers:
            given = read_answers(answers)
        elif sys.stdin.isatty():
            given = interview(lambda q, d: click.prompt(q, default=d, show_default=bool(d)),
                              lambda q: click.confirm(q, default=False))
        else:
            _fail("No terminal to ask at: pass --answers FILE (see docs/setup.md).")
        result = build(given, live=not no_check)
    except AnswersError as exc:
        _fail(f"Answers: {exc}")
    folder = Path(out_dir)
    config_path, env_path = folder / "chatops.yaml", folder / "chatops.env"
    try:
        write(result, config_path, env_path, force=force)
    except (FileExistsError, OSError) as exc:
        _fail(str(exc))
    for check in result.checks:
        click.echo(check.render())
    import os

    saved = dict(os.environ)
    try:
        from bot.setup import load_env_file

        load_env_file(str(env_path))
        load_config(config_path)
        valid = "valid"
    except ConfigError as exc:
        valid = f"NOT valid:\n{exc}"
    finally:
        os.environ.clear()
        os.environ.update(saved)
    click.echo(f"wrote {config_path} ({valid}) and {env_path} (mode 600, {counted(len(result.env), 'secret')}).")
    click.echo(f"Next: chatops --env-file {env_path} doctor --config {config_path}")
    failed = [c for c in result.checks if not c.ok]
    if failed or valid != "valid":
        sys.exit(1)


@main.command()
@CONFIG_OPTION
def doctor(config: str | None) -> None:
    """Every check of 'config check' and 'health', live; per failure the exact fix. Exit 1 if any failed."""
    from bot.doctor import run as run_doctor
    from infra.redact import mask_credentials

    found = run_doctor(config)
    # A check quotes the URL it tried, which may carry a password (https://admin:pw@host).
    for check in found:
        click.echo(mask_credentials(check.render()))
    failed = [c for c in found if not c.ok]
    click.echo(f"{len(found) - len(failed)} ok, {len(failed)} to fix." if failed else f"all {len(found)} checks ok.")
    if failed:
        sys.exit(1)


LOCAL_OPTION = click.option("--local/--no-local", "local", default=True, show_default=True,
                            help="on the embedded defaults, offer this machine's Docker engine as 'local' "
                                 "and 'local-prod' with the example stack (a configured inventory is never "
                                 "changed)")


def _prepare(config: str | None, user: str, local: bool) -> tuple[Any, Any, list[str]]:
    """State folder, app (with the local environments on the embedded defaults) and start-up notes."""
    import os

    from bot.state import LocalState

    state = LocalState.find()
    notes = [n for n in [state.note()] if n]
    database_url = None
    if not os.environ.get("DATABASE_URL"):
        try:
            database_url, moved = state.sqlite_url()
        except OSError as exc:
            _fail(f"{exc}. Set DATABASE_URL, or CHATOPS_STATE_DIR to a writable folder.")
        if moved:
            notes.append(moved)
    extra = engine = None
    if local and config is None:
        from bot.local import find_engine, intro, no_engine, overlay

        engine, tried = find_engine()
        if engine is None:
            notes += no_engine(tried)
        else:
            extra = overlay(engine, user)
    app = _build(config, migrate=True, database_url=database_url, overlay=extra)  # the bot's start migrates
    if extra is not None and engine is not None:
        approver = next((u for u in app.engine.approvers(user) if u.startswith("console:")), None)
        notes += intro(engine, user, approver)
    return state, app, notes


@main.command()
@CONFIG_OPTION
@click.option("--as", "user", default=None, help="act as USER (console:USER unless prefixed)")
@LOCAL_OPTION
def console(config: str | None, user: str | None, local: bool) -> None:
    """Interactive chat with the bot in the terminal."""
    from bot import heap
    from bot.adapters.console import default_user, interactive
    from bot.request import Actor

    actor = Actor.parse(user or default_user())
    state, app, notes = _prepare(config, actor.id, local)

    async def go() -> None:
        try:
            interrupted = await app.engine.start()
        except ConfigError as exc:
            await app.close()
            _fail(f"Configuration error:\n{exc}")
        for row in interrupted:
            click.echo(f"! request {row.id} ({row.command}) was interrupted by a restart.")
        # On its own SQLite file the console is the only bot: it runs schedules. On a shared database the
        # team's `chatops serve` does, and a console there (someone's laptop) must not run them too.
        alone = not app.db.is_postgres
        notes.append("Schedules made here run while this console is open." if alone else
                     "Schedules are run by 'chatops serve' on this database, not by this console.")
        try:
            await interactive(app.engine, actor, state, notes, schedules=alone)
        finally:
            await app.close()

    heap.settle()
    asyncio.run(go())


@main.command()
@CONFIG_OPTION
@click.option("--as", "user", required=True, help="act as USER (console:USER unless prefixed)")
@click.option("--yes", is_flag=True, help="give the confirmation a changing command asks for")
@LOCAL_OPTION
@click.argument("text", nargs=-1, required=True)
def run(config: str | None, user: str, yes: bool, local: bool, text: tuple[str, ...]) -> None:
    """One request as USER; print the reply; exit non-zero if it failed or was refused."""
    from bot.adapters.console import exit_code, run_once
    from bot.request import Actor

    actor = Actor.parse(user)
    state, app, notes = _prepare(config, actor.id, local)
    for note in notes:
        if note.startswith("!"):
            click.echo(note, err=True)

    async def go() -> int:
        try:
            await app.engine.start()
            reply = await run_once(app.engine, actor, " ".join(text), yes=yes, state=state)
            return exit_code(reply)
        except ConfigError as exc:
            click.echo(f"Configuration error:\n{exc}", err=True)
            return 2
        finally:
            await app.close()

    sys.exit(asyncio.run(go()))


@main.command()
@CONFIG_OPTION
@click.option("--json", "as_json", is_flag=True, help="print exactly one JSON object per request")
@click.option("--llm/--no-llm", "use_llm", default=None, help="force or forbid the LLM route")
@click.argument("text", nargs=-1, required=True)
def parse(config: str | None, as_json: bool, use_llm: bool | None, text: tuple[str, ...]) -> None:
    """Print the plan for TEXT (or for each line of stdin with '-'); no side effects."""
    from commands.registry import PluginError, registry
    from infra.config import load_config
    from llm.planner import Planner

    try:
        cfg = load_config(config)  # (a ConfigError is the command group's: _Main)
        reg = registry(cfg.inventory.plugins)
    except PluginError as exc:
        _fail(str(exc))
    planner = Planner(cfg, reg)
    from llm.validate import validate

    async def one(line: str) -> None:
        plan = await planner.plan(line, use_llm=use_llm)
        usage, when = plan.usage, plan.when
        plan = validate(plan, planner.resolver, planner.registry, text=line,
                        require_mentioned=plan.source == "llm")
        plan.when = when  # "at 22:00 today": shown as `when`, the plan itself is the rest
        if as_json:
            click.echo(plan.to_json())
        else:
            click.echo(f"command: {plan.command}\nargs: {json.dumps(plan.args)}\n"
                       f"source: {plan.source}\nclarify: {plan.clarify}")
            if usage:
                click.echo("usage: " + " ".join(f"{k}={v:g}" for k, v in usage.items()))

    async def each() -> None:  # one event loop for every line: the LLM client's HTTP pool lives in it
        joined = " ".join(text)
        if joined != "-":
            await one(joined)
            return
        # Bytes, decoded leniently: a stray binary line gets a plan (none) instead of a traceback.
        for raw in sys.stdin.buffer:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.strip():
                await one(line)

    asyncio.run(each())


@main.group("config")
def config_group() -> None:
    """Configuration commands."""


@config_group.command("check")
@CONFIG_OPTION
def config_check(config: str | None) -> None:
    """Validate the configuration and exit (0 valid, 2 invalid)."""
    from infra.config import load_config

    cfg = load_config(config)  # (a ConfigError is the command group's: _Main)
    from bot.policy import unknown_channel_commands
    from commands.registry import registry

    unknown = unknown_channel_commands(cfg, registry())
    if unknown:
        _fail("Configuration error:\n" + "\n".join(f"{cfg.path}: {u}" for u in unknown))
    inv = cfg.inventory
    click.echo(f"{cfg.path}: OK ({len(inv.environments)} environments, {len(inv.stacks)} stacks, "
               f"{len(inv.vms)} VMs, {len(inv.users)} users)")
    for key, var in sorted(cfg.unset_env.items()):  # valid, but that part stays unconfigured
        click.echo(f"warning: {key} is ${{{var}}}, and {var} is not set; it is left empty.", err=True)
    if cfg.settings.database_url:
        _check_schema(cfg.settings.database_url)


def _check_schema(url: str) -> None:
    """The database's schema against this code's, read only: a newer one stops the bot (exit 1);
    an older one is what the bot's start migrates (a warning); an unreachable one is only a warning."""
    from infra.db.common import DatabaseUnavailable
    from infra.db.migrate import SchemaState, schema_status
    from infra.db.store import Database

    try:
        db = Database(url)
    except Exception as exc:  # an unknown driver in the URL: the bot's start says so in full
        click.echo(f"warning: DATABASE_URL is not usable, the schema is unchecked: {exc}", err=True)
        return
    try:
        status = schema_status(db.engine)
    except DatabaseUnavailable as exc:
        click.echo(f"warning: the audit database did not answer, its schema is unchecked: {exc}", err=True)
        return
    finally:
        db.dispose()
    if status.current:
        click.echo(f"database: schema {status.database} (this version's newest)")
    elif status.state is SchemaState.NEWER:
        _fail(f"{status.describe()}. {status.advice()}", 1)
    else:
        click.echo(f"warning: {status.describe()}. {status.advice()}", err=True)


@main.group("audit")
def audit_group() -> None:
    """Audit log commands."""


@audit_group.command("verify")
@CONFIG_OPTION
@click.option("--archive", "archives", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="also check an archive written by 'audit prune' (repeatable)")
@click.option("--file", "files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="check an export ('audit export --format json') or an archive offline, without the "
                   "database (repeatable)")
@click.option("--head", "heads", multiple=True, metavar="SEQ:LINK",
              help="a chain head the bot logged earlier ('audit chain head SEQ:LINK'); it must still be in "
                   "the chain (repeatable)")
@click.option("--heads-from", "heads_from", type=click.File("r"), default=None, metavar="LOGFILE",
              help="take every 'audit chain head' from a log file ('-' for stdin, e.g. from journalctl)")
@click.option("--unkeyed-until", "unkeyed_until", type=click.IntRange(min=0), default=0, metavar="SEQ",
              help="the chain was keyed only after event SEQ: accept unkeyed events up to there")
def audit_verify(config: str | None, archives: tuple[str, ...], files: tuple[str, ...], heads: tuple[str, ...],
                 heads_from: Any, unkeyed_until: int) -> None:
    """Check the audit chain: every seal and link, every request row against its events.

    Exit 0 when intact, 1 when anything was edited, deleted or inserted (the first broken
    row is listed first), 2 when it cannot be checked (no database, a bad argument, keyed
    events and no CHATOPS_AUDIT_KEY).
    """
    from bot.app import audit_keys
    from infra.config import Settings
    from infra.db.chain import parse_head

    try:
        anchors = [parse_head(h) for h in heads]
    except ValueError as exc:
        _fail(f"--head: {exc}")
    if heads_from is not None:
        anchors += _logged_heads(heads_from.read())
    keys = audit_keys(Settings())  # (a ConfigError is the command group's: _Main)
    checked = [(p, _check_file(Path(p), keys, anchors, unkeyed_until)) for p in (*archives, *files)]
    if not files or archives:
        app = _build(config)
        try:
            checked.append((DATABASE, app.engine.store.check(anchors, unkeyed_until)))
        finally:
            app.db.dispose()
    _finish(checked, keys, len(archives))


DATABASE = "the audit database"


def _logged_heads(text: str) -> list[tuple[int, str]]:
    import re

    from infra.db.chain import parse_head

    found = [parse_head(m.group(1)) for m in re.finditer(r"audit chain head (\d+:[0-9a-f]{64})", text)]
    if not found:
        _fail("no 'audit chain head SEQ:LINK' line in the log given to --heads-from")
    return found


def _check_file(path: Path, keys: Any, heads: list[tuple[int, str]], unkeyed_until: int) -> Any:
    """An export (JSON) or a retention archive (gzip JSON lines), checked without the database."""
    from infra import untrusted_json
    from infra.db.chain import check_records
    from infra.db.retention import check_archive
    from infra.db.store import AuditStore

    def cannot(why: object) -> NoReturn:  # exit 2: the file is no export this command can check
        _fail(f"{path}: cannot be checked: {why}. An export that was edited this way is not to be trusted.")

    try:
        if path.read_bytes()[:2] == b"\x1f\x8b":
            return check_archive(path, keys, heads, unkeyed_until)
        data = untrusted_json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, EOFError) as exc:
        cannot(f"it cannot be read as an export ({exc})")
    if not isinstance(data, dict) or data.get("kind") != AuditStore.EXPORT_KIND:
        cannot("it is not a chatops audit export ('chatops audit export --format json' writes one)")
    try:
        start = data.get("start") or {}
        head = data.get("head") or None
        return check_records(
            data.get("requests") or [], data.get("events") or [], keys,
            start=(int(start.get("seq", 0)), str(start.get("hash", "0" * 64))),
            end=(int(head["seq"]), str(head["hash"])) if head else None,
            segment_from=int(data.get("segment_from") or 0), complete=bool(data.get("complete", True)),
            heads=heads, unkeyed_until=unkeyed_until)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        # a field of another type or shape than the export writes (a seq that is no number, a date that is
        # not ISO, an event that is a string)
        cannot(f"a field is not what 'chatops audit export' writes ({type(exc).__name__}: {exc})")


def _finish(checked: list[tuple[str, Any]], keys: Any, archives: int) -> None:
    """Print each report (problems first, the first broken row first) and exit 0, 1 or 2."""
    bad = cannot = False
    for name, report in checked:
        for i, problem in enumerate(report.problems):
            click.echo(f"TAMPERED: {name}: {'first broken row: ' if i == 0 else ''}{problem}")
        for line in report.summary(keys):
            click.echo(f"  {name}: {line}")
        bad = bad or not report.ok
        cannot = cannot or bool(report.unchecked)
    if bad:
        sys.exit(1)
    if cannot:
        click.echo("Not fully checked: some events are keyed with a key that was not given "
                   "(set CHATOPS_AUDIT_KEY).", err=True)
        sys.exit(2)
    if archives:
        click.echo(f"{counted(archives, 'archive')} OK")
    for name, _ in checked[archives:]:
        click.echo("audit chain OK" if name == DATABASE else f"{name}: OK")


@audit_group.command("keygen")
def audit_keygen() -> None:
    """Print a new random key for CHATOPS_AUDIT_KEY (keep it outside the database, e.g. in the
    secret store that holds the bot's tokens)."""
    from infra.db.chain import key_id, keygen

    key = keygen()
    click.echo(key)
    click.echo(f"key id {key_id(key.encode())}: set CHATOPS_AUDIT_KEY to the line above in the bot's "
               "environment; 'audit verify' needs it too.", err=True)


@audit_group.command("export")
@CONFIG_OPTION
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              help="csv: a table for people; json: requests, events and links, verifiable offline with "
                   "'chatops audit verify --file'")
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None)
@click.option("--since", default=None, help="15m, 2h, 1d or an ISO date")
def audit_export(config: str | None, fmt: str, output: str | None, since: str | None) -> None:
    """Export the audit log (csv: newest first; json: the chain with its requests)."""
    from infra.db.common import AuditFilter
    from llm.values import parse_since

    after = parse_since(since) if since else None
    if since and after is None:
        _fail(f"--since takes 15m, 2h, 1d or an ISO date, not '{since}'")
    app = _build(config)
    data = app.engine.store.export(fmt, AuditFilter(since=after, limit=10**9))
    app.db.dispose()
    if output:
        Path(output).write_text(data)
        click.echo(f"wrote {output}")
    else:
        click.echo(data, nl=False)


@audit_group.command("prune")
@CONFIG_OPTION
@click.option("--days", type=click.IntRange(min=1, max=36500), default=None,
              help="keep this many days (default: audit.retention_days from the config)")
@click.option("--archive", type=click.Path(dir_okay=False), default=None,
              help="archive file to write (default: audit.archive_dir/chatops-audit-DATE.jsonl.gz)")
@click.option("--dry-run", is_flag=True, help="say what would be archived; change nothing")
def audit_prune(config: str | None, days: int | None, archive: str | None, dry_run: bool) -> None:
    """Archive finished requests older than the retention period, then delete them.

    The chain stays verifiable: see docs/operations.md (retention)."""
    from datetime import timedelta

    from infra.db.common import utcnow
    from infra.db.retention import prune

    app = _build(config)
    retention = app.config.inventory.audit
    keep = days or retention.retention_days
    if keep is None:
        _fail("No retention period: pass --days N or set audit.retention_days in the config.")
    assert keep is not None
    now = utcnow()
    target: Path | None = Path(archive) if archive else None
    if target is None and retention.archive_dir:
        folder = Path(retention.archive_dir)
        if not folder.is_absolute():
            folder = app.config.base_dir / folder
        target = folder / f"chatops-audit-{now:%Y%m%dT%H%M%SZ}.jsonl.gz"
    if target is None and not dry_run:
        _fail("Name an archive: --archive FILE, or set audit.archive_dir in the config. "
              "Pruning never deletes without an archive.")
    if target is not None and target.exists():
        _fail(f"{target} exists already; pick another name.")
    try:
        result = prune(app.engine.store, now - timedelta(days=keep), target, dry_run=dry_run)
    except ConfigError as exc:  # a keyed chain and no (or another) CHATOPS_AUDIT_KEY
        app.db.dispose()
        _fail(f"Configuration error:\n{exc}")
    app.db.dispose()
    if result.requests == 0:
        click.echo(f"nothing older than {keep} days to prune")
    elif dry_run:
        click.echo(f"would archive {counted(result.requests, 'request')}, {counted(result.events, 'event')}, "
                   f"up to event {result.through_seq}")
    else:
        click.echo(f"archived {counted(result.requests, 'request')}, {counted(result.events, 'event')} to "
                   f"{result.archive} (sha256 {result.archive_sha256}); the chain now starts after event "
                   f"{result.through_seq}")


ADAPTERS = ("slack", "discord", "api")
# Platforms with ops channels: each adapter module offers a `poster(settings)` for them.
POSTING = ("slack", "discord")


@main.command()
@CONFIG_OPTION
@click.argument("adapters", nargs=-1, type=click.Choice(ADAPTERS), envvar="CHATOPS_ADAPTERS")
@click.option("--http", is_flag=True, help="Slack: HTTP mode instead of Socket Mode")
@click.option("--port", type=int, default=None,
              help="Slack HTTP port (127.0.0.1; default 3000), or the API's port when Slack does not listen "
                   "over HTTP here (default 8080)")
@click.option("--api-port", "api_port", envvar="CHATOPS_API_PORT", type=int, default=None,
              help="the HTTP API's port (default: --port when Slack does not use it, else 8080)")
@click.option("--api-host", "api_host", envvar="CHATOPS_API_HOST", default="127.0.0.1", show_default=True,
              help="the HTTP API's address (0.0.0.0 in a container)")
@click.option("--no-schedules", "no_schedules", is_flag=True, envvar="CHATOPS_NO_SCHEDULES",
              help="do not run scheduled requests in this process")
@click.option("--metrics-port", "metrics", envvar="CHATOPS_METRICS_PORT", default="127.0.0.1:9464",
              show_default=True, help="/metrics and /healthz on [HOST:]PORT, or 'off'")
@click.option("--grace", "grace", envvar="CHATOPS_SHUTDOWN_GRACE", type=float, default=30.0, show_default=True,
              help="seconds running jobs get to finish on SIGTERM before they are recorded as interrupted")
@click.option("--log-format", envvar="CHATOPS_LOG_FORMAT", type=click.Choice(["json", "text"]), default="json",
              show_default=True, help="one JSON object per line, or plain text")
@click.option("--log-level", envvar="CHATOPS_LOG_LEVEL", default="INFO", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False))
def serve(config: str | None, adapters: tuple[str, ...], http: bool, port: int | None, api_port: int | None,
          api_host: str, no_schedules: bool, metrics: str, grace: float, log_format: str, log_level: str) -> None:
    """Run chat adapters and the HTTP API (slack, discord, api, in any combination) in one process;
    scheduled requests run here too. SIGTERM stops it gracefully."""
    import importlib

    from bot import heap
    from bot.logs import setup_logging
    from bot.ops_http import parse_address
    from bot.serve import AdapterFailed, serve_app

    if not adapters:
        _fail("Name at least one adapter: chatops serve slack | discord | api | slack discord api "
              "(or set CHATOPS_ADAPTERS)")
    slack_listens = "slack" in adapters and http
    if api_port is None:
        from bot.http_api import DEFAULT_PORT as API_PORT

        api_port = port if port is not None and not slack_listens else API_PORT
    port = port if port is not None else 3000
    if "api" in adapters and slack_listens and api_port == port:
        _fail(f"Slack's HTTP mode and the API both want port {port}: give the API --api-port.")
    try:
        address = parse_address(metrics)
    except ValueError as exc:
        _fail(f"--metrics-port: {exc}")
    setup_logging(log_format, log_level)
    app = _build(config, migrate=True)  # the bot's start migrates
    settings = app.config.settings
    if app.db.is_postgres and not app.engine.store.keys.keyed and not settings.chatops_audit_unkeyed:
        app.db.dispose()
        _fail("CHATOPS_AUDIT_KEY is not set: a production bot keys its audit chain, so that nobody with "
              "write access to the database can rewrite it unnoticed. Make a key with 'chatops audit keygen' "
              "and set it in the bot's environment (docs/safety.md), or set CHATOPS_AUDIT_UNKEYED=1 to run "
              "without one (a trial, not production).")
    mods = [(name, _adapter(name, api_port, api_host)) for name in dict.fromkeys(adapters)]
    # Ops channels of platforms whose adapter does not run here are still posted to (approval cards
    # of API requests, alerts, outcomes), with the platform's token alone.
    posters = [p for name in POSTING if name not in adapters
               if (p := importlib.import_module(f"bot.adapters.{name}").poster(app.config.settings)) is not None]
    heap.settle()
    try:
        asyncio.run(serve_app(app, mods, http=http, port=port, metrics=address, grace_s=grace, posters=posters,
                              schedules=not no_schedules))
    except AdapterFailed as exc:
        _fail(f"An adapter stopped with an error: {exc}", 1)


def _adapter(name: str, api_port: int, api_host: str) -> Any:
    import importlib

    if name != "api":
        return importlib.import_module(f"bot.adapters.{name}").serve
    from bot import http_api

    async def api(app: Any, *, http: bool, port: int, stop: asyncio.Event) -> None:
        await http_api.serve(app, http=http, port=api_port, stop=stop, host=api_host)

    return api


@main.group("api")
def api_group() -> None:
    """The HTTP API: tokens and its OpenAPI description."""


@api_group.group("token")
def api_token_group() -> None:
    """Automation tokens (identities api:NAME)."""


@api_token_group.command("create")
@click.argument("name")
@click.option("--role", "roles", multiple=True, type=click.Choice(["viewer", "operator", "approver", "admin"]),
              help="a role for the snippet printed (repeatable; default viewer)")
@click.option("--env", "envs", multiple=True, help="limit the roles to this environment (repeatable)")
def api_token_create(name: str, roles: tuple[str, ...], envs: tuple[str, ...]) -> None:
    """Print a new token for api:NAME once, and the config entry that holds only its hash."""
    import re

    from infra.api_tokens import new_token, token_hash
    from infra.config import token_name_problem

    bad_name = token_name_problem(name)
    if bad_name:
        _fail(f"NAME: {bad_name} (the identity is api:NAME).")
    odd = [e for e in envs if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", e)]
    if odd:  # printed into a YAML snippet: a value that is no name could change what the snippet says
        _fail(f"--env {odd[0]!r} is not an environment name (letters, digits, '_', '.', '-').")
    token = new_token()
    click.echo(f"Token for api:{name} (shown once; store it in the automation's secret store):\n\n  {token}\n")
    click.echo("Add this to the config (it holds only the hash):\n")
    click.echo("api_tokens:")
    click.echo(f"  {name}:")
    click.echo(f"    hash: {token_hash(token)}")
    click.echo(f"    roles: [{', '.join(roles or ('viewer',))}]")
    if envs:
        click.echo(f"    envs: [{', '.join(envs)}]")


@api_group.command("openapi")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of YAML")
def api_openapi(as_json: bool) -> None:
    """Print the OpenAPI description (docs/openapi.yaml is this output)."""
    import yaml

    from bot.openapi import spec
    from commands.registry import registry

    doc = spec(registry())
    click.echo(json.dumps(doc, indent=2) if as_json else yaml.safe_dump(doc, sort_keys=False, width=100), nl=False)


@main.group("eval")
def eval_group() -> None:
    """Evaluation harnesses."""


@eval_group.command("nl")
@CONFIG_OPTION
@click.option("--llm", "use_llm", is_flag=True, help="route through the LLM (Planner.plan with use_llm=True)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object (the full report)")
@click.option("--fail-under", type=float, default=None,
              help="exit 1 if accuracy is below this fraction or any wrong action happened")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def eval_nl(config: str | None, use_llm: bool, as_json: bool, fail_under: float | None,
            files: tuple[str, ...]) -> None:
    """Accuracy, misses per command, wrong actions and latency of the plain-language routes, per FILE
    (e.g. the regression set and a held-out set, scored separately)."""
    from commands.registry import PluginError, registry
    from infra.config import load_config
    from llm.eval import CasesError, evaluate, format_report, format_summary, load_cases
    from llm.planner import Planner

    try:
        cfg = load_config(config)
        sets = [(file, load_cases(file)) for file in files]
        planner = Planner(cfg, registry(cfg.inventory.plugins))
    except (ConfigError, CasesError, PluginError) as exc:
        _fail(str(exc))

    async def all_sets() -> list[Any]:
        return [await evaluate(cases, planner, use_llm=use_llm, name=file) for file, cases in sets]

    reports = asyncio.run(all_sets())
    if as_json:
        body = reports[0].to_dict() if len(reports) == 1 else {"sets": [r.to_dict() for r in reports]}
        click.echo(json.dumps(body, ensure_ascii=False))
    else:
        click.echo("\n\n".join(format_report(r) for r in reports))
        if len(reports) > 1:
            click.echo("\n" + format_summary(reports))
    if fail_under is not None and any(r.accuracy < fail_under or r.wrong_actions for r in reports):
        sys.exit(1)


from bot.cli_db import db_group  # noqa: E402  (its own module: upgrade, status, downgrade, backup, restore)

main.add_command(db_group)


if __name__ == "__main__":
    main()
