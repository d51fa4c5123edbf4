"""Engine set-up: SQLite pragmas and write locking, URLs, and aware UTC timestamps."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.errors import StoreError
from orchestrator.store import create_engine, upgrade_to_head
from orchestrator.store import engine as engine_module
from orchestrator.store.engine import read_only
from orchestrator.store.schema import UtcDateTime

from .conftest import Database


async def test_sqlite_connections_get_wal_busy_timeout_and_foreign_keys(
    sqlite_database: Database,
) -> None:
    """Every SQLite connection runs in WAL mode with a busy timeout and foreign keys on."""
    engine = create_engine(sqlite_database.url, busy_timeout=dt.timedelta(seconds=7))
    try:
        async with engine.connect() as conn:
            pragma = conn.exec_driver_sql
            assert (await pragma("PRAGMA journal_mode")).scalar_one() == "wal"
            assert (await pragma("PRAGMA busy_timeout")).scalar_one() == 7000
            assert (await pragma("PRAGMA foreign_keys")).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_sqlite_caches_have_the_documented_bounds(sqlite_database: Database) -> None:
    """Pool, compiled-statement cache and page cache are bounded by the engine module's sizes."""
    engine = create_engine(sqlite_database.url)
    try:
        async with engine.connect() as conn:
            kib = (await conn.exec_driver_sql("PRAGMA cache_size")).scalar_one()
            assert kib == -engine_module.SQLITE_PAGE_CACHE_KIB
        pool = engine.sync_engine.pool
        assert isinstance(pool, sa.pool.QueuePool)
        assert pool.size() == engine_module.POOL_SIZE
        assert pool._max_overflow == engine_module.MAX_OVERFLOW  # no public reader
        cache = engine.sync_engine._compiled_cache
        assert cache is not None and cache.capacity == engine_module.QUERY_CACHE_SIZE
    finally:
        await engine.dispose()


async def test_second_sqlite_writer_waits_instead_of_failing(sqlite_database: Database) -> None:
    """A writer in another engine (process) waits for the lock rather than 'database is locked'."""
    first, second = sqlite_database.engine(), sqlite_database.engine()
    await upgrade_to_head(first)
    holding = asyncio.Event()
    release = asyncio.Event()

    async def hold_lock() -> None:
        async with first.begin() as conn:
            # BEGIN IMMEDIATE took the write lock before this statement ran.
            await conn.exec_driver_sql("SELECT count(*) FROM jobs")
            holding.set()
            await release.wait()

    async def write_after() -> None:
        await holding.wait()
        async with second.begin() as conn:
            await conn.exec_driver_sql("SELECT count(*) FROM jobs")
            await conn.exec_driver_sql("DELETE FROM jobs")

    holder = asyncio.create_task(hold_lock())
    writer = asyncio.create_task(write_after())
    await holding.wait()
    await asyncio.sleep(0.2)
    assert not writer.done()  # blocked on the lock, not failed
    release.set()
    await asyncio.gather(holder, writer)


async def test_sqlite_reads_do_not_take_the_write_lock(sqlite_database: Database) -> None:
    """A read-only transaction proceeds while another connection holds the write lock."""
    first, second = sqlite_database.engine(), sqlite_database.engine()
    await upgrade_to_head(first)
    async with first.begin() as writer:
        await writer.exec_driver_sql("SELECT 1")
        async with read_only(second).begin() as reader:
            count = (await reader.exec_driver_sql("SELECT count(*) FROM jobs")).scalar_one()
    assert count == 0


def test_plain_urls_get_the_async_driver() -> None:
    """sqlite:// and postgresql:// URLs are given aiosqlite and asyncpg."""
    assert create_engine("sqlite:///x.sqlite").dialect.driver == "aiosqlite"
    assert create_engine("postgresql://u@h/db").dialect.driver == "asyncpg"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@h/db", "unsupported database"),
        ("sqlite+pysqlite:///x.sqlite", "unsupported driver"),
    ],
)
def test_unsupported_urls_are_store_errors(url: str, message: str) -> None:
    """Only SQLite (aiosqlite) and PostgreSQL (asyncpg) are accepted, with a clear error."""
    with pytest.raises(StoreError, match=message):
        create_engine(url)


_probe = sa.Table("probe", sa.MetaData(), sa.Column("at", UtcDateTime, nullable=True))


async def _round_trip(engine: AsyncEngine, value: dt.datetime) -> dt.datetime:
    async with engine.begin() as conn:
        await conn.run_sync(_probe.metadata.create_all)
        await conn.execute(_probe.insert(), {"at": value})
        stored = (await conn.execute(sa.select(_probe.c.at))).scalar_one()
        # Comparison in SQL uses the same representation as the stored value.
        found = (
            await conn.execute(sa.select(sa.func.count()).where(_probe.c.at == value))
        ).scalar_one()
        await conn.run_sync(_probe.metadata.drop_all)
    assert found == 1
    assert isinstance(stored, dt.datetime)
    return stored


async def test_timestamps_round_trip_as_aware_utc(database: Database) -> None:
    """A time in any zone comes back as the same instant, aware, in UTC."""
    paris = dt.timezone(dt.timedelta(hours=2))
    value = dt.datetime(2024, 6, 1, 14, 30, 15, 123456, tzinfo=paris)
    stored = await _round_trip(database.engine(), value)
    assert stored == value
    assert stored.tzinfo == dt.UTC
    assert stored.hour == 12


async def test_naive_timestamps_are_refused(database: Database) -> None:
    """A naive datetime never reaches the database."""
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        await _round_trip(database.engine(), dt.datetime(2024, 6, 1, 12, 0))
