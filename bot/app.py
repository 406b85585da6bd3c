"""Building the engine from settings: config, database, backends (shared by every adapter)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.engine import Engine
from infra.config import Config, ConfigError, Settings, load_config
from infra.db.chain import AuditKeyError, Keys
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
    keys = audit_keys(settings)
    db = Database(database_url or settings.database_url)
    if migrate:
        db.migrate()
    else:
        db.require_current()
    from infra.wiring import make_backends

    engine = Engine(config, AuditStore(db, keys=keys), backends_for=make_backends)
    return App(config, db, engine)


def audit_keys(settings: Settings) -> Keys:
    """CHATOPS_AUDIT_KEY as chain keys; a malformed key is a configuration error."""
    raw = settings.chatops_audit_key.get_secret_value() if settings.chatops_audit_key else None
    try:
        return Keys.parse(raw)
    except AuditKeyError as exc:
        raise ConfigError(str(exc)) from exc
