"""Alembic environment: uses the engine the bot hands over, or DATABASE_URL.

`chatops db upgrade|downgrade` pass their engine; the Alembic command line reads the shipped
alembic.ini (`alembic -c /opt/chatops/alembic.ini current`) and takes DATABASE_URL from the
environment, the same variable the bot reads.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine

from infra.db.models import Base

config = context.config
target_metadata = Base.metadata
if config.config_file_name and config.file_config.has_section("loggers"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL", "")
    if not url:
        raise SystemExit("Set DATABASE_URL (the bot's database) before running alembic.")
    return url


def run_migrations_online() -> None:
    engine = config.attributes.get("engine") or create_engine(database_url())
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
