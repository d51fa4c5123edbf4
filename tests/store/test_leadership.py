"""The leader lock and the store's fence, on SQLite and PostgreSQL (see ``store.leadership``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator.domain.model import DayKey, ResourceType
from orchestrator.errors import NotLeader
from orchestrator.store import Store
from orchestrator.store.leadership import (
    FileLock,
    LeaderLock,
    LockLost,
    SoleLock,
    leader_lock,
    lock_key,
)
from orchestrator.store.repository import Fence
from tests.store.conftest import ACCOUNT, NOW, Database

LEASE = 3.0
DAY = DayKey(ResourceType.MESSAGES, dt.date(2024, 5, 1))


def _lock(database: Database) -> LeaderLock:
    return leader_lock(database.url, ACCOUNT, lease_seconds=LEASE, schema=database.schema)


@pytest.fixture
async def locks(database: Database, engine: object) -> AsyncIterator[tuple[LeaderLock, LeaderLock]]:
    """Two locks of one account on one (migrated) database, as two processes hold them."""
    first, second = _lock(database), _lock(database)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_one_holder_at_a_time_and_the_other_wins_after_release(
    locks: tuple[LeaderLock, LeaderLock],
) -> None:
    """The second try fails while the first holds the lock, and wins once it is released."""
    first, second = locks
    assert (await first.try_acquire()).won
    await first.confirm()
    assert not (await second.try_acquire()).won
    with pytest.raises(LockLost):
        await second.confirm()
    await first.release()
    with pytest.raises(LockLost):
        await first.confirm()
    assert (await second.try_acquire()).won
    assert not (await first.try_acquire()).won


async def test_a_standby_is_told_who_leads(
    locks: tuple[LeaderLock, LeaderLock], store: Store
) -> None:
    """A failed try names the holder: from the leaders row (PostgreSQL) or the lock file."""
    first, second = locks
    assert (await first.try_acquire()).won
    await store.claim_leadership("host-a", os.getpid(), NOW)
    attempt = await second.try_acquire()
    assert not attempt.won
    assert attempt.holder is not None
    assert attempt.holder.pid == os.getpid()


async def test_each_takeover_is_the_next_epoch_and_names_its_holder(store: Store) -> None:
    """claim_leadership counts epochs from 1 and records host, pid and since."""
    assert await store.leader() is None
    first = await store.claim_leadership("host-a", 11, NOW)
    second = await store.claim_leadership("host-b", 22, NOW + dt.timedelta(minutes=1))
    assert (first.epoch, second.epoch) == (1, 2)
    assert await store.leader() == second
    assert second.describe() == "host-b pid 22 since 2024-06-01 12:01:00Z"


async def test_a_deposed_leader_writes_nothing(database: Database, engine: object) -> None:
    """After another takeover, every write of the old leader is refused and nothing lands."""
    old = Store(database.engine(), ACCOUNT)
    new = Store(database.engine(), ACCOUNT)
    taken = await old.claim_leadership("host-a", 1, NOW)
    assert taken.epoch is not None
    old.fence(Fence(taken.epoch, lambda: True))
    assert await old.upsert_wanted_days([DAY], NOW)
    await new.claim_leadership("host-b", 2, NOW)
    with pytest.raises(NotLeader, match="another instance took over"):
        await old.upsert_wanted_days([DayKey(ResourceType.MESSAGES, dt.date(2024, 5, 2))], NOW)
    assert await new.get_day(DayKey(ResourceType.MESSAGES, dt.date(2024, 5, 2))) is None
    assert await new.get_day(DAY) is not None


async def test_a_leader_whose_lease_ran_out_writes_nothing(store: Store) -> None:
    """A leader that cannot confirm its lease is refused before its transaction reads."""
    taken = await store.claim_leadership("host-a", 1, NOW)
    assert taken.epoch is not None
    store.fence(Fence(taken.epoch, lambda: False))
    with pytest.raises(NotLeader, match="leadership not confirmed"):
        await store.upsert_wanted_days([DAY], NOW)
    store.fence(None)
    assert await store.upsert_wanted_days([DAY], NOW)


@pytest.mark.postgres
async def test_a_takeover_waits_for_the_deposed_leaders_write_in_flight(
    database: Database, engine: object
) -> None:
    """PostgreSQL: the epoch's UPDATE waits while a write of the old leader holds its row."""
    if database.dialect != "postgresql":
        pytest.skip("row locks: on SQLite the database lock serializes writers")
    old_engine = database.engine()
    old = Store(old_engine, ACCOUNT)
    new = Store(database.engine(), ACCOUNT)
    taken = await old.claim_leadership("host-a", 1, NOW)
    async with old_engine.begin() as conn:
        # What a fenced write does first: the epoch, shared.
        await conn.execute(sa.text("SELECT epoch FROM leaders FOR SHARE"))
        takeover = asyncio.create_task(new.claim_leadership("host-b", 2, NOW))
        done, _ = await asyncio.wait([takeover], timeout=1.0)
        assert not done, "the takeover did not wait for the write in flight"
    assert (await asyncio.wait_for(takeover, 60)).epoch == (taken.epoch or 0) + 1


