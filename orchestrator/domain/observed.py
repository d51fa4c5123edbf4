"""What the read-only endpoint shows, as frozen values: pure, no I/O, ``now`` passed in.

``StoreSnapshot`` is what one cheap aggregate read of the store (``Store.metrics_snapshot``)
returns for ``GET /metrics``; ``ExportRange`` names the contiguous run of days an export wants
now (``domain.wanted.spec_days`` is always a range; ``export_range`` finds its ends without
listing it), so the per-export counts are range counts in SQL, not a scan of every day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from orchestrator.domain.archiving import removal_deadline
from orchestrator.domain.model import DayStatus, JobState, ResourceType, latest_eligible_day
from orchestrator.domain.wanted import ExportSpec, FixedRange, OpenEnded

_ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ExportRange:
    """The days an export wants now: ``first`` through ``last`` (inclusive) of one type."""

    name: str
    resource_type: ResourceType
    first: dt.date
    last: dt.date


def export_range(spec: ExportSpec, now: dt.datetime) -> ExportRange | None:
    """The first and last of ``spec_days(spec, now)`` without listing the days between (a
    scrape every 15 s of a 50-year export should not build 18,000 dates); None: no day yet."""
    latest = latest_eligible_day(now)
    period = spec.period
    if isinstance(period, FixedRange):
        first, last = period.start, period.end
    elif isinstance(period, OpenEnded):
        first, last = period.start, latest
    else:
        first, last = latest - (period.count - 1) * _ONE_DAY, latest
    if last < first:
        return None
    return ExportRange(spec.name, spec.resource_type, first, last)


def export_ranges(exports: Iterable[ExportSpec], now: dt.datetime) -> tuple[ExportRange, ...]:
    """Each export's wanted days at ``now`` as a range (an export with none is left out)."""
    return tuple(found for spec in exports if (found := export_range(spec, now)) is not None)


@dataclass(frozen=True, slots=True)
class AtRisk:
    """Successful days of one type whose file is on Twilio and not archived yet."""

    count: int
    # The earliest completion among them: its file is the first Twilio removes.
    earliest_completed_at: dt.datetime

    def expiry_seconds(self, now: dt.datetime) -> float:
        """Seconds until Twilio removes the earliest file (negative: overdue)."""
        return (removal_deadline(self.earliest_completed_at) - now).total_seconds()


@dataclass(frozen=True, slots=True)
class StoreSnapshot:
    """The database's gauges at one moment."""

    taken_at: dt.datetime
    # (export name, resource type, status) -> recorded days of the export's range in that status.
    export_days: Mapping[tuple[str, ResourceType, DayStatus], int] = field(default_factory=dict)
    at_risk: Mapping[ResourceType, AtRisk] = field(default_factory=dict)
    # The longest a Pending day has waited since it became Pending, per type.
    oldest_pending_since: Mapping[ResourceType, dt.datetime] = field(default_factory=dict)
    jobs: Mapping[JobState, int] = field(default_factory=dict)
    # Days requested in jobs created in today's (UTC) budget window.
    quota_days_used: int = 0

    def oldest_pending_age_seconds(self, resource_type: ResourceType) -> float:
        """Age of the longest-waiting Pending day of the type (0 when none waits)."""
        since = self.oldest_pending_since.get(resource_type)
        return 0.0 if since is None else max(0.0, (self.taken_at - since).total_seconds())


def time_left(delta: dt.timedelta) -> str:
    """A short human duration: "2d 5h", "3h 20m", "45m", or "0m (overdue)"."""
    if delta <= dt.timedelta(0):
        return "0m (overdue)"
    minutes = int(delta.total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m"
