"""Pending days + limits + now -> the jobs to submit. Pure.

Each job start e-mails the account's owners and Twilio allows about 366 requested days per UTC
calendar day, so the planner makes few, large jobs and never exceeds either limit:

- only days that may be submitted now: Pending, past their ``not_before``, eligible at ``now``;
- per resource type, days are cut into contiguous runs, and each run into jobs of at most
  ``max_days_per_job`` days, filled greedily from the oldest day (so all but the newest job of a
  run are full);
- jobs are ordered oldest first (by start day, then resource type in enum order): the oldest
  days are the ones closest to leaving Twilio's retention, and a fixed order keeps plans
  deterministic;
- at most ``max_live_jobs - live_jobs`` jobs;
- the day budget: a job larger than what is left of today's budget is shrunk to its oldest days
  that fit, and planning stops there. Shrinking (rather than skipping to a later, smaller job)
  keeps the oldest-first order strict and spends the whole budget; it makes at most one small
  job per UTC day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from orchestrator.domain.model import (
    Day,
    DayStatus,
    Job,
    JobRequest,
    ResourceType,
    friendly_name,
    latest_eligible_day,
)
from orchestrator.errors import InvalidInput

_ONE_DAY = dt.timedelta(days=1)
_TYPE_ORDER = {rt: i for i, rt in enumerate(ResourceType)}


@dataclass(frozen=True, slots=True)
class PlanLimits:
    """How much the planner may ask of Twilio."""

    max_days_per_job: int = 31
    max_live_jobs: int = 10
    # Requested days per UTC calendar day (Twilio's reported quota is about 366).
    daily_day_budget: int = 366

    def __post_init__(self) -> None:
        for field in ("max_days_per_job", "max_live_jobs", "daily_day_budget"):
            if getattr(self, field) < 1:
                raise InvalidInput(field, f"{getattr(self, field)} is not at least 1")


def budget_window(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The UTC calendar day holding ``now``: [00:00 UTC, next 00:00 UTC), the budget's window."""
    today = now.astimezone(dt.UTC).date()
    start = dt.datetime(today.year, today.month, today.day, tzinfo=dt.UTC)
    return start, start + _ONE_DAY


def requested_days_in_window(jobs: Iterable[Job], now: dt.datetime) -> int:
    """Days requested by ``jobs`` created in today's budget window (UTC).

    A job counts from the moment its row is written (``created_at``), before its POST: counting
    a job Twilio may not have accepted errs on the side of never exceeding the quota.
    """
    start, end = budget_window(now)
    return sum(job.day_count for job in jobs if start <= job.created_at < end)


def is_submittable(day: Day, now: dt.datetime) -> bool:
    """The day may go into a new job at ``now``."""
    return (
        day.status is DayStatus.PENDING
        and (day.not_before is None or day.not_before <= now)
        and day.day <= latest_eligible_day(now)
    )


def _runs(days: list[Day]) -> list[list[Day]]:
    """Split days sorted by date into runs of consecutive dates."""
    runs: list[list[Day]] = []
    for day in days:
        if runs and day.day == runs[-1][-1].day + _ONE_DAY:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def _candidates(pending: Sequence[Day], now: dt.datetime, max_days: int) -> list[list[Day]]:
    """Every job the pending days could make, unlimited by slots and budget, oldest first."""
    by_type: dict[ResourceType, dict[dt.date, Day]] = {}
    for day in pending:
        if is_submittable(day, now):
            # A day listed twice (it should not be) counts once, with its highest attempts.
            known = by_type.setdefault(day.resource_type, {})
            if day.day not in known or known[day.day].attempts < day.attempts:
                known[day.day] = day
    chunks: list[list[Day]] = []
    for days in by_type.values():
        for run in _runs([days[d] for d in sorted(days)]):
            chunks.extend(run[i : i + max_days] for i in range(0, len(run), max_days))
    chunks.sort(key=lambda chunk: (chunk[0].day, _TYPE_ORDER[chunk[0].resource_type]))
    return chunks


def _request(chunk: Sequence[Day], prefix: str) -> JobRequest:
    resource_type = chunk[0].resource_type
    start, end = chunk[0].day, chunk[-1].day
    attempt = 1 + max(day.attempts for day in chunk)
    return JobRequest(
        resource_type=resource_type,
        start_day=start,
        end_day=end,
        attempt=attempt,
        friendly_name=friendly_name(prefix, resource_type, start, end, attempt),
    )


def plan_jobs(
    pending: Sequence[Day],
    *,
    live_jobs: int,
    requested_days_today: int,
    limits: PlanLimits,
    prefix: str,
    now: dt.datetime,
) -> list[JobRequest]:
    """The jobs to submit now, oldest first, within the live-job and daily-day limits.

    ``pending`` may hold any days (non-pending or not yet eligible ones are ignored);
    ``live_jobs`` are jobs already submitting or active; ``requested_days_today`` are days
    already requested in today's UTC budget window (see ``requested_days_in_window``).
    """
    slots = limits.max_live_jobs - max(live_jobs, 0)
    budget = limits.daily_day_budget - max(requested_days_today, 0)
    requests: list[JobRequest] = []
    for chunk in _candidates(pending, now, limits.max_days_per_job):
        if slots <= 0 or budget <= 0:
            break
        fitted = chunk[:budget]
        requests.append(_request(fitted, prefix))
        slots -= 1
        budget -= len(fitted)
    return requests
