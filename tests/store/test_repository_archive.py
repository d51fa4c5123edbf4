"""Archive retry state and sending a day whose file is gone back to Pending (both databases)."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools

import pytest

from orchestrator.domain.archiving import ArchiveAttempts, RetryPolicy, after_failure
from orchestrator.domain.model import (
    ArchiveFacts,
    DayKey,
    DayStatus,
    JobRequest,
    ObservedBy,
    ResourceType,
    friendly_name,
)
from orchestrator.domain.policies import ResubmitPolicy
from orchestrator.domain.settlement import settle_report
from orchestrator.errors import StoreError
from orchestrator.store import Store

from .conftest import NOW

KEY = DayKey(ResourceType.CALLS, dt.date(2024, 5, 1))
SID = "JS" + "b" * 32


async def _succeeded(store: Store) -> int:
    await store.upsert_wanted_days([KEY], NOW)
    name = friendly_name("t", KEY.resource_type, KEY.day, KEY.day, 1)
    job = await store.claim_days(JobRequest(KEY.resource_type, KEY.day, KEY.day, 1, name), NOW)
    await store.record_job_sid(job.id, SID, NOW, NOW)
    await store.settle_job(
        job.id,
        functools.partial(
            settle_report,
            reported={KEY.day: DayStatus.COMPLETED},
            resubmit=ResubmitPolicy(1, dt.timedelta(minutes=1)),
            now=NOW,
            observed_by=ObservedBy.POLL,
        ),
    )
    return job.id


def _minutes(n: int) -> dt.timedelta:
    return dt.timedelta(minutes=n)


# 1, 2, 4 ... minutes after each failed pass, no jitter.
POLICY = RetryPolicy(first_delay=_minutes(1), max_delay=_minutes(60), jitter=0.0)


async def _fail(store: Store, error: str) -> ArchiveAttempts:
    """What the archive workflow does after a failed pass: count from the stored attempts."""
    previous = await store.archive_attempts(KEY)
    assert previous is not None
    state = after_failure(previous, NOW, POLICY, 0.0, error)
    assert await store.record_archive_failure(KEY, previous, state)
    return state


async def test_archive_failures_count_and_hold_the_day_back(store: Store) -> None:
    """Each failure counts; the day is not due before its next attempt time."""
    await _succeeded(store)
    first = await _fail(store, "corrupt: x")
    second = await _fail(store, "corrupt: y")
    assert (first.attempts, second.attempts) == (1, 2)
    assert second.next_attempt_at == NOW + _minutes(2)
    assert await store.archive_attempts(KEY) == second
    assert await store.days_due_for_archiving(10, now=NOW) == []
    assert [d.key for d in await store.days_due_for_archiving(10)] == [KEY]
    due = await store.days_due_for_archiving(10, now=NOW + _minutes(2))
    assert [d.key for d in due] == [KEY]


async def test_recording_the_archive_clears_the_pending_retry(store: Store) -> None:
    """Once archived, no retry is pending; the failures stay counted."""
    await _succeeded(store)
    await _fail(store, "write: ENOSPC")
    facts = ArchiveFacts(path="/a/f.gz", size=3, sha256="0" * 64, record_count=1, archived_at=NOW)
    await store.record_archive(KEY, facts)
    state = await store.archive_attempts(KEY)
    assert state is not None
    assert (state.attempts, state.next_attempt_at, state.error) == (1, None, None)
    with pytest.raises(StoreError):
        await _fail(store, "late")


async def test_a_gone_file_sends_the_day_back_to_pending_once(store: Store) -> None:
    """Success without archive -> Pending, out of its job, one transition by archive."""
    job_id = await _succeeded(store)
    await _fail(store, "transport")
    later = NOW + dt.timedelta(days=8)
    changes = await store.return_day_for_rearchive(KEY, later, reason="gone")
    assert [(c.from_status, c.to_status, c.observed_by, c.job_sid) for c in changes] == [
        (DayStatus.COMPLETED, DayStatus.PENDING, ObservedBy.ARCHIVE, SID)
    ]
    day = await store.get_day(KEY)
    assert day is not None
    assert (day.status, day.job_id, day.not_before) == (DayStatus.PENDING, None, None)
    assert await store.return_day_for_rearchive(KEY, later, reason="gone") == []
    assert [d.key for d in await store.pending_days(later)] == [KEY]
    assert await store.days_due_for_archiving(10) == []
    state = await store.archive_attempts(KEY)
    assert state is not None and state.attempts == 0
    history = await store.day_history(KEY)
    assert history[-1].observed_by is ObservedBy.ARCHIVE
    # The job that made the lost file holds no unarchived success any more.
    assert [j.id for j in await store.jobs_ready_for_deletion(require_archived=True)] == [job_id]


async def test_an_archived_day_is_never_sent_back(store: Store) -> None:
    """A day with its file archived stays a success."""
    await _succeeded(store)
    facts = ArchiveFacts(path="/a/f.gz", size=3, sha256="0" * 64, record_count=1, archived_at=NOW)
    await store.record_archive(KEY, facts)
    assert await store.return_day_for_rearchive(KEY, NOW, reason="gone") == []
    day = await store.get_day(KEY)
    assert day is not None and day.status is DayStatus.COMPLETED and day.archive == facts


async def test_a_failure_counted_from_a_stale_count_is_not_written(store: Store) -> None:
    """Two writers read the same count: the second write is refused and nothing is lost."""
    await _succeeded(store)
    previous = await store.archive_attempts(KEY)
    assert previous is not None
    mine = after_failure(previous, NOW, POLICY, 0.0, "transport: mine")
    theirs = after_failure(previous, NOW, POLICY, 0.0, "corrupt: theirs")
    assert await store.record_archive_failure(KEY, previous, theirs)
    assert not await store.record_archive_failure(KEY, previous, mine)
    assert await store.archive_attempts(KEY) == theirs
    again = after_failure(theirs, NOW, POLICY, 0.0, "transport: mine")
    assert await store.record_archive_failure(KEY, theirs, again)
    state = await store.archive_attempts(KEY)
    assert state is not None and (state.attempts, state.error) == (2, "transport: mine")


async def test_concurrent_counts_from_one_read_have_one_winner(store: Store) -> None:
    """Many writers counting from the same read at once: exactly one write applies."""
    await _succeeded(store)
    previous = await store.archive_attempts(KEY)
    assert previous is not None
    states = [after_failure(previous, NOW, POLICY, 0.0, f"transport: {i}") for i in range(6)]
    written = await asyncio.gather(
        *(store.record_archive_failure(KEY, previous, state) for state in states)
    )
    assert sorted(written) == [False] * 5 + [True]
    assert await store.archive_attempts(KEY) == states[written.index(True)]


async def test_a_failure_of_a_day_not_waiting_for_its_archive_is_refused(store: Store) -> None:
    """An unknown day, or one that is not a success, cannot count an archive failure."""
    await store.upsert_wanted_days([KEY], NOW)
    previous = await store.archive_attempts(KEY)
    assert previous is not None and previous.attempts == 0
    state = after_failure(previous, NOW, POLICY, 0.0, "transport")
    with pytest.raises(StoreError):
        await store.record_archive_failure(KEY, previous, state)
    assert await store.archive_attempts(KEY) == previous
    unknown = DayKey(ResourceType.MESSAGES, KEY.day)
    with pytest.raises(StoreError):
        await store.record_archive_failure(unknown, previous, state)
