"""The endpoint's pure values: export ranges match spec_days, expiry and time-left text."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestrator.domain.model import DayStatus, ResourceType
from orchestrator.domain.observed import AtRisk, StoreSnapshot, export_range, time_left
from orchestrator.domain.wanted import ExportSpec, FixedRange, LastDays, OpenEnded, spec_days

NOW = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)
CALLS = ResourceType.CALLS


@pytest.mark.parametrize(
    "period",
    [
        FixedRange(dt.date(2024, 1, 1), dt.date(2024, 1, 31)),
        FixedRange(dt.date(2024, 7, 1), dt.date(2024, 7, 3)),  # not eligible yet: still wanted
        OpenEnded(dt.date(2024, 5, 1)),
        OpenEnded(dt.date(2024, 5, 30)),  # the latest eligible day itself
        OpenEnded(dt.date(2024, 6, 10)),  # starts in the future: no day yet
        LastDays(1),
        LastDays(30),
    ],
)
def test_export_range_is_spec_days_first_and_last(period: object) -> None:
    """The range's ends are those of spec_days, or None exactly when it lists no day."""
    spec = ExportSpec(name="e", resource_type=CALLS, period=period)  # type: ignore[arg-type]
    listed = spec_days(spec, NOW)
    found = export_range(spec, NOW)
    if not listed:
        assert found is None
    else:
        assert found is not None
        assert (found.first, found.last) == (listed[0], listed[-1])


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (dt.timedelta(days=2, hours=5, minutes=9), "2d 5h"),
        (dt.timedelta(hours=3, minutes=20), "3h 20m"),
        (dt.timedelta(minutes=45, seconds=59), "45m"),
        (dt.timedelta(0), "0m (overdue)"),
        (dt.timedelta(minutes=-5), "0m (overdue)"),
    ],
)
def test_time_left(delta: dt.timedelta, text: str) -> None:
    """Short durations for the risk banner."""
    assert time_left(delta) == text


def test_expiry_and_pending_age() -> None:
    """Expiry counts from completion + 7 days; a type with no Pending day has age 0."""
    risk = AtRisk(count=2, earliest_completed_at=NOW - dt.timedelta(days=6, hours=23))
    assert risk.expiry_seconds(NOW) == 3600
    snap = StoreSnapshot(
        taken_at=NOW,
        export_days={("e", CALLS, DayStatus.PENDING): 1},
        oldest_pending_since={CALLS: NOW - dt.timedelta(minutes=2)},
    )
    assert snap.oldest_pending_age_seconds(CALLS) == 120
    assert snap.oldest_pending_age_seconds(ResourceType.MESSAGES) == 0
