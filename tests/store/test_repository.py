"""The repository's behaviour, method by method, on every database."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Sequence

import pytest

from orchestrator.domain.model import (
    ArchiveFacts,
    DayChange,
    DayKey,
    DayStatus,
    DetailGroup,
    Job,
    JobRequest,
    JobState,
    ObservedBy,
    RemoteJob,
    ResourceType,
    friendly_name,
)
from orchestrator.domain.policies import ResubmitPolicy
from orchestrator.domain.polling import PollPolicy
from orchestrator.domain.settlement import (
    HeldDay,
    Settlement,
    end_job,
    settle_failed_poll,
    settle_poll,
    settle_report,
    start_deleting,
)
from orchestrator.errors import ClaimConflict, InvalidInput, StoreError
from orchestrator.store import Store

from .conftest import ACCOUNT, NOW

M = ResourceType.MESSAGES
D1 = dt.date(2024, 1, 1)
MINUTE = dt.timedelta(minutes=1)
SID = "JS" + "0123456789abcdef" * 2
SID2 = "JS" + "fedcba9876543210" * 2
DELAY = dt.timedelta(hours=1)


def _days(n: int, start: dt.date = D1) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(n)]


def _keys(n: int, start: dt.date = D1, resource_type: ResourceType = M) -> list[DayKey]:
    return [DayKey(resource_type, d) for d in _days(n, start)]


def _request(
    start: dt.date = D1, n: int = 3, attempt: int = 1, resource_type: ResourceType = M
) -> JobRequest:
    end = start + dt.timedelta(days=n - 1)
    return JobRequest(
        resource_type, start, end, attempt, friendly_name("bx", resource_type, start, end, attempt)
    )


async def _active_job(store: Store, n: int = 3, start: dt.date = D1, sid: str = SID) -> int:
    await store.upsert_wanted_days(_keys(n, start), NOW)
    job = await store.claim_days(_request(start, n), NOW)
    await store.record_job_sid(job.id, sid, NOW, NOW + MINUTE)
    return job.id


async def _apply(
    store: Store,
    job_id: int,
    reported: dict[dt.date, DayStatus],
    now: dt.datetime = NOW,
    max_resubmits: int = 2,
) -> list[DayChange]:
    settled = await store.settle_job(
        job_id,
        functools.partial(
            settle_report,
            reported=reported,
            resubmit=ResubmitPolicy(max_resubmits, DELAY),
            now=now,
            observed_by=ObservedBy.POLL,
        ),
    )
    return list(settled.changes)


async def _end(
    store: Store,
    job_id: int,
    new_state: JobState,
    now: dt.datetime = NOW,
    *,
    reason: str | None = None,
    observed_by: ObservedBy = ObservedBy.CLEANUP,
) -> list[DayChange]:
    settled = await store.settle_job(
        job_id,
        functools.partial(
            end_job, new_state=new_state, observed_by=observed_by, now=now, reason=reason
        ),
    )
    return list(settled.changes)


async def _polled(
    store: Store,
    job_id: int,
    now: dt.datetime,
    next_poll_at: dt.datetime | None,
    queue_position: int | None = None,
    eta: dt.datetime | None = None,
) -> Job:
    """Write the poll bookkeeping a test chooses (the store writes the row it is given)."""

    def decide(job: Job, held: Sequence[HeldDay]) -> Settlement:
        polled = dataclasses.replace(
            job,
            last_polled_at=now,
            next_poll_at=next_poll_at,
            poll_count=job.poll_count + 1,
            queue_position=queue_position,
            eta=eta,
        )
        return Settlement(job=polled, at=now)

    return (await store.settle_job(job_id, decide)).job


# ---------------------------------------------------------------- wanted days


async def test_upsert_wanted_days_inserts_pending_days_once(store: Store) -> None:
    """New days are Pending with a first transition; upserting again changes nothing."""
    assert await store.upsert_wanted_days(_keys(3), NOW) == 3
    assert await store.upsert_wanted_days(_keys(4), NOW + MINUTE) == 1
    days = await store.list_days()
    assert [d.day for d in days] == _days(4)
    assert all(d.status is DayStatus.PENDING and d.job_id is None for d in days)
    assert days[0].first_wanted_at == NOW and days[3].first_wanted_at == NOW + MINUTE
    history = await store.day_history(_keys(1)[0])
    assert [(c.from_status, c.to_status) for c in history] == [(None, DayStatus.PENDING)]


async def test_upsert_does_not_touch_existing_days(store: Store) -> None:
    """An existing day keeps its status and job when wanted again."""
    job_id = await _active_job(store, 2)
    await store.upsert_wanted_days(_keys(2), NOW + MINUTE)
    assert {d.status for d in await store.list_days()} == {DayStatus.SUBMITTED}
    assert {d.job_id for d in await store.list_days()} == {job_id}


async def test_pending_days_are_eligible_unclaimed_pending_days(store: Store) -> None:
    """pending_days lists Pending days in no job and past their delay, by type then day."""
    await store.upsert_wanted_days(_keys(2, resource_type=ResourceType.CALLS), NOW)
    await store.upsert_wanted_days(_keys(5), NOW)
    await store.claim_days(_request(D1, 2), NOW)
    pending = await store.pending_days(NOW)
    assert [(d.resource_type, d.day) for d in pending] == [
        (ResourceType.CALLS, D1),
        (ResourceType.CALLS, D1 + dt.timedelta(days=1)),
        *[(M, d) for d in _days(3, D1 + dt.timedelta(days=2))],
    ]
    assert [d.day for d in await store.pending_days(NOW, resource_type=ResourceType.CALLS)] == [
        D1,
        D1 + dt.timedelta(days=1),
    ]


# ---------------------------------------------------------------- claiming


async def test_claim_days_creates_a_submitting_job_holding_its_days(store: Store) -> None:
    """A claim makes the job row and points each day at it, counting an attempt."""
    await store.upsert_wanted_days(_keys(3), NOW)
    job = await store.claim_days(_request(), NOW)
    assert job.state is JobState.SUBMITTING and job.job_sid is None
    assert (job.start_day, job.end_day, job.attempt, job.created_at) == (
        D1,
        D1 + dt.timedelta(days=2),
        1,
        NOW,
    )
    assert job.friendly_name == "bx-Messages-20240101-20240103-a1"
    days = await store.days_of_job(job.id)
    assert len(days) == 3
    assert all(d.status is DayStatus.PENDING and d.attempts == 1 for d in days)
    assert await store.jobs_submitting() == [job]
    assert await store.pending_days(NOW) == []


@pytest.mark.parametrize("case", ["unknown", "claimed", "not_pending", "delayed", "same_name"])
async def test_claim_conflicts_change_nothing(store: Store, case: str) -> None:
    """A claim of an unknown, claimed, non-Pending or delayed day fails whole."""
    await store.upsert_wanted_days(_keys(3), NOW)
    if case == "unknown":
        request = _request(D1, 4)
    elif case == "claimed":
        await store.claim_days(_request(D1 + dt.timedelta(days=2), 1), NOW)
        request = _request()
    elif case == "not_pending":
        job_id = await _active_job(store, 1, D1 + dt.timedelta(days=1))
        await _apply(store, job_id, {D1 + dt.timedelta(days=1): DayStatus.COMPLETED})
        request = _request()
    elif case == "delayed":
        job_id = await _active_job(store, 1, D1 + dt.timedelta(days=1))
        await _apply(store, job_id, {D1 + dt.timedelta(days=1): DayStatus.FAILED})
        request = _request(attempt=2)
    else:
        job = await store.claim_days(_request(), NOW)
        await _end(store, job.id, JobState.LOST, reason="gone")
        request = _request()
    jobs_before = await store.list_jobs()
    days_before = await store.list_days()
    with pytest.raises(ClaimConflict):
        await store.claim_days(request, NOW)
    assert await store.list_jobs() == jobs_before
    assert await store.list_days() == days_before


async def test_a_delayed_day_is_claimable_after_its_delay(store: Store) -> None:
    """A resubmitted day becomes eligible (and claimable) once not_before has passed."""
    job_id = await _active_job(store, 1)
    await _apply(store, job_id, {D1: DayStatus.FAILED})
    assert await store.pending_days(NOW) == []
    [day] = await store.pending_days(NOW + DELAY)
    assert day.not_before == NOW + DELAY and day.resubmits == 1
    job = await store.claim_days(_request(D1, 1, attempt=2), NOW + DELAY)
    assert (await store.days_of_job(job.id))[0].attempts == 2


# ---------------------------------------------------------------- submitting


async def test_record_job_sid_activates_job_and_submits_days(store: Store) -> None:
    """Recording the SID makes the job active and its days Submitted, observed by submit."""
    job_id = await _active_job(store, 2)
    job = await store.get_job(job_id)
    assert job.state is JobState.ACTIVE and job.job_sid == SID
    assert (job.submitted_at, job.next_poll_at, job.last_change_at) == (NOW, NOW + MINUTE, NOW)
    for day in await store.days_of_job(job_id):
        assert day.status is DayStatus.SUBMITTED and day.job_sid == SID
    history = await store.day_history(_keys(1)[0])
    assert history[-1] == DayChange(
        M, D1, DayStatus.PENDING, DayStatus.SUBMITTED, NOW, ObservedBy.SUBMIT, SID
    )
    assert await store.job_by_sid(SID) == job
    assert await store.job_by_friendly_name(job.friendly_name) == job


async def test_record_job_sid_returns_the_transitions_it_wrote(store: Store) -> None:
    """The changes returned are exactly the Pending -> Submitted transitions recorded."""
    await store.upsert_wanted_days(_keys(2), NOW)
    job = await store.claim_days(_request(D1, 2), NOW)
    _, changes = await store.record_job_sid(job.id, SID, NOW, NOW + MINUTE)
    assert [(c.day, c.from_status, c.to_status) for c in changes] == [
        (day, DayStatus.PENDING, DayStatus.SUBMITTED) for day in (D1, D1 + dt.timedelta(days=1))
    ]
    for change in changes:
        history = await store.day_history(DayKey(change.resource_type, change.day))
        assert history[-1] == change


async def test_record_job_sid_is_idempotent_and_refuses_another_sid(store: Store) -> None:
    """The same SID again is a no-op; a different SID is an error."""
    job_id = await _active_job(store, 1)
    again, changes = await store.record_job_sid(job_id, SID, NOW + MINUTE, NOW + 2 * MINUTE)
    assert changes == []
    assert again.submitted_at == NOW and len(await store.day_history(_keys(1)[0])) == 2
    with pytest.raises(StoreError):
        await store.record_job_sid(job_id, SID2, NOW, NOW)


async def test_a_sid_belongs_to_one_job(store: Store) -> None:
    """The database refuses the same Twilio SID on two jobs."""
    await _active_job(store, 1)
    await store.upsert_wanted_days(_keys(1, D1 + dt.timedelta(days=5)), NOW)
    other = await store.claim_days(_request(D1 + dt.timedelta(days=5), 1), NOW)
    with pytest.raises(StoreError):
        await store.record_job_sid(other.id, SID, NOW, NOW)
    assert (await store.get_job(other.id)).state is JobState.SUBMITTING


async def test_adoption_can_abandon_a_submitting_job(store: Store) -> None:
    """A submitting job Twilio never made is lost and its days are claimable again."""
    await store.upsert_wanted_days(_keys(2), NOW)
    job = await store.claim_days(_request(D1, 2), NOW)
    assert await _end(store, job.id, JobState.LOST, reason="not on Twilio") == []
    lost = await store.get_job(job.id)
    assert lost.state is JobState.LOST and lost.last_error == "not on Twilio"
    assert await store.jobs_submitting() == []
    assert len(await store.pending_days(NOW)) == 2
    retry = await store.claim_days(_request(D1, 2, attempt=2), NOW)
    assert {d.attempts for d in await store.days_of_job(retry.id)} == {2}


# ---------------------------------------------------------------- polling and applying


async def test_settle_job_writes_the_job_row_it_is_given(store: Store) -> None:
    """Every bookkeeping field a settlement sets is stored as given, the rest untouched."""
    job_id = await _active_job(store)
    eta = NOW + dt.timedelta(hours=3)
    job = await _polled(store, job_id, NOW + MINUTE, NOW + 5 * MINUTE, 4, eta)
    assert (job.poll_count, job.last_polled_at, job.next_poll_at) == (
        1,
        NOW + MINUTE,
        NOW + 5 * MINUTE,
    )
    assert (job.queue_position, job.eta, job.last_error) == (4, eta, None)
    assert await store.get_job(job_id) == job
    failed = await store.settle_job(
        job_id,
        functools.partial(
            settle_failed_poll, error="HTTP 500", poll=PollPolicy(), rand=0.0, now=NOW + MINUTE
        ),
    )
    stored = await store.get_job(job_id)
    assert stored == failed.job
    assert (stored.poll_count, stored.last_error) == (2, "HTTP 500")


async def test_a_finished_job_keeps_no_next_poll(store: Store) -> None:
    """The poll that finishes a job schedules no other poll."""
    job_id = await _active_job(store, 1)
    remote = RemoteJob(
        SID, None, M, D1, D1, (DetailGroup(DayStatus.COMPLETED, "Completed", (D1,)),)
    )
    await store.settle_job(
        job_id,
        functools.partial(
            settle_poll,
            remote=remote,
            resubmit=ResubmitPolicy(),
            poll=PollPolicy(),
            rand=0.0,
            now=NOW,
        ),
    )
    job = await store.get_job(job_id)
    assert job.state is JobState.FINISHED and job.next_poll_at is None


async def test_jobs_due_for_poll_are_active_and_due_oldest_first(store: Store) -> None:
    """Only active jobs whose next poll has come are due, most overdue first, up to limit."""
    first = await _active_job(store, 1, D1, SID)
    second = await _active_job(store, 1, D1 + dt.timedelta(days=3), SID2)
    await _polled(store, first, NOW, NOW + 2 * MINUTE)
    await _polled(store, second, NOW, NOW + MINUTE)
    assert await store.jobs_due_for_poll(NOW, 10) == []
    due = await store.jobs_due_for_poll(NOW + 5 * MINUTE, 10)
    assert [j.id for j in due] == [second, first]
    assert [j.id for j in await store.jobs_due_for_poll(NOW + 5 * MINUTE, 1)] == [second]


async def test_apply_records_real_changes_only_and_is_idempotent(store: Store) -> None:
    """Changes produce transitions once; applying the same details again changes nothing."""
    job_id = await _active_job(store, 3)
    d1, d2, d3 = _days(3)
    reported = {d1: DayStatus.RUNNING, d2: DayStatus.SUBMITTED, d3: DayStatus.UNKNOWN}
    later = NOW + MINUTE
    changes = await _apply(store, job_id, reported, later)
    assert changes == [
        DayChange(M, d1, DayStatus.SUBMITTED, DayStatus.RUNNING, later, ObservedBy.POLL, SID)
    ]
    days_after_first = await store.list_days()
    assert await _apply(store, job_id, reported, later + MINUTE) == []
    assert await store.list_days() == days_after_first
    assert len(await store.day_history(DayKey(M, d1))) == 3
    job = await store.get_job(job_id)
    assert job.last_change_at == later and job.state is JobState.ACTIVE


async def test_apply_ignores_days_the_job_does_not_hold(store: Store) -> None:
    """Twilio reporting a day outside the job changes no other day."""
    job_id = await _active_job(store, 1)
    await store.upsert_wanted_days(_keys(1, D1 + dt.timedelta(days=9)), NOW)
    changes = await _apply(store, job_id, {D1 + dt.timedelta(days=9): DayStatus.COMPLETED})
    assert changes == []
    assert (await store.get_day(DayKey(M, D1 + dt.timedelta(days=9)))).status is DayStatus.PENDING  # type: ignore[union-attr]  # present: upserted above


async def test_successes_finish_the_job_and_become_due_for_archiving(store: Store) -> None:
    """When every day succeeded the job is finished and the days wait for archiving."""
    job_id = await _active_job(store, 2)
    d1, d2 = _days(2)
    await _apply(store, job_id, {d1: DayStatus.COMPLETED}, NOW + MINUTE)
    assert (await store.get_job(job_id)).state is JobState.ACTIVE
    await _apply(store, job_id, {d2: DayStatus.COMPLETED_EMPTY_RECORDS}, NOW + 2 * MINUTE)
    job = await store.get_job(job_id)
    assert job.state is JobState.FINISHED and job.finished_at == NOW + 2 * MINUTE
    assert job.next_poll_at is None
    due = await store.days_due_for_archiving(10)
    assert [d.day for d in due] == [d1, d2]
    assert all(d.job_id == job_id and d.job_sid == SID for d in due)
    # A success is final: a later poll cannot move it.
    assert await _apply(store, job_id, {d1: DayStatus.FAILED}, NOW + 3 * MINUTE) == []


async def test_failed_days_are_released_for_resubmission(store: Store) -> None:
    """A Failed day leaves the job, counts a resubmit and waits out the delay as Pending."""
    job_id = await _active_job(store, 2)
    d1, d2 = _days(2)
    changes = await _apply(store, job_id, {d1: DayStatus.FAILED, d2: DayStatus.COMPLETED})
    assert [(c.day, c.from_status, c.to_status, c.observed_by) for c in changes] == [
        (d1, DayStatus.SUBMITTED, DayStatus.FAILED, ObservedBy.POLL),
        (d1, DayStatus.FAILED, DayStatus.PENDING, ObservedBy.RESUBMIT),
        (d2, DayStatus.SUBMITTED, DayStatus.COMPLETED, ObservedBy.POLL),
    ]
    day = await store.get_day(DayKey(M, d1))
    assert day is not None
    assert (day.status, day.job_id, day.resubmits, day.not_before) == (
        DayStatus.PENDING,
        None,
        1,
        NOW + DELAY,
    )
    assert (await store.get_job(job_id)).state is JobState.FINISHED
    assert [c.to_status for c in await store.day_history(DayKey(M, d1))] == [
        DayStatus.PENDING,
        DayStatus.SUBMITTED,
        DayStatus.FAILED,
        DayStatus.PENDING,
    ]


async def test_a_day_gives_up_after_max_resubmits(store: Store) -> None:
    """The failure that would exceed max_resubmits moves the day to GaveUp instead."""
    await store.upsert_wanted_days(_keys(1), NOW)
    now = NOW
    for attempt in (1, 2):
        job = await store.claim_days(_request(D1, 1, attempt), now)
        await store.record_job_sid(job.id, SID if attempt == 1 else SID2, now, now)
        changes = await _apply(store, job.id, {D1: DayStatus.FAILED}, now, max_resubmits=1)
        now += DELAY
    assert changes[-1].to_status is DayStatus.GAVE_UP
    day = await store.get_day(DayKey(M, D1))
    assert day is not None
    assert (day.status, day.resubmits, day.job_id, day.not_before) == (
        DayStatus.GAVE_UP,
        2,
        None,
        None,
    )
    assert await store.pending_days(now) == []


async def test_deleted_days_go_back_to_pending_without_counting(store: Store) -> None:
    """Days of a job deleted by someone are freed without using the resubmit budget."""
    job_id = await _active_job(store, 2)
    d1, d2 = _days(2)
    await _apply(
        store,
        job_id,
        {d1: DayStatus.DELETED_BY_USER_REQUEST, d2: DayStatus.RUNNING_TO_BE_DELETED},
    )
    for day in await store.list_days():
        assert (day.status, day.resubmits, day.job_id) == (DayStatus.PENDING, 0, None)
    assert (await store.get_job(job_id)).state is JobState.FINISHED


async def test_jobs_stale_are_active_without_change_for_long(store: Store) -> None:
    """An active job with no day change for stale_after is stale; a change resets the clock."""
    job_id = await _active_job(store, 2)
    hour = dt.timedelta(hours=1)
    assert await store.jobs_stale(NOW + 30 * MINUTE, hour) == []
    assert [j.id for j in await store.jobs_stale(NOW + hour, hour)] == [job_id]
    await _apply(store, job_id, {D1: DayStatus.RUNNING}, NOW + hour)
    assert await store.jobs_stale(NOW + hour + MINUTE, hour) == []


# ---------------------------------------------------------------- ending jobs


async def test_a_deleting_job_keeps_its_days_until_deleted(store: Store) -> None:
    """Deleting keeps every day with the job; the confirmed delete frees the unfinished ones."""
    job_id = await _active_job(store, 3)
    d1, d2, d3 = _days(3)
    await _apply(store, job_id, {d1: DayStatus.COMPLETED, d2: DayStatus.RUNNING})
    later = NOW + MINUTE
    deleting = await store.settle_job(
        job_id, functools.partial(start_deleting, now=later, reason="stale")
    )
    assert deleting.changes == ()
    job = await store.get_job(job_id)
    assert (job.state, job.last_error, job.next_poll_at) == (JobState.DELETING, "stale", None)
    assert await store.pending_days(later) == []
    assert [d.day for d in await store.days_of_job(job_id)] == [d1, d2, d3]
    changes = await _end(store, job_id, JobState.DELETED, later, reason="stale")
    assert [(c.day, c.from_status, c.to_status, c.observed_by) for c in changes] == [
        (d2, DayStatus.RUNNING, DayStatus.PENDING, ObservedBy.CLEANUP),
        (d3, DayStatus.SUBMITTED, DayStatus.PENDING, ObservedBy.CLEANUP),
    ]
    assert [d.day for d in await store.pending_days(later)] == [d2, d3]
    assert [d.day for d in await store.days_of_job(job_id)] == [d1]
    deleted = await store.get_job(job_id)
    assert deleted.state is JobState.DELETED and deleted.deleted_at == later


async def test_a_404d_active_job_is_lost_and_its_days_pending(store: Store) -> None:
    """A job Twilio no longer knows is lost; its in-flight days go back to Pending."""
    job_id = await _active_job(store, 2)
    changes = await _end(store, job_id, JobState.LOST, reason="404", observed_by=ObservedBy.POLL)
    assert {c.to_status for c in changes} == {DayStatus.PENDING}
    assert len(await store.pending_days(NOW)) == 2


async def test_impossible_job_endings_are_refused_and_write_nothing(store: Store) -> None:
    """A refused decision raises before the store writes anything; unknown jobs are errors."""
    job_id = await _active_job(store, 1)
    await _end(store, job_id, JobState.DELETED)
    before = (await store.get_job(job_id), await store.list_days())
    with pytest.raises(InvalidInput):
        await _end(store, job_id, JobState.LOST, reason="x")
    assert (await store.get_job(job_id), await store.list_days()) == before
    await store.upsert_wanted_days(_keys(1, D1 + dt.timedelta(days=4)), NOW)
    submitting = await store.claim_days(_request(D1 + dt.timedelta(days=4), 1), NOW)
    with pytest.raises(InvalidInput):
        await store.settle_job(submitting.id, functools.partial(start_deleting, now=NOW))
    assert (await store.get_job(submitting.id)).state is JobState.SUBMITTING
    with pytest.raises(StoreError):
        await store.get_job(10_000)
    with pytest.raises(StoreError):
        await _end(store, 10_000, JobState.LOST)


async def test_a_settlement_cannot_rename_the_job(store: Store) -> None:
    """A decision that returns another job's row is refused; nothing is written."""
    job_id = await _active_job(store, 1)

    def other_job(job: Job, held: Sequence[HeldDay]) -> Settlement:
        return Settlement(job=dataclasses.replace(job, id=job.id + 1), at=NOW)

    with pytest.raises(StoreError, match="names another job"):
        await store.settle_job(job_id, other_job)


