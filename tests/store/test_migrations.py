"""Migrations: they build the schema, agree with the tables, keep data, run from the CLI path."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.domain.model import DayKey, DayStatus, ResourceType
from orchestrator.errors import StoreError
from orchestrator.store import Store, migrate, upgrade_to_head
from orchestrator.store.migration import (
    MIGRATIONS_DIR,
    alembic_config,
    current_revision,
    head_revision,
    upgrade_to,
)
from orchestrator.store.schema import metadata

from .conftest import ACCOUNT, NOW, Database


async def test_upgrade_creates_every_table(database: Database) -> None:
    """Upgrading an empty database creates every table and stamps the head revision."""
    engine = database.engine()
    assert await current_revision(engine) is None
    await upgrade_to_head(engine)
    assert await current_revision(engine) == head_revision()
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    assert {"jobs", "days", "transitions", "alembic_version"} <= names


async def test_models_match_migrations_at_head(engine: AsyncEngine) -> None:
    """Autogenerate finds no difference between the tables in code and the migrated schema."""

    def diff(conn: sa.Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


def _revisions_oldest_first() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


async def test_upgrade_keeps_existing_data(database: Database) -> None:
    """Data written at the first revision survives upgrading to head (and upgrading again)."""
    engine = database.engine()
    first = _revisions_oldest_first()[0]
    await upgrade_to(engine, first)
    # Raw SQL in the shape of the first revision: later revisions must carry these rows forward.
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO jobs (account_sid, friendly_name, job_sid, resource_type, start_day, "
                "end_day, day_count, state, attempt, created_at, poll_count) VALUES (:a, 'bx-1', "
                ":sid, 'Messages', :d, :d, 1, 'active', 1, :t, 0)"
            ).bindparams(sa.bindparam("t", type_=sa.DateTime(timezone=True))),
            {"a": ACCOUNT, "sid": "JS" + "a" * 32, "d": dt.date(2024, 1, 1), "t": NOW},
        )
        job_id = (await conn.execute(sa.text("SELECT id FROM jobs"))).scalar_one()
        await conn.execute(
            sa.text(
                "INSERT INTO days (account_sid, resource_type, day, status, job_id, resubmits, "
                "attempts, first_wanted_at, last_changed_at) VALUES (:a, 'Messages', :d, "
                "'Running', :j, 0, 1, :t, :t)"
            ).bindparams(sa.bindparam("t", type_=sa.DateTime(timezone=True))),
            {"a": ACCOUNT, "d": dt.date(2024, 1, 1), "j": job_id, "t": NOW},
        )
        await conn.execute(
            sa.text(
                "INSERT INTO transitions (account_sid, resource_type, day, job_id, job_sid, "
                "from_status, to_status, observed_at, observed_by) VALUES (:a, 'Messages', :d, "
                ":j, :sid, 'Submitted', 'Running', :t, 'poll')"
            ).bindparams(sa.bindparam("t", type_=sa.DateTime(timezone=True))),
            {"a": ACCOUNT, "d": dt.date(2024, 1, 1), "j": job_id, "sid": "JS" + "a" * 32, "t": NOW},
        )
    await upgrade_to_head(engine)
    await upgrade_to_head(engine)
    store = Store(engine, ACCOUNT)
    key = DayKey(ResourceType.MESSAGES, dt.date(2024, 1, 1))
    day = await store.get_day(key)
    assert day is not None and day.status is DayStatus.RUNNING and day.job_id == job_id
    assert day.first_wanted_at == NOW
    [change] = await store.day_history(key)
    assert change.to_status is DayStatus.RUNNING and change.observed_at == NOW
    assert (await store.get_job(job_id)).job_sid == "JS" + "a" * 32


async def test_transitions_are_append_only_in_the_database(
    store: Store, engine: AsyncEngine
) -> None:
    """The database itself refuses to UPDATE or DELETE a transition."""
    await store.upsert_wanted_days([DayKey(ResourceType.CALLS, dt.date(2024, 1, 1))], NOW)
    for statement in ("UPDATE transitions SET reason = 'x'", "DELETE FROM transitions"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.exec_driver_sql(statement)
    assert len(await store.day_history(DayKey(ResourceType.CALLS, dt.date(2024, 1, 1)))) == 1


async def test_migrate_by_url_creates_the_schema(database: Database) -> None:
    """``migrate(url)`` (what ``orchestrator migrate`` runs) builds and disposes its own engine."""
    if database.schema is not None:
        pytest.skip("migrate(url) uses the URL's default schema; covered on SQLite")
    await migrate(database.url)
    assert await current_revision(database.engine()) == head_revision()


async def test_alembic_cli_path_builds_its_own_engine(sqlite_database: Database) -> None:
    """Without a shared connection env.py makes its own engine (the alembic CLI's way)."""
    config = alembic_config()
    config.set_main_option("sqlalchemy.url", sqlite_database.url)
    # The CLI runs without an event loop; a worker thread has none either.
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await current_revision(sqlite_database.engine()) == head_revision()


def test_migration_scripts_ship_inside_the_package() -> None:
    """The scripts are found next to the package, where an installed wheel has them too."""
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()
    assert _revisions_oldest_first()[0] == "0001"


async def test_sqlite_migrations_leave_foreign_keys_on(sqlite_database: Database) -> None:
    """Migrations run with foreign keys off, but no pooled connection keeps them off."""
    engine = sqlite_database.engine()
    await upgrade_to_head(engine)
    async with engine.connect() as conn:
        assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1


def test_unknown_scripts_location_is_a_store_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken install (no scripts) fails with one clear StoreError."""
    import orchestrator.store.migration as module

    monkeypatch.setattr(module, "MIGRATIONS_DIR", MIGRATIONS_DIR / "missing")
    with pytest.raises(StoreError, match="migration scripts not found"):
        alembic_config()


async def test_two_instances_migrating_a_new_database_at_once_both_succeed(
    database: Database,
) -> None:
    """Two first starts together (two HA instances): one migrates, the other waits and finds
    the schema at head; neither fails on a table the other created."""
    first, second = database.engine(), database.engine()
    await asyncio.gather(upgrade_to_head(first), upgrade_to_head(second))
    assert await current_revision(first) == head_revision()
    assert await current_revision(second) == head_revision()
