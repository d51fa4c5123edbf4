"""Run the Alembic migrations from code: ``orchestrator migrate`` and the daemon's start-up.

The scripts live in the top-level ``migrations/`` folder of the source tree, which is also the
package ``orchestrator.store.migrations`` (a symlink in the checkout, real files in the wheel), so
they are found next to this module in a checkout, an editable install and an installed wheel
alike. The Alembic config is built in code: no alembic.ini is read at run time.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.errors import StoreError
from orchestrator.logs import get_logger
from orchestrator.store.engine import create_engine, migration_connection, read_only

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_log = get_logger("orchestrator.store.migration")


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged scripts; ``connection`` is handed to env.py."""
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise StoreError(f"migration scripts not found at {MIGRATIONS_DIR}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision the installed scripts know."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StoreError("no migration revisions found")
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at (None for an empty database)."""

    def _current(conn: sa.Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    async with read_only(engine).connect() as conn:
        return await conn.run_sync(_current)


async def upgrade_to(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` in one transaction, on the running loop."""

    def _upgrade(conn: sa.Connection) -> None:
        command.upgrade(alembic_config(conn), revision)

    before = await current_revision(engine)
    async with migration_connection(engine) as conn:
        await conn.run_sync(_upgrade)
    after = await current_revision(engine)
    if after != before:
        _log.info("store.migrated", from_revision=before, to_revision=after)


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Bring the schema up to date; the daemon calls this on start-up."""
    await upgrade_to(engine, "head")


async def migrate(url: str) -> None:
    """``orchestrator migrate``: upgrade the database at ``url`` to head."""
    engine = create_engine(url)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()
