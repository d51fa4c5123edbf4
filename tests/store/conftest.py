"""One store test suite, run on SQLite always and on PostgreSQL when
ORCHESTRATOR_TEST_POSTGRES_URL is set (each test gets its own schema, dropped afterwards)."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.store import Store, create_engine, upgrade_to_head

POSTGRES_URL_VAR = "ORCHESTRATOR_TEST_POSTGRES_URL"
ACCOUNT = "AC" + "0" * 32
NOW = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)


@dataclass
class Database:
    """A throw-away database (an SQLite file, or a PostgreSQL schema) and its engines."""

    dialect: str
    url: str
    schema: str | None = None
    engines: list[AsyncEngine] = field(default_factory=list)

    def engine(self) -> AsyncEngine:
        """A new engine on this database (another "process"); disposed at teardown."""
        engine = create_engine(self.url, schema=self.schema)
        self.engines.append(engine)
        return engine

    async def dispose(self) -> None:
        for engine in self.engines:
            await engine.dispose()


def _postgres_url() -> str:
    url = os.environ.get(POSTGRES_URL_VAR)
    if not url:
        pytest.skip(f"PostgreSQL store tests need {POSTGRES_URL_VAR} (e.g. .ci/run sets it)")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database of each dialect."""
    if request.param == "sqlite":
        db = Database("sqlite", f"sqlite:///{tmp_path / 'store.sqlite'}")
        try:
            yield db
        finally:
            await db.dispose()
        return
    url = _postgres_url()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(url)
    try:
        async with admin.begin() as conn:
            await conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        db = Database("postgresql", url, schema)
        try:
            yield db
        finally:
            await db.dispose()
            async with admin.begin() as conn:
                await conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await admin.dispose()


@pytest.fixture
async def sqlite_database(tmp_path: Path) -> AsyncIterator[Database]:
    """An empty SQLite database (for SQLite-only facts: pragmas, locking, query plans)."""
    db = Database("sqlite", f"sqlite:///{tmp_path / 'store.sqlite'}")
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture
async def engine(database: Database) -> AsyncEngine:
    """An engine on a database migrated to head."""
    engine = database.engine()
    await upgrade_to_head(engine)
    return engine


@pytest.fixture
async def store(engine: AsyncEngine) -> Store:
    """The repository of one account on a migrated database."""
    return Store(engine, ACCOUNT)
