"""A create whose answer was unclear: when to look for it again, when to stop looking, and when
to stop creating its days until the next UTC day. Pure.

A create POST that timed out, broke, or got a 2xx answer the client could not parse may have
made a job on Twilio; each such job is a real job start (an e-mail to the account's owners and
real quota). So an ambiguous create is bounded three ways:

- it counts against the daily day budget like any create that reached Twilio (the store counts
  a job whose ``create_ambiguous_at`` is set even once it is lost);
- it is not taken for "never created" at the first empty job list: ``settle_not_found`` waits
  ``AmbiguousCreatePolicy.lookup_delay`` (doubling) and looks again, ``lookups`` times in all,
  before the job is lost and its days go back to Pending;
- a day that was in ``max_creates_per_day`` ambiguous creates in one UTC day is not put in a
  new job again until the next UTC day (``suspended_days``); the workflow logs an error-level
  ``job.creates_suspended`` once, when the last allowed ambiguous create happens.

A job found by name but whose SID could not be recorded (a store error) is not lost: Twilio
has it. ``defer_lookup`` only puts off the next look (capped backoff) and keeps the error.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence

from orchestrator.domain.model import DayKey, Job, JobState, ObservedBy
from orchestrator.domain.plan import budget_window
from orchestrator.domain.policies import AmbiguousCreatePolicy
from orchestrator.domain.settlement import HeldDay, Settlement, end_job
from orchestrator.errors import InvalidInput

__all__ = [
    "AmbiguousCreatePolicy",
    "ambiguous_counts",
    "defer_lookup",
    "lookup_due",
    "mark_ambiguous",
    "settle_not_found",
    "suspended_days",
    "suspended_until",
    "suspends",
]


def lookup_due(job: Job, now: dt.datetime) -> bool:
    """A submitting job is to be looked for on Twilio at ``now``."""
    return job.next_lookup_at is None or job.next_lookup_at <= now


def mark_ambiguous(
    job: Job,
    held: Sequence[HeldDay],
    *,
    policy: AmbiguousCreatePolicy,
    now: dt.datetime,
    reason: str,
) -> Settlement:
    """The create POST of ``job`` got an unclear answer: record it; look for it after a wait."""
    if job.state is not JobState.SUBMITTING:
        raise InvalidInput("state", f"job {job.friendly_name} is {job.state}, not submitting")
    settled = dataclasses.replace(
        job,
        create_ambiguous_at=now,
        lookups=0,
        next_lookup_at=now + policy.lookup_delay(0),
        last_error=reason,
    )
    return Settlement(job=settled, at=now)


def settle_not_found(
    job: Job,
    held: Sequence[HeldDay],
    *,
    policy: AmbiguousCreatePolicy,
    now: dt.datetime,
) -> Settlement:
    """Twilio's job list does not show the submitting ``job`` (by its friendly name).

    A job whose create was ambiguous is looked for ``policy.lookups`` times, waiting longer each
    time, before it is lost. One without (a crash between writing the row and the POST's
    answer) is lost at once, as before: nothing says Twilio ever received it.
    """
    looked = job.lookups + 1
    if job.create_ambiguous_at is None or looked >= policy.lookups:
        reason = (
            f"not on Twilio's job list after {looked} look(s)"
            if job.create_ambiguous_at is not None
            else "create never reached Twilio"
        )
        ended = end_job(
            job,
            held,
            new_state=JobState.LOST,
            observed_by=ObservedBy.SUBMIT,
            now=now,
            reason=reason,
        )
        return dataclasses.replace(
            ended, job=dataclasses.replace(ended.job, lookups=looked, next_lookup_at=None)
        )
    settled = dataclasses.replace(
        job, lookups=looked, next_lookup_at=now + policy.lookup_delay(looked)
    )
    return Settlement(job=settled, at=now)


def defer_lookup(
    job: Job,
    held: Sequence[HeldDay],
    *,
    policy: AmbiguousCreatePolicy,
    now: dt.datetime,
    error: str,
) -> Settlement:
    """Settling the submitting ``job`` failed (a store error, say): try again after a backoff.

    Never loses the job: Twilio may well have it, and its days stay held meanwhile.
    """
    if job.state is not JobState.SUBMITTING:
        raise InvalidInput("state", f"job {job.friendly_name} is {job.state}, not submitting")
    looked = job.lookups + 1
    settled = dataclasses.replace(
        job, lookups=looked, next_lookup_at=now + policy.lookup_delay(looked), last_error=error
    )
    return Settlement(job=settled, at=now)


def _job_keys(job: Job) -> list[DayKey]:
    return [
        DayKey(job.resource_type, job.start_day + dt.timedelta(days=i))
        for i in range(job.day_count)
    ]


def ambiguous_counts(jobs: Iterable[Job], now: dt.datetime) -> Counter[DayKey]:
    """How many ambiguous creates of ``jobs`` in ``now``'s UTC day included each day."""
    start, end = budget_window(now)
    counts: Counter[DayKey] = Counter()
    for job in jobs:
        at = job.create_ambiguous_at
        if at is not None and start <= at < end:
            counts.update(_job_keys(job))
    return counts


def suspended_days(
    jobs: Iterable[Job], policy: AmbiguousCreatePolicy, now: dt.datetime
) -> frozenset[DayKey]:
    """Days no new job may include until the next UTC day: each was in
    ``policy.max_creates_per_day`` ambiguous creates of ``jobs`` today (UTC)."""
    counts = ambiguous_counts(jobs, now)
    return frozenset(key for key, count in counts.items() if count >= policy.max_creates_per_day)


def suspends(
    job: Job, jobs: Iterable[Job], policy: AmbiguousCreatePolicy, now: dt.datetime
) -> bool:
    """``job``'s ambiguous create (counted in ``jobs``) makes one of its days suspended."""
    return not suspended_days(jobs, policy, now).isdisjoint(_job_keys(job))


def suspended_until(now: dt.datetime) -> dt.datetime:
    """When suspended days may be created again: the next 00:00 UTC."""
    return budget_window(now)[1]
