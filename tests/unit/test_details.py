"""Table tests of details -> per-day changes."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestrator.domain.details import diff_day_statuses
from orchestrator.domain.model import DayStatus, ObservedBy, ResourceType

D1, D2, D3 = dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 3)
NOW = dt.datetime(2024, 2, 1, tzinfo=dt.UTC)
S = DayStatus


@pytest.mark.parametrize(
    ("known", "reported", "expected"),
    [
        # nothing reported (empty details): nothing changes
        ({D1: S.SUBMITTED}, {}, []),
        # same status twice: nothing changes
        ({D1: S.RUNNING}, {D1: S.RUNNING}, []),
        # a real change
        ({D1: S.SUBMITTED}, {D1: S.RUNNING}, [(D1, S.SUBMITTED, S.RUNNING)]),
        # several days, day order, only the changed ones
        (
            {D2: S.RUNNING, D1: S.RUNNING, D3: S.RUNNING},
            {D1: S.COMPLETED, D2: S.RUNNING, D3: S.FAILED},
            [(D1, S.RUNNING, S.COMPLETED), (D3, S.RUNNING, S.FAILED)],
        ),
        # unknown status never recorded
        ({D1: S.RUNNING}, {D1: S.UNKNOWN}, []),
        # days not in this job are ignored
        ({D1: S.RUNNING}, {D2: S.COMPLETED}, []),
        # a final day is never moved by a poll
        ({D1: S.COMPLETED}, {D1: S.RUNNING}, []),
        ({D1: S.GAVE_UP}, {D1: S.COMPLETED}, []),
        # ErrorDuringRun is not final: it may still complete
        ({D1: S.ERROR_DURING_RUN}, {D1: S.COMPLETED}, [(D1, S.ERROR_DURING_RUN, S.COMPLETED)]),
    ],
)
def test_diff_day_statuses(
    known: dict[dt.date, DayStatus],
    reported: dict[dt.date, DayStatus],
    expected: list[tuple[dt.date, DayStatus, DayStatus]],
) -> None:
    """Only real changes to this job's non-final days become DayChanges."""
    changes = diff_day_statuses(
        resource_type=ResourceType.CALLS,
        job_sid="JS" + "a" * 32,
        known=known,
        reported=reported,
        observed_at=NOW,
        observed_by=ObservedBy.POLL,
    )
    assert [(c.day, c.from_status, c.to_status) for c in changes] == expected
    assert all(c.observed_at == NOW and c.job_sid == "JS" + "a" * 32 for c in changes)
