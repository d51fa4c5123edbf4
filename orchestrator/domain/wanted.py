"""Export specs -> the days config wants now, and what ``check-config`` says about them. Pure.

A day once wanted stays wanted until it is final: the store keeps wanted rows. ``wanted_days``
only says what the configuration asks for at ``now``; the caller adds new days to the store and
never removes old ones because a rolling window moved on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.domain.model import ELIGIBILITY_LAG_DAYS, ResourceType, latest_eligible_day
from orchestrator.errors import InvalidInput

_ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class FixedRange:
    """Every day from ``start`` through ``end`` (inclusive), even days not yet eligible."""

    start: dt.date
    end: dt.date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise InvalidInput("end_day", f"{self.end} is before start_day {self.start}")

    def describe(self) -> str:
        return f"{self.start} to {self.end}"


@dataclass(frozen=True, slots=True)
class OpenEnded:
    """Every eligible day from ``start`` on; grows by one day each UTC day."""

    start: dt.date

    def describe(self) -> str:
        return f"{self.start} onwards"


@dataclass(frozen=True, slots=True)
class LastDays:
    """The ``count`` most recent eligible days; slides by one day each UTC day."""

    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise InvalidInput("last_days", f"{self.count} is not at least 1")

    def describe(self) -> str:
        return f"the last {self.count} eligible days"


Period = FixedRange | OpenEnded | LastDays


@dataclass(frozen=True, slots=True)
class ExportSpec:
    """One ``[[exports]]`` entry as a domain value: a name, a resource type, a period."""

    name: str
    resource_type: ResourceType
    period: Period


def eligible_at(day: dt.date) -> dt.datetime:
    """When Twilio starts accepting ``day`` as an EndDay: 00:00 UTC of ``day`` + 2 days."""
    start = day + dt.timedelta(days=ELIGIBILITY_LAG_DAYS)
    return dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)


def _date_range(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def spec_days(spec: ExportSpec, now: dt.datetime) -> list[dt.date]:
    """The days ``spec`` wants at ``now``, oldest first."""
    latest = latest_eligible_day(now)
    period = spec.period
    if isinstance(period, FixedRange):
        return _date_range(period.start, period.end)
    if isinstance(period, OpenEnded):
        return _date_range(period.start, latest) if period.start <= latest else []
    return _date_range(latest - (period.count - 1) * _ONE_DAY, latest)


def wanted_days(
    exports: Iterable[ExportSpec], now: dt.datetime
) -> dict[ResourceType, set[dt.date]]:
    """The union of every export's days at ``now``, per resource type (types with no day left out).

    Fixed ranges give all their days, including ones not yet eligible (the planner waits for
    them); open-ended ranges run through ``latest_eligible_day(now)``; ``last_days = N`` gives the
    N most recent eligible days.
    """
    wanted: dict[ResourceType, set[dt.date]] = {}
    for spec in exports:
        days = spec_days(spec, now)
        if days:
            wanted.setdefault(spec.resource_type, set()).update(days)
    return wanted


@dataclass(frozen=True, slots=True)
class ExportSummary:
    """What ``check-config`` prints for one export."""

    name: str
    resource_type: ResourceType
    period: str
    first_day: dt.date | None
    last_day: dt.date | None
    wanted: int
    eligible_now: int
    # When the last wanted day becomes eligible; None when every wanted day already is.
    all_eligible_at: dt.datetime | None
    # When the first day becomes eligible; set only while no day is eligible yet.
    first_eligible_at: dt.datetime | None = None

    def describe(self) -> str:
        """One line for a terminal."""
        head = f"{self.name}: {self.resource_type.value}, {self.period}"
        if self.wanted == 0:
            line = f"{head}: no day wanted yet"
            if self.first_eligible_at is not None:
                line += (
                    f", the first becomes eligible at {self.first_eligible_at:%Y-%m-%d %H:%M} UTC"
                )
            return line
        line = (
            f"{head}: {self.wanted} days wanted ({self.first_day} to {self.last_day}), "
            f"{self.eligible_now} eligible now"
        )
        if self.all_eligible_at is not None:
            line += f", all eligible at {self.all_eligible_at:%Y-%m-%d %H:%M} UTC"
        return line


def summarize(spec: ExportSpec, now: dt.datetime) -> ExportSummary:
    """Days wanted, days eligible now, and when the rest become eligible."""
    days = spec_days(spec, now)
    latest = latest_eligible_day(now)
    eligible = sum(1 for day in days if day <= latest)
    first_eligible_at: dt.datetime | None = None
    if eligible == 0:
        if days:
            first_eligible_at = eligible_at(days[0])
        elif isinstance(spec.period, OpenEnded):
            first_eligible_at = eligible_at(spec.period.start)
    return ExportSummary(
        name=spec.name,
        resource_type=spec.resource_type,
        period=spec.period.describe(),
        first_day=days[0] if days else None,
        last_day=days[-1] if days else None,
        wanted=len(days),
        eligible_now=eligible,
        all_eligible_at=eligible_at(days[-1]) if days and days[-1] > latest else None,
        first_eligible_at=first_eligible_at,
    )
