"""Building the engine from settings: config, database, backends (shared by every adapter)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.engine import Engine
from infra.config import Config, Settings, load_config
from infra.db.store import AuditStore, Database


@dataclass
class App:
    config: Config
    db: Database
    engine: Engine

    async def close(self) -> None:
        await self.engine.close()
        self.db.dispose()


def build(config_path: str | None = None, database_url: str | None = None, *, migrate: bool = True,
          settings: Settings | None = None, overlay: Mapping[str, Any] | None = None) -> App:
    """Load and validate config, open the audit database, make the engine.

    `migrate` is for the bot's start and `chatops db upgrade` only; without it the schema must
    already be this code's (SchemaMismatch names both versions), so checks never change it."""
    settings = settings or Settings()
    config = load_config(config_path, settings, overlay)
    db = Database(database_url or settings.database_url)
    if migrate:
        db.migrate()
    else:
        db.require_current()
    from infra.wiring import make_backends

    engine = Engine(config, AuditStore(db), backends=make_backends(config))
    return App(config, db, engine)
