"""Table tests of export specs -> wanted days, and the check-config summary."""

from __future__ import annotations

import datetime as dt

import pytest

from orchestrator.domain.model import ResourceType
from orchestrator.domain.wanted import (
    ExportSpec,
    FixedRange,
    LastDays,
    OpenEnded,
    Period,
    eligible_at,
    spec_days,
    summarize,
    wanted_days,
)
from orchestrator.errors import InvalidInput

# Latest eligible day at NOW is 2024-03-08.
NOW = dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.UTC)
M, C = ResourceType.MESSAGES, ResourceType.CALLS


def d(day: int, month: int = 3) -> dt.date:
    return dt.date(2024, month, day)


def span(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


@pytest.mark.parametrize(
    ("period", "now", "expected"),
    [
        # fixed, in the past: every day
        (FixedRange(d(1), d(3)), NOW, span(d(1), d(3))),
        # fixed, reaching into the future: every day, eligible or not
        (FixedRange(d(7), d(12)), NOW, span(d(7), d(12))),
        # open-ended: through the latest eligible day
        (OpenEnded(d(5)), NOW, span(d(5), d(8))),
        (OpenEnded(d(8)), NOW, [d(8)]),
        # open-ended starting after the latest eligible day: nothing yet
        (OpenEnded(d(9)), NOW, []),
        # last N: the N most recent eligible days
        (LastDays(3), NOW, span(d(6), d(8))),
        (LastDays(1), NOW, [d(8)]),
        # across a month end
        (LastDays(10), NOW, span(d(28, 2), d(8))),
        # the window slides at 00:00 UTC, not before
        (LastDays(1), dt.datetime(2024, 3, 9, 23, 59, 59, tzinfo=dt.UTC), [d(7)]),
        (LastDays(1), dt.datetime(2024, 3, 10, 0, 0, tzinfo=dt.UTC), [d(8)]),
        # a non-UTC `now` is read in UTC (02:00+05:00 is still the 9th in UTC)
        (
            LastDays(1),
            dt.datetime(2024, 3, 10, 2, 0, tzinfo=dt.timezone(dt.timedelta(hours=5))),
            [d(7)],
        ),
    ],
)
def test_spec_days(period: Period, now: dt.datetime, expected: list[dt.date]) -> None:
    """Each period form gives its days at `now`, oldest first."""
    assert spec_days(ExportSpec("x", M, period), now) == expected


def test_wanted_days_unions_per_type() -> None:
    """Overlapping exports of one type give each day once; types with no day are left out."""
    exports = [
        ExportSpec("a", M, FixedRange(d(1), d(4))),
        ExportSpec("b", M, FixedRange(d(3), d(5))),
        ExportSpec("c", C, LastDays(2)),
        ExportSpec("d", ResourceType.CONFERENCES, OpenEnded(d(20))),
    ]
    assert wanted_days(exports, NOW) == {M: set(span(d(1), d(5))), C: {d(7), d(8)}}


def test_wanted_days_empty() -> None:
    """No export, no wanted day."""
    assert wanted_days([], NOW) == {}


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (d(8), dt.datetime(2024, 3, 10, tzinfo=dt.UTC)),
        (d(29, 2), dt.datetime(2024, 3, 2, tzinfo=dt.UTC)),
        (dt.date(2024, 12, 31), dt.datetime(2025, 1, 2, tzinfo=dt.UTC)),
    ],
)
def test_eligible_at(day: dt.date, expected: dt.datetime) -> None:
    """A day becomes eligible at 00:00 UTC two days after it."""
    assert eligible_at(day) == expected


@pytest.mark.parametrize(
    ("period", "wanted", "eligible", "all_at", "first_at"),
    [
        (FixedRange(d(1), d(3)), 3, 3, None, None),
        # ends in the future: the last day is eligible at 00:00 UTC of end + 2
        (FixedRange(d(7), d(12)), 6, 2, dt.datetime(2024, 3, 14, tzinfo=dt.UTC), None),
        # wholly in the future: the first day's time is given too
        (
            FixedRange(d(20), d(21)),
            2,
            0,
            dt.datetime(2024, 3, 23, tzinfo=dt.UTC),
            dt.datetime(2024, 3, 22, tzinfo=dt.UTC),
        ),
        (OpenEnded(d(5)), 4, 4, None, None),
        (OpenEnded(d(20)), 0, 0, None, dt.datetime(2024, 3, 22, tzinfo=dt.UTC)),
        (LastDays(30), 30, 30, None, None),
    ],
)
def test_summarize(
    period: Period,
    wanted: int,
    eligible: int,
    all_at: dt.datetime | None,
    first_at: dt.datetime | None,
) -> None:
    """The summary counts wanted and eligible days and says when the rest become eligible."""
    summary = summarize(ExportSpec("x", C, period), NOW)
    assert (summary.wanted, summary.eligible_now) == (wanted, eligible)
    assert (summary.all_eligible_at, summary.first_eligible_at) == (all_at, first_at)


def test_describe() -> None:
    """check-config prints one line per export."""
    line = summarize(ExportSpec("calls-q1", C, FixedRange(d(7), d(12))), NOW).describe()
    assert line == (
        "calls-q1: Calls, 2024-03-07 to 2024-03-12: 6 days wanted (2024-03-07 to 2024-03-12), "
        "2 eligible now, all eligible at 2024-03-14 00:00 UTC"
    )
    empty = summarize(ExportSpec("later", M, OpenEnded(d(20))), NOW).describe()
    assert empty == (
        "later: Messages, 2024-03-20 onwards: no day wanted yet, "
        "the first becomes eligible at 2024-03-22 00:00 UTC"
    )


@pytest.mark.parametrize(
    "build",
    [lambda: FixedRange(d(2), d(1)), lambda: LastDays(0), lambda: LastDays(-3)],
)
def test_invalid_periods(build: object) -> None:
    """A range ending before it starts, or a window of fewer than one day, is InvalidInput."""
    assert callable(build)
    with pytest.raises(InvalidInput):
        build()
