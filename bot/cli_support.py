"""What every `chatops` subcommand shares: the --config option, failing with a message, building the app."""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from infra.config import ConfigError

CONFIG_OPTION = click.option("--config", "config", envvar="CHATOPS_CONFIG", default=None,
                             help="inventory/config file (default: the shipped chatops.yaml)")


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def build_app(config: str | None, *, migrate: bool = False, database_url: str | None = None,
              overlay: Any = None) -> Any:
    """The app, or a clear message and exit 2. Only the bot's start and `db upgrade` pass migrate=True:
    everything else stops on a schema older or newer than the code, saying which versions."""
    from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

    from bot.app import build
    from commands.registry import PluginError
    from infra.db.common import BadDatabaseURL, DatabaseUnavailable, SchemaMismatch

    try:
        return build(config, database_url, migrate=migrate, overlay=overlay)
    except ConfigError as exc:
        fail(f"Configuration error:\n{exc}")
    except PluginError as exc:
        fail(str(exc))
    except SchemaMismatch as exc:
        fail(f"{exc.headline()}. {exc.advice}")
    except BadDatabaseURL as exc:
        fail(str(exc))
    except DatabaseUnavailable as exc:
        fail(f"The audit database is unreachable: {exc}")
    except (OperationalError, InterfaceError) as exc:  # the driver, before the store wraps it
        fail(f"The audit database is unreachable: {str(getattr(exc, 'orig', exc)).strip()}")
    except SQLAlchemyError as exc:
        fail(f"The audit database answered with an error: {str(getattr(exc, 'orig', exc)).strip()}")