async def test_jobs_ready_for_deletion_wait_for_archives_when_asked(store: Store) -> None:
    """Finished jobs are ready for deletion, with archiving on only once every file is archived."""
    job_id = await _active_job(store, 2)
    d1, d2 = _days(2)
    await _apply(store, job_id, {d1: DayStatus.COMPLETED, d2: DayStatus.FAILED})
    assert [j.id for j in await store.jobs_ready_for_deletion(require_archived=False)] == [job_id]
    assert await store.jobs_ready_for_deletion(require_archived=True) == []
    facts = ArchiveFacts("/a/Messages/2024-01-01.json.gz", 12, "ab" * 32, 3, NOW + MINUTE)
    archived = await store.record_archive(DayKey(M, d1), facts)
    assert archived.archive == facts
    assert [j.id for j in await store.jobs_ready_for_deletion(require_archived=True)] == [job_id]
    assert await store.days_due_for_archiving(10) == []


async def test_record_archive_needs_a_successful_day(store: Store) -> None:
    """Only a successful day can have an archived file."""
    await store.upsert_wanted_days(_keys(1), NOW)
    facts = ArchiveFacts("/a/x.json.gz", 1, "00" * 32, 0, NOW)
    with pytest.raises(StoreError, match="not a success"):
        await store.record_archive(DayKey(M, D1), facts)
    with pytest.raises(StoreError, match="unknown"):
        await store.record_archive(DayKey(M, D1 + dt.timedelta(days=3)), facts)


