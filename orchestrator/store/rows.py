"""Rows -> domain values, shared by the repository and the standard-library snapshot reader.

No SQLAlchemy here: ``snapshot`` reads SQLite with ``sqlite3`` and builds the same values.
"""

from __future__ import annotations

from typing import Any

from orchestrator.domain.model import ArchiveFacts, Day, DayChange, Job


def job_from_row(row: Any) -> Job:
    """A ``Job`` from a row of ``jobs`` whose columns are attributes, already typed."""
    return Job(
        id=row.id,
        friendly_name=row.friendly_name,
        resource_type=row.resource_type,
        start_day=row.start_day,
        end_day=row.end_day,
        state=row.state,
        attempt=row.attempt,
        created_at=row.created_at,
        job_sid=row.job_sid,
        submitted_at=row.submitted_at,
        last_polled_at=row.last_polled_at,
        next_poll_at=row.next_poll_at,
        last_change_at=row.last_change_at,
        finished_at=row.finished_at,
        deleted_at=row.deleted_at,
        poll_count=row.poll_count,
        queue_position=row.queue_position,
        eta=row.eta,
        last_error=row.last_error,
        last_progress_at=row.last_progress_at,
        create_ambiguous_at=row.create_ambiguous_at,
        lookups=row.lookups,
        next_lookup_at=row.next_lookup_at,
    )


def day_from_row(row: Any) -> Day:
    """A ``Day`` from a row of ``days`` plus ``holder_sid`` (its job's SID), already typed."""
    archive = None
    if row.archived_at is not None:
        archive = ArchiveFacts(
            path=row.archive_path,
            size=row.archive_size,
            sha256=row.archive_sha256,
            record_count=row.archive_record_count,
            archived_at=row.archived_at,
        )
    return Day(
        resource_type=row.resource_type,
        day=row.day,
        status=row.status,
        first_wanted_at=row.first_wanted_at,
        last_changed_at=row.last_changed_at,
        job_id=row.job_id,
        job_sid=row.holder_sid,
        resubmits=row.resubmits,
        attempts=row.attempts,
        not_before=row.not_before,
        archive=archive,
    )


def change_from_row(row: Any) -> DayChange:
    """A ``DayChange`` from a row of ``transitions``."""
    return DayChange(
        resource_type=row.resource_type,
        day=row.day,
        from_status=row.from_status,
        to_status=row.to_status,
        observed_at=row.observed_at,
        observed_by=row.observed_by,
        job_sid=row.job_sid,
    )
