"""Engine set-up: the one place that knows SQLite from PostgreSQL.

Everything dialect-specific in the store lives here, and nowhere else:

- SQLite (aiosqlite), the embedded default: every new connection gets ``journal_mode=WAL``,
  ``busy_timeout`` and ``foreign_keys=ON``. The driver's own transaction handling is switched off
  (``isolation_level=None``) and we emit BEGIN ourselves in the "begin" event: ``BEGIN IMMEDIATE``
  for write transactions, so a second writer waits for the lock (busy_timeout) instead of failing
  with "database is locked" when its read would upgrade to a write; plain deferred ``BEGIN`` for
  read-only transactions (``read_only(engine)``), which in WAL mode never block a writer.
- PostgreSQL (asyncpg), for teams running several instances: READ COMMITTED plus row locks
  (``SELECT ... FOR UPDATE``, omitted by SQLAlchemy on SQLite where the database lock serializes
  writers anyway) and conditional UPDATEs. ``schema=`` sets ``search_path`` on every connection.
- ``prepare_location``: SQLite creates the database file but not its directory, so the directory
  is made before the first connection (PostgreSQL: nothing to prepare).
- ``insert_ignoring_conflicts``: INSERT ... ON CONFLICT DO NOTHING in each dialect's spelling.
- ``is_in``: a batch of days as an IN list (SQLite) or one array parameter (PostgreSQL).
- ``unavailable_reason``: whether an error means the database cannot be reached (refused, reset,
  timed out, starting up or shutting down, a dropped connection) and so is worth waiting for, and
  why, in words with no password in them (the daemon waits and says so; everything else fails).
- ``migration_connection``: on SQLite, migrations run with ``foreign_keys=OFF`` (a batch ALTER
  recreates tables, which a live foreign key would veto), checked with ``foreign_key_check`` before
  commit; the connection is then discarded so no pooled connection keeps foreign keys off.

Memory: every cache here has a bound chosen here (the daemon runs for months; the soak benchmark,
``python -m bench --only soak``, checks that its RSS stays flat):

- SQLAlchemy's compiled-statement cache: ``QUERY_CACHE_SIZE`` (200) statements per engine. The
  daemon has about 40 distinct statements (IN lists are expanding parameters: one entry serves
  every length), so it fills to that and stops.
- Pooled connections: ``POOL_SIZE`` (5) kept, at most ``MAX_OVERFLOW`` (10) more while busy, closed
  when returned. On SQLite each is an aiosqlite thread with its own caches:
- SQLite's prepared statements: ``SQLITE_CACHED_STATEMENTS`` (32) per connection (the sqlite3
  module's LRU; its default is 128). SQLAlchemy renders an expanding IN list as one placeholder
  per value, so every list length is its own SQL text and its own prepared statement, about
  20 KB of C memory each as measured; with 128 per connection they piled up for weeks as new
  lengths came along (issue 15's RSS creep: about 2 MB per 10,000 passes, towards some 14 MB).
  The passes' working set fits in 32 (a replay of two simulated days missed only on first use);
  a rare length is prepared again when it comes back.
- SQLite's page cache: ``SQLITE_PAGE_CACHE_KIB`` (2 MiB, SQLite's own default) per connection;
  it fills as the database grows, then stays.
- PostgreSQL: asyncpg's prepared-statement caches keep their defaults (100 per connection).

Worst case on SQLite: 15 connections x (2 MiB + 32 statements, about 3 MiB); steady running
keeps the 5 pooled ones, about 13 MiB in all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from orchestrator.errors import StoreError

DEFAULT_BUSY_TIMEOUT = dt.timedelta(seconds=30)
# The caches' bounds (see "Memory" above).
QUERY_CACHE_SIZE = 200
POOL_SIZE = 5
MAX_OVERFLOW = 10
SQLITE_CACHED_STATEMENTS = 32
SQLITE_PAGE_CACHE_KIB = 2048
# PostgreSQL: give up on one connection attempt after this long (asyncpg's default is 60 s, a
# long time for a daemon waiting on a server that silently drops packets to sit in one try).
CONNECT_TIMEOUT_SECONDS = 10.0
# PostgreSQL: the server ends a transaction left idle this long. Ours never wait between
# statements; a process paused in one (SIGSTOP) would otherwise hold its row locks, and keep a
# standby's takeover waiting (``store.leadership``), until it is resumed.
IDLE_IN_TRANSACTION_TIMEOUT = "30s"

# PostgreSQL: the advisory lock migrations take (a constant; the leader locks are hashed from
# account SIDs and cannot be told apart from it by anything but chance: 1 in 2**64).
MIGRATION_LOCK_KEY = 0x6F72636D69677261  # "orcmigra"

# Execution options read by the SQLite "begin" hook.
_READ_ONLY = "orchestrator_read_only"
_FOREIGN_KEYS_OFF = "orchestrator_foreign_keys_off"

T = TypeVar("T")

_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


def create_engine(
    url: str | URL,
    *,
    busy_timeout: dt.timedelta = DEFAULT_BUSY_TIMEOUT,
    schema: str | None = None,
    echo: bool = False,
    pooled: bool = True,
) -> AsyncEngine:
    """An AsyncEngine for ``url`` (``sqlite:///path`` or ``postgresql://...``), hooks installed.

    Plain ``sqlite://`` / ``postgresql://`` URLs get the async driver. ``schema`` (PostgreSQL only)
    becomes the ``search_path`` of every connection. ``pooled=False`` (PostgreSQL): closing a
    connection ends its session, as the leader lock needs (a session-level lock would outlive a
    close into a pool). The caller owns the engine: dispose it.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS:
        raise StoreError(f"unsupported database {backend!r}: use sqlite or postgresql")
    if parsed.drivername != _DRIVERS[backend]:
        if parsed.drivername != backend:
            raise StoreError(f"unsupported driver {parsed.drivername!r}: use {_DRIVERS[backend]}")
        parsed = parsed.set(drivername=_DRIVERS[backend])
    if backend == "sqlite":
        if schema is not None:
            raise StoreError("schema= applies to PostgreSQL only")
        engine = create_async_engine(
            parsed,
            echo=echo,
            query_cache_size=QUERY_CACHE_SIZE,
            connect_args={"cached_statements": SQLITE_CACHED_STATEMENTS},
            **_pool_bounds(parsed),
        )
        _install_sqlite_hooks(engine, busy_timeout)
        return engine
    server_settings = {"idle_in_transaction_session_timeout": IDLE_IN_TRANSACTION_TIMEOUT}
    if schema is not None:
        server_settings["search_path"] = schema
    connect_args: dict[str, Any] = {
        "timeout": CONNECT_TIMEOUT_SECONDS,
        "server_settings": server_settings,
    }
    if not pooled:
        return create_async_engine(
            parsed,
            echo=echo,
            poolclass=NullPool,
            connect_args=connect_args,
            query_cache_size=QUERY_CACHE_SIZE,
        )
    return create_async_engine(
        parsed,
        echo=echo,
        pool_pre_ping=True,
        connect_args=connect_args,
        query_cache_size=QUERY_CACHE_SIZE,
        pool_size=POOL_SIZE,
        max_overflow=MAX_OVERFLOW,
    )


def _pool_bounds(url: URL) -> dict[str, int]:
    """Pool sizes for a SQLite file (an in-memory database gets SQLAlchemy's single-connection
    pool, which takes none)."""
    database = url.database or ""
    if not database or database == ":memory:" or url.query.get("mode") == "memory":
        return {}
    return {"pool_size": POOL_SIZE, "max_overflow": MAX_OVERFLOW}


def sqlite_file(url: str | URL) -> Path | None:
    """The file of a SQLite database URL; None for PostgreSQL or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def prepare_location(url: str | URL) -> None:
    """Make the directory of a SQLite database file (nothing for PostgreSQL or ``:memory:``)."""
    database = sqlite_file(url)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)


# SQLSTATE classes and codes of a server that is not (or no longer) there for us: connection
# exceptions (08), operator intervention (57P01 admin shutdown .. 57P03 cannot connect now),
# insufficient resources (53: too many connections) and a database that does not exist yet.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53")
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "3D000", "28000", "28P01"})
_MAX_REASON = 300


def unavailable_reason(error: BaseException) -> str | None:
    """Why the database cannot be reached, when ``error`` (or its cause) says so; else None.

    Covers the socket errors a connect or a query on a dropped connection raises (refused,
    reset, timed out: ``OSError``, unwrapped on connect), asyncpg's connection errors and the
    server's "not now" answers by SQLSTATE, and SQLAlchemy's wrapped disconnects. An error in
    the SQL itself (a constraint, a syntax error) is not unavailability and gives None. The
    reason names the error type and its message; neither carries the URL or its password.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        reason = _direct_reason(current)
        if reason is not None:
            return reason[:_MAX_REASON]
        current = current.__cause__ or current.__context__
    return None


def shown_url(url: str | URL) -> str:
    """``url`` fit for a log line: the password masked (``***``)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(unparseable database URL)"


def _direct_reason(error: BaseException) -> str | None:
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        return f"connection lost: {_first_line(error.orig) if error.orig else 'invalidated'}"
    if isinstance(error, OSError | TimeoutError):
        return f"{type(error).__name__}: {_first_line(error) or 'timed out'}"
    module = type(error).__module__ or ""
    if not module.startswith("asyncpg"):
        return None
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str) and (
        sqlstate in _UNAVAILABLE_SQLSTATES or sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES
    ):
        return f"{type(error).__name__}: {_first_line(error)}"
    # asyncpg's own client-side errors about the connection (closed, lost, in the middle of
    # an operation) carry no SQLSTATE.
    name = type(error).__name__
    if sqlstate is None and name in ("ConnectionDoesNotExistError", "InterfaceError"):
        text = _first_line(error)
        if "connection" in text.lower() or name == "ConnectionDoesNotExistError":
            return f"{name}: {text}"
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def is_sqlite(engine: AsyncEngine | AsyncConnection) -> bool:
    return engine.dialect.name == "sqlite"


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (same pool), for transactions that only read.

    SQLite: deferred BEGIN instead of BEGIN IMMEDIATE. PostgreSQL: READ ONLY transactions.
    """
    if is_sqlite(engine):
        return engine.execution_options(**{_READ_ONLY: True})
    return engine.execution_options(postgresql_readonly=True)


def _install_sqlite_hooks(engine: AsyncEngine, busy_timeout: dt.timedelta) -> None:
    busy_ms = max(0, int(busy_timeout.total_seconds() * 1000))

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Autocommit at the driver: we decide when and how transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # busy_timeout first: switching to WAL needs a lock another process may hold.
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            # Safe with WAL (a power loss may drop the last commits, never corrupt the file).
            cursor.execute("PRAGMA synchronous = NORMAL")
            # Negative: KiB, not pages.
            cursor.execute(f"PRAGMA cache_size = -{SQLITE_PAGE_CACHE_KIB}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        options = conn.get_execution_options()
        if options.get(_FOREIGN_KEYS_OFF):
            # Must run before BEGIN: the pragma is a no-op inside a transaction.
            conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
        conn.exec_driver_sql("BEGIN" if options.get(_READ_ONLY) else "BEGIN IMMEDIATE")


def insert_ignoring_conflicts(
    engine: AsyncEngine | AsyncConnection, table: sa.Table, index_elements: list[str]
) -> sa.Insert:
    """INSERT INTO table ... ON CONFLICT (index_elements) DO NOTHING, in the engine's dialect."""
    # Each dialect's module is imported when used: an operator command on SQLite never loads
    # the PostgreSQL dialect (a tenth of a second of start-up).
    if is_sqlite(engine):
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table).on_conflict_do_nothing(index_elements=index_elements)
    from sqlalchemy.dialects import postgresql

    return postgresql.insert(table).on_conflict_do_nothing(index_elements=index_elements)


def is_in(
    bind: AsyncEngine | AsyncConnection, column: sa.ColumnElement[T], values: Sequence[T]
) -> sa.ColumnElement[bool]:
    """``column IN values``; on PostgreSQL ``column = ANY(:array)``: one parameter, so one
    prepared statement serves every batch size (a 5,000-value IN list is parsed anew each time).
    """
    if is_sqlite(bind):
        return column.in_(values)
    from sqlalchemy.dialects import postgresql

    return column == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))


def in_parameter(sqlite: bool, column: sa.ColumnElement[T], name: str) -> sa.ColumnElement[bool]:
    """``column IN :name`` for a statement built once: an expanding parameter (SQLite) or one
    array parameter (PostgreSQL), bound to a list of values at each execution."""
    if sqlite:
        return column.in_(sa.bindparam(name, expanding=True))
    from sqlalchemy.dialects import postgresql

    return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(column.type)))


@asynccontextmanager
async def migration_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection in a write transaction, fit for running migrations; commits on success.

    One migration at a time per database: two instances started together on a new database
    would otherwise both create the tables and one fail. PostgreSQL: a transaction-level
    advisory lock, taken first (the second waits, then finds the schema at head); SQLite: the
    BEGIN IMMEDIATE of the write transaction does the same.
    """
    if not is_sqlite(engine):
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
            yield conn
        return
    async with engine.connect() as plain:
        conn = await plain.execution_options(**{_FOREIGN_KEYS_OFF: True})
        try:
            async with conn.begin():
                yield conn
                violations = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                if violations:
                    raise StoreError(f"migration left {len(violations)} foreign key violations")
        finally:
            # Never hand a connection with foreign keys off back to the pool.
            await conn.invalidate()