async def test_days_due_for_archiving_oldest_completion_first(store: Store) -> None:
    """Days wait for archiving in order of completion, up to the limit."""
    job_id = await _active_job(store, 3)
    d1, d2, d3 = _days(3)
    await _apply(store, job_id, {d3: DayStatus.COMPLETED}, NOW + MINUTE)
    await _apply(store, job_id, {d1: DayStatus.COMPLETED}, NOW + 2 * MINUTE)
    await _apply(store, job_id, {d2: DayStatus.COMPLETED}, NOW + 3 * MINUTE)
    assert [d.day for d in await store.days_due_for_archiving(2)] == [d3, d1]


# ---------------------------------------------------------------- operator and status


async def test_retry_days_brings_given_up_days_back(store: Store) -> None:
    """retry moves GaveUp days to Pending with a fresh budget, observed by the operator."""
    job_id = await _active_job(store, 2)
    d1, d2 = _days(2)
    await _apply(store, job_id, {d1: DayStatus.FAILED, d2: DayStatus.COMPLETED}, max_resubmits=0)
    changes = await store.retry_days(_keys(2), NOW + MINUTE, reason="operator asked")
    assert changes == [
        DayChange(M, d1, DayStatus.GAVE_UP, DayStatus.PENDING, NOW + MINUTE, ObservedBy.OPERATOR)
    ]
    day = await store.get_day(DayKey(M, d1))
    assert day is not None
    assert (day.status, day.resubmits, day.not_before, day.last_changed_at) == (
        DayStatus.PENDING,
        0,
        None,
        NOW + MINUTE,
    )
    assert (await store.get_day(DayKey(M, d2))).status is DayStatus.COMPLETED  # type: ignore[union-attr]  # present: claimed above


