"""Shared fixtures: a fresh PostgreSQL schema per test, the shipped config, an engine.

PostgreSQL is real (127.0.0.1:5432, database `test`, or TEST_DATABASE_URL); each test
gets its own schema through `search_path`, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, text

from bot.engine import Engine
from commands.registry import Registry, registry
from infra.backends import Backends
from infra.config import Config, load_config
from infra.db.store import AuditStore, Database
from llm.planner import Planner
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.openai_server import FakeOpenAI

if TYPE_CHECKING:
    from tests.events_support import Recorder
    from tests.fakes.slack_api import FakeSlack

PG_BASE = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
# The shipped inventory's environments, as the plain-language tests name them.
P, T, D, L = "rumpleprod", "rumpletest", "rumpledev", "rumple"


def schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_BASE else "?"
    return f"{PG_BASE}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A database URL whose default schema is new and empty."""
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield schema_url(schema)
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def config() -> Config:
    return load_config(ROOT / "chatops.yaml")


@pytest.fixture(scope="module")
def planner() -> Planner:
    """The grammar route on the shipped config (a module's own `planner` fixture takes precedence)."""
    return Planner(load_config(ROOT / "chatops.yaml"), registry())


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url)
    database.migrate()
    yield database
    database.dispose()


@pytest.fixture
def store(db: Database) -> Iterator[AuditStore]:
    s = AuditStore(db)
    yield s
    s.close()


@pytest.fixture
async def engine(config: Config, store: AuditStore) -> AsyncIterator[Engine]:
    eng = Engine(config, store, Backends(config))
    await eng.start()
    yield eng
    await eng.close()


def make_engine(config: Config, db: Database, registry: Registry | None = None,
                backends: Backends | None = None) -> Engine:
    """A second (or custom) engine on the same database, as another bot process would be."""
    return Engine(config, AuditStore(db), backends or Backends(config), registry=registry)


@pytest.fixture
async def server() -> AsyncIterator[FakeOpenAI]:
    """A scripted OpenAI-compatible (vLLM) server on loopback for the LLM route's tests."""
    from tests.llm_support import KEY, MODEL

    srv = FakeOpenAI(model=MODEL, api_key=KEY)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def api(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """The Discord REST stand-in; discord.py's HTTP client is pointed at it."""
    import discord

    async with FakeDiscord() as fake:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.base)
        yield fake


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """The Slack Web API stand-in; a test fails if the bot sent it anything Slack would reject."""
    from tests.fakes.slack_api import FakeSlack

    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()
    assert fake.violations == [], "the bot sent Slack something it would reject"


@pytest.fixture
def rec() -> Recorder:
    """Records the handler calls of a recording registry (tests/events_support.py)."""
    from tests.events_support import Recorder

    return Recorder()
