"""Open the store: the one place that goes from a database URL to a ready ``Store``.

``open_store(url, account_sid, migrate=...)`` prepares the location (SQLite: the database
file's directory, see ``engine.prepare_location``), builds the engine, brings the schema to the
newest revision when asked, yields a ``Store`` and disposes the engine on exit. Every command
and the daemon open their store through it.

Migrating imports Alembic, which costs an operator command more CPU than the rest of its work;
so the revision the database is at is read first with one plain query, and Alembic is only
loaded when the database is behind (or new). ``SCHEMA_HEAD`` names the newest revision of
``migrations/versions``; a test keeps it equal to what Alembic finds there.

Waiting: with ``wait=``, a database that cannot be reached (``engine.unavailable_reason``) is
not an error. ``open_store`` calls ``await wait(reason)`` and tries again, for as long as
``wait`` returns; ``wait`` sleeps (backing off), reports, and raises to give up (the daemon
raises when told to stop). Only the reaching is retried: any other error fails as before, and
nothing is yielded before the schema is at head, so READY=1 follows migrations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.store.engine import (
    create_engine,
    prepare_location,
    read_only,
    unavailable_reason,
)
from orchestrator.store.repository import Store
from orchestrator.store.revision import SCHEMA_HEAD

__all__ = ["SCHEMA_HEAD", "ensure_schema", "open_store", "stored_revision"]


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


# Told why the database cannot be reached; returns to try again, raises to give up.
WaitForDatabase = Callable[[str], Awaitable[None]]


async def reach(engine: AsyncEngine, *, migrate: bool) -> None:
    """Migrate (``migrate``) or just connect once: either fails when the database is away."""
    if migrate:
        await ensure_schema(engine)
        return
    async with read_only(engine).connect() as conn:
        await conn.execute(sa.text("SELECT 1"))


async def reach_waiting(engine: AsyncEngine, *, migrate: bool, wait: WaitForDatabase) -> None:
    """``reach`` until it succeeds, calling ``wait(reason)`` after each unreachable try."""
    while True:
        try:
            await reach(engine, migrate=migrate)
        except Exception as error:
            reason = unavailable_reason(error)
            if reason is None:
                raise
            await wait(reason)
        else:
            return


@asynccontextmanager
async def open_store(
    url: str, account_sid: str, *, migrate: bool, wait: WaitForDatabase | None = None
) -> AsyncIterator[Store]:
    """A ``Store`` over a new engine for ``url``; ``migrate`` brings the schema to head first.

    With ``wait``, an unreachable database is waited for (see the module docstring).
    """
    prepare_location(url)
    engine = create_engine(url)
    try:
        if wait is not None:
            await reach_waiting(engine, migrate=migrate, wait=wait)
        elif migrate:
            await ensure_schema(engine)
        yield Store(engine, account_sid)
    finally:
        await engine.dispose()
