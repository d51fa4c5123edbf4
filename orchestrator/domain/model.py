"""Frozen values of the export domain: resource types, day statuses, jobs, days, changes.

Stdlib only, no I/O. Everything else in the project speaks in these values.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass

from orchestrator.errors import InvalidInput

JOB_SID_PATTERN = re.compile(r"^JS[0-9a-fA-F]{32}$")
_DAY_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Twilio rejects end days later than today (UTC) minus this many days.
ELIGIBILITY_LAG_DAYS = 2


class ResourceType(enum.StrEnum):
    """The kinds of communication record Bulk Export can export."""

    MESSAGES = "Messages"
    CALLS = "Calls"
    CONFERENCES = "Conferences"
    PARTICIPANTS = "Participants"

    @classmethod
    def parse(cls, raw: object, *, field: str = "resource_type") -> ResourceType:
        """Return the resource type spelled exactly as Twilio spells it, else InvalidInput."""
        for member in cls:
            if raw == member.value:
                return member
        allowed = ", ".join(m.value for m in cls)
        raise InvalidInput(field, f"{raw!r} is not one of {allowed}")


class DayStatus(enum.StrEnum):
    """A day's status: Twilio's own names plus our Pending, GaveUp and Unknown."""

    PENDING = "Pending"
    SUBMITTED = "Submitted"
    RUNNING = "Running"
    ERROR_DURING_RUN = "ErrorDuringRun"
    COMPLETED = "Completed"
    COMPLETED_EMPTY_RECORDS = "CompletedEmptyRecords"
    FAILED = "Failed"
    RUNNING_TO_BE_DELETED = "RunningToBeDeleted"
    DELETED_BY_USER_REQUEST = "DeletedByUserRequest"
    GAVE_UP = "GaveUp"
    # A status string Twilio sent that we do not know; kept, never acted on as final.
    UNKNOWN = "Unknown"

    @classmethod
    def from_twilio(cls, raw: str) -> DayStatus:
        """Map a status string from ``details`` in any case or spelling to a status.

        "Completed", "COMPLETED", "completed_empty_records" all map; anything else is UNKNOWN.
        """
        return _TWILIO_STATUS_BY_KEY.get(_status_key(raw), cls.UNKNOWN)

    @property
    def is_success(self) -> bool:
        """The day's file exists (possibly empty)."""
        return self in (DayStatus.COMPLETED, DayStatus.COMPLETED_EMPTY_RECORDS)

    @property
    def is_final(self) -> bool:
        """Nothing more will happen to the day without an operator."""
        return self.is_success or self is DayStatus.GAVE_UP

    @property
    def is_in_flight(self) -> bool:
        """Twilio is (or may still be) working on the day inside a job."""
        return self in (DayStatus.SUBMITTED, DayStatus.RUNNING, DayStatus.ERROR_DURING_RUN)

    @property
    def is_lost_by_job(self) -> bool:
        """The job will not produce this day: it must be submitted again."""
        return self in (
            DayStatus.FAILED,
            DayStatus.RUNNING_TO_BE_DELETED,
            DayStatus.DELETED_BY_USER_REQUEST,
        )


def _status_key(raw: str) -> str:
    return re.sub(r"[^a-z]", "", raw.lower())


TWILIO_DAY_STATUSES = frozenset(
    {
        DayStatus.SUBMITTED,
        DayStatus.RUNNING,
        DayStatus.ERROR_DURING_RUN,
        DayStatus.COMPLETED,
        DayStatus.COMPLETED_EMPTY_RECORDS,
        DayStatus.FAILED,
        DayStatus.RUNNING_TO_BE_DELETED,
        DayStatus.DELETED_BY_USER_REQUEST,
    }
)
_TWILIO_STATUS_BY_KEY = {_status_key(s.value): s for s in TWILIO_DAY_STATUSES}


class JobState(enum.StrEnum):
    """Our lifecycle of a job we asked Twilio for (Twilio keeps no job status of its own)."""

    SUBMITTING = "submitting"  # row written, POST not yet answered
    ACTIVE = "active"  # Twilio knows it (SID recorded); days in flight
    FINISHED = "finished"  # every day of it reached a status the job will not change
    DELETING = "deleting"  # DELETE decided, not yet confirmed
    DELETED = "deleted"  # Twilio confirmed the delete (204 or 404)
    LOST = "lost"  # Twilio no longer knows it and we did not delete it

    @property
    def is_live(self) -> bool:
        """The job may still hold days on Twilio's side."""
        return self in (JobState.SUBMITTING, JobState.ACTIVE)


class ObservedBy(enum.StrEnum):
    """Which part of the daemon observed a transition."""

    SUBMIT = "submit"
    POLL = "poll"
    WEBHOOK = "webhook"
    CLEANUP = "cleanup"
    RESUBMIT = "resubmit"
    OPERATOR = "operator"
    ARCHIVE = "archive"


def parse_day(raw: object, *, field: str = "day") -> dt.date:
    """Parse a strict ``yyyy-mm-dd`` string into a real date, else InvalidInput naming ``field``."""
    if not isinstance(raw, str) or not _DAY_PATTERN.fullmatch(raw):
        raise InvalidInput(field, f"{raw!r} is not a yyyy-mm-dd date")
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(field, f"{raw!r} is not a real calendar date") from None


def latest_eligible_day(now: dt.datetime) -> dt.date:
    """The last day Twilio accepts as an EndDay at ``now`` (today UTC minus two days)."""
    return now.astimezone(dt.UTC).date() - dt.timedelta(days=ELIGIBILITY_LAG_DAYS)