async def test_counts_by_status_per_resource_type(store: Store) -> None:
    """Counts group days by resource type and status."""
    await _active_job(store, 2)
    await store.upsert_wanted_days(_keys(3, resource_type=ResourceType.CALLS), NOW)
    assert await store.counts_by_status() == {
        M: {DayStatus.SUBMITTED: 2},
        ResourceType.CALLS: {DayStatus.PENDING: 3},
    }


async def test_list_days_and_jobs_filter(store: Store) -> None:
    """list_days and list_jobs filter by type, status and state."""
    job_id = await _active_job(store, 2)
    await store.upsert_wanted_days(_keys(1, resource_type=ResourceType.CALLS), NOW)
    assert len(await store.list_days(resource_type=ResourceType.CALLS)) == 1
    assert len(await store.list_days(statuses=[DayStatus.SUBMITTED])) == 2
    assert [j.id for j in await store.list_jobs(states=[JobState.ACTIVE])] == [job_id]
    assert await store.list_jobs(states=[JobState.FINISHED]) == []


async def test_requested_days_since_sums_job_sizes(store: Store) -> None:
    """The daily budget counts the days of every job created since a time."""
    await store.upsert_wanted_days(_keys(10), NOW)
    await store.claim_days(_request(D1, 3), NOW)
    await store.claim_days(_request(D1 + dt.timedelta(days=5), 4), NOW + MINUTE)
    assert await store.requested_days_since(NOW) == 7
    assert await store.requested_days_since(NOW + MINUTE) == 4
    assert await store.requested_days_since(NOW + 2 * MINUTE) == 0


