"""Two writers never double-claim a day or lose an update, on either database."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import itertools

from orchestrator.domain.model import (
    DayKey,
    DayStatus,
    JobRequest,
    JobState,
    ObservedBy,
    ResourceType,
    friendly_name,
)
from orchestrator.domain.policies import ResubmitPolicy
from orchestrator.domain.settlement import settle_report
from orchestrator.errors import ClaimConflict
from orchestrator.store import Store

from .conftest import ACCOUNT, NOW, Database

M = ResourceType.MESSAGES
D1 = dt.date(2024, 1, 1)
TASKS = 12


def _request(start: int, length: int, attempt: int) -> JobRequest:
    first = D1 + dt.timedelta(days=start)
    last = first + dt.timedelta(days=length - 1)
    return JobRequest(M, first, last, attempt, friendly_name("bx", M, first, last, attempt))


async def _claim(store: Store, request: JobRequest) -> int | None:
    try:
        return (await store.claim_days(request, NOW)).id
    except ClaimConflict:
        return None


async def _assert_consistent(store: Store) -> None:
    """Every day's history is one unbroken chain ending in its status; held days' jobs agree."""
    jobs = {job.id: job for job in await store.list_jobs()}
    for day in await store.list_days():
        history = await store.day_history(day.key)
        assert history[0].from_status is None
        for before, after in itertools.pairwise(history):
            assert after.from_status == before.to_status, (day, history)
        assert history[-1].to_status == day.status
        if day.job_id is not None and not day.status.is_success:
            assert jobs[day.job_id].state.is_live


async def test_concurrent_claims_of_the_same_days_have_one_winner(
    database: Database, store: Store
) -> None:
    """Many tasks claiming overlapping ranges: each day ends in exactly one job."""
    await store.upsert_wanted_days([DayKey(M, D1 + dt.timedelta(days=i)) for i in range(10)], NOW)
    requests = [_request(start=i % 4, length=5, attempt=i + 1) for i in range(TASKS)]
    results = await asyncio.gather(*(_claim(store, r) for r in requests))
    winners = [job_id for job_id in results if job_id is not None]
    assert winners
    claimed = [d for d in await store.list_days() if d.job_id is not None]
    total = 0
    for job_id in winners:
        job = await store.get_job(job_id)
        assert len([d for d in claimed if d.job_id == job_id]) == job.day_count
        total += job.day_count
    assert len(claimed) == total
    assert {d.attempts for d in claimed} == {1}
    assert len(await store.list_jobs()) == len(winners)


async def test_identical_claims_from_two_engines_have_one_winner(
    database: Database, store: Store
) -> None:
    """Two engines (two processes) racing for the same job: one wins, none errors otherwise."""
    other = Store(database.engine(), ACCOUNT)
    await store.upsert_wanted_days([DayKey(M, D1 + dt.timedelta(days=i)) for i in range(5)], NOW)
    rounds = []
    for attempt in range(1, TASKS + 1):
        request = _request(0, 5, attempt)
        rounds += [_claim(store, request), _claim(other, request)]
    results = await asyncio.gather(*rounds)
    assert len([r for r in results if r is not None]) == 1


async def test_concurrent_poll_and_webhook_lose_no_update(database: Database, store: Store) -> None:
    """A poll and a webhook applying different news at once leave one consistent history."""
    other = Store(database.engine(), ACCOUNT)
    days = [D1 + dt.timedelta(days=i) for i in range(20)]
    await store.upsert_wanted_days([DayKey(M, d) for d in days], NOW)
    job = await store.claim_days(_request(0, 20, 1), NOW)
    await store.record_job_sid(job.id, "JS" + "1" * 32, NOW, NOW)
    news = [
        dict.fromkeys(days, DayStatus.RUNNING),
        dict.fromkeys(days[::2], DayStatus.COMPLETED),
        dict.fromkeys(days, DayStatus.ERROR_DURING_RUN),
        dict.fromkeys(days[1::4], DayStatus.FAILED),
        dict.fromkeys(days, DayStatus.COMPLETED),
    ]
    applies = [
        writer.settle_job(
            job.id,
            functools.partial(
                settle_report,
                reported=report,
                resubmit=ResubmitPolicy(3, dt.timedelta(0)),
                now=NOW + dt.timedelta(seconds=i),
                observed_by=ObservedBy.POLL if writer is store else ObservedBy.WEBHOOK,
            ),
        )
        for i, (report, writer) in enumerate(itertools.product(news, (store, other)))
    ]
    await asyncio.gather(*applies)
    await _assert_consistent(store)
    assert (await store.get_job(job.id)).state is JobState.FINISHED


async def test_concurrent_release_and_reclaim_keep_one_live_job_per_day(
    database: Database, store: Store
) -> None:
    """Failing days released by one writer while another claims them: never two live jobs."""
    other = Store(database.engine(), ACCOUNT)
    days = [D1 + dt.timedelta(days=i) for i in range(6)]
    await store.upsert_wanted_days([DayKey(M, d) for d in days], NOW)
    job = await store.claim_days(_request(0, 6, 1), NOW)
    await store.record_job_sid(job.id, "JS" + "2" * 32, NOW, NOW)
    fail = store.settle_job(
        job.id,
        functools.partial(
            settle_report,
            reported=dict.fromkeys(days, DayStatus.FAILED),
            resubmit=ResubmitPolicy(5, dt.timedelta(0)),
            now=NOW,
            observed_by=ObservedBy.POLL,
        ),
    )
    claims = [_claim(other, _request(i % 6, 1, 2 + i)) for i in range(TASKS)]
    await asyncio.gather(fail, *claims)
    await _assert_consistent(store)
    live = {j.id for j in await store.list_jobs(states=[JobState.SUBMITTING, JobState.ACTIVE])}
    held = [d for d in await store.list_days() if d.job_id in live]
    assert len(held) == len({d.day for d in held})
