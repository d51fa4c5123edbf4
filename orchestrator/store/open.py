"""Open the store: the one place that goes from a database URL to a ready ``Store``.

``open_store(url, account_sid, migrate=...)`` prepares the location (SQLite: the database
file's directory, see ``engine.prepare_location``), builds the engine, brings the schema to the
newest revision when asked, yields a ``Store`` and disposes the engine on exit. Every command
and the daemon open their store through it.

Migrating imports Alembic, which costs an operator command more CPU than the rest of its work;
so the revision the database is at is read first with one plain query, and Alembic is only
loaded when the database is behind (or new). ``SCHEMA_HEAD`` names the newest revision of
``migrations/versions``; a test keeps it equal to what Alembic finds there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.store.engine import create_engine, prepare_location, read_only
from orchestrator.store.repository import Store

# The newest revision in migrations/versions (tests/store/test_open.py checks it).
SCHEMA_HEAD = "0003"


async def stored_revision(engine: AsyncEngine) -> str | None:
    """The revision recorded in the database, read without Alembic; None when there is none."""
    try:
        async with read_only(engine).connect() as conn:
            rows = (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).all()
    except sa.exc.DBAPIError:
        # No version table yet: a new database.
        return None
    return str(rows[0][0]) if len(rows) == 1 else None


async def ensure_schema(engine: AsyncEngine) -> None:
    """Upgrade the database to the newest revision unless it is there already."""
    if await stored_revision(engine) == SCHEMA_HEAD:
        return
    from orchestrator.store.migration import upgrade_to_head

    await upgrade_to_head(engine)


@asynccontextmanager
async def open_store(url: str, account_sid: str, *, migrate: bool) -> AsyncIterator[Store]:
    """A ``Store`` over a new engine for ``url``; ``migrate`` brings the schema to head first."""
    prepare_location(url)
    engine = create_engine(url)
    try:
        if migrate:
            await ensure_schema(engine)
        yield Store(engine, account_sid)
    finally:
        await engine.dispose()
