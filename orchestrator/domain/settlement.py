"""A job as locked in the store + what just happened to it -> everything to write. Pure.

The store reads a job and the days it holds under lock, hands both to one of these decisions and
writes the ``Settlement`` that comes back, whole, in the same transaction: the job's new row,
the day transitions, and the days that leave the job. Nothing here reads a clock or a database,
so every rule is tested table-style (``tests/unit/test_settlement.py``).

- ``settle_report``: a job's per-day statuses as Twilio reported them; the real changes are
  ``diff_day_statuses``'s. A day the job will not produce is released at once: a Failed day
  counts a resubmit and goes back to Pending after ``ResubmitPolicy.delay``, or to GaveUp once
  the count would exceed ``max_resubmits``; a day deleted on Twilio's side goes back to Pending
  without counting (it was not the day's failure). Each release is a transition of its own
  (observed by resubmit). An active job whose remaining days are all successes is finished.
- ``settle_poll``: a fetched job: its report settled as above, plus the poll bookkeeping (polls
  since the last change, queue position, ETA) and the next poll time, from the poll strategy.
  A day change or a fall in Twilio's queue position is progress (``last_progress_at``): a job
  queued behind others is not stale while it moves up (``cleanup``).
- ``settle_failed_poll``: a poll without a usable answer: bookkeeping only, the error kept.
- ``start_deleting``: intent before effect, as for creates: the job is recorded as deleting
  before its DELETE is sent; it keeps its days, so none of them can be put in a new job while
  Twilio may still be working on it. A deleting job found after a crash is deleted again.
- ``end_job``: the job is gone on Twilio's side (deleted, confirmed, or lost). Every day it still
  holds that is not a success goes back to Pending, with no job and no resubmit counted;
  successes stay with the job that made their file.

A job's life: submitting -> active -> finished -> deleting -> deleted, with lost reachable from
any state but deleted. ``JOB_ENDINGS`` is that table; a move outside it is refused.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from orchestrator.domain.details import diff_day_statuses
from orchestrator.domain.model import DayChange, DayStatus, Job, JobState, ObservedBy, RemoteJob
from orchestrator.domain.policies import ResubmitPolicy
from orchestrator.domain.polling import PollFacts, PollStrategy
from orchestrator.errors import InvalidInput

# The states a job may move to when it stops being polled, from each state it may be in.
JOB_ENDINGS: Mapping[JobState, frozenset[JobState]] = {
    # Twilio never answered with a SID: nothing to delete, the job is simply lost.
    JobState.SUBMITTING: frozenset({JobState.LOST}),
    JobState.ACTIVE: frozenset({JobState.DELETING, JobState.DELETED, JobState.LOST}),
    JobState.FINISHED: frozenset({JobState.DELETING, JobState.DELETED, JobState.LOST}),
    JobState.DELETING: frozenset({JobState.DELETING, JobState.DELETED, JobState.LOST}),
    JobState.LOST: frozenset({JobState.DELETING, JobState.DELETED, JobState.LOST}),
    JobState.DELETED: frozenset({JobState.DELETED}),
}


@dataclass(frozen=True, slots=True)
class HeldDay:
    """A day a job holds, as the store read it under lock."""

    day: dt.date
    status: DayStatus
    # Failures counted against the resubmit limit so far.
    resubmits: int = 0


@dataclass(frozen=True, slots=True)
class Release:
    """What a day that leaves its job becomes."""

    status: DayStatus
    # Added to the day's resubmit count: 1 for a failure, 0 when it was not the day's fault.
    increment: int = 0
    # Earliest time a new job may take the day; None = at once.
    not_before: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Settlement:
    """Everything one decision writes: the job's new row, transitions, released days."""

    # The job as it is to be stored (same id; every field the decision may change).
    job: Job
    # When it was decided: the days' ``last_changed_at`` (and ``completed_at``) of this write.
    at: dt.datetime
    # Transitions in order; a day may take two steps (Running -> Failed -> Pending).
    changes: tuple[DayChange, ...] = ()
    # Days leaving the job, with what each becomes (its last step in ``changes``, if any).
    releases: Mapping[dt.date, Release] = field(default_factory=dict)
    # Why, for the transitions written.
    reason: str | None = None


def resubmit_release(
    lost_as: DayStatus, resubmits: int, policy: ResubmitPolicy, now: dt.datetime
) -> Release:
    """A day its job lost (``lost_as``: Failed, RunningToBeDeleted, DeletedByUserRequest)."""
    increment = 1 if lost_as is DayStatus.FAILED else 0
    if resubmits + increment > policy.max_resubmits:
        return Release(DayStatus.GAVE_UP, increment, None)
    return Release(DayStatus.PENDING, increment, now + policy.delay)


