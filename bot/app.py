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
    """Load and validate config, open (and migrate) the audit database, make the engine."""
    settings = settings or Settings()
    config = load_config(config_path, settings, overlay)
    db = Database(database_url or settings.database_url)
    if migrate:
        db.migrate()
    from infra.wiring import make_backends

    engine = Engine(config, AuditStore(db), backends=make_backends(config))
    return App(config, db, engine)
