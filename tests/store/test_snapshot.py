"""The sqlite3 snapshot that ``status`` reads equals what the repository lists, value for value."""

from __future__ import annotations

import datetime as dt
import functools
import sqlite3

from orchestrator.domain.model import (
    ArchiveFacts,
    DayKey,
    DayStatus,
    JobRequest,
    JobState,
    ObservedBy,
    ResourceType,
    friendly_name,
)
from orchestrator.domain.policies import ResubmitPolicy
from orchestrator.domain.settlement import end_job, settle_report
from orchestrator.store import Store, upgrade_to_head
from orchestrator.store.leadership import leader_lock
from orchestrator.store.snapshot import read_snapshot, sqlite_path

from .conftest import ACCOUNT, NOW, Database

M, C = ResourceType.MESSAGES, ResourceType.CALLS
D1 = dt.date(2024, 1, 1)
SID = "JS" + "0123456789abcdef" * 2


def _days(n: int) -> list[dt.date]:
    return [D1 + dt.timedelta(days=i) for i in range(n)]


async def _populate(store: Store) -> None:
    """Days in several statuses (one archived, one failed back to Pending), jobs in two states."""
    await store.upsert_wanted_days([DayKey(M, d) for d in _days(4)], NOW)
    await store.upsert_wanted_days([DayKey(C, d) for d in _days(2)], NOW)
    name = friendly_name("bx", M, D1, D1 + dt.timedelta(days=2), 1)
    job = await store.claim_days(JobRequest(M, D1, D1 + dt.timedelta(days=2), 1, name), NOW)
    await store.record_job_sid(job.id, SID, NOW, NOW + dt.timedelta(minutes=1))
    d1, d2, d3 = _days(3)
    reported = {d1: DayStatus.COMPLETED, d2: DayStatus.FAILED, d3: DayStatus.RUNNING}
    await store.settle_job(
        job.id,
        functools.partial(
            settle_report,
            reported=reported,
            resubmit=ResubmitPolicy(3, dt.timedelta(minutes=5)),
            now=NOW + dt.timedelta(minutes=2),
            observed_by=ObservedBy.POLL,
        ),
    )
    facts = ArchiveFacts("/a/Messages/2024-01-01.json.gz", 120, "ab" * 32, 7, NOW)
    await store.record_archive(DayKey(M, d1), facts)
    name = friendly_name("bx", C, D1, D1, 1)
    lost = await store.claim_days(JobRequest(C, D1, D1, 1, name), NOW)
    await store.settle_job(
        lost.id,
        functools.partial(
            end_job, new_state=JobState.LOST, observed_by=ObservedBy.SUBMIT, now=NOW, reason="x"
        ),
    )


async def test_the_snapshot_reads_what_the_store_lists(sqlite_database: Database) -> None:
    """Every day (holder SID, archive facts, times) and every job come back identical."""
    engine = sqlite_database.engine()
    await upgrade_to_head(engine)
    store = Store(engine, ACCOUNT)
    await _populate(store)
    snapshot = read_snapshot(sqlite_database.url, ACCOUNT)
    assert snapshot is not None
    assert snapshot.days == await store.list_days()
    assert snapshot.jobs == await store.list_jobs()
    assert {d.status for d in snapshot.days} >= {DayStatus.COMPLETED, DayStatus.PENDING}
    assert any(d.archive is not None for d in snapshot.days)
    other = read_snapshot(sqlite_database.url, "AC" + "9" * 32)
    assert other is not None and other.days == [] and other.jobs == []
    assert snapshot.leader is None and other.leader is None


async def test_the_snapshot_reads_the_leader_and_whether_its_lock_is_held(
    sqlite_database: Database,
) -> None:
    """The leaders row as ``Store.leader`` reads it, and the lock file's state now."""
    engine = sqlite_database.engine()
    await upgrade_to_head(engine)
    store = Store(engine, ACCOUNT)
    await store.claim_leadership("host-a", 4242, NOW)
    snapshot = read_snapshot(sqlite_database.url, ACCOUNT)
    assert snapshot is not None
    assert snapshot.leader == await store.leader()
    assert snapshot.leader_running is False
    lock = leader_lock(sqlite_database.url, ACCOUNT, lease_seconds=10)
    assert (await lock.try_acquire()).won
    try:
        running = read_snapshot(sqlite_database.url, ACCOUNT)
        assert running is not None and running.leader_running is True
        # Asking never takes the lock from its holder.
        await lock.confirm()
    finally:
        await lock.close()


async def test_what_the_snapshot_cannot_read_is_left_to_the_store(
    sqlite_database: Database,
) -> None:
    """Not SQLite, no file, or a schema behind this code: None (the ordinary path then runs)."""
    assert read_snapshot("postgresql+asyncpg://u@h/db", ACCOUNT) is None
    assert read_snapshot(sqlite_database.url + ".missing", ACCOUNT) is None
    path = sqlite_path(sqlite_database.url)
    assert path is not None
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        db.execute("INSERT INTO alembic_version VALUES ('0001')")
    assert read_snapshot(sqlite_database.url, ACCOUNT) is None


def test_sqlite_path_reads_the_url_forms() -> None:
    """Absolute and relative file URLs name their file; memory and other databases none."""
    assert str(sqlite_path("sqlite+aiosqlite:////var/lib/o/db.sqlite")) == "/var/lib/o/db.sqlite"
    assert str(sqlite_path("sqlite:///rel/db.sqlite?x=1")) == "rel/db.sqlite"
    assert sqlite_path("sqlite+aiosqlite:///:memory:") is None
    assert sqlite_path("postgresql+asyncpg://u@h/db") is None
