"""Alembic environment of the orchestrator store.

Two ways in:

- From the daemon and ``orchestrator migrate`` (``orchestrator.store.migration``): the caller
  runs us inside ``AsyncConnection.run_sync`` and passes its connection as
  ``config.attributes["connection"]``; we use it, on the caller's running loop and in its
  transaction. No ``asyncio.run`` here: there is already a loop.
- From the alembic CLI (developers): no connection is given; we build our own engine from
  ``sqlalchemy.url`` or ``$ORCHESTRATOR_DATABASE_URL`` and run on a fresh loop.
"""

from __future__ import annotations

import asyncio
import os

import sqlalchemy as sa
from alembic import context

from orchestrator.store.engine import create_engine, migration_connection
from orchestrator.store.schema import metadata

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("ORCHESTRATOR_DATABASE_URL")
    if not url:
        raise RuntimeError("set sqlalchemy.url or ORCHESTRATOR_DATABASE_URL")
    return url


def run_on(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite can barely ALTER: batch mode recreates tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    # Inside the caller's transaction this is a no-op; the caller commits.
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    engine = create_engine(_url())
    try:
        async with migration_connection(engine) as conn:
            await conn.run_sync(run_on)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    given = config.attributes.get("connection")
    if given is not None:
        run_on(given)
    else:
        asyncio.run(_run_with_own_engine())
