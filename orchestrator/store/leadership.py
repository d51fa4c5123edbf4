"""The account's leader lock: one active daemon per account, the others stand by.

``leader_lock(url, account_sid, lease_seconds)`` gives the lock of a database:

- PostgreSQL (``PostgresLock``): a session-level advisory lock, ``pg_try_advisory_lock(key)``
  with a key derived from the account SID (``lock_key``), on a connection of its own (never one
  of the store's pool) in autocommit. The server releases it when that session ends: the
  process died, its connection broke, or (``idle_session_timeout`` = one lease, set once the
  lock is won) the holder stopped confirming for a lease, as a paused or partitioned process
  does. So a standby on any machine can take over. Needs PostgreSQL 14 or newer. A try also
  reads who leads (the ``leaders`` row), so a standby costs one statement per try.
- SQLite (``FileLock``): an exclusive ``flock`` on ``<database>.lock`` beside the database
  file, which the kernel releases when the process dies. A standby therefore works only on the
  same machine, and a paused (not dead) leader keeps the lock. The holder writes its host, pid
  and start into the file for the standby to show; a standby reads no database at all.
- An in-memory SQLite database (one process only): ``SoleLock``, always won.

``try_acquire()`` answers whether the lock was won and, when not, who holds it as far as can
be told. ``confirm()`` raises ``LockLost`` when the lock is no longer held (the session is
gone, the lock file was replaced); a caller that cannot confirm in time must treat the lock
as lost too and ``release()`` it. Everything else about leadership (the lease, the fence) is
in ``domain.leadership`` and ``repository``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from orchestrator.domain.leadership import Leader
from orchestrator.errors import StoreError
from orchestrator.logs import get_logger
from orchestrator.store.engine import create_engine, sqlite_file
from orchestrator.store.lockfile import is_held, lock_file_of

log = get_logger(__name__)

# Closing a connection politely waits on the server; a server that does not answer gets this.
_CLOSE_SECONDS = 2.0


class LockLost(StoreError):
    """The leader lock is no longer held (or it cannot be told that it is)."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try for the lock: won, or not and who holds it (None: cannot tell)."""

    won: bool
    holder: Leader | None = None


class LeaderLock(Protocol):
    """The lock one daemon per account holds while it leads."""

    @property
    def describe(self) -> str:
        """What the lock is, for logs and the README (``advisory lock 123``, a path)."""
        ...

    async def try_acquire(self) -> Attempt:
        """Try once, without waiting; a database that does not answer raises StoreError."""
        ...

    async def confirm(self) -> None:
        """Raise ``LockLost`` unless the lock is still held."""
        ...

    async def release(self) -> None:
        """Let go of the lock (if held); the lock can be tried for again after."""
        ...

    async def close(self) -> None:
        """Release and free everything the lock holds."""
        ...


def this_host() -> str:
    return socket.gethostname()


def lock_key(account_sid: str, schema: str | None = None) -> int:
    """The advisory lock key of an account (in a schema, when the store is in one): a signed
    64-bit number, stable across versions. Advisory locks are per database already."""
    name = account_sid if schema is None else f"{schema}.{account_sid}"
    digest = hashlib.sha256(f"orchestrator-leader:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def leader_lock(
    url: str, account_sid: str, *, lease_seconds: float, schema: str | None = None
) -> LeaderLock:
    """The leader lock of the database at ``url`` (PostgreSQL: in ``schema``, if given) for
    ``account_sid``."""
    if url.startswith("postgresql"):
        return PostgresLock(url, account_sid, lease_seconds=lease_seconds, schema=schema)
    path = sqlite_file(url)
    if path is None:
        return SoleLock()
    return FileLock(lock_file_of(path))


# ----------------------------------------------------------------------------- PostgreSQL

_TRY = sa.text(
    "SELECT pg_try_advisory_lock(:key) AS won, leaders.host, leaders.pid, leaders.since,"
    " leaders.epoch FROM (SELECT 1) AS one"
    " LEFT OUTER JOIN leaders ON leaders.account_sid = :account_sid"
)
_ALIVE = sa.text("SELECT 1")
# A bigint advisory lock shows in pg_locks as classid (high half), objid (low half), objsubid 1.
_HELD = sa.text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid::bigint = :high AND objid::bigint = :low AND objsubid = 1"
)


async def lock_held(url: str, account_sid: str) -> bool | None:
    """Whether some process holds the account's leader lock now (for ``status``); None when
    there is no lock to ask (an in-memory database)."""
    path = sqlite_file(url)
    if path is not None:
        return is_held(lock_file_of(path))
    if not url.startswith("postgresql"):
        return None
    key = lock_key(account_sid)
    engine = create_engine(url, pooled=False)
    try:
        async with engine.connect() as conn:
            count = (
                await conn.execute(
                    _HELD, {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF}
                )
            ).scalar_one()
    except (sa.exc.SQLAlchemyError, OSError) as error:
        raise StoreError(f"leader lock: {type(error).__name__}: {error}") from error
    finally:
        await engine.dispose()
    return bool(count)


