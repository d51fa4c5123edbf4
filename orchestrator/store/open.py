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

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from orchestrator.errors import StoreError
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
    revision = await stored_revision(engine)
    if revision == SCHEMA_HEAD:
        return
    if revision is not None and revision.isdigit() and int(revision) > int(SCHEMA_HEAD):
        # Revisions are numbered; Alembic would fail with "Can't locate revision" deep inside.
        raise StoreError(
            f"the database is at schema {revision}, newer than this orchestrator knows "
            f"({SCHEMA_HEAD}): run the version that migrated it, or a newer one"
        )
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
    url: str,
    account_sid: str,
    *,
    migrate: bool,
    create: bool = True,
    wait: WaitForDatabase | None = None,
) -> AsyncIterator[Store]:
    """A ``Store`` over a new engine for ``url``; ``migrate`` brings the schema to head first.

    With ``wait``, an unreachable database is waited for (see the module docstring).
    ``create=False`` (the operator commands) never makes a database: no directory, no file, no
    tables. A database that is not there raises ``NoDatabase``, one that does not answer
    ``DatabaseUnreachable``, before anything is written.
    """
    if create:
        prepare_location(url)
        engine = create_engine(url)
    else:
        engine = await _open_existing(url)
    try:
        if wait is not None:
            await reach_waiting(engine, migrate=migrate, wait=wait)
        elif migrate:
            await ensure_schema(engine)
        yield Store(engine, account_sid)
    finally:
        await engine.dispose()


# sysexits.h EX_UNAVAILABLE: the CLI exits with an error's ``exit_code`` when it has one.
EX_UNAVAILABLE = 69
# How long a check of an existing database waits for it to answer.
CONNECT_TIMEOUT_SECONDS = 10.0


class NoDatabase(StoreError):
    """The configured database does not exist (or holds no orchestrator schema)."""

    exit_code = EX_UNAVAILABLE


class DatabaseUnreachable(StoreError):
    """The configured database server did not answer, or refused the connection."""

    exit_code = EX_UNAVAILABLE


def shown_url(url: str) -> str:
    """``url`` with its password hidden, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _missing(where: str) -> NoDatabase:
    return NoDatabase(f"no database at {where}: has the daemon run with this config?")


async def _open_existing(url: str) -> AsyncEngine:
    """An engine over the database at ``url`` that is known to exist and hold our schema."""
    path = _sqlite_file(url)
    where = str(path) if path is not None else shown_url(url)
    if path is not None:
        if not path.is_file():
            raise _missing(str(path))
        # mode=rw: SQLite opens the file or fails; it never creates it (no race with a delete).
        url = str(make_url(url).set(database=f"file:{path}", query={"mode": "rw", "uri": "true"}))
    engine = create_engine(url)
    try:
        revision = await probe_database(engine, where=where)
    except BaseException:
        await engine.dispose()
        raise
    if revision is None:
        await engine.dispose()
        raise _missing(where)
    return engine


async def probe_database(engine: AsyncEngine, *, where: str | None = None) -> str | None:
    """Whether the database answers (``DatabaseUnreachable`` if not) and its schema revision
    (None: no orchestrator tables). Reads only; creates and migrates nothing. ``where`` names
    the database in messages (default: its URL, password hidden)."""
    where = where or engine.url.render_as_string(hide_password=True)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
            async with read_only(engine).connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
            return await stored_revision(engine)
    except TimeoutError:
        raise DatabaseUnreachable(
            f"the database at {where} did not answer within {CONNECT_TIMEOUT_SECONDS:g} s"
        ) from None
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        raise DatabaseUnreachable(f"cannot open the database at {where}: {reason}") from None


@dataclass(frozen=True, slots=True)
class DatabaseProbe:
    """What ``probe_url`` found: where (password hidden), whether the database exists yet (a
    SQLite file not made yet: False) and its schema revision (None: no orchestrator tables)."""

    where: str
    exists: bool
    revision: str | None


async def probe_url(url: str) -> DatabaseProbe:
    """Check that the database at ``url`` answers, creating and migrating nothing (``check-config
    --connect``). ``DatabaseUnreachable`` when it does not."""
    path = _sqlite_file(url)
    where = str(path) if path is not None else shown_url(url)
    if path is not None:
        if not path.exists():
            return DatabaseProbe(where=where, exists=False, revision=None)
        url = str(make_url(url).set(database=f"file:{path}", query={"mode": "rw", "uri": "true"}))
    engine = create_engine(url)
    try:
        revision = await probe_database(engine, where=where)
    finally:
        await engine.dispose()
    return DatabaseProbe(where=where, exists=True, revision=revision)
