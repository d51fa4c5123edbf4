"""open_store: from a URL to a ready Store; the schema is brought to head without loading
Alembic when it is there already."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from orchestrator.store.migration import head_revision, upgrade_to, upgrade_to_head
from orchestrator.store.open import SCHEMA_HEAD, ensure_schema, open_store, stored_revision

from .conftest import ACCOUNT, Database


def test_schema_head_is_the_newest_migration() -> None:
    """SCHEMA_HEAD names the newest script in migrations/versions (bump it with a migration)."""
    assert head_revision() == SCHEMA_HEAD


async def test_open_store_makes_the_sqlite_directory_and_migrates(tmp_path: Path) -> None:
    """A SQLite database in a directory that does not exist yet: made, migrated, usable."""
    path = tmp_path / "new" / "state" / "orchestrator.sqlite"
    async with open_store(f"sqlite+aiosqlite:///{path}", ACCOUNT, migrate=True) as store:
        assert await store.list_days() == []
        assert store.account_sid == ACCOUNT
    assert path.is_file()


async def test_open_store_without_migrating_leaves_the_schema_alone(tmp_path: Path) -> None:
    """migrate=False creates no tables."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'db' / 'orchestrator.sqlite'}"
    async with open_store(url, ACCOUNT, migrate=False) as store:
        assert await stored_revision(store._engine) is None


async def test_stored_revision_follows_the_migrations(database: Database) -> None:
    """None on an empty database, then the revision Alembic recorded."""
    engine = database.engine()
    assert await stored_revision(engine) is None
    await upgrade_to(engine, "0001")
    assert await stored_revision(engine) == "0001"
    await ensure_schema(engine)
    assert await stored_revision(engine) == SCHEMA_HEAD


def test_a_store_at_head_opens_without_alembic(tmp_path: Path) -> None:
    """Opening a database already at head never imports Alembic (operator commands stay fast)."""
    path = tmp_path / "orchestrator.sqlite"
    url = f"sqlite+aiosqlite:///{path}"
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from orchestrator.store.open import open_store

        async def main():
            async with open_store({url!r}, {ACCOUNT!r}, migrate=True) as store:
                await store.list_days()

        asyncio.run(main())
        print("alembic" in sys.modules)
        """
    )

    def run() -> str:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
        )
        return done.stdout.strip().splitlines()[-1]

    # A new database: migrating needs Alembic; once at head, it is not loaded.
    assert run() == "True"
    assert run() == "False"


async def test_upgrade_to_head_and_ensure_schema_agree(database: Database) -> None:
    """ensure_schema at head changes nothing that upgrade_to_head would."""
    engine = database.engine()
    await upgrade_to_head(engine)
    await ensure_schema(engine)
    assert await stored_revision(engine) == head_revision()