class PostgresLock:
    """A session-level advisory lock on a connection of its own (see the module docstring)."""

    def __init__(
        self, url: str, account_sid: str, *, lease_seconds: float, schema: str | None = None
    ) -> None:
        self._engine: AsyncEngine = create_engine(url, schema=schema, pooled=False)
        self._account_sid = account_sid
        self._key = lock_key(account_sid, schema)
        self._idle_ms = max(1000, int(lease_seconds * 1000))
        self._conn: AsyncConnection | None = None
        self._held = False

    @property
    def describe(self) -> str:
        return f"PostgreSQL advisory lock {self._key}"

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            conn = await self._engine.connect()
            self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    async def try_acquire(self) -> Attempt:
        try:
            conn = await self._connection()
            row = (
                await conn.execute(_TRY, {"key": self._key, "account_sid": self._account_sid})
            ).one()
            if not row.won:
                holder = None
                if row.host is not None:
                    holder = Leader(row.host, row.pid, row.since.astimezone(dt.UTC), row.epoch)
                return Attempt(won=False, holder=holder)
            # From now on the server ends the session (and so frees the lock) once we have
            # not confirmed for a lease; before, a standby's connection may idle freely.
            try:
                await conn.execute(sa.text(f"SET idle_session_timeout = {self._idle_ms}"))
            except sa.exc.ProgrammingError:
                # PostgreSQL before 14 has no such setting: the lock still protects, but a
                # paused (not dead) leader keeps it, as on SQLite.
                log.warning(
                    "daemon.lock_without_idle_timeout",
                    reason="PostgreSQL 14 or newer ends a paused leader's session",
                )
        except (sa.exc.SQLAlchemyError, OSError) as error:
            await self._drop()
            raise StoreError(f"leader lock: {type(error).__name__}: {error}") from error
        self._held = True
        return Attempt(won=True)

    async def confirm(self) -> None:
        if not self._held or self._conn is None:
            raise LockLost("leader lock: not held")
        try:
            await self._conn.execute(_ALIVE)
        except (sa.exc.SQLAlchemyError, OSError) as error:
            await self._drop()
            raise LockLost(f"leader lock lost: {type(error).__name__}: {error}") from error

    async def release(self) -> None:
        # Ending the session frees the lock on the server whatever its state.
        await self._drop()

    async def close(self) -> None:
        await self._drop()
        await self._engine.dispose()

    async def _drop(self) -> None:
        self._held = False
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            async with asyncio.timeout(_CLOSE_SECONDS):
                await conn.close()
        except Exception:  # the session is gone or does not answer: abandon the connection
            with contextlib.suppress(Exception):
                await conn.invalidate()


# ------------------------------------------------------------------------------- SQLite


class FileLock:
    """An exclusive ``flock`` on a file beside the SQLite database (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def describe(self) -> str:
        return f"lock file {self.path}"

    async def try_acquire(self) -> Attempt:
        if self._fd is not None:
            return Attempt(won=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as error:
            raise StoreError(f"leader lock: cannot open {self.path}: {error.strerror}") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return Attempt(won=False, holder=self._holder())
        if not self._same_file(fd):
            # Replaced between our open and our lock: the lock is on a file nobody else sees.
            os.close(fd)
            return Attempt(won=False, holder=self._holder())
        self._fd = fd
        since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        record = json.dumps({"host": this_host(), "pid": os.getpid(), "since": since})
        os.ftruncate(fd, 0)
        os.pwrite(fd, (record + "\n").encode(), 0)
        return Attempt(won=True)

    async def confirm(self) -> None:
        if self._fd is None:
            raise LockLost("leader lock: not held")
        if not self._same_file(self._fd):
            await self.release()
            raise LockLost(f"leader lock lost: {self.path} was removed or replaced")

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor of the open file releases the flock

    async def close(self) -> None:
        await self.release()

    def _same_file(self, fd: int) -> bool:
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)

    def _holder(self) -> Leader | None:
        """Who holds the lock, from what it wrote into the file (None: cannot tell)."""
        try:
            record = json.loads(self.path.read_text())
            return Leader(
                host=str(record["host"]),
                pid=int(record["pid"]),
                since=dt.datetime.fromisoformat(record["since"]),
                epoch=None,
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


class SoleLock:
    """The lock of an in-memory database, which no other process can open: always won."""

    @property
    def describe(self) -> str:
        return "no lock (in-memory database)"

    async def try_acquire(self) -> Attempt:
        return Attempt(won=True)

    async def confirm(self) -> None:
        return None

    async def release(self) -> None:
        return None

    async def close(self) -> None:
        return None
