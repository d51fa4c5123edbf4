"""Table tests of the planner: pending days + limits + now -> job requests."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from orchestrator.domain.model import Day, DayStatus, Job, JobState, ResourceType, friendly_name
from orchestrator.domain.plan import (
    PlanLimits,
    budget_window,
    is_submittable,
    plan_jobs,
    requested_days_in_window,
)
from orchestrator.errors import InvalidInput

# Latest eligible day at NOW is 2024-03-08.
NOW = dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.UTC)
M, C = ResourceType.MESSAGES, ResourceType.CALLS
PREFIX = "orch-test"


def d(day: int, month: int = 3) -> dt.date:
    return dt.date(2024, month, day)


def day(
    rt: ResourceType,
    date: dt.date,
    status: DayStatus = DayStatus.PENDING,
    *,
    attempts: int = 0,
    not_before: dt.datetime | None = None,
) -> Day:
    return Day(
        resource_type=rt,
        day=date,
        status=status,
        first_wanted_at=NOW,
        last_changed_at=NOW,
        attempts=attempts,
        not_before=not_before,
    )


def days(rt: ResourceType, first: dt.date, last: dt.date) -> list[Day]:
    """Pending rows for every day from ``first`` through ``last``."""
    return [day(rt, first + dt.timedelta(days=i)) for i in range((last - first).days + 1)]


Expected = list[tuple[ResourceType, dt.date, dt.date, int]]
LIMITS = PlanLimits(max_days_per_job=31, max_live_jobs=10, daily_day_budget=366)


@pytest.mark.parametrize(
    ("pending", "live_jobs", "requested_today", "limits", "expected"),
    [
        # nothing pending, nothing planned
        ([], 0, 0, LIMITS, []),
        # one run, one job
        (days(M, d(1), d(5)), 0, 0, LIMITS, [(M, d(1), d(5), 1)]),
        # a long run is cut greedily from the oldest day: full jobs, then the rest
        (
            days(M, d(1, 1), d(10, 3)),
            0,
            0,
            LIMITS,
            [(M, d(1, 1), d(31, 1), 1), (M, d(1, 2), d(2, 3), 1), (M, d(3, 3), d(8, 3), 1)],
        ),
        # a gap splits a run
        (
            days(M, d(1), d(3)) + days(M, d(5), d(6)),
            0,
            0,
            LIMITS,
            [(M, d(1), d(3), 1), (M, d(5), d(6), 1)],
        ),
        # oldest first across types; on the same start day, enum order (Messages before Calls)
        (
            days(M, d(5), d(6)) + days(C, d(1), d(2)) + days(C, d(5), d(5)),
            0,
            0,
            LIMITS,
            [(C, d(1), d(2), 1), (M, d(5), d(6), 1), (C, d(5), d(5), 1)],
        ),
        # not pending, not yet allowed again, or not yet eligible: left out
        (
            [
                day(M, d(1), DayStatus.RUNNING),
                day(M, d(2), DayStatus.FAILED),
                day(M, d(3), DayStatus.COMPLETED),
                day(M, d(4), not_before=NOW + dt.timedelta(seconds=1)),
                day(M, d(5), not_before=NOW),
                day(M, d(6), not_before=NOW - dt.timedelta(hours=1)),
                day(M, d(9)),
            ],
            0,
            0,
            LIMITS,
            [(M, d(5), d(6), 1)],
        ),
        # live jobs count against max_live_jobs
        (
            days(M, d(1), d(1)) + days(M, d(3), d(3)) + days(M, d(5), d(5)),
            8,
            0,
            LIMITS,
            [(M, d(1), d(1), 1), (M, d(3), d(3), 1)],
        ),
        (days(M, d(1), d(5)), 10, 0, LIMITS, []),
        (days(M, d(1), d(5)), 11, 0, LIMITS, []),
        # the budget: a job larger than what is left is shrunk to its oldest days, then stop
        (
            days(M, d(1, 1), d(8, 3)),
            0,
            360,
            LIMITS,
            [(M, d(1, 1), d(6, 1), 1)],
        ),
        (
            days(M, d(1, 1), d(8, 3)),
            0,
            300,
            LIMITS,
            [(M, d(1, 1), d(31, 1), 1), (M, d(1, 2), d(2, 3), 1), (M, d(3, 3), d(6, 3), 1)],
        ),
        # the budget spent exactly: no further job
        (days(M, d(1), d(8)), 0, 358, LIMITS, [(M, d(1), d(8), 1)]),
        (days(M, d(1), d(8)), 0, 366, LIMITS, []),
        (days(M, d(1), d(8)), 0, 400, LIMITS, []),
        # a small max_days_per_job
        (
            days(C, d(1), d(5)),
            0,
            0,
            PlanLimits(max_days_per_job=2, max_live_jobs=10, daily_day_budget=366),
            [(C, d(1), d(2), 1), (C, d(3), d(4), 1), (C, d(5), d(5), 1)],
        ),
        # attempt = 1 + the most attempts of any day in the job
        (
            [day(M, d(1), attempts=2), day(M, d(2)), day(M, d(3), attempts=1)],
            0,
            0,
            LIMITS,
            [(M, d(1), d(3), 3)],
        ),
        # a day listed twice counts once, with its higher attempts
        ([day(M, d(1)), day(M, d(1), attempts=4)], 0, 0, LIMITS, [(M, d(1), d(1), 5)]),
    ],
)
def test_plan_jobs(
    pending: list[Day],
    live_jobs: int,
    requested_today: int,
    limits: PlanLimits,
    expected: Expected,
) -> None:
    """Pending eligible days become few, large, oldest-first jobs within every limit."""
    requests = plan_jobs(
        pending,
        live_jobs=live_jobs,
        requested_days_today=requested_today,
        limits=limits,
        prefix=PREFIX,
        now=NOW,
    )
    assert [(r.resource_type, r.start_day, r.end_day, r.attempt) for r in requests] == expected
    for r in requests:
        assert r.friendly_name == friendly_name(
            PREFIX, r.resource_type, r.start_day, r.end_day, r.attempt
        )


def test_plan_never_exceeds_limits() -> None:
    """Over a sweep of limits and usage, no plan breaks a limit or puts a day in two jobs."""
    pending = days(M, d(1, 1), d(8, 3)) + days(C, d(15, 2), d(8, 3))[::2]
    for per_job, max_live, budget, live, used in itertools.product(
        (1, 7, 31), (1, 3, 10), (1, 40, 366), (0, 2, 12), (0, 25, 365, 500)
    ):
        limits = PlanLimits(per_job, max_live, budget)
        requests = plan_jobs(
            pending,
            live_jobs=live,
            requested_days_today=used,
            limits=limits,
            prefix=PREFIX,
            now=NOW,
        )
        planned = [(r.resource_type, x) for r in requests for x in r.days]
        assert len(planned) == len(set(planned))
        assert len(planned) <= max(budget - used, 0)
        assert len(requests) <= max(max_live - live, 0)
        assert all(len(r.days) <= per_job for r in requests)
        assert sorted(requests, key=lambda r: r.start_day) == requests


@pytest.mark.parametrize(
    ("status", "not_before", "date", "expected"),
    [
        (DayStatus.PENDING, None, d(8), True),
        (DayStatus.PENDING, None, d(9), False),
        (DayStatus.PENDING, NOW, d(8), True),
        (DayStatus.PENDING, NOW + dt.timedelta(microseconds=1), d(8), False),
        (DayStatus.FAILED, None, d(1), False),
        (DayStatus.GAVE_UP, None, d(1), False),
    ],
)
def test_is_submittable(
    status: DayStatus, not_before: dt.datetime | None, date: dt.date, expected: bool
) -> None:
    """Only Pending, eligible days past their not_before may be submitted."""
    assert is_submittable(day(M, date, status, not_before=not_before), NOW) is expected


@pytest.mark.parametrize(
    ("now", "start"),
    [
        (NOW, dt.datetime(2024, 3, 10, tzinfo=dt.UTC)),
        (dt.datetime(2024, 3, 10, tzinfo=dt.UTC), dt.datetime(2024, 3, 10, tzinfo=dt.UTC)),
        (
            dt.datetime(2024, 3, 10, 23, 59, 59, 999999, tzinfo=dt.UTC),
            dt.datetime(2024, 3, 10, tzinfo=dt.UTC),
        ),
        # 01:00 at UTC+02:00 is 23:00 UTC the day before
        (
            dt.datetime(2024, 3, 10, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            dt.datetime(2024, 3, 9, tzinfo=dt.UTC),
        ),
    ],
)
def test_budget_window(now: dt.datetime, start: dt.datetime) -> None:
    """The budget window is the UTC calendar day holding `now`."""
    assert budget_window(now) == (start, start + dt.timedelta(days=1))


def _job(job_id: int, created_at: dt.datetime, first: dt.date, last: dt.date) -> Job:
    return Job(
        id=job_id,
        friendly_name=friendly_name(PREFIX, M, first, last, 1),
        resource_type=M,
        start_day=first,
        end_day=last,
        state=JobState.ACTIVE,
        attempt=1,
        created_at=created_at,
    )


def test_requested_days_in_window() -> None:
    """Only jobs created in today's UTC window count, by their number of days."""
    midnight = dt.datetime(2024, 3, 10, tzinfo=dt.UTC)
    jobs = [
        _job(1, midnight - dt.timedelta(microseconds=1), d(1, 1), d(31, 1)),  # yesterday
        _job(2, midnight, d(1, 2), d(10, 2)),  # 10 days
        _job(3, NOW, d(11, 2), d(11, 2)),  # 1 day
        _job(4, midnight + dt.timedelta(days=1), d(1), d(5)),  # tomorrow
    ]
    assert requested_days_in_window(jobs, NOW) == 11


@pytest.mark.parametrize(
    "kwargs",
    [{"max_days_per_job": 0}, {"max_live_jobs": 0}, {"daily_day_budget": -1}],
)
def test_plan_limits_validate(kwargs: dict[str, int]) -> None:
    """Limits below one are InvalidInput."""
    with pytest.raises(InvalidInput):
        PlanLimits(**kwargs)