def settle_report(
    job: Job,
    held: Sequence[HeldDay],
    *,
    reported: Mapping[dt.date, DayStatus],
    resubmit: ResubmitPolicy,
    now: dt.datetime,
    observed_by: ObservedBy = ObservedBy.POLL,
) -> Settlement:
    """Apply per-day statuses Twilio reported for the job (a poll's, or a webhook's).

    Applying the same report twice changes nothing the second time.
    """
    known = {h.day: h.status for h in held}
    resubmits = {h.day: h.resubmits for h in held}
    observed = diff_day_statuses(
        resource_type=job.resource_type,
        job_sid=job.job_sid,
        known=known,
        reported=reported,
        observed_at=now,
        observed_by=observed_by,
    )
    changes: list[DayChange] = []
    releases: dict[dt.date, Release] = {}
    for change in observed:
        changes.append(change)
        if not change.to_status.is_lost_by_job:
            continue
        release = resubmit_release(change.to_status, resubmits[change.day], resubmit, now)
        releases[change.day] = release
        changes.append(
            dataclasses.replace(
                change,
                from_status=change.to_status,
                to_status=release.status,
                observed_by=ObservedBy.RESUBMIT,
            )
        )
    after = {**known, **{c.day: c.to_status for c in observed}}
    finished = job.state is JobState.ACTIVE and all(
        status.is_success for day, status in after.items() if day not in releases
    )
    settled = job
    if observed:
        settled = dataclasses.replace(settled, last_change_at=now)
    if finished:
        settled = dataclasses.replace(
            settled, state=JobState.FINISHED, finished_at=now, next_poll_at=None
        )
    return Settlement(job=settled, at=now, changes=tuple(changes), releases=releases)


def moved_up(stored: int | None, reported: int | None) -> bool:
    """Twilio's queue position fell since the last poll: the job is progressing.

    Only two numbers compare: a position that appears or disappears (the field is nullable)
    says nothing either way. A running job reports 0, so leaving the queue counts.
    """
    return stored is not None and reported is not None and reported < stored


def settle_poll(
    job: Job,
    held: Sequence[HeldDay],
    *,
    remote: RemoteJob,
    resubmit: ResubmitPolicy,
    poll: PollStrategy,
    rand: float,
    now: dt.datetime,
) -> Settlement:
    """A fetched job: its report applied, the poll counted, the next poll chosen.

    ``rand`` in [0, 1) is the strategy's jitter. Polls since the last change restart at 0 when
    this poll changed anything.
    """
    applied = settle_report(
        job,
        held,
        reported=remote.day_statuses(),
        resubmit=resubmit,
        now=now,
        observed_by=ObservedBy.POLL,
    )
    polls = 0 if applied.changes else job.poll_count + 1
    facts = PollFacts(
        polls_since_change=polls,
        eta=remote.estimated_completion_time,
        queue_position=remote.job_queue_position,
        submitted_at=job.submitted_at,
    )
    settled = dataclasses.replace(
        applied.job,
        last_polled_at=now,
        poll_count=polls,
        queue_position=remote.job_queue_position,
        eta=remote.estimated_completion_time,
    )
    if applied.changes or moved_up(job.queue_position, remote.job_queue_position):
        settled = dataclasses.replace(settled, last_progress_at=now)
    if settled.state.is_live:
        settled = dataclasses.replace(
            settled, next_poll_at=poll.next_poll_at(job, facts, now, rand)
        )
    else:
        settled = dataclasses.replace(settled, next_poll_at=None)
    return dataclasses.replace(applied, job=settled)


def settle_failed_poll(
    job: Job,
    held: Sequence[HeldDay],
    *,
    error: str,
    poll: PollStrategy,
    rand: float,
    now: dt.datetime,
) -> Settlement:
    """A poll that got no usable answer: state untouched but the bookkeeping and the error."""
    facts = PollFacts(polls_since_change=job.poll_count + 1, submitted_at=job.submitted_at)
    next_poll = poll.next_poll_at(job, facts, now, rand)
    settled = dataclasses.replace(
        job,
        last_polled_at=now,
        poll_count=job.poll_count + 1,
        last_error=error,
        next_poll_at=next_poll if job.state.is_live else None,
    )
    return Settlement(job=settled, at=now)


def _check_ending(job: Job, new_state: JobState) -> None:
    if new_state not in JOB_ENDINGS[job.state]:
        raise InvalidInput(
            "state", f"job {job.friendly_name} cannot go from {job.state} to {new_state}"
        )


def start_deleting(
    job: Job, held: Sequence[HeldDay], *, now: dt.datetime, reason: str | None = None
) -> Settlement:
    """We are about to DELETE the job on Twilio: record it; its days stay with it."""
    _check_ending(job, JobState.DELETING)
    settled = dataclasses.replace(
        job,
        state=JobState.DELETING,
        next_poll_at=None,
        last_error=reason if reason is not None else job.last_error,
    )
    return Settlement(job=settled, at=now, reason=reason)


def end_job(
    job: Job,
    held: Sequence[HeldDay],
    *,
    new_state: JobState,
    observed_by: ObservedBy,
    now: dt.datetime,
    reason: str | None = None,
) -> Settlement:
    """The job is deleted or lost: free every day it holds that is not a success.

    ``reason`` becomes the job's last error and the transitions' reason.
    """
    if new_state not in (JobState.DELETED, JobState.LOST):
        raise InvalidInput("state", f"{new_state} does not end a job")
    _check_ending(job, new_state)
    releases = {h.day: Release(DayStatus.PENDING) for h in held if not h.status.is_success}
    changes = tuple(
        DayChange(
            resource_type=job.resource_type,
            day=h.day,
            from_status=h.status,
            to_status=DayStatus.PENDING,
            observed_at=now,
            observed_by=observed_by,
            job_sid=job.job_sid,
        )
        for h in held
        if h.day in releases and h.status is not DayStatus.PENDING
    )
    settled = dataclasses.replace(
        job,
        state=new_state,
        next_poll_at=None,
        last_error=reason if reason is not None else job.last_error,
        deleted_at=now if new_state is JobState.DELETED else job.deleted_at,
    )
    return Settlement(job=settled, at=now, changes=changes, releases=releases, reason=reason)
