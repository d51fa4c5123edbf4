"""Table tests of unclear creates: when to look again, when to give up, when to suspend."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from orchestrator.domain.ambiguous import (
    defer_lookup,
    lookup_due,
    mark_ambiguous,
    settle_not_found,
    suspended_days,
    suspended_until,
    suspends,
)
from orchestrator.domain.model import DayKey, DayStatus, Job, JobState, ResourceType
from orchestrator.domain.policies import AmbiguousCreatePolicy
from orchestrator.domain.settlement import HeldDay
from orchestrator.errors import InvalidInput

M = ResourceType.MESSAGES
NOW = dt.datetime(2026, 3, 1, 20, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
D1, D2, D3 = (dt.date(2026, 1, d) for d in (1, 2, 3))
POLICY = AmbiguousCreatePolicy()
HELD = [HeldDay(D1, DayStatus.PENDING), HeldDay(D2, DayStatus.PENDING)]


def _job(
    job_id: int = 1,
    *,
    ambiguous_at: dt.datetime | None = NOW,
    lookups: int = 0,
    start: dt.date = D1,
    end: dt.date = D2,
) -> Job:
    return Job(
        id=job_id,
        friendly_name=f"bx-Messages-{start:%Y%m%d}-{end:%Y%m%d}-a{job_id}",
        resource_type=M,
        start_day=start,
        end_day=end,
        state=JobState.SUBMITTING,
        attempt=job_id,
        created_at=NOW,
        create_ambiguous_at=ambiguous_at,
        lookups=lookups,
    )


@pytest.mark.parametrize(
    ("looked", "delay"),
    [(0, MINUTE), (1, 2 * MINUTE), (2, 4 * MINUTE), (6, 60 * MINUTE), (10**6, 60 * MINUTE)],
)
def test_lookup_delay_doubles_up_to_its_cap(looked: int, delay: dt.timedelta) -> None:
    """The wait before each look doubles from first_lookup_after and stops at the cap."""
    assert POLICY.lookup_delay(looked) == delay


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"lookups": 0}, "lookups"),
        ({"max_creates_per_day": 0}, "max_creates_per_day"),
        ({"first_lookup_after": dt.timedelta(0)}, "first_lookup_after"),
        ({"max_lookup_after": dt.timedelta(seconds=1)}, "max_lookup_after"),
    ],
)
def test_policy_refuses_bad_values(fields: dict[str, object], name: str) -> None:
    """Each bad value is refused, naming its field."""
    with pytest.raises(InvalidInput) as caught:
        AmbiguousCreatePolicy(**fields)  # type: ignore[arg-type]
    assert caught.value.field == name


def test_mark_ambiguous_records_it_and_waits_before_the_first_look() -> None:
    """An unclear create is recorded on the job with the time of its first look."""
    settled = mark_ambiguous(
        _job(ambiguous_at=None), HELD, policy=POLICY, now=NOW, reason="bad body"
    )
    job = settled.job
    assert (job.create_ambiguous_at, job.lookups, job.next_lookup_at) == (NOW, 0, NOW + MINUTE)
    assert job.last_error == "bad body" and settled.changes == ()
    assert not lookup_due(job, NOW) and lookup_due(job, NOW + MINUTE)


@pytest.mark.parametrize(
    ("ambiguous_at", "lookups", "state", "next_lookup_at"),
    [
        # ambiguous, first and second empty list: wait 2, then 4 minutes
        (NOW, 0, JobState.SUBMITTING, NOW + 2 * MINUTE),
        (NOW, 1, JobState.SUBMITTING, NOW + 4 * MINUTE),
        # the third empty list: lost, days back
        (NOW, 2, JobState.LOST, None),
        # never ambiguous (a crash before the POST's answer): lost at the first empty list
        (None, 0, JobState.LOST, None),
    ],
)
def test_settle_not_found(
    ambiguous_at: dt.datetime | None,
    lookups: int,
    state: JobState,
    next_lookup_at: dt.datetime | None,
) -> None:
    """An ambiguous job is looked for `lookups` times before it is lost; others at once."""
    settled = settle_not_found(
        _job(ambiguous_at=ambiguous_at, lookups=lookups), HELD, policy=POLICY, now=NOW
    )
    assert (settled.job.state, settled.job.next_lookup_at) == (state, next_lookup_at)
    assert settled.job.lookups == lookups + 1
    assert set(settled.releases) == ({D1, D2} if state is JobState.LOST else set())


def test_defer_lookup_never_loses_the_job() -> None:
    """A failed settle only puts the next look off, however often it happens."""
    settled = defer_lookup(_job(lookups=50), HELD, policy=POLICY, now=NOW, error="db")
    assert settled.job.state is JobState.SUBMITTING and settled.releases == {}
    assert settled.job.next_lookup_at == NOW + POLICY.max_lookup_after
    with pytest.raises(InvalidInput):
        defer_lookup(
            dataclasses.replace(_job(), state=JobState.ACTIVE),
            HELD,
            policy=POLICY,
            now=NOW,
            error="db",
        )


YESTERDAY = NOW - dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("jobs", "suspended"),
    [
        # two today: not yet
        ([_job(1), _job(2)], set()),
        # three today of D1..D2: both days
        ([_job(1), _job(2), _job(3)], {D1, D2}),
        # three today, one of them D2..D3: only D2 was in three
        ([_job(1), _job(2), _job(3, start=D2, end=D3)], {D2}),
        # one of the three was yesterday (UTC): not yet
        ([_job(1, ambiguous_at=YESTERDAY), _job(2), _job(3)], set()),
        # not ambiguous at all: never counted
        ([_job(1, ambiguous_at=None)] * 5, set()),
    ],
)
def test_suspended_days(jobs: list[Job], suspended: set[dt.date]) -> None:
    """A day in max_creates_per_day ambiguous creates today (UTC) waits for the next day."""
    assert suspended_days(jobs, POLICY, NOW) == {DayKey(M, d) for d in suspended}


def test_suspends_only_the_jobs_that_reach_the_limit() -> None:
    """The third ambiguous create of a range suspends it; the second does not."""
    two, three = [_job(1), _job(2)], [_job(1), _job(2), _job(3)]
    assert not suspends(two[-1], two, POLICY, NOW)
    assert suspends(three[-1], three, POLICY, NOW)
    assert suspended_until(NOW) == dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
