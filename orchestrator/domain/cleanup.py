"""Our jobs + their days + Twilio's job list + policy + now -> which jobs to delete and why. Pure.

The one promise above all: only our jobs are ever deleted. Every action passes ``owns_name``:
the friendly name must carry our prefix (``model.has_prefix``) AND the rest must be exactly what
``model.friendly_name`` makes (``<Resource>-<yyyymmdd>-<yyyymmdd>-a<n>``). The second check keeps
an install with prefix ``orch`` away from the jobs of an install with prefix ``orch-1a2b3c4d``.

Reasons, each decided from explicit inputs the caller loads from the store and the client:

- RESUME: a delete decided earlier (job state DELETING) was never confirmed: send it again.
- STALE: an active job with no progress for ``stale_after``: no day changed and its queue
  position did not fall (``last_progress``), so a job moving up a long queue is not stale;
  judged at the first poll after the window closed (``is_stale``). Delete it. What its days
  become once Twilio confirmed is ``settlement.end_job``'s rule (the days still in flight go
  back to Pending; days the job lost were already released by the poll that saw it, counted
  against the resubmit limit). A stale job with a successful day not yet
  archived waits for the archive first.
- FINISHED: every day of the job is final or lost by it, and each successful day is safe: its
  file archived when archiving is on (an empty day's file too).
- ORPHAN: a job on Twilio with our name that the store never recorded.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from orchestrator.domain.model import (
    Day,
    DayStatus,
    Job,
    JobState,
    RemoteJob,
    ResourceType,
    has_prefix,
)

_NAME_REST = re.compile(
    "^(?:" + "|".join(rt.value for rt in ResourceType) + r")-\d{8}-\d{8}-a[1-9]\d*$"
)


def owns_name(name: str | None, prefix: str) -> bool:
    """True only for a name ``friendly_name`` could have made with exactly this ``prefix``."""
    if not prefix or not has_prefix(name, prefix):
        return False
    assert name is not None  # has_prefix is False for None
    return _NAME_REST.fullmatch(name[len(prefix) + 1 :]) is not None


@dataclass(frozen=True, slots=True)
class CleanupPolicy:
    """What cleanup may delete."""

    stale_after: dt.timedelta = dt.timedelta(hours=24)
    delete_finished: bool = True
    delete_orphans: bool = True
    # Archiving is on: a successful day is safe only once its file is archived.
    archive_enabled: bool = False


class CleanupReason(enum.StrEnum):
    RESUME = "resume"
    STALE = "stale"
    FINISHED = "finished"
    ORPHAN = "orphan"


@dataclass(frozen=True, slots=True)
class CleanupAction:
    """Delete one job on Twilio, and why."""

    reason: CleanupReason
    job_sid: str
    friendly_name: str
    resource_type: ResourceType
    # Our job row; None for an orphan.
    job_id: int | None = None


def _job_days(job: Job) -> list[dt.date]:
    return [job.start_day + dt.timedelta(days=i) for i in range(job.day_count)]


def _held(job: Job, rows: dict[tuple[ResourceType, dt.date], Day]) -> list[Day] | None:
    """The day rows this job still holds; None when a day of its range has no row (unknown)."""
    held: list[Day] = []
    for date in _job_days(job):
        row = rows.get((job.resource_type, date))
        if row is None:
            return None
        if row.job_id == job.id:
            held.append(row)
    return held


def _is_safe(day: Day, archive_enabled: bool) -> bool:
    """Deleting the job cannot lose this day."""
    if day.status.is_lost_by_job or day.status is DayStatus.GAVE_UP:
        return True
    if day.status.is_success:
        # An empty day is archived too (a valid empty file is the proof it was empty), and
        # Twilio may drop a job's files with the job: wait for the file either way.
        return not archive_enabled or day.archive is not None
    return False


def last_progress(job: Job) -> dt.datetime:
    """The job's last sign of progress: a day change or a fall in its queue position.

    ``last_progress_at`` is set by both (``settlement.settle_poll``); rows written before it
    existed have only ``last_change_at``, so the later of the two counts.
    """
    marks = [m for m in (job.last_progress_at, job.last_change_at) if m is not None]
    return max(marks) if marks else job.submitted_at or job.created_at


def is_stale(job: Job, stale_after: dt.timedelta, now: dt.datetime) -> bool:
    """No progress for ``stale_after``, as far as the daemon looked.

    A job queued far back has a far ETA, and the poll strategy may not look at it for hours
    (up to ``max_eta_wait``): what it did meanwhile is unknown, so it is judged at the first
    poll after its window closed, not before. A job never polled is judged by time alone.
    """
    since = last_progress(job)
    if now - since < stale_after:
        return False
    return job.last_polled_at is None or job.last_polled_at - since >= stale_after


def _decide_job(
    job: Job, rows: dict[tuple[ResourceType, dt.date], Day], policy: CleanupPolicy, now: dt.datetime
) -> CleanupAction | None:
    if job.job_sid is None:
        # Never reached Twilio as far as we know; adoption by name is another workflow's job.
        return None
    action = CleanupAction(
        reason=CleanupReason.RESUME,
        job_sid=job.job_sid,
        friendly_name=job.friendly_name,
        resource_type=job.resource_type,
        job_id=job.id,
    )
    if job.state is JobState.DELETING:
        return action
    if job.state not in (JobState.ACTIVE, JobState.FINISHED):
        return None
    held = _held(job, rows)
    if held is None:
        return None
    if all(_is_safe(day, policy.archive_enabled) for day in held):
        if not policy.delete_finished:
            return None
        return CleanupAction(
            reason=CleanupReason.FINISHED,
            job_sid=job.job_sid,
            friendly_name=job.friendly_name,
            resource_type=job.resource_type,
            job_id=job.id,
        )
    unsafe_success = any(
        day.status.is_success and not _is_safe(day, policy.archive_enabled) for day in held
    )
    if (
        job.state is JobState.ACTIVE
        and is_stale(job, policy.stale_after, now)
        and not unsafe_success
    ):
        return CleanupAction(
            reason=CleanupReason.STALE,
            job_sid=job.job_sid,
            friendly_name=job.friendly_name,
            resource_type=job.resource_type,
            job_id=job.id,
        )
    return None


def decide_cleanup(
    jobs: Sequence[Job],
    days: Sequence[Day],
    remote_jobs: Sequence[RemoteJob],
    *,
    known_names: Collection[str],
    policy: CleanupPolicy,
    prefix: str,
    now: dt.datetime,
) -> list[CleanupAction]:
    """The jobs to delete now: ours first (by job id), then orphans (by SID).

    ``jobs``: our jobs not yet deleted or lost. ``days``: the store's rows for every day in
    their ranges. ``remote_jobs``: Twilio's job list. ``known_names``: every friendly name the
    store has ever recorded, read AFTER listing ``remote_jobs`` (a job row is written before its
    POST, so a job created in between is then known and not mistaken for an orphan).
    """
    rows = {(day.resource_type, day.day): day for day in days}
    actions: list[CleanupAction] = []
    for job in sorted(jobs, key=lambda j: j.id):
        action = _decide_job(job, rows, policy, now)
        if action is not None:
            actions.append(action)
    if policy.delete_orphans:
        seen = {job.job_sid for job in jobs if job.job_sid is not None}
        known = set(known_names)
        for remote in sorted(remote_jobs, key=lambda r: r.job_sid):
            name = remote.friendly_name
            if name is None or name in known or remote.job_sid in seen:
                continue
            seen.add(remote.job_sid)
            actions.append(
                CleanupAction(
                    reason=CleanupReason.ORPHAN,
                    job_sid=remote.job_sid,
                    friendly_name=name,
                    resource_type=remote.resource_type,
                )
            )
    # The guard every action passes, whatever decided it: our name in the store, and not some
    # other name on Twilio's side for the same SID.
    remote_names = {remote.job_sid: remote.friendly_name for remote in remote_jobs}
    return [
        action
        for action in actions
        if owns_name(action.friendly_name, prefix)
        and (action.job_sid not in remote_names or owns_name(remote_names[action.job_sid], prefix))
    ]