async def test_requested_days_since_ignores_creates_twilio_never_took(store: Store) -> None:
    """A job lost before it had a SID charged no quota; a submitting one may have, and counts."""
    await store.upsert_wanted_days(_keys(10), NOW)
    refused = await store.claim_days(_request(D1, 3), NOW)
    await _end(store, refused.id, JobState.LOST, reason="create refused: HTTP 400")
    await store.claim_days(_request(D1 + dt.timedelta(days=5), 2), NOW)  # still submitting
    lost_later = await _active_job(store, 1, D1 + dt.timedelta(days=8), sid="JS" + "e" * 32)
    await _end(store, lost_later, JobState.LOST, reason="Twilio answered 404")
    assert await store.requested_days_since(NOW) == 2 + 1


async def test_all_wanted_final(store: Store) -> None:
    """Done means every wanted day succeeded (archived, if asked) or gave up."""
    assert await store.all_wanted_final()
    job_id = await _active_job(store, 2)
    d1, d2 = _days(2)
    assert not await store.all_wanted_final()
    await _apply(store, job_id, {d1: DayStatus.COMPLETED, d2: DayStatus.FAILED}, max_resubmits=0)
    assert await store.all_wanted_final()
    assert not await store.all_wanted_final(require_archived=True)
    assert await store.all_wanted_final(keys=[DayKey(M, d2)], require_archived=True)
    assert not await store.all_wanted_final(keys=[DayKey(M, D1 + dt.timedelta(days=7))])


async def test_stores_of_two_accounts_do_not_see_each_other(store: Store) -> None:
    """A Store sees only its own account's days and jobs."""
    other = Store(store._engine, "AC" + "1" * 32)
    await _active_job(store, 2)
    assert await other.list_days() == [] and await other.list_jobs() == []
    assert await other.upsert_wanted_days(_keys(2), NOW) == 2
    assert len(await store.list_days()) == 2
    assert ACCOUNT in repr(store)