async def test_the_postgres_lock_is_freed_when_its_session_ends(
    database: Database, engine: object
) -> None:
    """PostgreSQL: a leader's session killed by the server (its process gone) frees the lock."""
    if database.dialect != "postgresql":
        pytest.skip("PostgreSQL's session-level lock")
    first, second = _lock(database), _lock(database)
    try:
        assert (await first.try_acquire()).won
        key = lock_key(ACCOUNT, database.schema)
        killer = database.engine()
        async with killer.begin() as conn:
            await conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND granted"
                    " AND classid::bigint = :high AND objid::bigint = :low"
                ),
                {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF},
            )
        with pytest.raises(LockLost):
            await first.confirm()
        assert (await second.try_acquire()).won
    finally:
        await first.close()
        await second.close()


async def test_the_postgres_lock_is_freed_after_a_lease_without_confirmation(
    database: Database, engine: object
) -> None:
    """PostgreSQL: a leader that stops confirming (paused) loses the lock after one lease."""
    if database.dialect != "postgresql":
        pytest.skip("PostgreSQL's idle_session_timeout")
    first, second = _lock(database), _lock(database)
    try:
        assert (await first.try_acquire()).won
        deadline = asyncio.get_running_loop().time() + 60
        while not (await second.try_acquire()).won:
            assert asyncio.get_running_loop().time() < deadline, "the lock was never freed"
            await asyncio.sleep(0.5)
        with pytest.raises(LockLost):
            await first.confirm()
    finally:
        await first.close()
        await second.close()


def test_the_lock_of_an_sqlite_file_is_a_file_beside_it(tmp_path: Path) -> None:
    """SQLite: ``<database>.lock``; in memory: no lock to share."""
    lock = leader_lock(f"sqlite+aiosqlite:///{tmp_path}/state.sqlite", ACCOUNT, lease_seconds=5)
    assert isinstance(lock, FileLock)
    assert lock.path == tmp_path / "state.sqlite.lock"
    assert isinstance(leader_lock("sqlite+aiosqlite://", ACCOUNT, lease_seconds=5), SoleLock)


async def test_a_replaced_lock_file_is_a_lost_lock(tmp_path: Path) -> None:
    """SQLite: a lock file removed under the holder means another could lock a new one."""
    path = tmp_path / "state.sqlite.lock"
    holder = FileLock(path)
    assert (await holder.try_acquire()).won
    assert json.loads(path.read_text())["pid"] == os.getpid()
    path.unlink()
    with pytest.raises(LockLost, match="removed or replaced"):
        await holder.confirm()
    other = FileLock(path)
    assert (await other.try_acquire()).won
    await other.close()
    await holder.close()


async def test_the_file_lock_is_freed_when_the_holder_process_dies(tmp_path: Path) -> None:
    """SQLite: the kernel frees the flock of a process that died without releasing it."""
    path = tmp_path / "state.sqlite.lock"
    child = await asyncio.create_subprocess_exec(
        "python3",
        "-c",
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(600)\n",
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    assert await asyncio.wait_for(child.stdout.readline(), 60) == b"locked\n"
    lock = FileLock(path)
    assert not (await lock.try_acquire()).won
    child.kill()
    await child.wait()
    assert (await lock.try_acquire()).won
    await lock.close()
