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
        # One transaction for every step, on SQLite too, so a downgrade that refuses
        # (infra/db/guards.py) undoes the steps before it. SQLite's DDL is transactional, but the
        # Python driver commits around it unless it is told to leave transactions to us.
        lite = connection.connection.driver_connection if connection.dialect.name == "sqlite" else None
        if lite is not None:
            lite.isolation_level = None
            connection.exec_driver_sql("BEGIN")
        try:
            context.configure(connection=connection, target_metadata=target_metadata,
                              render_as_batch=lite is not None, transactional_ddl=True)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            if lite is not None:
                if lite.in_transaction:
                    lite.rollback()
                lite.isolation_level = ""  # the pool hands this connection to the bot again


if context.is_offline_mode():
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