def is_job_sid(raw: object) -> bool:
    return isinstance(raw, str) and JOB_SID_PATTERN.fullmatch(raw) is not None


def check_job_sid(raw: object, *, field: str = "job_sid") -> str:
    """Return ``raw`` if it is a job SID (JS + 32 hex digits), else InvalidInput."""
    if not is_job_sid(raw):
        raise InvalidInput(field, f"{raw!r} does not match {JOB_SID_PATTERN.pattern}")
    assert isinstance(raw, str)
    return raw


def friendly_name(
    prefix: str, resource_type: ResourceType, start_day: dt.date, end_day: dt.date, attempt: int
) -> str:
    """The deterministic name of the ``attempt``-th job for a range; marks the job as ours."""
    return f"{prefix}-{resource_type.value}-{start_day:%Y%m%d}-{end_day:%Y%m%d}-a{attempt}"


def has_prefix(name: str | None, prefix: str) -> bool:
    """True when ``name`` was made by ``friendly_name`` with this ``prefix``."""
    return name is not None and name.startswith(prefix + "-")


# ---------------------------------------------------------------------------
# What Twilio tells us (parsed by the client; the rest of the code never sees raw JSON)


@dataclass(frozen=True, slots=True)
class DetailGroup:
    """One entry of a job's ``details``: the days that share a status."""

    status: DayStatus
    raw_status: str
    days: tuple[dt.date, ...]


@dataclass(frozen=True, slots=True)
class RemoteJob:
    """A job as the Bulk Exports API describes it."""

    job_sid: str
    friendly_name: str | None
    resource_type: ResourceType
    start_day: dt.date | None
    end_day: dt.date | None
    details: tuple[DetailGroup, ...] = ()
    job_queue_position: int | None = None
    # Naive in Twilio's answer; always an aware UTC datetime here.
    estimated_completion_time: dt.datetime | None = None
    webhook_url: str | None = None
    webhook_method: str | None = None
    email: str | None = None

    def day_statuses(self) -> dict[dt.date, DayStatus]:
        """Each day named in ``details`` with its status (later groups win on duplicates)."""
        return {day: group.status for group in self.details for day in group.days}


@dataclass(frozen=True, slots=True)
class RemoteDay:
    """A day file Twilio has ready (an entry of the Days list)."""

    resource_type: ResourceType
    day: dt.date
    size: int | None = None
    create_date: str | None = None
    friendly_name: str | None = None


# ---------------------------------------------------------------------------
# What we record


@dataclass(frozen=True, slots=True)
class DayKey:
    resource_type: ResourceType
    day: dt.date


@dataclass(frozen=True, slots=True)
class ArchiveFacts:
    """Where and what a day's archived file is."""

    path: str
    size: int
    sha256: str
    record_count: int
    archived_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Job:
    """A job we asked Twilio for, as recorded in the store."""

    id: int
    friendly_name: str
    resource_type: ResourceType
    start_day: dt.date
    end_day: dt.date
    state: JobState
    attempt: int
    created_at: dt.datetime
    job_sid: str | None = None
    submitted_at: dt.datetime | None = None
    last_polled_at: dt.datetime | None = None
    next_poll_at: dt.datetime | None = None
    last_change_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    deleted_at: dt.datetime | None = None
    poll_count: int = 0
    queue_position: int | None = None
    eta: dt.datetime | None = None
    last_error: str | None = None
    # The last sign of progress: a day changed, or the job moved up Twilio's queue.
    last_progress_at: dt.datetime | None = None
    # When a create POST of this job got an unclear answer (it may exist on Twilio).
    create_ambiguous_at: dt.datetime | None = None
    # Looks for the job on Twilio's job list (by friendly name) that did not settle it.
    lookups: int = 0
    # A submitting job is looked for again on Twilio no earlier than this; None = at once.
    next_lookup_at: dt.datetime | None = None

    @property
    def day_count(self) -> int:
        return (self.end_day - self.start_day).days + 1


@dataclass(frozen=True, slots=True)
class Day:
    """A wanted day and everything we know of it."""

    resource_type: ResourceType
    day: dt.date
    status: DayStatus
    first_wanted_at: dt.datetime
    last_changed_at: dt.datetime
    job_id: int | None = None
    job_sid: str | None = None
    # Failures counted against the resubmit limit.
    resubmits: int = 0
    # Jobs this day has been claimed into; the next job's attempt number is built from it.
    attempts: int = 0
    # Earliest time the day may be submitted again (resubmit delay); None = now.
    not_before: dt.datetime | None = None
    archive: ArchiveFacts | None = None

    @property
    def key(self) -> DayKey:
        return DayKey(self.resource_type, self.day)


@dataclass(frozen=True, slots=True)
class DayChange:
    """One observed status transition of one day; the history ops read."""

    resource_type: ResourceType
    day: dt.date
    from_status: DayStatus | None
    to_status: DayStatus
    observed_at: dt.datetime
    observed_by: ObservedBy
    job_sid: str | None = None


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A job the planner decided to submit: a contiguous run of days of one resource type."""

    resource_type: ResourceType
    start_day: dt.date
    end_day: dt.date
    attempt: int
    friendly_name: str

    @property
    def days(self) -> tuple[dt.date, ...]:
        count = (self.end_day - self.start_day).days + 1
        return tuple(self.start_day + dt.timedelta(days=i) for i in range(count))
