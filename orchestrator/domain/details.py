"""A job's reported per-day statuses -> the changes against what we knew. Pure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from orchestrator.domain.model import DayChange, DayStatus, ObservedBy, ResourceType


def diff_day_statuses(
    *,
    resource_type: ResourceType,
    job_sid: str | None,
    known: Mapping[dt.date, DayStatus],
    reported: Mapping[dt.date, DayStatus],
    observed_at: dt.datetime,
    observed_by: ObservedBy,
) -> list[DayChange]:
    """The real changes ``reported`` makes to the days in ``known``, in day order.

    ``known`` holds the days this job covers with their recorded status. Days Twilio reports
    that are not ours are ignored; days Twilio leaves out (empty ``details``) keep their status;
    an UNKNOWN status is never recorded (we would lose the last known one); a day already final
    (success or GaveUp) is never moved again by a poll.
    """
    changes: list[DayChange] = []
    for day in sorted(known):
        before = known[day]
        after = reported.get(day)
        if after is None or after is DayStatus.UNKNOWN or after == before or before.is_final:
            continue
        changes.append(
            DayChange(
                resource_type=resource_type,
                day=day,
                from_status=before,
                to_status=after,
                observed_at=observed_at,
                observed_by=observed_by,
                job_sid=job_sid,
            )
        )
    return changes
